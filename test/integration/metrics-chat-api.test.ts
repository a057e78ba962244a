import { webApi } from '@slack/bolt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingSlackFetch } from '../../src/bot/surfaces/slack/api-metrics.ts';
import { ClientCredentials, HostAllowlist } from '../../src/bot/surfaces/teams/teams-auth.ts';
import { TeamsConnector } from '../../src/bot/surfaces/teams/teams-connector.ts';
import { Metrics } from '../../src/observability/index.ts';
import { FakeSlack } from '../fakes/slack-server.ts';
import { startTeamsFakes, type TeamsFakes, teamsChannel, teamsTeam } from '../fakes/teams-server.ts';
import { parseExposition, total } from '../helpers/prometheus.ts';

const botToken = 'xoxb-chat-metrics-token';
const samplesOf = async (metrics: Metrics) => parseExposition(await metrics.registry.metrics());

describe('Slack Web API calls and 429s in /metrics (real WebClient, fake Slack)', () => {
  let fake: FakeSlack;
  const metrics = new Metrics();
  let client: webApi.WebClient;

  beforeAll(async () => {
    fake = new FakeSlack({ botToken });
    await fake.start();
    // The bot's client options (slack-app.ts): 429s come back to the caller.
    client = new webApi.WebClient(botToken, {
      slackApiUrl: fake.apiUrl,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
      fetch: countingSlackFetch(metrics),
    });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('counts each call by method and outcome, and a 429 as rate limited', async () => {
    await client.chat.postMessage({ channel: 'C1', text: 'hello' });
    fake.rateLimit('chat.postMessage', 1, 1);
    await expect(client.chat.postMessage({ channel: 'C1', text: 'again' })).rejects.toMatchObject({
      code: 'slack_webapi_rate_limited_error',
    });
    await expect(client.chat.update({ channel: 'C1', ts: '1.000', text: 'x' })).rejects.toThrow();
    const samples = await samplesOf(metrics);
    const calls = (method: string, outcome: string) =>
      total(samples, 'handoff_chat_api_calls_total', { surface: 'slack', method, outcome });
    expect(calls('chat.postMessage', 'ok')).toBe(1);
    expect(calls('chat.postMessage', 'rate_limited')).toBe(1);
    // Slack's platform errors are HTTP 200 with `ok: false`.
    expect(calls('chat.update', 'error')).toBe(1);
    expect(
      total(samples, 'handoff_chat_api_rate_limited_total', { surface: 'slack', method: 'chat.postMessage' }),
    ).toBe(1);
    expect(JSON.stringify(samples)).not.toContain(botToken);
  });
});

describe('Teams Bot Connector calls and 429s in /metrics (real ConnectorClient, fake connector)', () => {
  let fakes: TeamsFakes;
  const metrics = new Metrics();
  let connector: TeamsConnector;

  beforeAll(async () => {
    fakes = await startTeamsFakes();
    connector = new TeamsConnector({
      credentials: new ClientCredentials({
        tokenEndpoint: fakes.entra.tokenEndpoint(),
        clientId: fakes.appId,
        clientSecret: fakes.appPassword,
      }),
      allowlist: new HostAllowlist([new URL(fakes.connector.url).origin]),
      metrics,
    });
  });
  afterAll(async () => {
    connector?.close();
    await fakes?.close();
  });

  it('counts every attempt by operation, a 429 as rate limited and the retry that delivered as ok', async () => {
    const channel = teamsChannel(teamsTeam('Ops'), 'Alerts');
    const created = await connector.createConversation(fakes.connector.url, {
      isGroup: true,
      channelData: { channel: { id: channel.id } },
      activity: { type: 'message', text: 'root' },
    });
    fakes.connector.failNext(1, 429, { retryAfterSec: 0, only: 'sendToConversation' });
    const id = await connector.send(fakes.connector.url, created.id, { type: 'message', text: 'after a 429' });
    expect(fakes.connector.message(id)!.activity.text).toBe('after a 429');
    const samples = await samplesOf(metrics);
    const calls = (method: string, outcome: string) =>
      total(samples, 'handoff_chat_api_calls_total', { surface: 'teams', method, outcome });
    expect(calls('createConversation', 'ok')).toBe(1);
    expect(calls('sendToConversation', 'rate_limited')).toBe(1);
    expect(calls('sendToConversation', 'ok')).toBe(1);
    expect(total(samples, 'handoff_chat_api_rate_limited_total', { surface: 'teams' })).toBe(1);
    expect(connector.rateLimited).toBe(1);
  });
});
