import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { IdentitySchema } from '../../../core/index.ts';
import { sha256Hex } from './console-users.ts';

/** A signed-in console person. */
export const ConsoleSessionSchema = z.object({
  identity: IdentitySchema,
  /** How they signed in: a personal link (`web:user:…`) or the OpenID provider (`web:oidc:…`). */
  via: z.enum(['token', 'oidc']),
  /** For `token`: the hash of the token signed in with; the session ends when the user is removed. */
  tokenSha256: z.string().optional(),
  expiresAt: z.string(),
});
export type ConsoleSession = z.infer<typeof ConsoleSessionSchema>;

const sessionIdPattern = /^[A-Za-z0-9_-]{43}$/;
const key = (id: string) => `hf:console-auth:session:${sha256Hex(id)}`;

/**
 * Server-side console sessions in Redis with a TTL, so every bot shares them and signing out
 * (or removing a user) ends them at once. The cookie carries a random id; Redis keys hold
 * only its hash, so reading Redis does not give anyone a usable cookie.
 */
export class ConsoleSessions {
  constructor(
    private readonly redis: Redis,
    readonly ttlMs: number,
  ) {}

  async create(session: Omit<ConsoleSession, 'expiresAt'>): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    const full: ConsoleSession = { ...session, expiresAt: new Date(Date.now() + this.ttlMs).toISOString() };
    await this.redis.set(key(id), JSON.stringify(full), 'PX', this.ttlMs);
    return id;
  }

  async get(id: string | undefined): Promise<ConsoleSession | undefined> {
    if (!id || !sessionIdPattern.test(id)) return undefined;
    const raw = await this.redis.get(key(id));
    if (!raw) return undefined;
    const parsed = ConsoleSessionSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }

  async delete(id: string | undefined): Promise<void> {
    if (id && sessionIdPattern.test(id)) await this.redis.del(key(id));
  }
}
