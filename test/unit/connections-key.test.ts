import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MemoryConnectionRedis,
  parseConnectionsKey,
  recordUnreadableCode,
  TokenStore,
} from '../../src/agent/connectors/oauth/index.ts';

const bytes = randomBytes(32);

describe('parseConnectionsKey', () => {
  it.each([
    ['64 hex characters', bytes.toString('hex')],
    ['upper-case hex', bytes.toString('hex').toUpperCase()],
    ['base64', bytes.toString('base64')],
    ['base64 without padding', bytes.toString('base64').replace(/=+$/, '')],
    ['base64url', bytes.toString('base64url')],
    ['with a trailing newline (a file: reference)', `${bytes.toString('base64')}\n`],
  ])('accepts %s', (_what, text) => {
    expect(parseConnectionsKey(text).equals(bytes)).toBe(true);
  });

  it.each([
    ['empty', '', /empty/],
    ['hex of 16 bytes', randomBytes(16).toString('hex'), /looks like hex but has 32 characters; it must have 64/],
    ['base64 of 16 bytes', randomBytes(16).toString('base64'), /decodes to 16 bytes; it must be exactly 32/],
    ['base64 of 48 bytes', randomBytes(48).toString('base64'), /decodes to 48 bytes/],
    ['a passphrase', 'correct horse battery staple!', /neither 64 hex characters nor base64/],
    ['broken base64', `${bytes.toString('base64').slice(0, 40)}=abc`, /base64/],
  ])('refuses %s, without repeating it', (_what, text, message) => {
    let caught: unknown;
    try {
      parseConnectionsKey(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'handoff_config_invalid', message: expect.stringMatching(message) });
    if (text.trim().length > 4) expect((caught as Error).message).not.toContain(text.trim());
  });
});

