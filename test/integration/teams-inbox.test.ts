// Teams messages through the inbox: acknowledged once queued in Redis, worked on by whichever
// bot has a free slot. Real Redis, two `handoff bot`s sharing it, the real Agents SDK, the
// local Entra and Bot Connector fakes. No runner: nothing here needs a sandbox.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { teamsInboxStream, teamsSeenPrefix } from '../../src/bot/surfaces/teams/teams-inbox.ts';
import { auditListKey } from '../../src/storage/audit-log.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import {
  activityText,
  startTeamsFakes,
  type TeamsActivity,
  type TeamsFakes,
  type TeamsSender,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { startTestBot, type TestBot } from '../helpers/bot.ts';
import { until } from '../helpers/until.ts';

const ana = teamsUser('Ana');
const ben = teamsUser('Ben');
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');
const reports = teamsChannel(team, 'Reports');

describe('Teams messages through the inbox (two bots, one Redis)', () => {
  let dir: string;
  let server: EmbeddedRedis;
  let redis: Redis;
  let fakes: TeamsFakes;
  let ackOnly: TestBot;
  let worker: TestBot | undefined;
  let toAckOnly: TeamsSender;
  const workerLog: string[] = [];
  /** The bot that works on queued messages (default concurrency), its log kept. */
  const startWorker = () =>
    startTestBot(server.url, fakes.handoffEnv(), {
      logger: pino(
        { level: 'info' },
        new Writable({
          write(chunk, _enc, done) {
            workerLog.push(String(chunk));
            done();
          },
        }),
      ),
    });

  /** task.requested records in the audit trail. */
  const requested = async (): Promise<number> =>
    (await redis.lrange(auditListKey, 0, -1)).filter(
      (r) => (JSON.parse(r) as { type: string }).type === 'task.requested',
    ).length;
  /** The bot's "Planning…" acknowledgements posted in a channel post's thread. */
  const acks = (activity: TeamsActivity) =>
    fakes.connector.messagesIn(activity.conversation.id).filter((m) => activityText(m.activity).includes('Planning'))
      .length;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-teams-inbox-'));
    server = await startRedisServer({ dir: join(dir, 'redis') });
    redis = new Redis(server.url);
    fakes = await startTeamsFakes();
    ackOnly = await startTestBot(server.url, { ...fakes.handoffEnv(), HANDOFF_INBOUND_CONCURRENCY: '0' });
    toAckOnly = fakes.sender(ackOnly.url);
  }, 60_000);

  afterAll(async () => {
    await worker?.close();
    await ackOnly?.close();
    await fakes?.close();
    redis?.disconnect();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a bot with HANDOFF_INBOUND_CONCURRENCY=0 answers and queues; another bot does the work, once per message', async () => {
    const before = await requested();
    const mention = toAckOnly.channelMention({ team, channel: general, from: ana, text: 'summarise the sales' });
    const first = await toAckOnly.send(mention);
    expect(first.status).toBe(200);
    expect(first.body).toBeUndefined();
    // Teams delivering the same activity again: answered, and dropped.
    const again = await toAckOnly.send(mention);
    expect(again.status).toBe(200);
    // Nobody works on it yet: it waits in Redis, and the bot that answered posted nothing.
    expect(await redis.xlen(teamsInboxStream)).toBe(1);
    expect(acks(mention)).toBe(0);
    // What is queued is the activity, not the request's token.
    const entries = (await redis.xrange(teamsInboxStream, '-', '+')) as Array<[string, string[]]>;
    const fields = entries[0]![1];
    const queued = JSON.parse(fields[fields.indexOf('p') + 1]!) as Record<string, unknown>;
    expect(queued.id).toBe(mention.id);
    expect(JSON.stringify(fields)).not.toMatch(/eyJ[\w-]+\.eyJ/);
    // A channel message that does not mention Handoff is queued without its words, files or mentions.
    const plain = toAckOnly.channelMention({
      team,
      channel: general,
      from: ana,
      text: 'the salary of Dan is 90k',
      attachments: [{ contentType: 'text/html', content: '<p>secret</p>' }],
      mention: false,
    });
    expect((await toAckOnly.send(plain)).status).toBe(200);
    const stored = ((await redis.xrange(teamsInboxStream, '-', '+')) as Array<[string, string[]]>).map(
      ([, f]) => f[f.indexOf('p') + 1]!,
    );
    expect(stored).toHaveLength(2);
    const plainStored = JSON.parse(stored[1]!) as Record<string, unknown>;
    expect(plainStored.id).toBe(plain.id);
    expect(plainStored.text).toBeUndefined();
    expect(plainStored.attachments).toBeUndefined();
    expect(plainStored.entities).toBeUndefined();
    expect(stored[1]).not.toContain('salary');

    worker = await startWorker();
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === mention.conversation.id && activityText(m.activity).includes('Planning'),
      30_000,
      'the acknowledgement in the thread, from the working bot',
    );
    await until('the task requested', async () => ((await requested()) === before + 1 ? true : undefined));
    await until('the inbox emptied', async () => ((await redis.xlen(teamsInboxStream)) === 0 ? true : undefined));
    // Still one task after a while: the second delivery never became a second one.
    await new Promise((r) => setTimeout(r, 500));
    expect(await requested()).toBe(before + 1);
    expect(acks(mention)).toBe(1);
    expect(fakes.connector.messagesIn(plain.conversation.id)).toHaveLength(0);
  }, 90_000);

  it('the same message delivered twice at once makes one task', async () => {
    worker ??= await startWorker();
    const toWorker = fakes.sender(worker.url);
    const before = await requested();
    const mention = toWorker.channelMention({ team, channel: reports, from: ben, text: 'list the open invoices' });
    const answers = await Promise.all([toWorker.send(mention), toWorker.send(mention), toAckOnly.send(mention)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === mention.conversation.id && activityText(m.activity).includes('Planning'),
      30_000,
      'the acknowledgement in the thread',
    );
    await until('the inbox emptied', async () => ((await redis.xlen(teamsInboxStream)) === 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(await requested()).toBe(before + 1);
    expect(acks(mention)).toBe(1);
  }, 60_000);

  it('answers every message of a burst and makes each one a task', async () => {
    worker ??= await startWorker();
    const toWorker = fakes.sender(worker.url);
    const before = await requested();
    const mentions = Array.from({ length: 30 }, (_, i) =>
      toWorker.channelMention({
        team,
        channel: i % 2 ? general : reports,
        from: i % 3 ? ana : ben,
        text: `request number ${i}`,
      }),
    );
    const answers = await Promise.all(mentions.map((m) => toWorker.send(m)));
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
    // Every one went through the inbox (its delivery is remembered), none was handled around it.
    for (const m of mentions)
      expect(await redis.exists(`${teamsSeenPrefix}${m.conversation.id}|${m.id}`), `${m.id} queued`).toBe(1);
    await until('30 tasks', async () => ((await requested()) === before + 30 ? true : undefined), 90_000);
    await until('the inbox emptied', async () => ((await redis.xlen(teamsInboxStream)) === 0 ? true : undefined));
    for (const m of mentions) expect(acks(m), `${m.id} acknowledged once`).toBe(1);
  }, 120_000);

  it('a message Redis does not take within a second is handled in the request, once', async () => {
    worker ??= await startWorker();
    const toWorker = fakes.sender(worker.url, { timeoutMs: 30_000 });
    const before = await requested();
    const mention = toWorker.channelMention({ team, channel: general, from: ben, text: 'check the stalled path' });
    const pauser = new Redis(server.url);
    pauser.on('error', () => undefined);
    let status = 0;
    try {
      await pauser.call('CLIENT', 'PAUSE', '2500', 'ALL');
      status = (await toWorker.send(mention)).status;
    } finally {
      await pauser.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      pauser.disconnect();
    }
    expect(status).toBe(200);
    expect(workerLog.some((l) => l.includes('could not queue a message; handling it here'))).toBe(true);
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === mention.conversation.id && activityText(m.activity).includes('Planning'),
      30_000,
      'the acknowledgement in the thread',
    );
    await until('the task requested', async () => ((await requested()) === before + 1 ? true : undefined));
    await until('the inbox emptied', async () => ((await redis.xlen(teamsInboxStream)) === 0 ? true : undefined));
    // The inbox took it too once Redis answered: still one task, one answer.
    await new Promise((r) => setTimeout(r, 500));
    expect(await requested()).toBe(before + 1);
    expect(acks(mention)).toBe(1);
  }, 60_000);
});
