import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultTrustLevels } from '../../src/approvals/index.ts';
import { type Grant, grantIsLive, newId } from '../../src/core/index.ts';
import { type EmbeddedRedis, GrantStore, grantsCli, startRedisServer } from '../../src/storage/index.ts';

let server: EmbeddedRedis;
let redis: Redis;
let dir: string;
let store: GrantStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-grants-store-'));
  server = await startRedisServer({ dir });
  redis = new Redis(server.url);
  store = new GrantStore(redis, 60_000);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const channel = { surface: 'slack' as const, workspace: 'T1', channel: 'C1' };
const allow = { allow: true, maxDays: 30 };
const live = (g: Grant) => grantIsLive(g, Date.now(), defaultTrustLevels, allow);

function grant(over: Partial<Grant>): Grant {
  const now = Date.now();
  return {
    id: newId('g'),
    pattern: 'connector:crm__create_note',
    action: 'connector_write',
    scope: 'channel',
    ...channel,
    taskId: 't_1',
    runId: 'r_1',
    approvalId: 'a_1',
    description: 'the connector tool crm__create_note (any arguments)',
    createdBy: { id: 'U2', name: 'Bo' },
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3_600_000).toISOString(),
    ...over,
  };
}

it('finds a channel grant from any run of that channel, and only there', async () => {
  const g = await store.create(grant({}));
  const ask = (
    runId: string,
    where: { surface: 'slack' | 'teams' | 'web'; channel: string } = channel,
    action: Grant['action'] = 'connector_write',
  ) => store.covering({ runId, channel: where, patterns: ['connector:crm__create_note'], action }, live);
  expect((await ask('r_other'))?.map((x) => x.id)).toEqual([g.id]);
  expect(await ask('r_other', { ...channel, channel: 'C2' })).toBeUndefined();
  // Channels are named by surface and channel id, as in the policy file.
  expect(await ask('r_other', { surface: 'teams', channel: 'C1' })).toBeUndefined();
  // Same pattern text, another kind of call: no match.
  expect(await ask('r_other', channel, 'connector_read')).toBeUndefined();
  expect((await store.forChannel(channel)).map((x) => x.id)).toEqual([g.id]);
  await store.revoke(g.id, { id: 'U3', name: 'Cy' });
});

it('keeps a run grant to its run', async () => {
  const g = await store.create(
    grant({
      scope: 'run',
      runId: 'r_run',
      pattern: 'file:overwrite_input:/workspace/in/a.txt',
      action: 'overwrite_input',
    }),
  );
  const ask = (runId: string) =>
    store.covering(
      { runId, channel, patterns: ['file:overwrite_input:/workspace/in/a.txt'], action: 'overwrite_input' },
      live,
    );
  expect((await ask('r_run'))?.map((x) => x.id)).toEqual([g.id]);
  expect(await ask('r_next')).toBeUndefined();
  // A run grant is not listed among the channel's standing grants.
  expect((await store.forChannel(channel)).some((x) => x.id === g.id)).toBe(false);
  expect(await redis.pttl(`hf:grants:run:r_run`)).toBeGreaterThan(0);
  // No grant key lives for ever: records and indexes all carry a time to live.
  for (const key of await redis.keys('hf:grant*')) expect(await redis.pttl(key)).toBeGreaterThan(0);
});

it('covers a call only when every one of its patterns is granted', async () => {
  const a = await store.create(grant({ pattern: 'egress:a.example.com', action: 'network_egress' }));
  const ask = (patterns: string[]) =>
    store.covering({ runId: 'r_x', channel, patterns, action: 'network_egress' }, live);
  expect((await ask(['egress:a.example.com']))?.map((x) => x.id)).toEqual([a.id]);
  expect(await ask(['egress:a.example.com', 'egress:b.example.com'])).toBeUndefined();
  expect(await ask([])).toBeUndefined();
  await store.revoke(a.id, { id: 'U3', name: 'Cy' });
});

