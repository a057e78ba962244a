import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';
import { parseConnectors } from '../../src/config/index.ts';
import {
  type FakeAnthropicServer,
  type FakeReply,
  type MessagesRequestBody,
  startFakeAnthropic,
} from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const use = (name: string, input: Record<string, unknown>): FakeReply => ({
  content: [{ type: 'tool_use', name, input }],
});
const done = (text: string): FakeReply => ({ content: [{ type: 'text', text }] });

function lastResults(body: MessagesRequestBody): Array<{ content: string; is_error?: boolean }> {
  const last = (body.messages as Array<{ content: unknown }>).at(-1)!;
  return Array.isArray(last.content)
    ? (last.content as Array<{ type: string; content: string; is_error?: boolean }>).filter(
        (b) => b.type === 'tool_result',
      )
    : [];
}

/** The approval id of a card that still has its buttons ('' once decided). */
const approvalIdOf = (html: string) => /data-approval="([^"]+)"/.exec(html)?.[1] ?? '';

async function audit(
  redisUrl: string,
  taskId?: string,
): Promise<Array<{ type: string; taskId?: string; data: Record<string, unknown> }>> {
  const redis = new Redis(redisUrl);
  try {
    const all = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
    return taskId ? all.filter((r) => r.taskId === taskId) : all;
  } finally {
    redis.disconnect();
  }
}

/** Polls a channel's thread until a bot card matches one not seen before. */
async function waitForNewCard(
  client: ConsoleClient,
  thread: string,
  match: (html: string) => boolean,
  seen: ReadonlySet<string>,
  channel = 'general',
): Promise<ConsoleMessage> {
  return client.waitForMessage(
    (m) =>
      m.threadId === thread &&
      m.author.bot &&
      !!m.html &&
      match(m.html) &&
      approvalIdOf(m.html) !== '' &&
      !seen.has(approvalIdOf(m.html)),
    120_000,
    channel,
  );
}

