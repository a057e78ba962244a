import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Hono } from 'hono';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConnectionContext,
  ConnectionErrorCodes,
  ConnectionService,
  connectionRequiredCode,
  sdkCompatibleFetch,
  TokenStore,
} from '../../src/agent/connectors/oauth/index.ts';
import { ConnectorHub } from '../../src/agent/index.ts';
import { defaultTrustLevels } from '../../src/approvals/index.ts';
import { connectionRoutes } from '../../src/bot/connection-routes.ts';
import { parseConnectors } from '../../src/config/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { type FakeMcpOAuthServer, startMcpOAuthServer } from '../fakes/mcp-oauth-server.ts';

const key = Buffer.alloc(32, 7);

/** What a person reads on a page: the body's text, whitespace collapsed. */
function textOf(html: string): string {
  return html
    .replace(/<head>[\s\S]*<\/head>/, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
const ana = { id: 'slack:UANA', at: 'ana' };
const bob = { id: 'teams:7f9c1e2a-0b1c-4d5e-8f00-123456789abc', at: 'bob' };

interface Event {
  kind: 'connected' | 'declined';
  user: string;
  connector: string;
  context: ConnectionContext | undefined;
}

/**
 * Per-user connections end to end: real Redis, the real MCP SDK on both sides (client
 * auth and transport in Handoff; McpServer, mcpAuthRouter and requireBearerAuth in the
 * fake), the callback route served over HTTP, and a browser simulated with fetch.
 */
describe('per-user OAuth connections to a remote MCP server', () => {
  let redisDir: string;
  let redis: EmbeddedRedis;
  let records: Redis;
  let fake: FakeMcpOAuthServer;
  let callbackServer: Server;
  let publicUrl: string;
  let store: TokenStore;
  let service: ConnectionService;
  let routes: Hono;
  const events: Event[] = [];
  const routeErrors: unknown[] = [];

  const routesFor = (s: ConnectionService) =>
    connectionRoutes(s, {
      onConnected: (user, connector, context) => {
        events.push({ kind: 'connected', user, connector, context });
      },
      onDeclined: (user, connector, context) => {
        events.push({ kind: 'declined', user, connector, context });
      },
      onError: (err) => routeErrors.push(err),
    });

  beforeAll(async () => {
    redisDir = await mkdtemp(join(tmpdir(), 'handoff-connections-'));
    redis = await startRedisServer({ dir: redisDir });
    records = new Redis(redis.url);
    fake = await startMcpOAuthServer();
    // The bot's HTTP server: only the callback route matters here.
    callbackServer = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: (req) => routes.fetch(req), port: 0, hostname: '127.0.0.1' }, () =>
        resolve(s as Server),
      ) as Server;
    });
    publicUrl = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}`;
    store = new TokenStore(records, key);
    service = new ConnectionService({
      store,
      connectors: parseConnectors({ notes: { url: fake.mcpUrl, auth: 'oauth', title: 'Fake Notes' } }, 'handoff.yaml'),
      publicUrl,
    });
    routes = routesFor(service);
  }, 60_000);

  afterAll(async () => {
    if (callbackServer) {
      callbackServer.closeAllConnections();
      await new Promise((r) => callbackServer.close(r));
    }
    await fake?.close();
    records?.disconnect();
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  /** The person opens the Connect link in their browser, signed in at the service as `as`. */
  async function openConnectLink(url: string, as: string): Promise<string> {
    const res = await fetch(url, { redirect: 'manual', headers: { 'x-fake-user': as } });
    expect(res.status).toBe(302);
    return res.headers.get('location') ?? '';
  }

  async function connect(user: { id: string; at: string }, context?: ConnectionContext): Promise<string> {
    const begun = await service.begin('notes', user.id, context);
    if (begun.status !== 'needs_authorization') throw new Error(`expected a Connect link, got ${begun.status}`);
    const back = await openConnectLink(begun.authorizationUrl, user.at);
    const page = await fetch(back);
    expect(page.status).toBe(200);
    expect(textOf(await page.text())).toBe(
      'Connected to Fake Notes. You can close this tab and go back to the thread.',
    );
    return back;
  }

  /** Runs `work` with an MCP client connected through `transport` (or `transportFor(user)`). */
  async function asUser<T>(transport: Transport | string, work: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({ name: 'handoff-test', version: '0.0.0' });
    await client.connect(typeof transport === 'string' ? await service.transportFor('notes', transport) : transport);
    try {
      return await work(client);
    } finally {
      await client.close();
    }
  }

  async function whoami(userId: string): Promise<string> {
    return asUser(userId, async (client) => {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      return (result.content as { type: string; text: string }[])[0]?.text ?? '';
    });
  }

  it('begin gives a PKCE S256 link to the server’s /authorize; the callback connects, and tools run as that person', async () => {
    const begun = await service.begin('notes', ana.id, { taskId: 'task-1' });
    expect(begun.status).toBe('needs_authorization');
    if (begun.status !== 'needs_authorization') return;
    const link = new URL(begun.authorizationUrl);
    expect(`${link.origin}${link.pathname}`).toBe(`${fake.url}/authorize`);
    expect(link.searchParams.get('code_challenge_method')).toBe('S256');
    expect(link.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(link.searchParams.get('redirect_uri')).toBe(`${publicUrl}/connectors/oauth/callback`);
    expect(link.searchParams.get('resource')).toBe(fake.mcpUrl);
    expect(link.searchParams.get('state')?.length).toBeGreaterThanOrEqual(43);
    expect(fake.registeredClients.at(-1)).toMatchObject({
      client_name: 'Handoff',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [`${publicUrl}/connectors/oauth/callback`],
    });

    const back = await openConnectLink(begun.authorizationUrl, ana.at);
    expect(back.startsWith(`${publicUrl}/connectors/oauth/callback?`)).toBe(true);
    const page = await fetch(back);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(textOf(await page.text())).toBe(
      'Connected to Fake Notes. You can close this tab and go back to the thread.',
    );
    expect(events).toContainEqual({
      kind: 'connected',
      user: ana.id,
      connector: 'notes',
      context: { taskId: 'task-1' },
    });

    // As the brief for the runner has it: the SDK transport with this person's provider.
    const provider = await service.providerFor('notes', ana.id);
    const transport = new StreamableHTTPClientTransport(new URL(fake.mcpUrl), {
      authProvider: provider,
      fetch: sdkCompatibleFetch(),
    });
    const tools = await asUser(transport, (client) => client.listTools());
    expect(tools.tools.map((t) => t.name).sort()).toEqual(['create_note', 'echo_token', 'whoami']);
    expect(tools.tools.find((t) => t.name === 'whoami')?.annotations?.readOnlyHint).toBe(true);
    expect(await whoami(ana.id)).toBe('ana');

    expect(await service.begin('notes', ana.id)).toEqual({ status: 'connected' });
    const listed = await service.list(ana.id);
    expect(listed).toEqual([
      {
        connector: 'notes',
        title: 'Fake Notes',
        connectedAt: expect.any(String),
        expiresAt: expect.any(String),
        refreshable: true,
      },
    ]);
  });

  it("a run's connector hub acts as the person and removes their token from what the service returns", async () => {
    const [config] = parseConnectors(
      { notes: { url: fake.mcpUrl, auth: 'oauth', title: 'Fake Notes' } },
      'handoff.yaml',
    );
    const hub = await ConnectorHub.open({
      configs: [config!],
      policy: { trustLevels: defaultTrustLevels },
      transportFor: (c) => service.sessionFor(c.name, ana.id),
      explainFailure: (c, err) => service.toConnectionError(c.name, err),
    });
    try {
      expect(hub.problems).toEqual([]);
      expect((await hub.call('notes__whoami', {})).content).toContain('ana');
      const echoed = await hub.call('notes__echo_token', {});
      expect(echoed.content).toContain('your token is [secret removed]');
      expect(echoed.content).not.toMatch(/your token is (?!\[secret removed\])/);
    } finally {
      await hub.close();
    }
    // Someone who never connected: the hub leaves the connector out and says why.
    const nobody = await ConnectorHub.open({
      configs: [config!],
      policy: { trustLevels: defaultTrustLevels },
      transportFor: (c) => service.sessionFor(c.name, 'web:nobody'),
      explainFailure: (c, err) => service.toConnectionError(c.name, err),
    });
    expect(nobody.tools()).toEqual([]);
    expect(nobody.needsConnection.map((c) => c.name)).toEqual(['notes']);
    await nobody.close();
  });

  it('two people each act as themselves', async () => {
    await connect(bob, { taskId: 'task-2', conversation: { surface: 'teams', channel: '19:c', thread: '19:c;m=1' } });
    expect(await whoami(bob.id)).toBe('bob');
    expect(await whoami(ana.id)).toBe('ana');
    await asUser(bob.id, (client) => client.callTool({ name: 'create_note', arguments: { text: 'from bob' } }));
    expect(fake.notes).toContainEqual({ user: 'bob', text: 'from bob' });
    expect(await service.list('web:nobody')).toEqual([]);
  });

  it('an expired access token is renewed with the refresh token, without the person', async () => {
    const before = await store.getTokens(ana.id, 'notes');
    const refreshes = fake.grants.filter((g) => g.grantType === 'refresh_token').length;
    fake.expireAccessTokens();
    expect(await whoami(ana.id)).toBe('ana');
    expect(fake.grants.filter((g) => g.grantType === 'refresh_token').length).toBe(refreshes + 1);
    const after = await store.getTokens(ana.id, 'notes');
    expect(after?.tokens.access_token).not.toBe(before?.tokens.access_token);
    // The fake rotates refresh tokens: the new one was kept.
    expect(after?.tokens.refresh_token).not.toBe(before?.tokens.refresh_token);
    expect(after?.connectedAt).toBe(before?.connectedAt);
    expect(await whoami(ana.id)).toBe('ana');
  });

  it('while the service cannot renew a token, using it fails as retryable and the connection is kept', async () => {
    fake.expireAccessTokens();
    fake.tokenEndpointDown = true;
    try {
      // 503 temporarily_unavailable reaches the caller as the SDK's error; the service names it.
      const err = await asUser(bob.id, (client) => client.listTools()).catch((e: unknown) => e);
      expect(service.toConnectionError('notes', err)).toMatchObject({
        code: ConnectionErrorCodes.connectionUnavailable,
        retryable: true,
      });
      // A 500 is swallowed by the SDK, which then wants a new sign-in; the provider says why not.
      fake.tokenEndpointStatus = 500;
      const err500 = await asUser(bob.id, (client) => client.listTools()).catch((e: unknown) => e);
      expect(err500).toMatchObject({ code: ConnectionErrorCodes.connectionUnavailable, retryable: true });
    } finally {
      fake.tokenEndpointDown = false;
      fake.tokenEndpointStatus = 503;
    }
    expect(await whoami(bob.id)).toBe('bob');
  });

  it('revoke removes the tokens here and on the server; the connector then needs connecting again', async () => {
    const held = await service.transportFor('notes', ana.id);
    expect(fake.liveTokens('ana').refresh.length).toBeGreaterThan(0);

    expect(await service.revoke(ana.id, 'notes')).toEqual({ removedLocally: true, remote: 'revoked' });
    expect(fake.liveTokens('ana')).toEqual({ access: [], refresh: [] });
    expect(await store.getTokens(ana.id, 'notes')).toBeUndefined();
    expect(await service.list(ana.id)).toEqual([]);

    await expect(service.providerFor('notes', ana.id)).rejects.toMatchObject({ code: connectionRequiredCode });
    // A provider handed out before the revocation fails the same way when used.
    await expect(asUser(held, (client) => client.listTools())).rejects.toMatchObject({
      code: connectionRequiredCode,
    });
    // Bob is untouched.
    expect(await whoami(bob.id)).toBe('bob');
    expect(await service.revoke(ana.id, 'notes')).toEqual({ removedLocally: false, remote: 'not_connected' });
  });

  it('a callback whose state was used, is unknown or has expired is refused with 400', async () => {
    const back = await connect(ana);
    const connectedEvents = events.length;

    const replay = await fetch(back);
    expect(replay.status).toBe(400);
    const replayPage = textOf(await replay.text());
    expect(replayPage).toContain('unknown, has expired or was already used');
    expect(replayPage).not.toContain('Connected to');

    const unknown = await fetch(`${publicUrl}/connectors/oauth/callback?code=abc&state=not-a-state`);
    expect(unknown.status).toBe(400);
    expect((await fetch(`${publicUrl}/connectors/oauth/callback?code=abc`)).status).toBe(400);
    expect((await fetch(`${publicUrl}/connectors/oauth/callback?state=x&code=${'a'.repeat(5000)}`)).status).toBe(400);

    const quick = new ConnectionService({
      store,
      connectors: parseConnectors({ notes: { url: fake.mcpUrl, auth: 'oauth', title: 'Fake Notes' } }, 'handoff.yaml'),
      publicUrl,
      flowTtlMs: 200,
    });
    await service.revoke(bob.id, 'notes');
    const begun = await quick.begin('notes', bob.id);
    if (begun.status !== 'needs_authorization') throw new Error('expected a Connect link');
    const late = await openConnectLink(begun.authorizationUrl, bob.at);
    await new Promise((r) => setTimeout(r, 400));
    const expired = await routesFor(quick).request(late.slice(publicUrl.length));
    expect(expired.status).toBe(400);
    expect(events.length).toBe(connectedEvents);
    await expect(service.providerFor('notes', bob.id)).rejects.toMatchObject({ code: connectionRequiredCode });
  });

  it('a HEAD of the callback (a link preview) does not use the state up', async () => {
    const begun = await service.begin('notes', bob.id);
    if (begun.status !== 'needs_authorization') throw new Error('expected a Connect link');
    const back = await openConnectLink(begun.authorizationUrl, bob.at);
    expect((await fetch(back, { method: 'HEAD' })).status).toBe(405);
    expect((await fetch(back)).status).toBe(200);
    expect(await whoami(bob.id)).toBe('bob');
  });

  it('when the service stops honouring the refresh token, the stale tokens are dropped and a new connection is asked for', async () => {
    const transport = await service.transportFor('notes', bob.id);
    fake.revokeAllFor('bob');
    await expect(asUser(transport, (client) => client.listTools())).rejects.toMatchObject({
      code: connectionRequiredCode,
    });
    expect(await store.getTokens(bob.id, 'notes')).toBeUndefined();
    await expect(service.providerFor('notes', bob.id)).rejects.toMatchObject({ code: connectionRequiredCode });
    expect((await service.begin('notes', bob.id)).status).toBe('needs_authorization');
  });

  it('a declined sign-in shows why, uses the state up and tells the bot', async () => {
    const carol = { id: 'web:carol', at: 'carol' };
    const begun = await service.begin('notes', carol.id, { taskId: 'task-3' });
    if (begun.status !== 'needs_authorization') throw new Error('expected a Connect link');
    fake.decline = true;
    let back: string;
    try {
      back = await openConnectLink(begun.authorizationUrl, carol.at);
    } finally {
      fake.decline = false;
    }
    expect(new URL(back).searchParams.get('error')).toBe('access_denied');
    const page = await fetch(back);
    expect(page.status).toBe(400);
    expect(textOf(await page.text())).toBe(
      'Not connected to Fake Notes. The sign-in was declined. Go back to the thread to try again.',
    );
    expect(events.at(-1)).toEqual({
      kind: 'declined',
      user: carol.id,
      connector: 'notes',
      context: { taskId: 'task-3' },
    });
    // The same state with a code is refused now.
    const state = new URL(back).searchParams.get('state') ?? '';
    const retry = await fetch(`${publicUrl}/connectors/oauth/callback?code=x&state=${encodeURIComponent(state)}`);
    expect(retry.status).toBe(400);
    await expect(service.providerFor('notes', carol.id)).rejects.toMatchObject({ code: connectionRequiredCode });
  });

  it('a configured clientId and clientSecret are used instead of dynamic registration', async () => {
    const registered = fake.registerClient(`${publicUrl}/connectors/oauth/callback`);
    const configured = new ConnectionService({
      store,
      connectors: parseConnectors(
        {
          crm: {
            url: fake.mcpUrl,
            auth: { clientId: registered.clientId, clientSecret: 'env:CRM_SECRET', scope: 'notes.read notes.write' },
          },
        },
        'handoff.yaml',
      ),
      publicUrl,
      env: { CRM_SECRET: registered.clientSecret },
    });
    const registrations = fake.requests.filter((r) => r === 'POST /register').length;
    const begun = await configured.begin('crm', ana.id);
    if (begun.status !== 'needs_authorization') throw new Error('expected a Connect link');
    expect(new URL(begun.authorizationUrl).searchParams.get('client_id')).toBe(registered.clientId);
    expect(new URL(begun.authorizationUrl).searchParams.get('scope')).toBe('notes.read notes.write');
    const back = await openConnectLink(begun.authorizationUrl, 'ana-crm');
    const done = await configured.complete(
      new URL(back).searchParams.get('state') ?? '',
      new URL(back).searchParams.get('code') ?? '',
    );
    expect(done).toMatchObject({ user: ana.id, connector: 'crm', title: 'crm' });
    expect(fake.requests.filter((r) => r === 'POST /register').length).toBe(registrations);
    expect(await store.getClient(ana.id, 'crm')).toBeUndefined();
    const transport = await configured.transportFor('crm', ana.id);
    const who = await asUser(transport, (client) => client.callTool({ name: 'whoami', arguments: {} }));
    expect((who.content as { text: string }[])[0]?.text).toBe('ana-crm');
    expect((await configured.list(ana.id)).map((c) => [c.connector, c.scopes])).toContainEqual([
      'crm',
      ['notes.read', 'notes.write'],
    ]);
    expect(await configured.revoke(ana.id, 'crm')).toEqual({ removedLocally: true, remote: 'revoked' });
    expect(fake.liveTokens('ana-crm')).toEqual({ access: [], refresh: [] });
  });

  it.each([
    ['only plain PKCE', ['plain']],
    ['no PKCE methods at all', null],
  ])('an authorization server offering %s is refused before anything is registered', async (_what, methods) => {
    const weak = await startMcpOAuthServer({ codeChallengeMethods: methods });
    try {
      const s = new ConnectionService({
        store,
        connectors: parseConnectors({ weak: { url: weak.mcpUrl, auth: 'oauth' } }, 'handoff.yaml'),
        publicUrl,
      });
      await expect(s.begin('weak', ana.id)).rejects.toMatchObject({ code: ConnectionErrorCodes.serverUnsupported });
      expect(weak.requests).not.toContain('POST /register');
      expect(weak.requests).not.toContain('GET /authorize');
    } finally {
      await weak.close();
    }
  });

  it('Redis holds no token, client secret or user id in the clear', async () => {
    expect(fake.issued.length).toBeGreaterThan(10);
    const keys = await records.keys('*');
    expect(keys.length).toBeGreaterThan(0);
    const seen: string[] = [...keys];
    for (const k of keys) {
      const type = await records.type(k);
      if (type === 'string') seen.push((await records.get(k)) ?? '');
      else if (type === 'set') seen.push(...(await records.smembers(k)));
    }
    const everything = seen.join('\n');
    for (const secret of fake.issued) expect(everything).not.toContain(secret);
    for (const user of [ana.id, bob.id, 'web:carol']) expect(everything).not.toContain(user);
    expect(keys.every((k) => k.startsWith('hf:conn:'))).toBe(true);
    expect(routeErrors).toEqual([]);
  });
});
