import { randomBytes } from 'node:crypto';
import type { OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { z } from 'zod';
import { connectorNamePattern } from '../../../config/index.ts';
import { ConversationRefSchema, ErrorCodes, HandoffError } from '../../../core/index.ts';
import { SealedBox } from './sealed-box.ts';

export { parseConnectionsKey } from './sealed-box.ts';

/**
 * The Redis commands the store uses. An ioredis client satisfies it; so can an in-memory
 * map in unit tests.
 */
export interface ConnectionRedis {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<unknown>;
  set(key: string, value: string, unit: 'PX', ms: number): Promise<unknown>;
  getdel(key: string): Promise<string | null>;
  del(...keys: string[]): Promise<number>;
  sadd(key: string, member: string): Promise<number>;
  srem(key: string, member: string): Promise<number>;
  smembers(key: string): Promise<string[]>;
}

/**
 * Where a connection was asked for, carried through the browser round trip and handed
 * back when it completes, so the bot can resume what was waiting.
 */
export const ConnectionContextSchema = z.object({
  /** The task waiting for this connection. */
  taskId: z.string().min(1).max(200).optional(),
  /** The thread the Connect button was posted in. */
  conversation: ConversationRefSchema.optional(),
  /** The surface's id of the message carrying the Connect button (to update it). */
  messageRef: z.string().min(1).max(500).optional(),
});
export type ConnectionContext = z.infer<typeof ConnectionContextSchema>;

const OAuthTokensRecordSchema = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string(),
  expires_in: z.number().optional(),
  scope: z.string().optional(),
  refresh_token: z.string().optional(),
  issuer: z.string().optional(),
});

/** One person's tokens for one connector, as stored. */
export const StoredTokensSchema = z.object({
  /** Exactly what the SDK handed to `saveTokens` (including its `issuer` stamp). */
  tokens: OAuthTokensRecordSchema,
  /** When the person first connected (kept across refreshes). */
  connectedAt: z.string(),
  /** When these tokens were saved. */
  savedAt: z.string(),
  /** When the access token expires, from `expires_in`; absent when the server did not say. */
  expiresAt: z.string().optional(),
  /** Random per save: lets a caller delete only the tokens it read, not newer ones. */
  version: z.string(),
});
export type StoredTokens = Omit<z.infer<typeof StoredTokensSchema>, 'tokens'> & { tokens: OAuthTokens };

const ClientRecordSchema = z.looseObject({ client_id: z.string().min(1), client_secret: z.string().optional() });
const DiscoveryRecordSchema = z.looseObject({ authorizationServerUrl: z.string().min(1) });

/** A sign-in that was started and not yet finished, found by its `state`. */
export const PendingFlowSchema = z.object({
  user: z.string().min(1).max(200),
  connector: z.string().regex(connectorNamePattern),
  context: ConnectionContextSchema.optional(),
  createdAt: z.string(),
  expiresAt: z.string(),
});
export type PendingFlow = z.infer<typeof PendingFlowSchema>;

/** What a person's connection looks like from outside: never any token material. */
export interface StoredConnectionSummary {
  connector: string;
  connectedAt: string;
  /** When the current access token expires, when the server said. */
  expiresAt?: string;
  /** Scopes granted, when the server said. */
  scopes?: string[];
  /** Whether it can be renewed without the person (a refresh token is held). */
  refreshable: boolean;
}

export interface TokenStoreOptions {
  /** Key prefix (default `hf:conn:`). */
  prefix?: string;
  /** How long discovered server metadata is reused before it is fetched again (default 24 h). */
  discoveryTtlMs?: number;
}

/** The stored connection record cannot be decrypted: another key, or altered in Redis. */
export const recordUnreadableCode = 'handoff_connection_unreadable';

const defaultDiscoveryTtlMs = 24 * 60 * 60 * 1000;
const maxStateChars = 512;

type Kind = 'tokens' | 'client' | 'discovery';

/**
 * Per (user, connector) OAuth state in Redis, every value encrypted at rest
 * ({@link SealedBox}): tokens, client registration, discovered server metadata, and
 * short-lived sign-in flows with their PKCE verifiers.
 *
 * Keys: `<prefix>u:<hmac(user)>:<connector>:<kind>` and `<prefix>u:<hmac(user)>:index`
 * (the connectors a person has tokens for); `<prefix>flow:<hmac(state)>` and
 * `<prefix>flow:<hmac(state)>:verifier` (expire on their own). User ids are opaque
 * strings (`slack:U123`, `teams:<guid>`, `web:alice`); Redis sees only their HMAC.
 */
