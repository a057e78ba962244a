// The inbox between acknowledging a chat delivery and working on it: real Redis, real Bolt
// apps over HTTP (two bots sharing one Redis), the fake Slack Web API.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Inbox } from '../../src/bot/inbox.ts';
import { slackInboxStream } from '../../src/bot/surfaces/slack/slack-app.ts';
import { createLogger } from '../../src/observability/index.ts';
import { auditListKey } from '../../src/storage/audit-log.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { FakeSlack, SlackSender } from '../fakes/slack-server.ts';
import { startTestBot, type TestBot } from '../helpers/bot.ts';
import { until } from '../helpers/until.ts';

const botToken = `xoxb-test-${randomBytes(6).toString('hex')}`;
const signingSecret = randomBytes(16).toString('hex');
const logger = createLogger('silent');

let dir: string;
let server: EmbeddedRedis;

/** An inbox on a fresh stream of the test Redis. */
function testInbox(
  options: Partial<ConstructorParameters<typeof Inbox>[0]> & Pick<ConstructorParameters<typeof Inbox>[0], 'handle'>,
) {
  const stream = `hf:test:inbox:${randomBytes(4).toString('hex')}`;
  const inbox = new Inbox({
    redis,
    stream,
    seenPrefix: `${stream}:seen:`,
    seenTtlSeconds: 60,
    concurrency: 8,
    logger,
    ...options,
  });
  return { stream, inbox };
}
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-inbox-'));
  server = await startRedisServer({ dir: join(dir, 'redis') });
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('Inbox (real Redis)', () => {
  it('queues a delivery once, refuses past its bound, and works on at most `concurrency` at a time', async () => {
    const handled: string[] = [];
    let inFlight = 0;
    let most = 0;
    const gates: Array<() => void> = [];
    const { inbox } = testInbox({
      concurrency: 3,
      maxBacklog: 12,
      handle: async (payload) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await new Promise<void>((r) => gates.push(r));
        inFlight -= 1;
        handled.push(payload);
      },
    });
    expect(await inbox.accept('ev-1', 'one')).toBe('queued');
    expect(await inbox.accept('ev-1', 'one again')).toBe('duplicate');
    for (let i = 2; i <= 12; i++) expect(await inbox.accept(`ev-${i}`, `p${i}`)).toBe('queued');
    // The bound: refused, and not remembered, so a later delivery of it is taken.
    expect(await inbox.accept('ev-13', 'p13')).toBe('full');
    expect(await inbox.backlog()).toBe(12);

    await inbox.start();
    try {
      await until('three at work', () => (gates.length === 3 ? true : undefined));
      // No more than three at once, however long they take.
      await new Promise((r) => setTimeout(r, 300));
      expect(gates.length).toBe(3);
      while (handled.length < 12) {
        gates.shift()?.();
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(most).toBe(3);
      expect(handled).toContain('one');
      expect(handled).not.toContain('one again');
      await until('the stream emptied', async () => ((await inbox.backlog()) === 0 ? true : undefined));
      expect(await inbox.accept('ev-13', 'p13')).toBe('queued');
      await until('the late one handled', () => {
        gates.shift()?.();
        return handled.includes('p13') ? true : undefined;
      });
    } finally {
      for (const g of gates) g();
      await inbox.stop();
    }
  });

  it('takes over a delivery another bot took and never finished', async () => {
    const stream = `hf:test:inbox:${randomBytes(4).toString('hex')}`;
    const handled: string[] = [];
    const options = {
      redis,
      stream,
      seenPrefix: `${stream}:seen:`,
      seenTtlSeconds: 60,
      logger,
      reclaimAfterMs: 1000,
    };
    // A bot that reads one delivery and dies before finishing it (its consumer keeps it pending).
    const dying = new Inbox({ ...options, concurrency: 1, consumer: 'dying-bot', handle: () => new Promise(() => {}) });
    expect(await dying.accept('ev-lost', 'lost')).toBe('queued');
    await dying.start();
    await until('the dying bot holding it', async () => {
      const pending = (await redis.xpending(stream, 'bots')) as [number, ...unknown[]];
      return pending[0] === 1 ? true : undefined;
    });
    await dying.stop(10);

    const survivor = new Inbox({
      ...options,
      concurrency: 2,
      consumer: 'surviving-bot',
      handle: async (p) => {
        handled.push(p);
      },
    });
    await survivor.start();
    try {
      await until('the delivery taken over', () => (handled.includes('lost') ? true : undefined), 15_000);
      await until('nothing pending', async () => {
        const pending = (await redis.xpending(stream, 'bots')) as [number, ...unknown[]];
        return pending[0] === 0 && (await survivor.backlog()) === 0 ? true : undefined;
      });
      expect(handled).toEqual(['lost']);
    } finally {
      await survivor.stop();
    }
  });
});

