import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { type BriefTick, type Task, TaskSchema } from '../../src/core/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The real clock, in real time: an every-minute schedule over four ticks, with Handoff
 * stopped across one tick and Redis restarted between two. Every tick posts exactly one
 * brief; none is lost or doubled.
 */
describeDocker('an every-minute schedule on the real clock, across a restart of Handoff and of Redis', () => {
  let dir: string;
  let redis: EmbeddedRedis | undefined;
  let handoff: TestHandoff | undefined;
  let port = 0;

  afterAll(async () => {
    await handoff?.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('posts one brief per tick, on time, with nothing lost or doubled', async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-clock-'));
    redis = await startRedisServer({ dir: join(dir, 'redis') });
    port = Number(new URL(redis.url).port);
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, 'version: 1\ndefaults:\n  schedules:\n    minInterval: 1m\n');
    const env = { REDIS_URL: redis.url, HANDOFF_POLICY: policy };
    const dataDir = join(dir, 'data');
    handoff = await startDevHandoff({ env, dataDir });

    let client = new ConsoleClient(handoff.url, 'Mia');
    const posted = await client.post('@handoff every minute: a sales brief from the attached CSV', [
      { name: 'sales.csv', path: 'examples/sales.csv' },
    ]);
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan') && h.includes('every minute'));
    const approved = await client.action({ action: 'approve', ...planButtons(card.html!) }, 'Noah');
    expect(approved.body).toMatchObject({ message: expect.stringMatching(/schedule s_\S+ is active/) });
    await client.waitForCard(thread, (h) => h.includes('is active'), 30_000);

    const records = new Redis(redis.url, { maxRetriesPerRequest: null });
    // Redis restarts on purpose below: the connection reconnects by itself.
    records.on('error', () => undefined);
    try {
      /** The channel's top-level bot messages (briefs), and the tick tasks, by tick. */
      const briefs = async () =>
        (await client.messages()).filter((m) => m.author.bot && m.threadId === m.id && m.html?.includes('brief'));
      const tickTasks = async () => {
        const keys = (await records.keys('hf:task:s_*')).filter((k) => /-[0-9a-z]+$/.test(k));
        const tasks = await Promise.all(keys.map(async (k) => TaskSchema.parse(JSON.parse((await records.get(k))!))));
        const ticks = tasks.filter((t): t is Task & { brief: BriefTick } => t.brief !== undefined);
        return ticks.sort((a, b) => a.brief.scheduledAt.localeCompare(b.brief.scheduledAt));
      };
      const waitFor = async (what: string, ok: () => Promise<boolean>, ms: number) => {
        const until = Date.now() + ms;
        while (!(await ok())) {
          if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
          await sleep(1000);
        }
      };
      const finished = (t: Task) => ['succeeded', 'failed', 'cancelled'].includes(t.state);

      // Tick 1, then Handoff stops across the next tick and comes back.
      await waitFor('the first brief', async () => (await tickTasks()).some(finished), 150_000);
      await handoff.close();
      handoff = undefined;
      const down = Date.now();
      await sleep(Math.max(0, 60_000 - (down % 60_000)) + 10_000);
      handoff = await startDevHandoff({ env, dataDir });
      client = new ConsoleClient(handoff.url, 'Mia');
      await waitFor(
        'the tick missed while down',
        async () => (await tickTasks()).filter(finished).length >= 2,
        150_000,
      );

      // Redis restarts between two ticks: the clock survives it.
      await redis.stop();
      redis = await startRedisServer({ dir: join(dir, 'redis'), port });
      await waitFor('two more ticks', async () => (await tickTasks()).filter(finished).length >= 4, 200_000);

      const ticks = await tickTasks();
      const times = ticks.map((t) => Date.parse(t.brief.scheduledAt));
      // Consecutive minutes: none skipped, none twice.
      expect(new Set(times).size).toBe(times.length);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(60_000);
      for (const t of ticks.filter(finished)) expect(t.state).toBe('succeeded');
      // One top-level message per tick, each the brief of its own task.
      const posts = await briefs();
      expect(posts).toHaveLength(ticks.length);
      for (const t of ticks) expect(posts.filter((m) => m.id === t.conversation.thread)).toHaveLength(1);
      const finishedPosts = posts.filter((m) => m.html!.includes('Sales brief'));
      expect(finishedPosts.length).toBeGreaterThanOrEqual(4);
    } finally {
      records.disconnect();
    }
  }, 600_000);
});
