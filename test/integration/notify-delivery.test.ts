import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { webApi } from '@slack/bolt';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPlanPolicy } from '../../src/approvals/index.ts';
import { Gateway, startNotifyWorker } from '../../src/bot/index.ts';
import { SlackSurface } from '../../src/bot/surfaces/slack/index.ts';
import { type Artifact, newTask, type RunnerEvent, type Task } from '../../src/core/index.ts';
import { Metrics } from '../../src/observability/index.ts';
import { notifyOrderKey, Queues } from '../../src/queue/index.ts';
import {
  AuditLog,
  type EmbeddedRedis,
  LocalArtifactStore,
  ScheduleStore,
  StateStore,
  startRedisServer,
} from '../../src/storage/index.ts';
import { type FakeMessage, FakeSlack } from '../fakes/slack-server.ts';
import { testPlan } from '../helpers/fixtures.ts';

const botToken = 'xoxb-4242-test-notify-delivery';
const ana = { id: 'UANA', name: 'Ana' };
const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

interface Bot {
  name: string;
  surface: SlackSurface;
  worker: Worker;
  /** Jobs this bot's worker completed. */
  completed: number;
  close(): Promise<void>;
}

/**
 * "Bots" here are what `handoff bot` runs for notifications, each with its own Redis
 * connections, Slack WebClient, surface, gateway and notify worker, on one Redis and one
 * fake Slack: the real Bolt WebClient, the real BullMQ queue, real Redis.
 */