describe('Inbox batch window (real Redis)', () => {
  const pending = async (stream: string) => ((await redis.xpending(stream, 'bots')) as [number, ...unknown[]])[0];

  it('starts the deliveries that arrive within its window together, and each as it comes without one', async () => {
    for (const batchMs of [2000, 0]) {
      const started: string[] = [];
      /** How many had started when each handler went on after its first await. */
      const together: number[] = [];
      const { stream, inbox } = testInbox({
        batchMs,
        handle: async (payload) => {
          started.push(payload);
          await Promise.resolve();
          together.push(started.length);
        },
      });
      await inbox.start();
      try {
        expect(await inbox.accept('ev-a', 'a')).toBe('queued');
        // Taken by the bot (pending in its group) before the others arrive.
        await until('the first taken', async () =>
          (await pending(stream)) >= 1 || started.length > 0 ? true : undefined,
        );
        expect(await inbox.accept('ev-b', 'b')).toBe('queued');
        expect(await inbox.accept('ev-c', 'c')).toBe('queued');
        await until('all three handled', async () =>
          together.length === 3 && (await pending(stream)) === 0 ? true : undefined,
        );
        expect(started.sort()).toEqual(['a', 'b', 'c']);
        expect(together[0]).toBe(batchMs > 0 ? 3 : 1);
      } finally {
        await inbox.stop();
      }
    }
  });

  it('stops within its window, and still works on what it took', async () => {
    const handled: string[] = [];
    const { stream, inbox } = testInbox({
      // Longer than the test may take: stop must end the wait.
      batchMs: 60_000,
      handle: async (payload) => {
        handled.push(payload);
      },
    });
    await inbox.start();
    expect(await inbox.accept('ev-held', 'held')).toBe('queued');
    await until('taken', async () => ((await pending(stream)) === 1 ? true : undefined));
    expect(handled).toEqual([]);
    await inbox.stop();
    expect(handled).toEqual(['held']);
    await until('acknowledged', async () => ((await pending(stream)) === 0 ? true : undefined));
  });
});

describe('Inbox defaults, as the docs state them', () => {
  it('by default takes over a delivery once it has waited a minute', async () => {
    const stream = `hf:test:inbox:${randomBytes(4).toString('hex')}`;
    const claims: unknown[][] = [];
    const spy = vi.spyOn(redis, 'xautoclaim').mockImplementation((async (...args: unknown[]) => {
      claims.push(args);
      return ['0-0', [], []];
    }) as never);
    // Only the takeover check's interval is faked; the stream is read from Redis as usual.
    vi.useFakeTimers({ toFake: ['setInterval'] });
    const inbox = new Inbox({
      redis,
      stream,
      seenPrefix: `${stream}:seen:`,
      seenTtlSeconds: 60,
      logger,
      concurrency: 1,
      handle: async () => undefined,
    });
    try {
      await inbox.start();
      await vi.advanceTimersByTimeAsync(30_000);
      expect(claims.length).toBeGreaterThan(0);
      // XAUTOCLAIM stream group consumer min-idle-time start …: idle for at least 60,000 ms.
      expect(claims[0]![3]).toBe(60_000);
    } finally {
      vi.useRealTimers();
      spy.mockRestore();
      await inbox.stop();
    }
  });
});

