import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';
import {
  type FakeAnthropicServer,
  type FakeReply,
  type MessagesRequestBody,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const v1Plan = {
  summary: 'A quarterly report as CSV.',
  steps: [
    { title: 'Look at the request', actions: ['read_files'] },
    { title: 'Build the report', detail: 'One row per quarter.', actions: ['run_commands', 'create_files'] },
  ],
  deliverables: [{ name: 'report.csv', type: 'csv' }],
};

/** The follow-up "add Q4": the same rights, starting from the delivered report. */
const v2Plan = {
  summary: 'The delivered quarterly report with a Q4 row added.',
  steps: [
    { title: 'Read the delivered report', detail: 'From /workspace/in/report.csv.', actions: ['read_files'] },
    { title: 'Add the Q4 row', detail: 'Same file name.', actions: ['run_commands', 'create_files'] },
  ],
  deliverables: [{ name: 'report.csv', type: 'csv' }],
};

/** A follow-up that needs more than the delivered plan had: the web, and a new file type. */
const widerPlan = {
  summary: 'The report with a summary of market news from the web.',
  steps: [
    { title: 'Read the news', actions: ['network_egress'] },
    { title: 'Write the summary', actions: ['run_commands', 'create_files'] },
  ],
  deliverables: [
    { name: 'report.csv', type: 'csv' },
    { name: 'summary.md', type: 'md' },
  ],
};

const v1Csv = 'quarter,total\nQ1,10\nQ2,12\nQ3,9\n';

function text(content: unknown): string {
  if (typeof content === 'string') return content;
  return (content as Array<{ type: string; text?: string }>).map((b) => b.text ?? '').join('\n');
}
const firstMessage = (body: MessagesRequestBody) => text((body.messages as Array<{ content: unknown }>)[0]!.content);
const isPlanning = (body: MessagesRequestBody) =>
  (body.tools as Array<{ name: string }>).some((t) => t.name === 'submit_plan');

/** Plans v1, the follow-up or the wider follow-up; runs v1 (writes the report) or v2 (reads v1 and adds Q4). */
function model(body: MessagesRequestBody): FakeReply {
  if (isPlanning(body)) {
    const first = firstMessage(body);
    const input = first.includes('from the web') ? widerPlan : first.includes('delivered="true"') ? v2Plan : v1Plan;
    return { content: [{ type: 'tool_use', name: 'submit_plan', input }] };
  }
  const followUp = text(body.system).includes('Approved plan (version 2)');
  const command = followUp
    ? "cp /workspace/in/report.csv /workspace/out/report.csv && printf 'Q4,7\\n' >> /workspace/out/report.csv"
    : `printf '${v1Csv.replace(/\n/g, '\\n')}' > /workspace/out/report.csv`;
  const turns = (body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;
  const script: FakeReply[] = [
    { content: [{ type: 'tool_use', name: 'run_command', input: { command, step: 2 } }] },
    {
      content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/report.csv', step: 2 } }],
    },
  ];
  return script[turns] ?? { content: [{ type: 'text', text: followUp ? 'Added Q4.' : 'Here is the report.' }] };
}

/** Polls a channel's thread until `count` bot cards match. */
async function waitForCards(
  client: ConsoleClient,
  channel: string,
  thread: string,
  match: (html: string) => boolean,
  count = 1,
  timeoutMs = 180_000,
): Promise<ConsoleMessage[]> {
  const deadline = Date.now() + timeoutMs;
  let last: ConsoleMessage[] = [];
  while (Date.now() < deadline) {
    last = (await client.messages(channel)).filter((m) => m.threadId === thread);
    const found = last.filter((m) => m.author.bot && m.html && match(m.html));
    if (found.length >= count) return found;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no ${count} matching cards; thread was:\n${last.map((m) => m.html ?? m.text).join('\n---\n')}`);
}

async function download(handoff: TestHandoff, html: string, name: string): Promise<string> {
  const file = links(html).find((l) => l.name === name);
  if (!file) throw new Error(`no link to ${name} on ${html}`);
  const res = await fetch(new URL(file.href, handoff.url));
  expect(res.status).toBe(200);
  return res.text();
}

describeDocker('Follow-ups after a delivery (fake Anthropic API, real Redis and Docker)', () => {
  let api: FakeAnthropicServer;
  let handoff: TestHandoff;
  let redis: Redis;
  const dir = mkdtempSync(join(tmpdir(), 'handoff-follow-up-'));

  beforeAll(async () => {
    api = (await startFakeAnthropic()).setHandler(model);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:general":',
        '    approvers: { users: ["web:bo"] }',
        '    followUps: { requesterMayApproveWithinEnvelope: true }',
        '  "web:strict":',
        '    approvers: { users: ["web:bo"] }',
        '',
      ].join('\n'),
    );
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: api.url, HANDOFF_POLICY: policy },
    });
    redis = new Redis(handoff.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Ana asks, Bo approves, the run delivers report.csv (v1). Returns the thread and the result card. */
  async function delivered(channel: string) {
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const posted = await ana.post('@handoff make the quarterly report', [], undefined, { channel });
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const [card] = await waitForCards(ana, channel, thread, (h) => h.includes('card plan') && h.includes('Plan v1'));
    const v1 = planButtons(card!.html!);
    expect((await bo.action({ action: 'approve', ...v1 })).status).toBe(200);
    const [result] = await waitForCards(ana, channel, thread, (h) => h.includes('card result'));
    expect(await download(handoff, result!.html!, 'report.csv')).toBe(v1Csv);
    return { ana, bo, thread, taskId: v1.taskId };
  }

  it('a follow-up makes v2 of the deliverable from v1; the requester approves it alone inside the envelope', async () => {
    const { ana, bo, thread, taskId } = await delivered('general');

    // Someone who is neither the requester nor an approver is told so; nothing is planned.
    const cara = new ConsoleClient(handoff.url, 'Cara');
    expect((await cara.post('can you add Q5?', [], thread)).status).toBe(201);
    await waitForCards(cara, 'general', thread, (h) =>
      h.includes('Only Ana (who asked) or an approver can follow up on this task'),
    );
    expect(JSON.parse((await redis.get(`hf:task:${taskId}`))!).state).toBe('succeeded');

    // The requester follows up: plan v2, starting from the delivered file, with the diff.
    expect((await ana.post('add Q4', [], thread)).status).toBe(201);
    const [v2Card] = await waitForCards(
      ana,
      'general',
      thread,
      (h) => h.includes('card plan') && h.includes('Plan v2'),
    );
    expect(v2Card!.html).toContain('Follow-up from Ana: “add Q4”');
    expect(v2Card!.html).toContain(
      'Inside the delivered plan&#39;s approved envelope: the requester may approve it alone.',
    );
    expect(v2Card!.html).toContain('Changes since v1');
    expect(v2Card!.html).toContain('Summary reworded');
    const planning = api.messageRequests.filter(
      (r) => isPlanning(r.body) && firstMessage(r.body).includes('delivered="true"'),
    );
    expect(planning).toHaveLength(1);
    const asked = firstMessage(planning[0]!.body);
    expect(asked).toContain('<previous_plan version="1" delivered="true">');
    expect(asked).toContain('- /workspace/in/report.csv (text/csv');
    expect(asked).toContain('<change>\nadd Q4\n</change>');

    // The requester alone approves it: the channel's policy allows that inside the envelope.
    const v2 = planButtons(v2Card!.html!);
    const approved = await ana.action({ action: 'approve', ...v2 });
    expect(approved.body.message ?? approved.body.error).toBe('Approved: the run is queued.');
    const results = await waitForCards(ana, 'general', thread, (h) => h.includes('card result'), 2);
    // v2 derives from v1: the run read the delivered file and added a row.
    expect(await download(handoff, results[1]!.html!, 'report.csv')).toBe(`${v1Csv}Q4,7\n`);

    const audit = (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as { type: string; taskId?: string; actor?: string; data?: Record<string, unknown> })
      .filter((r) => r.taskId === taskId);
    expect(audit.find((r) => r.type === 'task.follow_up')).toMatchObject({
      actor: 'web:ana',
      data: { fromVersion: 1, version: 2, inputs: [{ name: 'report.csv' }] },
    });
    expect(
      audit.filter((r) => r.type === 'plan.approved').map((r) => [r.actor, r.data?.followUpWithinEnvelope]),
    ).toEqual([
      ['web:bo', undefined],
      ['web:ana', true],
    ]);

    // A follow-up beyond the delivered envelope is approved as usual: not by the requester alone.
    expect((await ana.post('also write a summary from the web', [], thread)).status).toBe(201);
    const [v3Card] = await waitForCards(
      ana,
      'general',
      thread,
      (h) => h.includes('card plan') && h.includes('Plan v3'),
    );
    expect(v3Card!.html).toContain('Goes beyond the delivered plan');
    const v3 = planButtons(v3Card!.html!);
    const refused = await ana.action({ action: 'approve', ...v3 });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toContain('you cannot approve your own request');
    expect((await bo.action({ action: 'deny', ...v3 })).status).toBe(200);

    // A reply in the thread of a denied task gets a clear answer.
    expect((await ana.post('thanks!', [], thread)).status).toBe(201);
    await waitForCards(ana, 'general', thread, (h) =>
      h.includes('This task was denied: nothing more runs in it. To start a new task, mention @handoff'),
    );

    // Its records expire under retention; the thread's tombstone is left, and a reply is answered.
    expect(await redis.get(`hf:thread-ended:web:general:${thread}`)).toBe(taskId);
    await redis.del(`hf:task:${taskId}`, `hf:thread:web:general:${thread}`);
    expect((await ana.post('one more thing', [], thread)).status).toBe(201);
    await waitForCards(
      ana,
      'general',
      thread,
      (h) => h.includes('The task in this thread has expired') && h.includes('mention @handoff'),
    );
  }, 480_000);

  it('refuses the requester alone where the channel policy does not allow it', async () => {
    const { ana, thread } = await delivered('strict');
    expect((await ana.post('add Q4', [], thread, { channel: 'strict' })).status).toBe(201);
    const [card] = await waitForCards(ana, 'strict', thread, (h) => h.includes('card plan') && h.includes('Plan v2'));
    expect(card!.html).toContain('Follow-up from Ana');
    expect(card!.html).toContain('Inside the delivered plan&#39;s approved envelope.');
    expect(card!.html).not.toContain('may approve it alone');
    const refused = await ana.action({ action: 'approve', ...planButtons(card!.html!) });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toContain('you cannot approve your own request');
  }, 300_000);
});
