import { inspect } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  ConnectionErrorCodes,
  ConnectionService,
  connectionRequiredCode,
  MemoryConnectionRedis,
  TokenStore,
} from '../../src/agent/connectors/oauth/index.ts';
import { connectionRoutes } from '../../src/bot/connection-routes.ts';
import { parseConnectors } from '../../src/config/index.ts';
import { type FakeMcpOAuthServer, startMcpOAuthServer } from '../fakes/mcp-oauth-server.ts';

/**
 * Tokens and client secrets never leave the token store in the clear: not into Redis,
 * not into errors (message, stack, cause), not into pages, results or error callbacks.
 * The server here is careless on purpose: its error descriptions quote the code or
 * token it refused, and its failing revocation endpoint quotes the token it was sent.
 */

const publicUrl = 'http://127.0.0.1:9';
let fake: FakeMcpOAuthServer;
let redis: MemoryConnectionRedis;
let service: ConnectionService;
let crmSecret: string;
const observed: string[] = [];

function observe(value: unknown): void {
  if (value instanceof Error) {
    observed.push(inspect(value, { depth: 10 }), String(value.stack), String(value.message));
    if (value.cause !== undefined) observe(value.cause);
  } else {
    observed.push(typeof value === 'string' ? value : inspect(value, { depth: 10 }));
  }
}

async function attempt<T>(work: () => Promise<T>): Promise<T | unknown> {
  try {
    const result = await work();
    observe(result);
    return result;
  } catch (err) {
    observe(err);
    return err;
  }
}

const routes = () =>
  connectionRoutes(service, {
    onConnected: (user, connector, context) => observe({ user, connector, context }),
    onDeclined: (user, connector, context) => observe({ user, connector, context }),
    onError: observe,
  });

async function callback(url: string): Promise<Response> {
  const res = await routes().request(url.slice(publicUrl.length));
  observe(await res.clone().text());
  observe(Object.fromEntries(res.headers));
  return res;
}

async function signIn(connector: string, user: string, as: string): Promise<string> {
  const begun = await service.begin(connector, user);
  if (begun.status !== 'needs_authorization') throw new Error(`expected a Connect link, got ${begun.status}`);
  observe(begun);
  const res = await fetch(begun.authorizationUrl, { redirect: 'manual', headers: { 'x-fake-user': as } });
  return res.headers.get('location') ?? '';
}

async function use(connector: string, user: string): Promise<unknown> {
  return attempt(async () => {
    const client = new Client({ name: 'handoff-test', version: '0.0.0' });
    try {
      await client.connect(await service.transportFor(connector, user));
      return await client.callTool({ name: 'whoami', arguments: {} });
    } catch (err) {
      observe(service.toConnectionError(connector, err));
      throw err;
    } finally {
      await client.close();
    }
  });
}

beforeAll(async () => {
  fake = await startMcpOAuthServer({ leakyErrors: true });
  const crm = fake.registerClient(`${publicUrl}/connectors/oauth/callback`);
  crmSecret = crm.clientSecret;
  redis = new MemoryConnectionRedis();
  service = new ConnectionService({
    store: new TokenStore(redis, Buffer.alloc(32, 3)),
    connectors: parseConnectors(
      {
        notes: { url: fake.mcpUrl, auth: 'oauth' },
        crm: { url: fake.mcpUrl, auth: { clientId: crm.clientId, clientSecret: 'env:CRM_SECRET' } },
      },
      'handoff.yaml',
    ),
    publicUrl,
    env: { CRM_SECRET: crm.clientSecret },
  });
});

afterAll(async () => {
  await fake?.close();
});

it('no token or client secret is observable anywhere outside the encrypted store', async () => {
  // Connect, use, refresh, list: the ordinary path.
  const back = await signIn('notes', 'slack:UANA', 'ana');
  expect((await callback(back)).status).toBe(200);
  expect((await callback(await signIn('crm', 'slack:UANA', 'ana'))).status).toBe(200);
  await use('notes', 'slack:UANA');
  await use('crm', 'slack:UANA');
  fake.expireAccessTokens();
  await use('notes', 'slack:UANA');
  observe(await service.list('slack:UANA'));

  // A replayed callback.
  expect((await callback(back)).status).toBe(400);

  // A code the server refuses, quoting it back: here the person's own live tokens.
  const live = fake.liveTokens('ana');
  const bobBack = new URL(await signIn('notes', 'web:bob', 'bob'));
  bobBack.searchParams.set('code', live.access[0] ?? '');
  expect((await callback(bobBack.href)).status).toBe(502);
  const carolBack = new URL(await signIn('notes', 'web:carol', 'carol'));
  const refused = await attempt(() =>
    service.complete(carolBack.searchParams.get('state') ?? '', live.refresh[0] ?? 'x'),
  );
  expect(refused).toMatchObject({ code: ConnectionErrorCodes.connectionFailed });

  // The service is down, then forgets the grant.
  fake.expireAccessTokens();
  fake.tokenEndpointDown = true;
  await use('notes', 'slack:UANA');
  fake.tokenEndpointStatus = 500;
  await use('notes', 'slack:UANA');
  fake.tokenEndpointDown = false;
  fake.revokeAllFor('ana');
  expect(await use('crm', 'slack:UANA')).toMatchObject({ code: connectionRequiredCode });
  expect(await attempt(() => service.providerFor('crm', 'slack:UANA'))).toMatchObject({
    code: connectionRequiredCode,
  });

  // Revocation against an endpoint that fails and quotes the token.
  expect((await callback(await signIn('notes', 'web:dan', 'dan'))).status).toBe(200);
  fake.revocationDown = true;
  const revoked = await attempt(() => service.revoke('web:dan', 'notes'));
  expect(revoked).toMatchObject({ removedLocally: true, remote: 'failed', problem: expect.stringContaining('503') });
  fake.revocationDown = false;

  const secrets = [...fake.issued, crmSecret];
  expect(secrets.length).toBeGreaterThanOrEqual(9);
  expect(observed.length).toBeGreaterThan(20);
  const everything = observed.join('\n');
  const stored = JSON.stringify([...redis.dump()]);
  for (const secret of secrets) {
    expect(everything, 'an error, page, result or callback').not.toContain(secret);
    expect(stored, 'a Redis key or value').not.toContain(secret);
  }
});