describeDocker('standing grants: approve for the rest of a run', () => {
  let model: FakeAnthropicServer | undefined;
  let handoff: TestHandoff | undefined;

  afterEach(async () => {
    await handoff?.close();
    await model?.close();
  });

  it('skips the second approval of the same pattern in that run, but not a different pattern', async () => {
    model = await startFakeAnthropic();
    let secondWrite: { content: string; is_error?: boolean } | undefined;
    model.enqueue(
      {
        content: [
          {
            type: 'tool_use',
            name: 'submit_plan',
            input: {
              summary: 'Fix the notes and copy them into a deliverable.',
              steps: [
                { title: 'Fix the notes', actions: ['overwrite_input', 'delete_file'] },
                { title: 'Copy them', actions: ['run_commands', 'create_files'] },
              ],
              deliverables: [{ name: 'copy.md', type: 'md' }],
            },
          },
        ],
      },
      use('write_file', { path: '/workspace/in/notes.txt', content: 'v1\n', step: 1 }),
      use('write_file', { path: '/workspace/in/notes.txt', content: 'v2\n', step: 1 }),
      (body) => {
        secondWrite = lastResults(body)[0];
        return use('delete_file', { path: '/workspace/in/old.txt', step: 1 });
      },
      use('run_command', { command: 'cp /workspace/in/notes.txt /workspace/out/copy.md', step: 2 }),
      use('deliver_artifact', { path: '/workspace/out/copy.md', step: 2 }),
      done('Done.'),
    );
    handoff = await startDevHandoff({ env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url } });
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const posted = await ana.post('@handoff fix the notes', [
      { name: 'notes.txt', content: Buffer.from('v0\n') },
      { name: 'old.txt', content: Buffer.from('old\n') },
    ]);
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'));
    const { taskId } = planButtons(card.html!);
    await bo.action({ action: 'approve', ...planButtons(card.html!) });

    const first = await ana.waitForCard(thread, (h) => h.includes('card approval'), 60_000);
    expect(first.html).toContain('/workspace/in/notes.txt');
    // The run grant is offered; the channel grant is not (no policy allows it, and an input file is no channel pattern).
    expect(first.html).toContain('data-action="grant-run-action"');
    expect(first.html).not.toContain('data-action="grant-channel-action"');
    const firstId = approvalIdOf(first.html!);
    // A forged "always allow" for this card is refused, and records nothing.
    const forged = await bo.action({ action: 'grant-channel-action', taskId, approvalId: firstId });
    expect(forged.status).toBe(403);
    expect((await audit(handoff.redisUrl, taskId)).some((r) => r.type === 'action.approved')).toBe(false);

    const granted = await bo.action({ action: 'grant-run-action', taskId, approvalId: firstId });
    expect(granted.status).toBe(200);
    expect(granted.body.message).toContain('for the rest of this run');

    // The second write to the same input ran without a card; the deletion of another file asks again.
    const second = await waitForNewCard(ana, thread, (h) => h.includes('card approval'), new Set([firstId]));
    expect(second.html).toContain('/workspace/in/old.txt');
    expect(second.html).toContain('data-action="approve-action"');
    expect(secondWrite).toMatchObject({ content: expect.stringContaining('wrote /workspace/in/notes.txt') });
    expect(secondWrite?.is_error).toBeUndefined();
    await bo.action({ action: 'approve-action', taskId, approvalId: approvalIdOf(second.html!) });

    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    const [file] = links(result.html!);
    expect(await (await fetch(new URL(file!.href, handoff.url))).text()).toBe('v2\n');
    // The first card says what was granted; the second a plain approval.
    const decided = (await ana.thread(thread)).filter((m) => m.html?.includes('card approval')).map((m) => m.html!);
    expect(decided.filter((h) => h.includes('Approved for the rest of this run by Bo'))).toHaveLength(1);
    expect(decided.filter((h) => h.includes('/workspace/in/old.txt') && h.includes('Approved by Bo'))).toHaveLength(1);

    const records = await audit(handoff.redisUrl, taskId);
    const created = records.filter((r) => r.type === 'grant.created');
    expect(created).toHaveLength(1);
    expect(created[0]!.data).toMatchObject({ scope: 'run', pattern: 'file:overwrite_input:/workspace/in/notes.txt' });
    const used = records.filter((r) => r.type === 'grant.used');
    expect(used).toHaveLength(1);
    expect(used[0]!.data).toMatchObject({ grantIds: [created[0]!.data.grantId], tool: 'write_file' });
    expect(records.filter((r) => r.type === 'action.approval_requested')).toHaveLength(2);
  }, 240_000);
});

