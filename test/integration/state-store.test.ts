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
