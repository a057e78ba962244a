/**
 * Workstream child runs under the channel's settings and standing grants: the real Docker
 * sandbox, a real redis-server, and the local stand-in of the Messages API through the real
 * SDK. Each child run gets the channel context its parent run gets (the plan's snapshot of
 * the policy file's instructions, the approvers' instructions and the remembered facts, not
 * settings changed after the plan was drafted), so "answer in German" holds in every workstream. A child cannot wait for a person: a watched
 * call fails its workstream unless a live grant on the parent run covers that exact call;
 * then it runs, audited as `grant.used` naming the workstream, and a revoked grant no longer
 * counts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';
import { callDigest, type Grant } from '../../src/core/index.ts';
import { runIdFor } from '../../src/queue/index.ts';
import { GrantStore } from '../../src/storage/index.ts';
import {
  type FakeAnthropicServer,
  type FakeReply,
  type MessagesRequestBody,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const regions = ['north', 'south'];
const policyInstructions = 'Write every report in German (Policy-Anweisung 7f3a).';
const chatInstructions = 'Use the company template; our fiscal year starts in April (Kanal-Anweisung 9c2e).';
const laterInstructions = 'Answer in French from now on (Kanal-Anweisung b8e4).';
const fact = 'the EMEA target is 2.1 M (Fakt 5d1b)';

const plan: FakeReply = {
  content: [
    {
      type: 'tool_use',
      name: 'submit_plan',
      input: {
        summary: 'One section per region, written in parallel, merged into one report.',
        steps: [
          { title: 'Write each region', actions: ['read_files', 'run_commands', 'create_files'] },
          { title: 'Merge', actions: ['read_files', 'create_files'] },
        ],
        deliverables: [{ name: 'report.md', type: 'md' }],
        workstreams: regions.map((id) => ({
          id,
          title: id[0]!.toUpperCase() + id.slice(1),
          brief: `Write the ${id} section and hand back ${id}.md.`,
        })),
        merge: 'Join the sections into report.md.',
        onChildFailure: 'fail',
      },
    },
  ],
};
const call = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});
const done = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

/** The exact command each workstream runs first (a grant covers exactly this call). */
const commandOf = (child: string) =>
  `printf '## %s\\n\\nAbschnitt %s.\\n' ${child} ${child} > /workspace/out/${child}.md`;