describeDocker('standing grants: always allow in a channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-grants-'));
  const log = join(dir, 'calls.log');
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;

  beforeAll(async () => {
    model = await startFakeAnthropic();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:*":',
        '    connectors: [records]',
        '  "web:general":',
        '    standingGrants: { allow: true, maxDays: 7 }',
        '  "web:broken":',
        '    standingGrants: { allow: true, maxDays: 7 }',
        '',
      ].join('\n'),
    );
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
      connectors: parseConnectors(
        {
          records: {
            title: 'Records',
            command: process.execPath,
            args: [join(import.meta.dirname, '../fakes/mcp-stdio-server.mjs')],
            env: { RECORDS_LOG: log },
            timeout: '5s',
          },
        },
        'handoff.yaml',
      ),
    });
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan: FakeReply = {
    content: [
      {
        type: 'tool_use',
        name: 'submit_plan',
        input: {
          summary: 'File a follow-up record and write a note.',
          steps: [
            { title: 'File the record', actions: ['connector_write'] },
            { title: 'Write the note', actions: ['create_files'] },
          ],
          deliverables: [{ name: 'note.md', type: 'md' }],
          connectorTools: ['records__create_record'],
        },
      },
    ],
  };
  const rest = (n: number): FakeReply[] => [
    use('write_file', { path: '/workspace/out/note.md', content: `note ${n}\n`, step: 2 }),
    use('deliver_artifact', { path: '/workspace/out/note.md', step: 2 }),
    done(`Filed follow-up ${n}.`),
  ];

  /** Posts a request in `channel`, approves its plan as Bo and returns the thread and task. */
  async function start(channel: string, n: number) {
    model.enqueue(plan, use('records__create_record', { title: `Follow-up ${n}`, step: 1 }), ...rest(n));
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');
    const posted = await ana.post('@handoff file a follow-up record', [], undefined, { channel });
    const thread = posted.body.message!.id;
    const card = await ana.waitForMessage(
      (m) => m.threadId === thread && !!m.html?.includes('card plan'),
      120_000,
      channel,
    );
    await bo.action({ action: 'approve', ...planButtons(card.html!) });
    return { thread, taskId: planButtons(card.html!).taskId, ana, bo };
  }

  const finished = (ana: ConsoleClient, thread: string, channel = 'general') =>
    ana.waitForMessage((m) => m.threadId === thread && !!m.html?.includes('card result'), 120_000, channel);
  const approvalCard = (ana: ConsoleClient, thread: string, channel = 'general') =>
    ana.waitForMessage((m) => m.threadId === thread && !!m.html?.includes('card approval'), 120_000, channel);

  it('skips the approval in the next run of the channel, and revoking restores it', async () => {
    // Run 1: the watched connector call asks; Bo allows it in the channel.
    const one = await start('general', 1);
    const card = await approvalCard(one.ana, one.thread);
    expect(card.html).toContain('data-action="grant-run-action"');
    expect(card.html).toContain('data-action="grant-channel-action"');
    // The requester may not approve their own step, so neither may she grant it.
    const byAna = await one.ana.action({
      action: 'grant-channel-action',
      taskId: one.taskId,
      approvalId: approvalIdOf(card.html!),
    });
    expect(byAna.status).toBe(403);
    const granted = await one.bo.action({
      action: 'grant-channel-action',
      taskId: one.taskId,
      approvalId: approvalIdOf(card.html!),
    });
    expect(granted.status).toBe(200);
    expect(granted.body.message).toContain('in this channel until');
    expect((await finished(one.ana, one.thread)).html).toContain('Filed follow-up 1');

    // Listed for approvers, with who granted it and the exact pattern.
    const listed = await fetch(`${handoff.url}/api/console/grants?channel=general&author=Bo`);
    const { grants } = (await listed.json()) as { grants: Array<{ id: string; pattern: string; createdBy: unknown }> };
    expect(grants).toEqual([
      expect.objectContaining({ pattern: 'connector:records__create_record', createdBy: { id: 'web:bo', name: 'Bo' } }),
    ]);

    // Run 2 in the same channel: no card, the grant is named in the audit trail.
    const two = await start('general', 2);
    expect((await finished(two.ana, two.thread)).html).toContain('Filed follow-up 2');
    expect((await two.ana.thread(two.thread)).some((m) => m.html?.includes('card approval'))).toBe(false);
    const used = (await audit(handoff.redisUrl, two.taskId)).filter((r) => r.type === 'grant.used');
    expect(used).toHaveLength(1);
    expect(used[0]!.data).toMatchObject({
      grantIds: [grants[0]!.id],
      scopes: ['channel'],
      tool: 'records__create_record',
    });

    // Revoked by an approver; it takes effect at the next call.
    const revoked = await fetch(`${handoff.url}/api/console/grants/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
      body: JSON.stringify({ grantId: grants[0]!.id, author: 'Bo' }),
    });
    expect(revoked.status).toBe(200);
    const again = await fetch(`${handoff.url}/api/console/grants/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: new URL(handoff.url).origin },
      body: JSON.stringify({ grantId: grants[0]!.id, author: 'Bo' }),
    });
    expect(again.status).toBe(409);

    // Run 3: the approval is back.
    const three = await start('general', 3);
    const back = await approvalCard(three.ana, three.thread);
    await three.bo.action({ action: 'approve-action', taskId: three.taskId, approvalId: approvalIdOf(back.html!) });
    expect((await finished(three.ana, three.thread)).html).toContain('Filed follow-up 3');

    const all = await audit(handoff.redisUrl);
    expect(all.filter((r) => r.type === 'grant.created').map((r) => r.data.scope)).toEqual(['channel']);
    expect(all.filter((r) => r.type === 'grant.revoked').map((r) => r.data.grantId)).toEqual([grants[0]!.id]);
    expect(all.filter((r) => r.type === 'grant.used')).toHaveLength(1);
  }, 480_000);

  it('does not offer "always allow" where the channel policy does not allow it, and refuses a forged click', async () => {
    const ops = await start('ops', 4);
    const card = await approvalCard(ops.ana, ops.thread, 'ops');
    expect(card.html).toContain('data-action="grant-run-action"');
    expect(card.html).not.toContain('data-action="grant-channel-action"');
    const forged = await ops.bo.action({
      action: 'grant-channel-action',
      taskId: ops.taskId,
      approvalId: approvalIdOf(card.html!),
    });
    expect(forged.status).toBe(403);
    expect(forged.body.error).toContain('does not allow standing grants');
    // The card is still open: a plain approval goes through.
    const ok = await ops.bo.action({
      action: 'approve-action',
      taskId: ops.taskId,
      approvalId: approvalIdOf(card.html!),
    });
    expect(ok.status).toBe(200);
    expect((await finished(ops.ana, ops.thread, 'ops')).html).toContain('Filed follow-up 4');
    const records = await audit(handoff.redisUrl, ops.taskId);
    expect(records.filter((r) => r.type === 'grant.created')).toHaveLength(0);
  }, 240_000);

  it('approves the call but shows no grant on the card when the grant cannot be stored', async () => {
    // A key of the wrong type where the channel's grant index lives: storing the grant fails.
    const redis = new Redis(handoff.redisUrl);
    await redis.set('hf:grants:channel:web:broken', 'not a sorted set');
    try {
      const run = await start('broken', 5);
      const card = await approvalCard(run.ana, run.thread, 'broken');
      expect(card.html).toContain('data-action="grant-channel-action"');
      const answer = await run.bo.action({
        action: 'grant-channel-action',
        taskId: run.taskId,
        approvalId: approvalIdOf(card.html!),
      });
      expect(answer.status).toBe(200);
      expect(answer.body.message).toContain('the grant could not be stored');
      expect((await finished(run.ana, run.thread, 'broken')).html).toContain('Filed follow-up 5');
      const decided = await run.ana.waitForMessage(
        (m) => m.threadId === run.thread && !!m.html?.includes('card approval') && m.html.includes('decision-approved'),
        30_000,
        'broken',
      );
      expect(decided.html).not.toContain('always allowed in this channel');
      expect(decided.html).not.toContain('for the rest of this run');
      const records = await audit(handoff.redisUrl, run.taskId);
      expect(records.filter((r) => r.type === 'grant.created')).toHaveLength(0);
      expect(records.filter((r) => r.type === 'action.approved')).toHaveLength(1);
    } finally {
      await redis.del('hf:grants:channel:web:broken');
      redis.disconnect();
    }
  }, 240_000);
});