export class TokenStore {
  readonly #redis: ConnectionRedis;
  readonly #box: SealedBox;
  readonly #prefix: string;
  readonly #discoveryTtlMs: number;

  /** `key` MUST be 32 bytes ({@link parseConnectionsKey}). */
  constructor(redis: ConnectionRedis, key: Buffer, options: TokenStoreOptions = {}) {
    this.#redis = redis;
    this.#box = new SealedBox(key);
    this.#prefix = options.prefix ?? 'hf:conn:';
    this.#discoveryTtlMs = options.discoveryTtlMs ?? defaultDiscoveryTtlMs;
  }

  /** The tokens, or undefined when there are none. Throws {@link recordUnreadableCode} when they cannot be decrypted. */
  async getTokens(user: string, connector: string): Promise<StoredTokens | undefined> {
    const record = await this.#read(user, connector, 'tokens', StoredTokensSchema);
    return record as StoredTokens | undefined;
  }

  /** Stores tokens (a new `version` each time) and lists the connector for the person. */
  async saveTokens(user: string, connector: string, record: Omit<StoredTokens, 'version'>): Promise<StoredTokens> {
    const stored: StoredTokens = { ...record, version: randomBytes(12).toString('base64url') };
    await this.#write(user, connector, 'tokens', stored);
    await this.#redis.sadd(this.#indexKey(user), connector);
    return stored;
  }

