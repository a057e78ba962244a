import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { parseErrorResponse } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidGrantError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { Hono } from 'hono';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sdkCompatibleFetch } from '../../src/agent/connectors/oauth/index.ts';

let server: Server;
let url: string;

beforeAll(async () => {
  // Serving with @hono/node-server replaces globalThis.Response, as in the bot.
  const app = new Hono().post('/token', (c) => c.json({ error: 'invalid_grant', error_description: 'revoked' }, 400));
  server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

it('in a process serving with Hono, the SDK reads a refused refresh as invalid_grant only through sdkCompatibleFetch', async () => {
  // When this starts failing, Hono or the SDK has fixed the mismatch and the wrapper can go.
  const plain = await parseErrorResponse(await fetch(url, { method: 'POST' }));
  expect(plain).not.toBeInstanceOf(InvalidGrantError);
  const wrapped = await parseErrorResponse(await sdkCompatibleFetch()(url, { method: 'POST' }));
  expect(wrapped).toBeInstanceOf(InvalidGrantError);
  expect(wrapped.message).toBe('revoked');
});
