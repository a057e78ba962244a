import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import type { RunnerDeps } from '../../src/runner/index.ts';
import { sweepArtifacts } from '../../src/runner/janitor.ts';
import { LocalArtifactStore, StateStore } from '../../src/storage/index.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const day = 86_400_000;

/**
 * Keys that are not a task's and have no time to live, each with why: the audit trail
 * (pruned only after export), indexes whose entries are removed as tasks end, and the
 * queues' own bookkeeping (finished jobs are trimmed by age and count).
 */
const durable: Array<[RegExp, string]> = [
  [/^hf:audit$/, 'the audit list: removed only by `handoff audit prune`, after export'],
  [/^hf:tasks:(awaiting|active)$/, 'indexes whose entries leave as tasks end'],
  [/^hf:retention:artifacts$/, 'the queue of ended tasks whose files go later'],
  [/^hf:sandboxes:(kept|owner)$/, 'entries leave with their sandboxes'],
  [
    /^hfq:handoff-[a-z]+:(meta|id|events|completed|failed|stalled-check|wait|active|delayed|marker|prioritized|pc)$/,
    'BullMQ bookkeeping',
  ],
  [/^hfq:handoff-[a-z]+:[A-Za-z0-9_-]+$/, 'BullMQ finished jobs, kept within the retention age and count'],
  [/^hf:console-auth:users$/, 'console users, until removed'],
];

describeDocker('retention: every record of an ended task expires, and so do its files', () => {
  let handoff: TestHandoff;
  let redis: Redis;

  beforeAll(async () => {
    handoff = await startDevHandoff({ env: { HANDOFF_RETENTION_DAYS: '2' } });
    redis = new Redis(handoff.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await handoff?.close();
  });

  it('gives every key a time to live within the retention once the task ends', async () => {
    const client = new ConsoleClient(handoff.url);
    const posted = await client.post(
      '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      [{ name: 'sales.csv', path: salesCsv }],
    );
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    const { taskId } = planButtons(card.html!);
    await client.action({ action: 'approve', ...planButtons(card.html!) });
    await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    const task = JSON.parse((await redis.get(`hf:task:${taskId}`))!);
    expect(task.state).toBe('succeeded');

    const keys = await redis.keys('*');
    const withoutTtl: string[] = [];
    const ofTask: Array<[string, number]> = [];
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      if (ttl === -1 && !durable.some(([re]) => re.test(key))) withoutTtl.push(key);
      if (key.includes(taskId) || key.includes(task.runId) || key.includes(thread)) ofTask.push([key, ttl]);
    }
    expect(withoutTtl).toEqual([]);
    // The task's own records: the checkpoint, its transcript, the plan, the thread link, the console thread…
    expect(ofTask.map(([k]) => k)).toEqual(
      expect.arrayContaining([
        `hf:task:${taskId}`,
        `hf:plan:${taskId}:1`,
        `hf:checkpoint:${task.runId}`,
        `hf:checkpoint:${task.runId}:msgs`,
        `hf:msgs:${taskId}`,
        `hf:thread:web:general:${thread}`,
      ]),
    );
    for (const [key, ttl] of ofTask) {
      if (key.startsWith('hfq:')) continue;
      // The thread's tombstone holds the task id alone and outlives the rest by 90 days,
      // so a late reply in the thread is told the task expired (src/bot/follow-up.ts).
      if (key === `hf:thread-ended:web:general:${thread}`) {
        expect(await redis.get(key)).toBe(taskId);
        expect(ttl, key).toBeGreaterThan(2 * day);
        expect(ttl, key).toBeLessThanOrEqual(92 * day);
        continue;
      }
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(2 * day);
    }
  }, 240_000);

  it('removes the stored files of a task once its retention is over', async () => {
    const [taskId] = await redis.zrange('hf:retention:artifacts', 0, 0);
    expect(taskId).toBeDefined();
    const root = join(handoff.dataDir, 'artifacts');
    expect((await readdir(join(root, 'tasks', taskId!), { recursive: true })).length).toBeGreaterThan(0);
    // Its retention ends now.
    await redis.zadd('hf:retention:artifacts', Date.now() - 1, taskId!);
    const deps = {
      state: new StateStore(redis),
      store: new LocalArtifactStore({ root, signingSecret: 's'.repeat(32), publicUrl: 'http://127.0.0.1' }),
      logger: createLogger('silent'),
    } as unknown as RunnerDeps;
    expect(await sweepArtifacts(deps)).toBe(1);
    await expect(readdir(join(root, 'tasks', taskId!))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await redis.zscore('hf:retention:artifacts', taskId!)).toBeNull();
  });
});
