import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectors } from '../../src/config/index.ts';
import { Queues } from '../../src/queue/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { type FakeMcpOAuthServer, startMcpOAuthServer } from '../fakes/mcp-oauth-server.ts';
import { type FakeMessage, FakeSlack, SlackSender } from '../fakes/slack-server.ts';
import {
  activityText,
  cardExecutes,
  cardOf,
  startTeamsFakes,
  type TeamsFakes,
  type TeamsMessage,
  type TeamsSender,
  teamsChannel,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { startTestBot, type TestBot } from '../helpers/bot.ts';

const botToken = 'xoxb-4242-connections-test-token';
const signingSecret = 'slack-signing-secret-for-connections';
const connectionsKey = 'ab'.repeat(32);
const connectors = parseConnectors(
  { notes: { url: 'http://127.0.0.1:9/replaced', auth: 'oauth', title: 'Fake Notes' } },
  'handoff.yaml',
);

const anaSlack = { id: 'UANA', name: 'Ana' };
const benSlack = { id: 'UBEN', name: 'Ben' };
const ana = teamsUser('Ana');
const ben = teamsUser('Ben');
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');

type Block = {
  type: string;
  elements?: Array<{ action_id?: string; value?: string; url?: string }>;
  accessory?: { action_id?: string; value?: string; url?: string };
};

const blocksOf = (m: { blocks: unknown[] } | { args: Record<string, unknown> }): Block[] =>
  ('blocks' in m ? m.blocks : ((m.args.blocks as unknown[] | undefined) ?? [])) as Block[];
const slackButtons = (m: FakeMessage) =>
  blocksOf(m).flatMap((b) => [...(b.elements ?? []), ...(b.accessory ? [b.accessory] : [])]);

/**
 * The Connect button's click paths on Slack and Teams, against `handoff bot` (no runner: a
 * `connection.needed` event is emitted here as the runner would) with the Slack and Teams
 * fakes and the OAuth-protected MCP fake. The sign-in link only ever reaches the clicker.
 */
describe('Connect on Slack and Teams: the link goes to the clicker alone', () => {
  let redisDir: string;
  let redis: EmbeddedRedis;
  let records: Redis;
  let queues: Queues;
  let slackFake: FakeSlack;
  let teamsFakes: TeamsFakes;
  let notes: FakeMcpOAuthServer;
  let bot: TestBot;
  let slack: SlackSender;
  let teams: TeamsSender;
  let tsSeq = 0;
  const newTs = () => `${Math.floor(Date.now() / 1000)}.${String(700_000 + ++tsSeq)}`;
  const logLines: string[] = [];

  const audit = async () =>
    (await records.lrange('hf:audit', 0, -1)).map(
      (r) => JSON.parse(r) as { type: string; taskId?: string; actor?: string; data: Record<string, unknown> },
    );

  /** The task a thread belongs to, once the bot has created it. */
  async function taskIn(surface: string, channel: string, thread: string): Promise<string> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const id = await records.get(`hf:thread:${surface}:${channel}:${thread}`);
      if (id) return id;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no task in ${surface}:${channel}:${thread}`);
  }

  /** A browser signed in at the service as `as` follows the link back to the bot's callback. */
  async function consent(authorizationUrl: string, as: string): Promise<number> {
    const res = await fetch(authorizationUrl, { redirect: 'manual', headers: { 'x-fake-user': as } });
    expect(res.status).toBe(302);
    const back = res.headers.get('location') ?? '';
    expect(back.startsWith(`${bot.url}/connectors/oauth/callback?`)).toBe(true);
    return (await fetch(back)).status;
  }

  beforeAll(async () => {
    redisDir = await mkdtemp(join(tmpdir(), 'handoff-conn-surfaces-'));
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
    queues = new Queues({ connection: records });
    slackFake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' } } });
    await slackFake.start();
    teamsFakes = await startTeamsFakes();
    notes = await startMcpOAuthServer();
    bot = await startTestBot(
      redis.url,
      {
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: slackFake.apiUrl,
        ...teamsFakes.handoffEnv(),
        HANDOFF_CONNECTIONS_KEY: connectionsKey,
        LOG_LEVEL: 'debug',
      },
      {
        connectors: parseConnectors(
          { notes: { url: notes.mcpUrl, auth: 'oauth', title: 'Fake Notes' } },
          'handoff.yaml',
        ),
        logger: pino(
          { level: 'debug' },
          new Writable({
            write(chunk, _enc, done) {
              logLines.push(String(chunk));
              done();
            },
          }),
        ),
      },
    );
    slack = new SlackSender(bot.url, signingSecret, slackFake.responseUrl('conn'));
    teams = teamsFakes.sender(bot.url);
  }, 60_000);

  afterAll(async () => {
    await bot?.close();
    await queues?.close();
    await notes?.close();
    await teamsFakes?.close();
    await slackFake?.close();
    records?.disconnect();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  it('Slack: the card has an action button; each clicker gets an ephemeral URL button; /handoff connections', async () => {
    const thread = newTs();
    expect(
      (
        await slack.event({
          type: 'app_mention',
          user: anaSlack.id,
          text: '<@UBOT> who am I in Fake Notes?',
          ts: thread,
          channel: 'C1',
          event_ts: thread,
        })
      ).status,
    ).toBe(200);
    const taskId = await taskIn('slack', 'C1', thread);
    await queues.emit({ type: 'connection.needed', taskId, connector: 'notes', title: 'Fake Notes' });
    const card = await slackFake.waitFor('the Connect card', () =>
      slackFake.thread('C1', thread).find((m) => slackButtons(m).some((b) => b.action_id === 'handoff_connect')),
    );
    expect(JSON.stringify(card.blocks)).toContain('Ana: Handoff can use Fake Notes as you once you connect it.');
    const button = slackButtons(card).find((b) => b.action_id === 'handoff_connect')!;
    expect(button.url).toBeUndefined();

    // Ben's click: his own link, privately, saying whose connection the task uses.
    expect((await slack.click(benSlack, 'C1', { ts: card.ts, thread_ts: thread }, button as never)).status).toBe(200);
    const bens = await slackFake.waitFor('Ben’s link', () =>
      slackFake.callsOf('chat.postEphemeral').find((c) => c.args.user === 'UBEN'),
    );
    expect(String(bens.args.text)).toContain("this task uses Ana's");
    expect(bens.args.thread_ts).toBe(thread);
    const benUrl = blocksOf(bens)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === 'handoff_connect_open')?.url;
    expect(new URL(benUrl!).origin).toBe(notes.url);

    // Ana's click: her link; following it connects her and the card says so.
    await slack.click(anaSlack, 'C1', { ts: card.ts, thread_ts: thread }, button as never);
    const anas = await slackFake.waitFor('Ana’s link', () =>
      slackFake.callsOf('chat.postEphemeral').find((c) => c.args.user === 'UANA'),
    );
    const anaUrl = blocksOf(anas)
      .flatMap((b) => b.elements ?? [])
      .find((e) => e.action_id === 'handoff_connect_open')?.url;
    expect(anaUrl).toBeDefined();
    expect(anaUrl).not.toBe(benUrl);
    // The links went to one person each, never into the thread.
    for (const m of slackFake.thread('C1', thread)) {
      expect(JSON.stringify(m.blocks)).not.toContain(notes.url);
      expect(m.text).not.toContain(notes.url);
    }
    expect(await consent(anaUrl!, 'ana')).toBe(200);
    await slackFake.waitFor('the card saying connected', () =>
      JSON.stringify(slackFake.messages.get(`C1:${card.ts}`)?.blocks ?? slackFake.thread('C1', thread)).includes(
        'Connected by Ana',
      )
        ? true
        : undefined,
    );
    expect((await audit()).find((r) => r.type === 'connection.connected' && r.actor === 'slack:UANA')).toBeTruthy();

    // /handoff connections: Ana's list, privately, with Disconnect.
    expect((await slack.command('/handoff', 'connections', anaSlack, 'C1')).status).toBe(200);
    const listed = await slackFake.waitFor('Ana’s list', () =>
      slackFake
        .callsOf('chat.postEphemeral')
        .find((c) => c.args.user === 'UANA' && JSON.stringify(c.args.blocks ?? '').includes('Your connections')),
    );
    const disconnect = blocksOf(listed)
      .map((b) => b.accessory)
      .find((a) => a?.action_id?.startsWith('handoff_connection_disconnect_'));
    expect(disconnect).toBeDefined();
    await slack.click(anaSlack, 'C1', { ts: newTs() }, disconnect as never, { ephemeral: true });
    const words = await slackFake.waitFor('the answer to Disconnect', () =>
      slackFake
        .callsOf('chat.postEphemeral')
        .find((c) => c.args.user === 'UANA' && String(c.args.text).startsWith('Disconnected Fake Notes')),
    );
    expect(String(words.args.text)).toContain('Fake Notes revoked it');
    expect(
      (await audit()).find((r) => r.type === 'connection.revoked' && r.actor === 'slack:UANA')?.data,
    ).toMatchObject({ connector: 'notes', remote: 'revoked' });
    // The list it came from is replaced with its new state.
    await slackFake.waitFor('the list refreshed', () =>
      slackFake.responses.find((r) => JSON.stringify(r.body).includes('handoff_connection_connect_0')),
    );
  });

  it('Teams: the card has Action.Execute; the invoke response carries Action.OpenUrl for the clicker only', async () => {
    const post = teams.channelMention({ team, channel: general, from: ana, text: 'who am I in Fake Notes?' });
    expect((await teams.send(post)).status).toBe(200);
    const taskId = await taskIn('teams', `${team.id}/${general.id}`, post.id);
    await queues.emit({ type: 'connection.needed', taskId, connector: 'notes', title: 'Fake Notes' });
    const threadId = `${general.id};messageid=${post.id}`;
    const isCard = (m: TeamsMessage) =>
      m.conversationId === threadId && cardExecutes(cardOf(m)).some((e) => e.verb === 'connection.connect');
    const card = await teamsFakes.connector.waitForMessage(isCard, 15_000, 'the Connect card');
    expect(activityText(card.activity)).toContain('Handoff can use Fake Notes as you once you connect it.');
    expect(JSON.stringify(card.activity)).not.toContain('Action.OpenUrl');

    // Ben's click: the answer (shown to Ben alone) has his sign-in page; the posted card is unchanged.
    const edits = teamsFakes.connector.message(card.id)!.edits;
    const bens = await teams.click(post, card, ben, 'connection.connect');
    expect(bens.status).toBe(200);
    expect(bens.type).toBe('application/vnd.microsoft.card.adaptive');
    const open = (c: Record<string, unknown>) =>
      JSON.stringify(c).match(/"type":"Action.OpenUrl","title":"[^"]*","url":"([^"]+)"/)?.[1];
    const benUrl = open(bens.card);
    expect(new URL(benUrl!).origin).toBe(notes.url);
    expect(bens.text).toContain("this task uses Ana's");
    expect(teamsFakes.connector.message(card.id)!.edits).toBe(edits);
    expect(JSON.stringify(teamsFakes.connector.message(card.id)!.activity)).not.toContain(notes.url);

    // Ana's click and consent: the card everyone sees now says she connected.
    const anas = await teams.click(post, card, ana, 'connection.connect');
    const anaUrl = open(anas.card);
    expect(anaUrl).toBeDefined();
    expect(anaUrl).not.toBe(benUrl);
    expect(await consent(anaUrl!, 'ana')).toBe(200);
    await teamsFakes.connector.waitFor(
      () => activityText(teamsFakes.connector.message(card.id)!.activity).includes('Connected by Ana'),
      10_000,
      'the card saying connected',
    );
    const connectedCard = teamsFakes.connector.message(card.id)!;
    expect(cardExecutes(cardOf(connectedCard))).toEqual([]);
    expect(
      (await audit()).find((r) => r.type === 'connection.connected' && r.actor === `teams:${ana.aadObjectId}`),
    ).toBeTruthy();

    // "connections" in the channel: a button; Ana's answer is her own list, with Disconnect.
    const ask = teams.channelMention({ team, channel: general, from: ana, text: 'connections' });
    await teams.send(ask);
    const prompt = await teamsFakes.connector.waitForMessage(
      (m) => cardExecutes(cardOf(m)).some((e) => e.verb === 'connection.list'),
      10_000,
      'the connections button',
    );
    const list = await teams.click(ask, prompt, ana, 'connection.list');
    expect(list.text).toContain('Your connections');
    expect(cardExecutes(list.card).map((e) => [e.verb, e.data])).toEqual([
      ['connection.disconnect', { connector: 'notes' }],
    ]);
    const off = await teams.click(ask, prompt, ana, 'connection.disconnect', { connector: 'notes' });
    expect(off.text).toContain('Disconnected Fake Notes');
    expect(cardExecutes(off.card).map((e) => e.verb)).toEqual(['connection.connect']);

    // No token the service issued ever reached a log line or the audit trail.
    const logged = logLines.join('');
    const audited = JSON.stringify(await audit());
    expect(notes.issued.length).toBeGreaterThan(0);
    for (const secret of notes.issued) {
      expect(logged).not.toContain(secret);
      expect(audited).not.toContain(secret);
    }
  });
});

describe('HANDOFF_CONNECTIONS_KEY', () => {
  it('refuses to start with a key that is not 32 bytes, naming the setting and never the value', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-conn-badkey-'));
    const redis = await startRedisServer({ dir });
    try {
      const start = startTestBot(redis.url, { HANDOFF_CONNECTIONS_KEY: 'c0ffee'.repeat(5) }, { connectors });
      await expect(start).rejects.toThrow(
        /^HANDOFF_CONNECTIONS_KEY: the connections key looks like hex but has 30 characters; it must have 64/,
      );
      await start.catch((err: Error) => expect(err.message).not.toContain('c0ffee'));
    } finally {
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('warns once at start, refuses Connect in plain words, and says why the connector is left out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-conn-nokey-'));
    const redis = await startRedisServer({ dir });
    const records = new Redis(redis.url);
    const queues = new Queues({ connection: records });
    const slackFake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' } } });
    await slackFake.start();
    const lines: string[] = [];
    const bot = await startTestBot(
      redis.url,
      { SLACK_BOT_TOKEN: botToken, SLACK_SIGNING_SECRET: signingSecret, SLACK_API_URL: slackFake.apiUrl },
      {
        connectors,
        logger: pino(
          { level: 'info' },
          new Writable({
            write(chunk, _enc, done) {
              lines.push(String(chunk));
              done();
            },
          }),
        ),
      },
    );
    try {
      const warnings = lines.filter((l) => l.includes('HANDOFF_CONNECTIONS_KEY'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('notes act as each person');
      const slack = new SlackSender(bot.url, signingSecret, slackFake.responseUrl('nokey'));
      await slack.command('/handoff', 'connections', anaSlack, 'C1');
      const refusal = await slackFake.waitFor('the refusal', () =>
        slackFake.callsOf('chat.postEphemeral').find((c) => c.args.user === 'UANA'),
      );
      expect(String(refusal.args.text)).toContain('an admin must set HANDOFF_CONNECTIONS_KEY first');

      const thread = `${Math.floor(Date.now() / 1000)}.000100`;
      await slack.event({
        type: 'app_mention',
        user: 'UANA',
        text: '<@UBOT> notes?',
        ts: thread,
        channel: 'C1',
        event_ts: thread,
      });
      let taskId: string | null = null;
      for (let i = 0; i < 300 && !taskId; i++) {
        taskId = await records.get(`hf:thread:slack:C1:${thread}`);
        if (!taskId) await new Promise((r) => setTimeout(r, 50));
      }
      await queues.emit({ type: 'connection.needed', taskId: taskId!, connector: 'notes', title: 'Fake Notes' });
      await slackFake.waitFor('the note in the thread', () =>
        slackFake
          .thread('C1', thread)
          .find((m) => JSON.stringify(m.blocks).includes('per-user connections are not set up')),
      );
    } finally {
      await bot.close();
      await queues.close();
      await slackFake.close();
      records.disconnect();
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