describe('Slack events through the inbox (two bots, one Redis)', () => {
  let fake: FakeSlack;
  let ackOnly: TestBot;
  let worker: TestBot | undefined;
  let sender: SlackSender;
  const env = () => ({
    SLACK_BOT_TOKEN: botToken,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: fake.apiUrl,
  });
  const requested = async (): Promise<number> =>
    (await redis.lrange(auditListKey, 0, -1)).filter(
      (r) => (JSON.parse(r) as { type: string }).type === 'task.requested',
    ).length;

  beforeAll(async () => {
    fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' } } });
    await fake.start();
    ackOnly = await startTestBot(server.url, { ...env(), HANDOFF_INBOUND_CONCURRENCY: '0' });
    sender = new SlackSender(ackOnly.url, signingSecret);
  });

  afterAll(async () => {
    await worker?.close();
    await ackOnly?.close();
    await fake?.close();
  });

  it('a bot with HANDOFF_INBOUND_CONCURRENCY=0 acknowledges and queues; another bot does the work, once per event', async () => {
    const before = await requested();
    const ts = '1700000100.000100';
    const first = await sender.event(
      { type: 'app_mention', user: 'UANA', channel: 'C1', ts, text: '<@UBOT> summarise the sales' },
      { eventId: 'EvINBOX1' },
    );
    expect(first.status).toBe(200);
    // Slack's retry of the same event (same id) is answered and dropped.
    const retry = await sender.event(
      { type: 'app_mention', user: 'UANA', channel: 'C1', ts, text: '<@UBOT> summarise the sales' },
      { eventId: 'EvINBOX1', retryNum: 1 },
    );
    expect(retry.status).toBe(200);
    // Nobody works on it yet: it waits in Redis.
    expect(await redis.xlen(slackInboxStream)).toBe(1);
    expect(fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts === ts)).toHaveLength(0);

    // With 20,000 events waiting a new one is refused with 503 (Slack delivers it again later).
    const filler = redis.pipeline();
    for (let i = 0; i < 19_999; i++) filler.xadd(slackInboxStream, '*', 'p', '{}');
    const ids = ((await filler.exec()) ?? []).map(([, id]) => String(id));
    const refused = await sender.event(
      { type: 'app_mention', user: 'UBEN', channel: 'C2', ts: '1700000101.000100', text: '<@UBOT> one too many' },
      { eventId: 'EvINBOXFULL' },
    );
    expect(refused.status).toBe(503);
    for (let i = 0; i < ids.length; i += 1000) await redis.xdel(slackInboxStream, ...ids.slice(i, i + 1000));
    expect(await redis.xlen(slackInboxStream)).toBe(1);
    // Not remembered while refused: Slack's next delivery of it is taken.
    const again = await sender.event(
      { type: 'app_mention', user: 'UBEN', channel: 'C2', ts: '1700000101.000100', text: '<@UBOT> one too many' },
      { eventId: 'EvINBOXFULL', retryNum: 1 },
    );
    expect(again.status).toBe(200);
    expect(await redis.xlen(slackInboxStream)).toBe(2);

    worker = await startTestBot(server.url, env());
    await fake.waitFor('the answer in the thread, from the working bot', () =>
      fake.callsOf('chat.postMessage').find((c) => c.args.thread_ts === ts),
    );
    await until('both tasks requested', async () => ((await requested()) === before + 2 ? true : undefined));
    await until('the inbox emptied', async () => ((await redis.xlen(slackInboxStream)) === 0 ? true : undefined));
    // Still one task after a while: the retry never became a second one.
    await new Promise((r) => setTimeout(r, 500));
    expect(await requested()).toBe(before + 2);
    expect(fake.callsOf('chat.postMessage').filter((c) => c.args.thread_ts === ts)).toHaveLength(1);
  }, 60_000);

  it('answers every mention of a burst at once and makes each one a task', async () => {
    const before = await requested();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        sender.event({
          type: 'app_mention',
          user: i % 2 ? 'UANA' : 'UBEN',
          channel: `C${i % 3}`,
          ts: `1700000200.${String(i).padStart(6, '0')}`,
          text: `<@UBOT> request number ${i}`,
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(200));
    await until('40 tasks', async () => ((await requested()) === before + 40 ? true : undefined), 60_000);
    await until('the inbox emptied', async () => ((await redis.xlen(slackInboxStream)) === 0 ? true : undefined));
  }, 90_000);
});