describe('notify delivery: threads in parallel, each thread in order, Slack limits shared by bots', () => {
  let server: EmbeddedRedis;
  let dir: string;
  let fake: FakeSlack;
  let redis: Redis;
  let state: StateStore;
  let store: LocalArtifactStore;
  let queues: Queues;
  const prefix = `hfq-notify-${process.pid}`;
  const bots: Bot[] = [];
  let tsSeq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(700_000 + ++tsSeq)}`;

  function startBot(name: string): Bot {
    const records = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const queueConnection = new Redis(server.url, { maxRetriesPerRequest: null });
    const client = new webApi.WebClient(botToken, {
      slackApiUrl: fake.apiUrl,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
    });
    const botState = new StateStore(records);
    const surface = new SlackSurface({
      client,
      logger,
      state: botState,
      store,
      maxUploadBytes: 10 * 1024 * 1024,
      redis: records,
    });
    const gateway = new Gateway({
      state: botState,
      schedules: new ScheduleStore(records, 86_400_000),
      queues,
      audit: new AuditLog(records),
      store,
      logger,
      metrics: new Metrics(),
      policy: defaultPlanPolicy(false),
      limits: { maxUploadBytes: 1024 * 1024, maxFilesPerRequest: 5, maxRequestChars: 4000, downloadTtlMs: 60_000 },
      demo: false,
      surfaces: [surface],
    });
    const worker = startNotifyWorker(gateway, queueConnection, logger, { prefix, concurrency: 16, gapGraceMs: 2000 });
    const bot: Bot = {
      name,
      surface,
      worker,
      completed: 0,
      close: async () => {
        await worker.close();
        surface.close();
        records.disconnect();
        queueConnection.disconnect();
      },
    };
    worker.on('completed', () => bot.completed++);
    bots.push(bot);
    return bot;
  }

  /** The first `n` bots, started as needed (each test may run alone). */
  async function botsStarted(n: number): Promise<Bot[]> {
    while (bots.length < n) startBot(String.fromCharCode(65 + bots.length));
    return bots.slice(0, n);
  }

  async function slackTask(channel: string, overrides: Partial<Task> = {}): Promise<Task> {
    const conversation = { surface: 'slack' as const, channel, thread: newTs() };
    const task = {
      ...newTask(
        { id: `t_nd${++tsSeq}`, conversation, requester: ana, request: 'numbers', inputs: [], demo: false },
        new Date(),
      ),
      ...overrides,
    };
    await state.createTask(task);
    await state.linkThread('slack', channel, conversation.thread, task.id);
    if (task.planVersion > 0) await state.savePlan(testPlan({ taskId: task.id, version: task.planVersion }));
    return task;
  }

  async function artifact(task: Task, name: string, bytes: Buffer): Promise<Artifact> {
    const key = `tasks/${task.id}/out/${name}`;
    const stored = await store.put(key, Readable.from([bytes]), { mediaType: 'text/csv' });
    return {
      name,
      key,
      mediaType: 'text/csv',
      size: stored.size,
      sha256: stored.sha256,
      createdAt: new Date().toISOString(),
    };
  }

  const blockText = (m: FakeMessage) => JSON.stringify(m.blocks);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-notify-'));
    server = await startRedisServer({ dir });
    redis = new Redis(server.url);
    state = new StateStore(redis);
    store = new LocalArtifactStore({
      root: join(dir, 'artifacts'),
      signingSecret: 's'.repeat(32),
      publicUrl: 'http://127.0.0.1',
    });
    // The runners' side: events go out through Queues.emit, as a runner sends them.
    queues = new Queues({ connection: new Redis(server.url, { maxRetriesPerRequest: 1 }), prefix });
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' } } });
    await fake.start();
  }, 60_000);

  afterAll(async () => {
    for (const bot of bots) await bot.close().catch(() => undefined);
    await queues?.close();
    redis?.disconnect();
    await fake?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a slow upload in one thread does not hold up another thread's plan card or progress", async () => {
    await botsStarted(1);
    const slow = await slackTask('C1', { state: 'succeeded', planVersion: 1 });
    const file = await artifact(slow, 'numbers.csv', Buffer.from('region,total\nnorth,10\n'));
    await state.updateTask(slow.id, (t) => ({ ...t, artifacts: [file] }));
    const planned = await slackTask('C2', { state: 'awaiting_approval', planVersion: 1 });
    const running = await slackTask('C3', { state: 'running', planVersion: 1, runId: 'r_nd_running' });

    // The upload POST of the first thread's deliverable takes six seconds.
    fake.delay('files.upload_url', 6000);
    try {
      await queues.emit({ type: 'result', taskId: slow.id, runId: 'r_nd_slow' });
      await fake.waitFor('the slow upload under way', () => fake.callsOf('files.upload_url')[0]);

      await queues.emit({ type: 'plan.ready', taskId: planned.id, version: 1 });
      await queues.emit({
        type: 'progress',
        taskId: running.id,
        runId: 'r_nd_running',
        steps: [
          { title: 'Read the CSV', status: 'running' },
          { title: 'Build the workbook', status: 'pending' },
        ],
        elapsedMs: 1000,
        usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 },
        seq: 1,
      });

      const card = await fake.waitFor('the plan card in the other thread', () =>
        fake.thread('C2', planned.conversation.thread).find((m) => blockText(m).includes('handoff_approve')),
      );
      const cardPosted = fake.callsOf('chat.postMessage').find((c) => c.args.thread_ts === planned.conversation.thread);
      const progressStarted = await fake.waitFor('the progress in the third thread', () =>
        fake.callsOf('chat.startStream').find((c) => c.args.thread_ts === running.conversation.thread && !c.error),
      );
      const completed = await fake.waitFor(
        'the slow upload completed',
        () => fake.callsOf('files.completeUploadExternal').find((c) => c.args.thread_ts === slow.conversation.thread),
        30_000,
      );
      const done = await fake.waitFor('the result message', () =>
        fake.thread('C1', slow.conversation.thread).find((m) => m.text === 'Done'),
      );

      expect(card.ts).toBeDefined();
      // Both other threads were answered while the upload was still going on.
      expect(cardPosted!.at).toBeLessThan(completed.at);
      expect(progressStarted.at).toBeLessThan(completed.at);
      // The slow thread itself went in its order: the file first, then the message that names it.
      expect(blockText(done)).toContain('uploaded above');
    } finally {
      fake.delay('files.upload_url', 0);
      await state.updateTask(running.id, (t) => ({ ...t, state: 'succeeded' }));
    }
  }, 60_000);

  it("two bots render one thread's events in emit order, past a lost event and a failing one", async () => {
    await botsStarted(2);
    const task = await slackTask('C4', { state: 'running', planVersion: 1, runId: 'r_nd_order' });
    // Slack answering each post after a random pause would reorder anything not kept in order.
    fake.delay('chat.postMessage', () => Math.floor(Math.random() * 150));
    for (const bot of bots) bot.completed = 0;
    // An approval whose checkpoint cannot be read: this event fails on every attempt.
    await redis.set('hf:checkpoint:r_nd_broken', '{');
    const question = (i: number): RunnerEvent => ({
      type: 'question',
      taskId: task.id,
      runId: 'r_nd_order',
      question: `question ${String(i).padStart(2, '0')}`,
    });
    try {
      for (let i = 1; i <= 5; i++) await queues.emit(question(i));
      // A number issued to an event that never reached the queue (its emit failed half-way).
      await redis.hincrby(notifyOrderKey(prefix, task.id), 'n', 1);
      for (let i = 6; i <= 8; i++) await queues.emit(question(i));
      await queues.emit({ type: 'approval.needed', taskId: task.id, runId: 'r_nd_broken', approvalId: 'a_1' });
      for (let i = 9; i <= 14; i++) await queues.emit(question(i));

      const texts = () =>
        fake
          .thread('C4', task.conversation.thread)
          .map((m) => m.text)
          .filter((t) => t.includes('question'));
      // The failing event is retried with backoff (about 15 s) before its thread moves on.
      await fake.waitFor('all fourteen questions', () => (texts().length >= 14 ? true : undefined), 90_000);
      const expected = Array.from({ length: 14 }, (_, i) => `question ${String(i + 1).padStart(2, '0')}`);
      expect(texts().map((t) => /question \d\d/.exec(t)?.[0])).toEqual(expected);
      // Each question was a job one of the two bots completed (a job completes just after its post).
      await fake.waitFor(
        'fourteen completed jobs',
        () => (bots[0]!.completed + bots[1]!.completed >= 14 ? true : undefined),
        30_000,
      );
      // The task's order record expires on its own.
      expect(await redis.pttl(notifyOrderKey(prefix, task.id))).toBeGreaterThan(0);
    } finally {
      fake.delay('chat.postMessage', 0);
    }
  }, 120_000);

  it('two bots editing one message keep a second apart, and a Retry-After one bot got holds for the other', async () => {
    const [a, b] = (await botsStarted(2)) as [Bot, Bot];
    const conversation = { surface: 'slack' as const, channel: 'C5', thread: newTs() };
    const status = (text: string) => ({ kind: 'status' as const, text, tone: 'info' as const, demo: false });
    const ref = await a.surface.post(conversation, status('hello'));
    const ts = ref.split(':')[1]!;
    const editsOf = () => fake.callsOf('chat.update').filter((c) => c.args.ts === ts);

    // Both bots edit the same message every 150 ms for about three seconds.
    const sent: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) {
      sent.push(a.surface.update(conversation, ref, status(`a ${i}`)));
      sent.push(b.surface.update(conversation, ref, status(`b ${i}`)));
      await new Promise((r) => setTimeout(r, 150));
    }
    await Promise.all(sent);
    const edits = editsOf();
    expect(edits.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < edits.length; i++) expect(edits[i]!.at - edits[i - 1]!.at).toBeGreaterThanOrEqual(950);
    // Each bot sent only the newest view it had: the message ends on one of the last two.
    expect(['a 19', 'b 19']).toContain(fake.messages.get(`C5:${ts}`)?.text);

    // A 429 with Retry-After 2 s on bot A's edit: bot B's edit of that message waits it out too.
    fake.rateLimit('chat.update', 1, 2);
    const before = editsOf().length;
    const fromA = a.surface.update(conversation, ref, status('after 429 from a'));
    const limited = await fake.waitFor('the 429', () =>
      editsOf()
        .slice(before)
        .find((c) => c.status === 429),
    );
    // Bot A holds the message's shared slot until it has recorded the Retry-After there.
    const fromB = b.surface.update(conversation, ref, status('after 429 from b'));
    await Promise.all([fromA, fromB]);
    const later = editsOf().filter((c) => c.at > limited.at);
    expect(later.length).toBeGreaterThanOrEqual(2);
    for (const edit of later) expect(edit.at - limited.at).toBeGreaterThanOrEqual(1950);
    for (let i = 1; i < later.length; i++) expect(later[i]!.at - later[i - 1]!.at).toBeGreaterThanOrEqual(950);

    // A 429 on a post holds the method for every bot: B's post in another thread waits too.
    fake.rateLimit('chat.postMessage', 1, 2);
    const postsBefore = fake.callsOf('chat.postMessage').length;
    const postA = a.surface.post({ ...conversation, thread: newTs() }, status('post from a'));
    const limitedPost = await fake.waitFor('the 429 on a post', () =>
      fake
        .callsOf('chat.postMessage')
        .slice(postsBefore)
        .find((c) => c.status === 429),
    );
    // Once bot A has the 429 back (and has shared it), bot B posts in another thread.
    await waitUntil(async () => (await redis.pttl('hf:slack:rl:method:chat.postMessage')) > 0);
    const otherThread = newTs();
    await Promise.all([postA, b.surface.post({ ...conversation, thread: otherThread }, status('post from b'))]);
    const postB = fake.callsOf('chat.postMessage').find((c) => c.args.thread_ts === otherThread)!;
    expect(postB.at - limitedPost.at).toBeGreaterThanOrEqual(1950);

    // Every shared limiter key expires on its own.
    const keys = await redis.keys('hf:slack:rl:*');
    for (const key of keys) expect(await redis.pttl(key)).not.toBe(-1);
  }, 60_000);
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