const toolsOf = (body: MessagesRequestBody) => body.tools as Array<{ name: string }>;
const turnOf = (body: MessagesRequestBody) =>
  (body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;
const firstMessage = (body: MessagesRequestBody) => JSON.stringify((body.messages as unknown[])[0]);

/**
 * Answers by who asks: the planner gets the fan-out plan, each workstream (named in its first
 * message) runs its command and hands its section back, and the merge step writes the report
 * with write_file (no command, so it never waits on a watched command itself). Every request is kept.
 */
function fanOutHandler() {
  const seen = new Map<string, MessagesRequestBody[]>();
  const keep = (who: string, body: MessagesRequestBody) => seen.set(who, [...(seen.get(who) ?? []), body]);
  const handler = (body: MessagesRequestBody): FakeReply => {
    if (toolsOf(body).some((t) => t.name === 'submit_plan')) {
      keep('planner', body);
      return plan;
    }
    const child = /You are workstream \\?"([a-z0-9_-]+)\\?"/.exec(firstMessage(body))?.[1];
    const turn = turnOf(body);
    if (child) {
      keep(child, body);
      if (turn === 0) return call('run_command', { command: commandOf(child), step: 1 });
      if (turn === 1) return call('deliver_artifact', { path: `/workspace/out/${child}.md`, step: 1 });
      return done(`Abschnitt ${child} geschrieben.`);
    }
    keep('merge', body);
    if (turn === 0)
      return call('write_file', {
        path: '/workspace/out/report.md',
        content: `Bericht: ${regions.join(', ')}\n`,
        step: 2,
      });
    if (turn === 1) return call('deliver_artifact', { path: '/workspace/out/report.md', step: 2 });
    return done('Bericht zusammengeführt.');
  };
  return { seen, handler };
}

describeDocker('workstream child runs under channel settings and standing grants', () => {
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let redis: Redis;
  let grants: GrantStore;
  const dataDir = mkdtempSync(join(tmpdir(), 'handoff-ws-settings-'));
  const ben = () => new ConsoleClient(handoff.url, 'Ben');

  beforeAll(async () => {
    const policy = join(dataDir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:*":',
        '    requesterMayApprove: true',
        '    approvers:',
        '      users: ["web:ben"]',
        '  "web:german":',
        `    instructions: ${JSON.stringify(policyInstructions)}`,
        '  "web:careful":',
        '    trust:',
        '      run_commands: watched',
        '',
      ].join('\n'),
    );
    model = await startFakeAnthropic();
    handoff = await startDevHandoff({
      dataDir,
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
    });
    redis = new Redis(handoff.redisUrl);
    redis.on('error', () => undefined);
    grants = new GrantStore(redis, 86_400_000);
  }, 60_000);
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
    await model?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function audit(taskId: string) {
    return (await redis.lrange('hf:audit', 0, -1))
      .map((r) => JSON.parse(r) as { type: string; taskId?: string; actor?: string; data: Record<string, unknown> })
      .filter((r) => r.taskId === taskId);
  }

  async function waitInChannel(channel: string, thread: string, match: (html: string) => boolean, timeoutMs = 120_000) {
    const client = ben();
    const deadline = Date.now() + timeoutMs;
    let last: ConsoleMessage[] = [];
    while (Date.now() < deadline) {
      last = (await client.messages(channel)).filter((m) => m.threadId === thread);
      const found = last.find((m) => m.author.bot && m.html && match(m.html));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`no matching card in #${channel}:\n${last.map((m) => m.html ?? m.text).join('\n---\n')}`);
  }

  /** Posts the request in #channel, lets `beforeApproval` act on the task, approves, returns the result card. */
  async function runFanOut(
    channel: string,
    beforeApproval: (taskId: string) => Promise<void> = async () => undefined,
  ): Promise<{ taskId: string; result: ConsoleMessage }> {
    const client = ben();
    const posted = await client.post('@handoff write one section per region and merge them', [], undefined, {
      channel,
    });
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await waitInChannel(channel, thread, (h) => h.includes('card plan'));
    expect(card.html).toContain('Runs as 2 parallel workstreams, each in its own sandbox');
    const buttons = planButtons(card.html!);
    await beforeApproval(buttons.taskId);
    expect((await client.action({ action: 'approve', ...buttons })).status).toBe(200);
    const result = await waitInChannel(channel, thread, (h) => h.includes('card result'), 240_000);
    return { taskId: buttons.taskId, result };
  }

  /** A run grant on the task's (parent) run for one workstream's exact first command. */
  function runGrantFor(taskId: string, child: string): Grant {
    const now = new Date();
    return {
      id: `g_test_${child}_${taskId.slice(-6)}`,
      pattern: `call:run_command:${callDigest('run_command', { command: commandOf(child) })}`,
      action: 'run_commands',
      scope: 'run',
      surface: 'web',
      channel: 'careful',
      taskId,
      runId: runIdFor(taskId, 1),
      approvalId: `a_test_${child}`,
      description: 'this exact run_command call',
      createdBy: { id: 'web:ben', name: 'Ben' },
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 3_600_000).toISOString(),
    };
  }

  it("gives every child run the channel's instructions and remembered facts, as its parent run gets them", async () => {
    const setInstructions = (text: string) =>
      fetch(`${handoff.url}/api/console/channel-settings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
        body: JSON.stringify({ channel: 'german', author: ben().author, op: 'set_instructions', text }),
      });
    expect((await setInstructions(chatInstructions)).status).toBe(200);
    const remembered = await ben().post(`@handoff remember that ${fact}`, [], undefined, { channel: 'german' });
    expect(remembered.status).toBe(201);
    await waitInChannel('german', remembered.body.message!.id, (h) => h.includes('Remembered for this channel'));

    const { seen, handler } = fanOutHandler();
    model.setHandler(handler);
    try {
      // Changed after the plan was drafted: the run and its children keep what the approver approved.
      const { result } = await runFanOut('german', async () => {
        expect((await setInstructions(laterInstructions)).status).toBe(200);
      });
      expect(result.html).toContain('Done');
      for (const who of ['planner', ...regions, 'merge']) {
        const bodies = seen.get(who) ?? [];
        expect(bodies.length, `${who} requests`).toBeGreaterThan(0);
        // Every request of the run carries the same first message: the context is there at every turn.
        for (const body of bodies) {
          const first = firstMessage(body);
          expect(first, who).toContain(policyInstructions);
          expect(first, who).toContain(chatInstructions);
          expect(first, who).toContain(fact);
          expect(first, who).toContain('<channel_memory>');
          expect(first, who).not.toContain(laterInstructions);
        }
      }
      expect(seen.get('north')).toHaveLength(3);
      expect(seen.get('south')).toHaveLength(3);
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);

  it('fails a workstream whose command is watched in the channel when no grant covers it', async () => {
    const { seen, handler } = fanOutHandler();
    model.setHandler(handler);
    try {
      const { taskId, result } = await runFanOut('careful');
      expect(result.html).toContain('failed');
      expect(result.html).toContain('cannot wait for a person');
      expect(seen.get('merge')).toBeUndefined();
      const records = await audit(taskId);
      expect(records.filter((r) => r.type === 'grant.used')).toEqual([]);
      const failed = records.filter((r) => r.type === 'workstream.finished' && r.data.outcome === 'failed');
      expect(failed.length).toBeGreaterThan(0);
      for (const r of failed) expect(String(r.data.error)).toContain('cannot wait for a person');
      expect(JSON.parse((await redis.get(`hf:task:${taskId}`))!).state).toBe('failed');
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);

  it('runs a watched call in a workstream under a grant on the parent run, audited with the workstream id', async () => {
    const { seen, handler } = fanOutHandler();
    model.setHandler(handler);
    try {
      const made: Grant[] = [];
      const { taskId, result } = await runFanOut('careful', async (id) => {
        for (const child of regions) made.push(await grants.create(runGrantFor(id, child)));
      });
      expect(result.html).toContain('Done');
      const [file] = links(result.html!);
      expect(file?.name).toBe('report.md');
      for (const child of regions) expect(seen.get(child)).toHaveLength(3);

      const records = await audit(taskId);
      const used = records.filter((r) => r.type === 'grant.used');
      expect(used).toHaveLength(2);
      for (const child of regions) {
        const grant = made.find((g) => g.id.includes(child))!;
        const record = used.find((r) => r.data.workstream === child);
        expect(record?.actor).toBe('web:ben');
        expect(record?.data).toMatchObject({
          runId: runIdFor(taskId, 1),
          workstream: child,
          grantIds: [grant.id],
          scopes: ['run'],
          patterns: [grant.pattern],
          tool: 'run_command',
          action: 'run_commands',
        });
        const ran = records.find(
          (r) => r.type === 'tool.call' && r.data.workstream === child && r.data.tool === 'run_command',
        );
        expect(ran?.data).toMatchObject({ trust: 'watched', decision: 'ran', isError: false });
      }
      // The section files the children wrote under the grant reached the merge step.
      const workstreams = records.find((r) => r.type === 'workstreams.merged');
      expect(workstreams?.data).toMatchObject({ done: regions, failed: [] });
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);

  it('stops honouring a revoked grant: the workstream it covered fails again', async () => {
    const { handler } = fanOutHandler();
    model.setHandler(handler);
    try {
      const { taskId, result } = await runFanOut('careful', async (id) => {
        for (const child of regions) await grants.create(runGrantFor(id, child));
        await grants.revoke(runGrantFor(id, 'south').id, { id: 'web:ben', name: 'Ben' });
      });
      expect(result.html).toContain('failed');
      expect(result.html).toContain('cannot wait for a person');
      const records = await audit(taskId);
      expect(records.filter((r) => r.type === 'grant.used' && r.data.workstream === 'south')).toEqual([]);
      const south = records.filter((r) => r.type === 'workstream.finished' && r.data.workstream === 'south');
      expect(south.some((r) => r.data.outcome === 'failed')).toBe(true);
      expect(JSON.parse((await redis.get(`hf:task:${taskId}`))!).state).toBe('failed');
    } finally {
      model.setHandler(undefined);
    }
  }, 300_000);
});