describeDocker('standing grants: a web domain always allowed in a channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-grants-egress-'));
  let model: FakeAnthropicServer;
  let handoff: TestHandoff;
  let server: Server;
  const hits: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(`${req.headers.host} ${req.url}`);
      res.end('{"EUR":1.08}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    // Test names resolve to documentation addresses; connections to those go to the loopback server.
    const names: Record<string, string[]> = {
      'files.example.com': ['203.0.113.10'],
      'rates.example.net': ['203.0.113.11'],
    };
    model = await startFakeAnthropic();
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'version: 1',
        'channels:',
        '  "web:*":',
        '    egressDomains: [files.example.com, rates.example.net]',
        '    standingGrants: { allow: true }',
        '',
      ].join('\n'),
    );
    handoff = await startDevHandoff({
      env: { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: model.url, HANDOFF_POLICY: policy },
      egressNetwork: {
        resolve: async (host) => {
          const a = names[host];
          if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
          return a;
        },
        dial: () => connect(port, '127.0.0.1'),
      },
    });
  });
  afterAll(async () => {
    await handoff?.close();
    await model?.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan: FakeReply = {
    content: [
      {
        type: 'tool_use',
        name: 'submit_plan',
        input: {
          summary: 'Fetch the rates and write them down.',
          steps: [
            { title: 'Fetch', actions: ['network_egress', 'run_commands'] },
            { title: 'Write', actions: ['create_files'] },
          ],
          deliverables: [{ name: 'rates.md', type: 'md' }],
          egressDomains: ['files.example.com'],
        },
      },
    ],
  };
  const curl = use('run_command', { command: 'curl -sS http://rates.example.net/v1/rates', step: 1 });

  it('reaches the domain in the next run without a card', async () => {
    const results: Array<{ content: string; is_error?: boolean } | undefined> = [];
    const script = (n: number): Parameters<FakeAnthropicServer['enqueue']> => [
      plan,
      curl,
      (body) => {
        results.push(lastResults(body)[0]);
        return curl;
      },
      (body) => {
        results.push(lastResults(body)[0]);
        return use('write_file', { path: '/workspace/out/rates.md', content: `run ${n}\n`, step: 2 });
      },
      use('deliver_artifact', { path: '/workspace/out/rates.md', step: 2 }),
      done(`Wrote the rates (${n}).`),
    ];
    const ana = new ConsoleClient(handoff.url, 'Ana');
    const bo = new ConsoleClient(handoff.url, 'Bo');

    model.enqueue(...script(1));
    const one = (await ana.post('@handoff fetch the rates')).body.message!.id;
    const card = await ana.waitForCard(one, (h) => h.includes('card plan'));
    await bo.action({ action: 'approve', ...planButtons(card.html!) });
    const held = await ana.waitForCard(one, (h) => h.includes('card approval'), 90_000);
    expect(held.html).toContain('the run wants to reach rates.example.net');
    // Approve already holds for the rest of the run here: only "always allow" is added.
    expect(held.html).not.toContain('data-action="grant-run-action"');
    expect(held.html).toContain('data-action="grant-channel-action"');
    const granted = await bo.action({
      action: 'grant-channel-action',
      taskId: planButtons(card.html!).taskId,
      approvalId: approvalIdOf(held.html!),
    });
    expect(granted.status).toBe(200);
    await ana.waitForCard(one, (h) => h.includes('card result'), 120_000);

    model.enqueue(...script(2));
    const two = (await ana.post('@handoff fetch the rates again')).body.message!.id;
    const card2 = await ana.waitForCard(two, (h) => h.includes('card plan'));
    const taskId2 = planButtons(card2.html!).taskId;
    await bo.action({ action: 'approve', ...planButtons(card2.html!) });
    expect((await ana.waitForCard(two, (h) => h.includes('card result'), 120_000)).html).toContain(
      'Wrote the rates (2)',
    );
    expect((await ana.thread(two)).some((m) => m.html?.includes('card approval'))).toBe(false);

    // In each run the first request was held, then allowed; in the second by the grant, without a card.
    expect(results[2]?.content).toContain('Bo (standing grant');
    expect(results[2]?.content).toContain('approved reaching rates.example.net for this run');
    expect(results[3]?.content).toContain('{"EUR":1.08}');
    expect(hits).toEqual(['rates.example.net /v1/rates', 'rates.example.net /v1/rates']);
    const used = (await audit(handoff.redisUrl, taskId2)).filter((r) => r.type === 'grant.used');
    expect(used.map((r) => r.data.patterns)).toEqual([['egress:rates.example.net']]);
  }, 360_000);
});