it('honours expiry: an expired grant neither matches nor is listed', async () => {
  const g = await store.create(
    grant({ pattern: 'connector:crm__expiring', expiresAt: new Date(Date.now() + 300).toISOString() }),
  );
  const ask = () =>
    store.covering({ runId: 'r_1', channel, patterns: ['connector:crm__expiring'], action: 'connector_write' }, live);
  expect((await ask())?.map((x) => x.id)).toEqual([g.id]);
  await new Promise((r) => setTimeout(r, 400));
  expect(await ask()).toBeUndefined();
  expect((await store.forChannel(channel)).some((x) => x.id === g.id)).toBe(false);
  // The record itself stays for the retention, so the audit trail's id still resolves.
  expect((await store.get(g.id))?.pattern).toBe('connector:crm__expiring');
});

it('revokes once, at once, and keeps who revoked it', async () => {
  const g = await store.create(grant({ pattern: 'connector:crm__revoked' }));
  const revoked = await store.revoke(g.id, { id: 'U3', name: 'Cy' });
  expect(revoked.revokedBy).toEqual({ id: 'U3', name: 'Cy' });
  expect(
    await store.covering(
      { runId: 'r_1', channel, patterns: ['connector:crm__revoked'], action: 'connector_write' },
      live,
    ),
  ).toBeUndefined();
  await expect(store.revoke(g.id, { id: 'U3', name: 'Cy' })).rejects.toThrow(/already revoked by Cy/);
  await expect(store.revoke('g_missing', { id: 'U3', name: 'Cy' })).rejects.toThrow(/no grant/);
  expect((await store.get(g.id))?.revokedAt).toBeDefined();
});

it('refuses a record that is not a grant', async () => {
  await expect(store.create(grant({ pattern: 'connector:crm__*' }))).rejects.toThrow();
  await expect(store.create(grant({ pattern: 'tool:run_command' }))).rejects.toThrow();
});

it('lists and revokes from the CLI, auditing the revocation', async () => {
  const g = await store.create(grant({ pattern: 'connector:crm__cli', channel: 'C7' }));
  const lines: string[] = [];
  const out = { log: (l: string) => lines.push(l), error: (l: string) => lines.push(`error: ${l}`) };
  expect(await grantsCli(server.url, { command: 'list', channel: 'slack:C7' }, 60_000, out)).toBe(0);
  expect(lines).toEqual([expect.stringContaining(`${g.id}  slack:C7  connector:crm__cli  by Bo (U2)`)]);
  expect(await grantsCli(server.url, { command: 'list', channel: 'C7' }, 60_000, out)).toBe(2);
  expect(await grantsCli(server.url, { command: 'revoke', id: g.id, by: 'Dana' }, 60_000, out)).toBe(0);
  expect(await grantsCli(server.url, { command: 'revoke', id: g.id, by: 'Dana' }, 60_000, out)).toBe(1);
  expect(lines.at(-1)).toContain('already revoked by Dana');
  const audit = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
  expect(audit.filter((r) => r.type === 'grant.revoked')).toEqual([
    expect.objectContaining({ actor: 'cli:Dana', data: expect.objectContaining({ grantId: g.id, via: 'cli' }) }),
  ]);
  expect(await grantsCli(server.url, { command: 'nonsense' }, 60_000, out)).toBe(2);
});

it('reports a grant whose index could not be written, and keeps no half-stored record', async () => {
  // A key of the wrong type where the channel's index lives: the transaction's ZADD fails.
  const where = { ...channel, channel: 'CBROKEN' };
  await redis.set('hf:grants:channel:slack:CBROKEN', 'not a sorted set');
  const g = grant(where);
  await expect(store.create(g)).rejects.toThrow(/WRONGTYPE/);
  expect(await store.get(g.id)).toBeUndefined();
  await redis.del('hf:grants:channel:slack:CBROKEN');
  // With the index repaired, the same grant is stored and found.
  await store.create(g);
  expect((await store.forChannel(where)).map((x) => x.id)).toEqual([g.id]);
});
