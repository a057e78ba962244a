import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import {
  activityText,
  FakeBotConnector,
  fileDownloadInfoAttachment,
  startTeamsFakes,
  type TeamsFakes,
  type TeamsSender,
  teamsChannel,
  teamsGroupChat,
  teamsTeam,
  teamsUser,
} from '../fakes/teams-server.ts';
import { postChunked, startTestBot, type TestBot } from '../helpers/bot.ts';

const salesCsv = await readFile(new URL('../../examples/sales.csv', import.meta.url));
const ana = teamsUser('Ana');
const team = teamsTeam('Finance');
const general = teamsChannel(team, 'General');

/**
 * `handoff bot` with Teams against the local Entra, Bot Connector and file fakes: every
 * request's token is checked before anything happens, and the bot calls only allowlisted
 * service URLs. No runner: nothing here needs a sandbox.
 */
describe('Teams: /api/messages refuses what it cannot trust', () => {
  let redisDir: string;
  let redis: EmbeddedRedis;
  let records: Redis;
  let fakes: TeamsFakes;
  let evil: FakeBotConnector;
  let bot: TestBot;
  let teams: TeamsSender;
  const tasks = async () => (await records.keys('hf:task:*')).length;
  const logLines: string[] = [];

  beforeAll(async () => {
    redisDir = await mkdtemp(join(tmpdir(), 'handoff-teams-sec-'));
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
    fakes = await startTeamsFakes();
    // A second Bot Connector the bot must never call: not on the allowlist.
    evil = await new FakeBotConnector({ entra: fakes.entra }).start();
    bot = await startTestBot(
      redis.url,
      {
        ...fakes.handoffEnv(),
      },
      {
        // No redaction set up on purpose: secrets must never reach a log call at all.
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
    teams = fakes.sender(bot.url);
  }, 60_000);

  afterAll(async () => {
    await bot?.close();
    await evil?.close();
    await fakes?.close();
    records?.disconnect();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  it('a genuine mention is answered in its thread at once, and remembered', async () => {
    const activity = teams.channelMention({
      team,
      channel: general,
      from: ana,
      text: 'summarise the attached sales CSV',
    });
    const res = await teams.send(activity);
    expect(res.status).toBe(200);
    const ack = await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === `${general.id};messageid=${activity.id}` && activityText(m.activity).includes('Planning'),
      10_000,
      'the acknowledgement in the thread',
    );
    expect(ack).toBeDefined();
    expect(await tasks()).toBe(1);
  });

  it.each([
    ['no token', { token: null }],
    ['a malformed header', { token: 'not-a-jwt' }],
    ['a token signed with a key the metadata does not publish', { tokenOptions: { signWith: 'rogue' as const } }],
    ['an expired token', { tokenOptions: { expiresInSec: -3600 } }],
    ['a token for another app', { tokenOptions: { audience: '11111111-2222-4333-8444-555555555555' } }],
    ['a token from another issuer', { tokenOptions: { issuer: 'https://sts.example.com/' } }],
    ['a token without the serviceurl claim', { tokenOptions: { omitServiceUrl: true } }],
    ['a token for another service URL', { tokenOptions: { serviceUrl: 'https://smba.trafficmanager.net/emea/' } }],
  ])('%s is refused with 401 and nothing is created or sent', async (_what, options) => {
    const before = { tasks: await tasks(), calls: fakes.connector.calls.length };
    const activity = teams.channelMention({ team, channel: general, from: ana, text: 'delete everything' });
    const res = await teams.send(activity, options);
    expect(res.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect(await tasks()).toBe(before.tasks);
    expect(fakes.connector.calls.length).toBe(before.calls);
  });

  it('a token whose signing key does not endorse the activity’s channel is refused with 401', async () => {
    const before = await tasks();
    const activity = teams.channelMention({ team, channel: general, from: ana, text: 'summarise this' });
    // The published key endorses msteams only; the same token on a Web Chat activity is not accepted.
    const res = await teams.send({ ...activity, channelId: 'webchat' } as unknown as typeof activity);
    expect(res.status).toBe(401);
    expect(await tasks()).toBe(before);
  });

  it('a signed activity whose serviceUrl is not on the allowlist is refused; that URL is never called', async () => {
    const forged = fakes.sender(bot.url, { serviceUrl: evil.url });
    const before = await tasks();
    const res = await forged.send(forged.channelMention({ team, channel: general, from: ana, text: 'summarise this' }));
    expect(res.status).toBe(403);
    await new Promise((r) => setTimeout(r, 300));
    expect(await tasks()).toBe(before);
    expect(evil.calls).toHaveLength(0);
  });

  it('an activity that is not JSON, or too large, is refused before anything else', async () => {
    const url = `${bot.url}/api/messages`;
    expect(
      (await fetch(url, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })).status,
    ).toBe(400);
    const big = JSON.stringify({ type: 'message', text: 'x'.repeat(300 * 1024) });
    expect(
      (await fetch(url, { method: 'POST', body: big, headers: { 'content-type': 'application/json' } })).status,
    ).toBe(413);
    // Without a length: counted as it arrives, refused once past the limit, the rest never read.
    const chunked = await postChunked(
      url,
      { 'content-type': 'application/json' },
      Buffer.from('{"type":"message","text":"'),
      64 * 1024 * 1024,
    );
    expect(chunked.status).toBe(413);
    expect(chunked.sentBytes).toBeLessThan(64 * 1024 * 1024);
  });

  it('a personal-chat file is downloaded from its downloadUrl; one on another host is refused in the thread', async () => {
    const file = fakes.files.addDownload('sales.csv', salesCsv);
    const elsewhere = fileDownloadInfoAttachment({ name: 'other.csv', downloadUrl: `${evil.url}files/x` });
    const activity = teams.personalMessage({
      from: ana,
      text: 'summarise the attached sales CSV into a spreadsheet',
      attachments: [file.attachment, elsewhere],
    });
    expect((await teams.send(activity)).status).toBe(200);
    const chat = activity.conversation.id;
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === chat && activityText(m.activity).includes('Planning… (1 file received)'),
      10_000,
      'the acknowledgement with one file',
    );
    const notUsed = fakes.connector
      .messagesIn(chat)
      .map((m) => activityText(m.activity))
      .find((t) => t.includes('Not used'));
    expect(notUsed).toContain('other.csv: its download link does not point at SharePoint or OneDrive');
    expect(fakes.files.downloads.size).toBe(1);
    expect(evil.calls).toHaveLength(0);
  });

  it('never logs the app password or a token, at debug level', () => {
    const all = logLines.join('');
    expect(logLines.length).toBeGreaterThan(0);
    expect(all).toContain('teams: request refused');
    expect(all).not.toContain(fakes.appPassword);
    // Every JWT starts with the base64url of '{"': none may appear in a log line.
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/);
  });

  it('in a group chat, "help" and "schedules" are answered in the chat and create nothing', async () => {
    const chat = teamsGroupChat('Planning');
    const before = await tasks();
    expect((await teams.send(teams.groupChatMention({ chat, from: ana, text: 'help' }))).status).toBe(200);
    await fakes.connector.waitForMessage(
      (m) =>
        m.conversationId === chat.id && activityText(m.activity).includes('Mention Handoff with what you need done'),
      10_000,
      'the help text',
    );
    expect((await teams.send(teams.groupChatMention({ chat, from: ana, text: 'schedules' }))).status).toBe(200);
    await fakes.connector.waitForMessage(
      (m) => m.conversationId === chat.id && activityText(m.activity).includes('No schedules here yet.'),
      10_000,
      'the schedule list',
    );
    expect(await tasks()).toBe(before);
  });
});
