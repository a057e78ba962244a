import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newTask, transition } from '../../src/core/index.ts';
import { type EmbeddedRedis, StateStore, startRedisServer } from '../../src/storage/index.ts';

let server: EmbeddedRedis;
let redis: Redis;
let dir: string;
let state: StateStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-state-'));
  server = await startRedisServer({ dir });
  redis = new Redis(server.url);
  state = new StateStore(redis);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function task(id: string, requester: string, at: string) {
  return newTask(
    {
      id,
      conversation: { surface: 'slack', channel: 'C1', thread: `${id}.1` },
      requester: { id: requester, name: requester },
      request: `request ${id}`,
      inputs: [],
      demo: false,
    },
    new Date(at),
  );
}

it('indexes tasks by requester and keeps the waiting-for-approval index in step with the state', async () => {
  await state.createTask(task('t_one111', 'UANA', '2026-11-01T10:00:00Z'));
  await state.createTask(task('t_two222', 'UBEN', '2026-11-01T10:01:00Z'));
  await state.createTask(task('t_three3', 'UANA', '2026-11-01T10:02:00Z'));
  expect(await state.taskIdsOf('slack', 'UANA', 10)).toEqual(['t_three3', 't_one111']);
  expect(await state.taskIdsOf('slack', 'UBEN', 10)).toEqual(['t_two222']);
  expect(await state.taskIdsOf('web', 'UANA', 10)).toEqual([]);

  const toAwaiting = (id: string) =>
    state.updateTask(id, (t) =>
      transition(transition(t, 'planning', new Date()), 'awaiting_approval', new Date(), { planVersion: 1 }),
    );
  await toAwaiting('t_one111');
  await toAwaiting('t_two222');
  expect((await state.awaitingApprovalIds(10)).sort()).toEqual(['t_one111', 't_two222']);

  // Approved (queued) or denied: no longer waiting.
  await state.updateTask('t_one111', (t) => transition(t, 'queued', new Date()));
  await state.updateTask('t_two222', (t) => transition(t, 'denied', new Date()));
  expect(await state.awaitingApprovalIds(10)).toEqual([]);

  // A revision goes back through planning and waits again.
  await state.updateTask('t_three3', (t) => transition(t, 'planning', new Date()));
  await state.updateTask('t_three3', (t) => transition(t, 'awaiting_approval', new Date(), { planVersion: 2 }));
  expect(await state.awaitingApprovalIds(10)).toEqual(['t_three3']);
});

it('lets exactly one of many concurrent writers win a transition', async () => {
  await state.createTask(task('t_race01', 'UANA', '2026-11-01T11:00:00Z'));
  await state.updateTask('t_race01', (t) =>
    transition(transition(t, 'planning', new Date()), 'awaiting_approval', new Date(), { planVersion: 1 }),
  );
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () => state.updateTask('t_race01', (t) => transition(t, 'queued', new Date()))),
  );
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(
    Array(19).fill('handoff_illegal_transition'),
  );
  expect((await state.getTask('t_race01'))?.state).toBe('queued');
});

function checkpoint(runId: string, messages: unknown[]) {
  return {
    runId,
    taskId: 't_cp',
    planVersion: 1,
    turn: messages.length,
    messages,
    usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 },
    stepStatus: ['pending' as const],
    toolCalls: [],
    delivered: [],
    partialResults: [],
    notes: [],
    continuations: 0,
    redactions: {},
    startedAt: '2026-11-01T10:00:00Z',
    elapsedMs: 0,
  };
}

it('stores the transcript incrementally: a save sends only the messages that changed', async () => {
  const m = [
    { role: 'user', content: 'go' },
    { role: 'assistant', content: [{ type: 'text', text: 'one' }] },
  ];
  await state.saveCheckpoint(checkpoint('r_inc', m));
  expect(await redis.llen('hf:checkpoint:r_inc:msgs')).toBe(2);
  const head = JSON.parse((await redis.get('hf:checkpoint:r_inc'))!);
  expect(head.messages).toBeUndefined();
  expect(head.messageCount).toBe(2);

  // Appending two messages writes two; replacing the last rewrites from there.
  const more = [
    ...m,
    { role: 'user', content: 'more' },
    { role: 'assistant', content: [{ type: 'text', text: 'two' }] },
  ];
  const monitor = await redis.duplicate().monitor();
  const seen: string[] = [];
  monitor.on('monitor', (_time, args: string[]) => seen.push(args.join(' ')));
  await state.saveCheckpoint(checkpoint('r_inc', more));
  const changed = [...more.slice(0, 3), { role: 'assistant', content: [{ type: 'text', text: 'two, edited' }] }];
  await state.saveCheckpoint(checkpoint('r_inc', changed));
  await new Promise((r) => setTimeout(r, 200));
  monitor.disconnect();
  const evals = seen.filter((s) => s.includes('hf:checkpoint:r_inc:msgs') && s.startsWith('eval'));
  expect(evals).toHaveLength(2);
  expect(evals[0]).not.toContain('"go"');
  expect(evals[0]).toContain('"more"');
  expect(evals[1]).not.toContain('"more"');
  expect(evals[1]).toContain('two, edited');

  // Another process reading it sees the whole transcript.
  const fresh = new StateStore(redis);
  expect((await fresh.getCheckpoint('r_inc'))!.messages).toEqual(changed);
  expect((await fresh.getCheckpoint('r_inc', { messages: false }))!.messages).toEqual([]);
  // A writer that never saw it (a restart) still writes a consistent transcript.
  await fresh.saveCheckpoint(checkpoint('r_inc', [...changed, { role: 'user', content: 'last' }]));
  expect(await redis.llen('hf:checkpoint:r_inc:msgs')).toBe(5);
});

it('fences a run to the runner that claimed it last', async () => {
  await state.claimRun('r_fence', 'o_first');
  await state.saveCheckpoint(checkpoint('r_fence', [{ role: 'user', content: 'go' }]), 'o_first');
  await state.claimRun('r_fence', 'o_second');
  await expect(
    state.saveCheckpoint(
      checkpoint('r_fence', [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: 'x' },
      ]),
      'o_first',
    ),
  ).rejects.toMatchObject({ code: 'handoff_run_taken_over' });
  await state.saveCheckpoint(checkpoint('r_fence', [{ role: 'user', content: 'go' }]), 'o_second');
  expect((await state.getCheckpoint('r_fence'))!.messages).toHaveLength(1);
});

it('gives every record of an ended task the retention as its time to live', async () => {
  const short = new StateStore(redis, { retentionMs: 3_600_000 });
  const t = task('t_ret001', 'UANA', '2026-11-01T12:00:00Z');
  await short.createTask(t);
  await short.linkThread('slack', 'C1', 't_ret001.1', t.id);
  await short.setMessageRef(t.id, 'plan:1', 'ts1');
  expect(await redis.pttl('hf:task:t_ret001')).toBeGreaterThan(3_600_000 * 24);
  await short.updateTask(t.id, (x) => transition(x, 'cancelled', new Date()));
  for (const key of ['hf:task:t_ret001', 'hf:thread:slack:C1:t_ret001.1', 'hf:msgs:t_ret001']) {
    const ttl = await redis.pttl(key);
    expect(ttl, key).toBeGreaterThan(0);
    expect(ttl, key).toBeLessThanOrEqual(3_600_000);
  }
  expect(await redis.zscore('hf:tasks:active', t.id)).toBeNull();
  expect(Number(await redis.zscore('hf:retention:artifacts', t.id))).toBeGreaterThan(Date.now());
});
