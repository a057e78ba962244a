import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientCredentials, HostAllowlist } from '../../src/bot/surfaces/teams/teams-auth.ts';
import { TeamsConnector } from '../../src/bot/surfaces/teams/teams-connector.ts';
import { TeamsStore } from '../../src/bot/surfaces/teams/teams-store.ts';
import { TeamsSurface } from '../../src/bot/surfaces/teams/teams-surface.ts';
import type { ProgressView } from '../../src/bot/views.ts';
import type { ConversationRef } from '../../src/core/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { startTeamsFakes, type TeamsFakes, teamsChannel, teamsTeam } from '../fakes/teams-server.ts';

const team = teamsTeam('Ops');
const channel = teamsChannel(team, 'Alerts');

/** How the bot calls the Bot Connector: allowlisted, paced, 429s waited out, progress coalesced. */
describe('TeamsConnector against the fake Bot Connector (real SDK ConnectorClient)', () => {
  let fakes: TeamsFakes;
  let connector: TeamsConnector;
  let thread: string;

  beforeAll(async () => {
    // Throttles like Teams when a conversation gets more than 7 calls in a second.
    fakes = await startTeamsFakes({ connector: { limit: { perConversationPerSecond: 7, retryAfterSec: 1 } } });
    connector = new TeamsConnector({
      credentials: new ClientCredentials({
        tokenEndpoint: fakes.entra.tokenEndpoint(),
        clientId: fakes.appId,
        clientSecret: fakes.appPassword,
      }),
      allowlist: new HostAllowlist([new URL(fakes.connector.url).origin]),
    });
    const created = await connector.createConversation(fakes.connector.url, {
      isGroup: true,
      channelData: { channel: { id: channel.id } },
      activity: { type: 'message', text: 'root' },
    });
    thread = created.id;
  });

  afterAll(async () => {
    connector?.close();
    await fakes?.close();
  });

  it('keeps a burst of sends in one conversation within Teams’ limits: no 429, all delivered in order', async () => {
    const throttled = fakes.connector.throttled;
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        connector.send(fakes.connector.url, thread, { type: 'message', text: `n${i}` }),
      ),
    );
    expect(new Set(ids).size).toBe(20);
    expect(fakes.connector.throttled).toBe(throttled);
    const texts = fakes.connector
      .messagesIn(thread)
      .map((m) => String(m.activity.text))
      .filter((t) => t.startsWith('n'));
    expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
  });

  it('coalesces progress edits of one message: at most one a second, the newest view wins', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const id = await connector.send(fakes.connector.url, thread, { type: 'message', text: 'step 0' });
    const before = fakes.connector.callsOf('updateActivity').length;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        connector.update(
          fakes.connector.url,
          thread,
          id,
          { type: 'message', text: `step ${i + 1}` },
          { progress: true },
        ),
      ),
    );
    const updates = fakes.connector.callsOf('updateActivity').slice(before);
    expect(updates.length).toBeLessThanOrEqual(2);
    expect(fakes.connector.message(id)!.activity.text).toBe('step 12');
    for (let i = 1; i < updates.length; i++) expect(updates[i]!.at - updates[i - 1]!.at).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('waits out a 429’s Retry-After, then delivers', async () => {
    fakes.connector.failNext(1, 429, { retryAfterSec: 1, only: 'sendToConversation' });
    const started = Date.now();
    const id = await connector.send(fakes.connector.url, thread, { type: 'message', text: 'after the wait' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(fakes.connector.message(id)!.activity.text).toBe('after the wait');
    expect(connector.rateLimited).toBeGreaterThanOrEqual(1);
  });

  it('never calls a service URL off the allowlist', async () => {
    const before = fakes.connector.calls.length;
    await expect(
      connector.send('https://attacker.example/amer/', '19:x@thread.tacv2', { type: 'message', text: 'x' }),
    ).rejects.toThrow(/not on the allowlist/);
    await expect(
      connector.send(`${fakes.connector.url.replace('127.0.0.1', 'localhost')}`, thread, {
        type: 'message',
        text: 'x',
      }),
    ).rejects.toThrow(/not on the allowlist/);
    expect(fakes.connector.calls.length).toBe(before);
  });

  it('a channel the bot was removed from is reported as unavailable, not retried', async () => {
    const other = teamsChannel(team, 'Gone');
    fakes.connector.refuse(other.id);
    await expect(
      connector.send(fakes.connector.url, `${other.id};messageid=1`, { type: 'message', text: 'x' }),
    ).rejects.toMatchObject({ code: 'handoff_channel_unavailable' });
  });
});

/** A running task's progress card shows a sign of life on its own, and stops once the run ends. */
describe('TeamsSurface heartbeat', () => {
  let fakes: TeamsFakes;
  let redisDir: string;
  let redis: EmbeddedRedis;
  let records: Redis;
  let surface: TeamsSurface;
  const conversation: ConversationRef = { surface: 'teams', channel: `${team.id}/${channel.id}`, thread: 'root1' };
  const progress = (cancellable: boolean, elapsedMs: number): ProgressView => ({
    kind: 'progress',
    taskId: 't_heartbeat',
    steps: [{ title: 'Build the workbook', status: cancellable ? 'running' : 'done' }],
    elapsedMs,
    usage: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
    cancellable,
    demo: true,
  });

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    redisDir = await mkdtemp(join(tmpdir(), 'handoff-teams-heartbeat-'));
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
    const store = new TeamsStore(records, 60_000);
    await store.saveConversation(conversation.channel, {
      serviceUrl: fakes.connector.url,
      conversationId: channel.id,
      type: 'channel',
      botId: `28:${fakes.appId}`,
    });
    surface = new TeamsSurface({
      connector: new TeamsConnector({
        credentials: new ClientCredentials({
          tokenEndpoint: fakes.entra.tokenEndpoint(),
          clientId: fakes.appId,
          clientSecret: fakes.appPassword,
        }),
        allowlist: new HostAllowlist([new URL(fakes.connector.url).origin]),
        pacing: { minProgressIntervalMs: 100 },
      }),
      store,
      logger: pino({ level: 'silent' }),
      maxUploadBytes: 1024,
      heartbeatMs: 300,
    });
  });

  afterAll(async () => {
    surface?.close();
    records?.disconnect();
    await redis?.stop();
    if (redisDir) await rm(redisDir, { recursive: true, force: true });
    await fakes?.close();
  });

  it('re-sends the card with the time moved on and a typing indicator, until the final progress', async () => {
    const ref = await surface.post(conversation, progress(true, 0));
    const edited = await fakes.connector.waitFor(
      () => (fakes.connector.message(ref)!.edits >= 2 ? fakes.connector.message(ref) : undefined),
      5000,
      'two heartbeats',
    );
    expect(JSON.stringify(edited.history[0])).toContain('0 s elapsed');
    expect(JSON.stringify(edited.activity)).not.toContain('0 s elapsed');
    expect(fakes.connector.typingCount(channel.id)).toBeGreaterThan(0);
    await surface.update(conversation, ref, progress(false, 5000));
    const edits = fakes.connector.message(ref)!.edits;
    await new Promise((r) => setTimeout(r, 1000));
    expect(fakes.connector.message(ref)!.edits).toBe(edits);
  });
});