  /**
   * Deletes the tokens. With `ifVersion`, only when the stored ones are still that version:
   * a run whose refresh token was refused does not delete tokens another run just renewed.
   */
  async deleteTokens(user: string, connector: string, ifVersion?: string): Promise<boolean> {
    if (ifVersion !== undefined) {
      let current: StoredTokens | undefined;
      try {
        current = await this.getTokens(user, connector);
      } catch {
        current = undefined;
      }
      // GET then DEL: a save landing between the two is lost, which costs one reconnect at worst.
      if (current && current.version !== ifVersion) return false;
    }
    return (await this.#redis.del(this.#key(user, connector, 'tokens'))) > 0;
  }

  /** The registered client (dynamic registration result), or undefined. */
  async getClient(user: string, connector: string): Promise<OAuthClientInformationMixed | undefined> {
    return (await this.#read(user, connector, 'client', ClientRecordSchema)) as OAuthClientInformationMixed | undefined;
  }

  async saveClient(user: string, connector: string, info: OAuthClientInformationMixed): Promise<void> {
    await this.#write(user, connector, 'client', info);
  }

  async deleteClient(user: string, connector: string): Promise<void> {
    await this.#redis.del(this.#key(user, connector, 'client'));
  }

  /** Discovered server metadata, reused for a while so a refresh does not rediscover. */
  async getDiscovery(user: string, connector: string): Promise<OAuthDiscoveryState | undefined> {
    try {
      return (await this.#read(user, connector, 'discovery', DiscoveryRecordSchema)) as OAuthDiscoveryState | undefined;
    } catch {
      // Nothing secret and cheap to fetch again.
      return undefined;
    }
  }

  async saveDiscovery(user: string, connector: string, state: OAuthDiscoveryState): Promise<void> {
    await this.#write(user, connector, 'discovery', state, this.#discoveryTtlMs);
  }

  async deleteDiscovery(user: string, connector: string): Promise<void> {
    await this.#redis.del(this.#key(user, connector, 'discovery'));
  }

  /**
   * Records a pending sign-in and returns its `state`: 32 random bytes, base64url. Redis
   * holds only an HMAC of it, so reading Redis does not give a usable callback.
   */
  async createFlow(
    flow: Omit<PendingFlow, 'createdAt' | 'expiresAt'>,
    ttlMs: number,
    now = new Date(),
  ): Promise<string> {
    const state = randomBytes(32).toString('base64url');
    const record: PendingFlow = {
      ...flow,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
    };
    const id = this.#flowId(state);
    await this.#redis.set(this.#flowKey(id), this.#box.seal(JSON.stringify(record), ['flow', id]), 'PX', ttlMs);
    return state;
  }

  /**
   * Consumes a pending sign-in (atomically: a second call with the same state gets
   * undefined), with the PKCE verifier saved for it. Undefined when the state is unknown,
   * used, expired, or its record does not open.
   */
  async takeFlow(state: string, now = new Date()): Promise<(PendingFlow & { codeVerifier?: string }) | undefined> {
    if (state.length === 0 || state.length > maxStateChars) return undefined;
    const id = this.#flowId(state);
    const sealed = await this.#redis.getdel(this.#flowKey(id));
    const verifierSealed = await this.#redis.getdel(`${this.#flowKey(id)}:verifier`);
    if (!sealed) return undefined;
    const flow = parseJson(this.#box.open(sealed, ['flow', id]), PendingFlowSchema);
    if (!flow || Date.parse(flow.expiresAt) <= now.getTime()) return undefined;
    const codeVerifier = verifierSealed
      ? this.#box.open(verifierSealed, ['verifier', flow.user, flow.connector, id])
      : undefined;
    return codeVerifier === undefined ? flow : { ...flow, codeVerifier };
  }

  /** Saves the PKCE verifier of a pending sign-in; it expires with the flow. */
  async saveVerifier(state: string, user: string, connector: string, verifier: string, ttlMs: number): Promise<void> {
    const id = this.#flowId(state);
    const sealed = this.#box.seal(verifier, ['verifier', user, connector, id]);
    await this.#redis.set(`${this.#flowKey(id)}:verifier`, sealed, 'PX', ttlMs);
  }

  /** Drops the PKCE verifier of a pending sign-in. */
  async deleteVerifier(state: string): Promise<void> {
    await this.#redis.del(`${this.#flowKey(this.#flowId(state))}:verifier`);
  }

  /**
   * The connectors a person holds tokens for, without token material. Records that do
   * not decrypt are left out (connecting again replaces them).
   */
  async list(user: string): Promise<StoredConnectionSummary[]> {
    const connectors = (await this.#redis.smembers(this.#indexKey(user))).sort();
    const out: StoredConnectionSummary[] = [];
    for (const connector of connectors) {
      if (!connectorNamePattern.test(connector)) continue;
      let record: StoredTokens | undefined;
      try {
        record = await this.getTokens(user, connector);
      } catch {
        continue;
      }
      if (!record) {
        await this.#redis.srem(this.#indexKey(user), connector);
        continue;
      }
      const scopes = record.tokens.scope?.split(' ').filter(Boolean);
      out.push({
        connector,
        connectedAt: record.connectedAt,
        ...(record.expiresAt ? { expiresAt: record.expiresAt } : {}),
        ...(scopes?.length ? { scopes } : {}),
        refreshable: Boolean(record.tokens.refresh_token),
      });
    }
    return out;
  }

  /** Removes everything stored for a person and connector (tokens, client, discovery). */
  async delete(user: string, connector: string): Promise<void> {
    await this.#redis.del(
      this.#key(user, connector, 'tokens'),
      this.#key(user, connector, 'client'),
      this.#key(user, connector, 'discovery'),
    );
    await this.#redis.srem(this.#indexKey(user), connector);
  }

  async #read<T>(user: string, connector: string, kind: Kind, schema: z.ZodType<T>): Promise<T | undefined> {
    const sealed = await this.#redis.get(this.#key(user, connector, kind));
    if (sealed === null) return undefined;
    const value = parseJson(this.#box.open(sealed, [kind, user, connector]), schema);
    if (value === undefined) {
      throw new HandoffError(
        recordUnreadableCode,
        `the stored ${kind} for ${connector} cannot be decrypted (another connections key, or the record was altered)`,
      );
    }
    return value;
  }

  async #write(user: string, connector: string, kind: Kind, value: unknown, ttlMs?: number): Promise<void> {
    const sealed = this.#box.seal(JSON.stringify(value), [kind, user, connector]);
    const key = this.#key(user, connector, kind);
    if (ttlMs === undefined) await this.#redis.set(key, sealed);
    else await this.#redis.set(key, sealed, 'PX', ttlMs);
  }

  #key(user: string, connector: string, kind: Kind): string {
    checkIds(user, connector);
    return `${this.#prefix}u:${this.#box.name('user', user)}:${connector}:${kind}`;
  }

  #indexKey(user: string): string {
    checkIds(user, undefined);
    return `${this.#prefix}u:${this.#box.name('user', user)}:index`;
  }

  #flowId(state: string): string {
    return this.#box.name('flow', state);
  }

  #flowKey(id: string): string {
    return `${this.#prefix}flow:${id}`;
  }
}

function checkIds(user: string, connector: string | undefined): void {
  if (typeof user !== 'string' || user.length === 0 || user.length > 200)
    throw new HandoffError(ErrorCodes.invalidInput, 'a user id is 1–200 characters');
  if (connector !== undefined && !connectorNamePattern.test(connector))
    throw new HandoffError(ErrorCodes.invalidInput, 'not a connector name');
}

function parseJson<T>(text: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
