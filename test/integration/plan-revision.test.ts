import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
  summary: 'Write a short note on the quarter.',
  steps: [
    { title: 'Draft the note', detail: 'Three paragraphs.', actions: ['create_files'] },
    { title: 'Deliver the note', actions: ['create_files'] },
  ],
  deliverables: [{ name: 'note.md', type: 'md' }],
};

const v2Plan = {
  summary: 'Write a short note on the quarter, with the data for a chart.',
  steps: [
    { title: 'Draft the note', detail: 'Three paragraphs.', actions: ['create_files'] },
    { title: 'Add a chart', detail: 'A table of the figures to chart.', actions: ['run_commands', 'create_files'] },
    { title: 'Deliver the note', actions: ['create_files'] },
  ],
  deliverables: [
    { name: 'note.md', type: 'md' },
    { name: 'chart-data.csv', type: 'csv' },
  ],
};

function firstMessage(body: MessagesRequestBody): string {
  const first = (body.messages as Array<{ content: string | Array<{ type: string; text?: string }> }>)[0]!.content;
  return typeof first === 'string' ? first : first.map((b) => b.text ?? '').join('\n');
}

const isPlanning = (body: MessagesRequestBody) =>
  (body.tools as Array<{ name: string }>).some((t) => t.name === 'submit_plan');

/** Plans v1 (or v2 when shown a previous plan), then runs: write both files, deliver them, finish. */
function model(body: MessagesRequestBody): FakeReply {
  if (isPlanning(body)) {
    const input = firstMessage(body).includes('<previous_plan') ? v2Plan : v1Plan;
    return { content: [{ type: 'tool_use', name: 'submit_plan', input }] };
  }
  const turns = (body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;
  const script: FakeReply[] = [
    {
      content: [
        {
          type: 'tool_use',
          name: 'run_command',
          input: {
            command:
              "printf '# Q3\\n' > /workspace/out/note.md && printf 'region,total\\nNorth,10\\n' > /workspace/out/chart-data.csv",
            step: 2,
          },
        },
      ],
    },
    { content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md', step: 3 } }] },
    {
      content: [
        { type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/chart-data.csv', step: 3 } },
      ],
    },
  ];
  return script[turns] ?? { content: [{ type: 'text', text: 'Here are the note and the chart data.' }] };
}

describeDocker('Request changes in the web console drafts a revised plan (fake Anthropic API)', () => {
  let api: FakeAnthropicServer;
  let handoff: TestHandoff;

  beforeAll(async () => {
    api = (await startFakeAnthropic()).setHandler(model);
    handoff = await startDevHandoff({ env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: api.url } });
  });
  afterAll(async () => {
    await handoff?.close();
    await api?.close();
  });

  it('plan v1 → Request changes → v2 with the diff → v1 refused → v2 approved and run', async () => {
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const posted = await ana.post('@handoff write a short note on the quarter');
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const v1Card = await ana.waitForCard(thread, (h) => h.includes('card plan') && h.includes('Plan v1'));
    expect(v1Card.html).toContain('data-action="request-changes"');
    const v1 = planButtons(v1Card.html!);

    // The form's limits are checked before anything changes.
    const empty = await ana.action({ action: 'request-changes', ...v1, text: '   ' });
    expect(empty.status).toBe(400);
    const long = await ana.action({ action: 'request-changes', ...v1, text: 'x'.repeat(2001) });
    expect(long.status).toBe(400);
    expect(long.body.error).toContain('1–2000 characters');

    const asked = await ana.action({ action: 'request-changes', ...v1, text: 'also add a chart' });
    expect(asked.status).toBe(200);
    expect(asked.body.message).toContain('plan version 2');

    // The model is shown the plan it revises and the change, in its first planning message for v2.
    const v2Card = await ana.waitForCard(thread, (h) => h.includes('card plan') && h.includes('Plan v2'));
    const revising = api.messageRequests.filter(
      (r) => isPlanning(r.body) && firstMessage(r.body).includes('<previous_plan'),
    );
    expect(revising).toHaveLength(1);
    const first = firstMessage(revising[0]!.body);
    expect(first).toContain('<previous_plan version="1">');
    expect(first).toContain('Summary: Write a short note on the quarter.');
    expect(first).toContain('1. Draft the note — Three paragraphs.');
    expect(first).toContain('- note.md (md)');
    expect(first).toContain('<change>\nalso add a chart\n</change>');
    // The original request is left as it was asked.
    expect(first).toContain('<request>\nwrite a short note on the quarter\n</request>');

    // v2 says who asked for what, and what changed.
    expect(v2Card.html).toContain('Revised after Ana asked: “also add a chart”');
    expect(v2Card.html).toContain('<li class="diff-added">+ <strong>Add a chart</strong>');
    expect(v2Card.html).toContain('+ file chart-data.csv');
    expect(v2Card.html).toContain('new tool: run_command');
    // v1 has no buttons any more.
    const v1Now = (await ana.thread(thread)).find((m) => m.id === v1Card.id)!;
    expect(v1Now.html).toContain('Replaced by a newer plan version after Ana asked for changes');
    expect(v1Now.html).not.toContain('data-action="approve"');

    // An old card's hash cannot approve or revise the new plan.
    const stale = await ana.action({ action: 'approve', ...v1 });
    expect(stale.status).toBe(409);
    expect((await ana.action({ action: 'request-changes', ...v1, text: 'again' })).status).toBe(409);

    const v2 = planButtons(v2Card.html!);
    expect(v2.planVersion).toBe(2);
    expect(v2.planHash).not.toBe(v1.planHash);
    const approved = await ana.action({ action: 'approve', ...v2 });
    expect(approved.status).toBe(200);
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Done');
    expect(links(result.html!).map((l) => l.name)).toEqual(['note.md', 'chart-data.csv']);

    // The run is told about the change too, apart from the request.
    const run = api.messageRequests.find((r) => !isPlanning(r.body))!;
    expect(firstMessage(run.body)).toContain('<change>\nalso add a chart\n</change>');

    const redis = new Redis(handoff.redisUrl);
    const task = JSON.parse((await redis.get(`hf:task:${v1.taskId}`))!) as {
      request: string;
      changeRequests: Array<{ version: number; by: { name: string }; text: string }>;
    };
    const audit = (await redis.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; taskId?: string },
    );
    redis.disconnect();
    expect(task.request).toBe('write a short note on the quarter');
    expect(task.changeRequests).toMatchObject([{ version: 1, by: { name: 'Ana' }, text: 'also add a chart' }]);
    expect(audit.filter((r) => r.taskId === v1.taskId).map((r) => r.type)).toEqual(
      expect.arrayContaining(['plan.changes_requested', 'plan.approved']),
    );
  }, 240_000);
});