describe('TokenStore encryption at rest', () => {
  const tokens = {
    access_token: 'at_0123456789abcdef0123456789',
    token_type: 'Bearer',
    refresh_token: 'rt_0123456789abcdef0123456789',
    expires_in: 3600,
    issuer: 'https://auth.example.test/',
  };
  const record = {
    tokens,
    connectedAt: '2026-01-01T00:00:00.000Z',
    savedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
  };

  function setup() {
    const redis = new MemoryConnectionRedis();
    return { redis, store: new TokenStore(redis, bytes) };
  }

  function keyOf(redis: MemoryConnectionRedis, suffix: string, not: string[] = []): string {
    const key = [...redis.dump().keys()].find((k) => k.endsWith(suffix) && !not.includes(k));
    if (!key) throw new Error(`no key ending in ${suffix}`);
    return key;
  }

  it('round-trips tokens, and stores neither them nor the user id in the clear', async () => {
    const { redis, store } = setup();
    await store.saveTokens('slack:U123', 'notes', record);
    const back = await store.getTokens('slack:U123', 'notes');
    expect(back).toMatchObject(record);
    const stored = JSON.stringify([...redis.dump()]);
    expect(stored).not.toContain(tokens.access_token);
    expect(stored).not.toContain(tokens.refresh_token);
    expect(stored).not.toContain('slack:U123');
    expect(stored).not.toContain('U123');
    expect(await store.list('slack:U123')).toEqual([
      {
        connector: 'notes',
        connectedAt: record.connectedAt,
        expiresAt: record.expiresAt,
        refreshable: true,
      },
    ]);
  });

  it('a flipped byte, another key, or a record moved to another user, connector or kind does not open', async () => {
    const { redis, store } = setup();
    await store.saveTokens('web:alice', 'notes', record);
    await store.saveTokens('web:bob', 'notes', {
      ...record,
      tokens: { ...tokens, access_token: 'at_bob_000000000000' },
    });
    await store.saveClient('web:alice', 'notes', { client_id: 'c1', client_secret: 'secret_0123456789' });
    const aliceTokens = keyOf(redis, ':notes:tokens');
    const bobTokens = keyOf(redis, ':notes:tokens', [aliceTokens]);
    const sealedAlice = (await redis.get(aliceTokens)) ?? '';
    const sealedBob = (await redis.get(bobTokens)) ?? '';
    const unreadable = { code: recordUnreadableCode };

    // Swap the two people's records: each refuses the other's.
    await redis.set(aliceTokens, sealedBob);
    await redis.set(bobTokens, sealedAlice);
    await expect(store.getTokens('web:alice', 'notes')).rejects.toMatchObject(unreadable);
    await expect(store.getTokens('web:bob', 'notes')).rejects.toMatchObject(unreadable);

    // Tokens stored where a client registration belongs.
    const client = keyOf(redis, ':notes:client');
    await redis.set(client, sealedAlice);
    await expect(store.getClient('web:alice', 'notes')).rejects.toMatchObject(unreadable);

    // One changed character.
    await redis.set(aliceTokens, sealedAlice);
    await expect(store.getTokens('web:alice', 'notes')).resolves.toMatchObject(record);
    const last = sealedAlice.at(-2) === 'A' ? 'B' : 'A';
    await redis.set(aliceTokens, `${sealedAlice.slice(0, -2)}${last}${sealedAlice.at(-1)}`);
    await expect(store.getTokens('web:alice', 'notes')).rejects.toMatchObject(unreadable);

    // Another connections key.
    await redis.set(aliceTokens, sealedAlice);
    const other = new TokenStore(redis, randomBytes(32));
    await expect(other.getTokens('web:alice', 'notes')).resolves.toBeUndefined();
    const sameNames = new TokenStore(redis, bytes);
    await expect(sameNames.getTokens('web:alice', 'notes')).resolves.toMatchObject(record);
  });

  it('deletes tokens only when they are still the version that was read', async () => {
    const { store } = setup();
    const first = await store.saveTokens('web:alice', 'notes', record);
    const second = await store.saveTokens('web:alice', 'notes', record);
    expect(await store.deleteTokens('web:alice', 'notes', first.version)).toBe(false);
    expect(await store.getTokens('web:alice', 'notes')).toMatchObject({ version: second.version });
    expect(await store.deleteTokens('web:alice', 'notes', second.version)).toBe(true);
    expect(await store.getTokens('web:alice', 'notes')).toBeUndefined();
  });

  it('a pending sign-in is taken once, with its verifier, and not after it expires', async () => {
    const { redis, store } = setup();
    const state = await store.createFlow({ user: 'web:alice', connector: 'notes', context: { taskId: 't1' } }, 60_000);
    await store.saveVerifier(state, 'web:alice', 'notes', 'verifier-0123456789', 60_000);
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify([...redis.dump()])).not.toContain(state);
    expect(await store.takeFlow(state)).toMatchObject({
      user: 'web:alice',
      connector: 'notes',
      context: { taskId: 't1' },
      codeVerifier: 'verifier-0123456789',
    });
    expect(await store.takeFlow(state)).toBeUndefined();
    expect(await store.takeFlow('x'.repeat(600))).toBeUndefined();

    const soon = await store.createFlow({ user: 'web:alice', connector: 'notes' }, 60_000);
    expect(await store.takeFlow(soon, new Date(Date.now() + 61_000))).toBeUndefined();

    // A verifier saved for one person's flow does not open as another's.
    const mine = await store.createFlow({ user: 'web:alice', connector: 'notes' }, 60_000);
    await store.saveVerifier(mine, 'web:bob', 'notes', 'verifier-of-bob-000', 60_000);
    expect((await store.takeFlow(mine))?.codeVerifier).toBeUndefined();
  });

  it('delete removes a person’s tokens, client and listing, and leaves others alone', async () => {
    const { store } = setup();
    await store.saveTokens('web:alice', 'notes', record);
    await store.saveTokens('web:alice', 'crm', record);
    await store.saveClient('web:alice', 'notes', { client_id: 'c1' });
    await store.saveTokens('web:bob', 'notes', record);
    await store.delete('web:alice', 'notes');
    expect(await store.getTokens('web:alice', 'notes')).toBeUndefined();
    expect(await store.getClient('web:alice', 'notes')).toBeUndefined();
    expect((await store.list('web:alice')).map((c) => c.connector)).toEqual(['crm']);
    expect((await store.list('web:bob')).map((c) => c.connector)).toEqual(['notes']);
  });
});
