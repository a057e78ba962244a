import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';

/** A console user made by `handoff console add-user`; only the hash of their token is kept. */
export const ConsoleUserSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,39}$/),
  name: z.string().min(1).max(60),
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
});
export type ConsoleUser = z.infer<typeof ConsoleUserSchema>;

/** What `--id` must look like; the identity is `web:user:<id>`. */
export const consoleUserIdPattern = /^[a-z0-9][a-z0-9._-]{0,39}$/;

// `console-auth:` rather than `console:`: console channel names share the `console:` prefix.
const key = {
  user: (id: string) => `hf:console-auth:user:${id}`,
  users: 'hf:console-auth:users',
  token: (sha: string) => `hf:console-auth:token:${sha}`,
};

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/**
 * The id for a display name: lower case, accents dropped, anything else but letters and
 * digits turned into `-`. Undefined when the name has letters outside a–z (Cyrillic, Greek,
 * CJK…): an id must not quietly drop them, so the admin then picks one with `--id`.
 */
export function consoleUserIdFor(name: string): string | undefined {
  const plain = name.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
  if (/\P{ASCII}/u.test(plain)) return undefined;
  const id = plain
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return consoleUserIdPattern.test(id) ? id : undefined;
}

/** A display name as given: spaces collapsed, 1–60 characters, no control characters. */
function cleanName(raw: string): string {
  const name = raw.replace(/\s+/g, ' ').trim();
  if (name.length < 1 || name.length > 60 || /\p{Cc}|\p{Cf}/u.test(name))
    throw new HandoffError(ErrorCodes.invalidInput, 'the name must be 1–60 characters, without control characters');
  return name;
}

/**
 * People who sign in to the console with a personal link (`HANDOFF_CONSOLE_SIGNIN=tokens`),
 * in Redis so every bot knows them. The token is shown once when the user is added; Redis
 * holds only its sha256 (it is 256 random bits, so a plain hash is enough).
 */
export class ConsoleUsers {
  constructor(private readonly redis: Redis) {}

  /** Adds a user and returns their token, which is never stored. Refuses an id already taken. */
  async add(rawName: string, givenId?: string): Promise<{ user: ConsoleUser; token: string }> {
    const name = cleanName(rawName);
    const id = givenId ?? consoleUserIdFor(name);
    if (!id)
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `cannot make an id from ${JSON.stringify(name)}: give one with --id (a–z, 0–9, . _ -)`,
      );
    if (!consoleUserIdPattern.test(id))
      throw new HandoffError(
        ErrorCodes.invalidInput,
        'an id is 1–40 of a–z, 0–9, . _ - (starting with a letter or digit)',
      );
    const token = `hfc_${randomBytes(32).toString('base64url')}`;
    const user: ConsoleUser = { id, name, tokenSha256: sha256Hex(token), createdAt: new Date().toISOString() };
    if ((await this.redis.set(key.user(id), JSON.stringify(user), 'NX')) !== 'OK') {
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `a console user with the id ${id} already exists: remove it first (handoff console remove-user ${id}) or pick another --id`,
      );
    }
    await this.redis.multi().set(key.token(user.tokenSha256), id).sadd(key.users, id).exec();
    return { user, token };
  }

  async get(id: string): Promise<ConsoleUser | undefined> {
    if (!consoleUserIdPattern.test(id)) return undefined;
    const raw = await this.redis.get(key.user(id));
    if (!raw) return undefined;
    const parsed = ConsoleUserSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }

  async list(): Promise<ConsoleUser[]> {
    const ids = (await this.redis.smembers(key.users)).sort();
    const users = await Promise.all(ids.map((id) => this.get(id)));
    return users.filter((u): u is ConsoleUser => u !== undefined);
  }

  /** Removes a user by id or by the name they were added with; their sessions stop working at once. */
  async remove(idOrName: string): Promise<ConsoleUser | undefined> {
    const user = (await this.get(idOrName)) ?? (await this.get(consoleUserIdFor(idOrName) ?? ''));
    if (!user) return undefined;
    await this.redis.multi().del(key.user(user.id)).del(key.token(user.tokenSha256)).srem(key.users, user.id).exec();
    return user;
  }

  /** Whether a token (by its hash) still belongs to a user. */
  async holdsTokenHash(tokenSha256: string): Promise<boolean> {
    return (await this.redis.exists(key.token(tokenSha256))) === 1;
  }

  /** The user a token belongs to, if it is still theirs. */
  async byToken(token: string | undefined): Promise<ConsoleUser | undefined> {
    if (!token || token.length > 200) return undefined;
    const sha = sha256Hex(token);
    const id = await this.redis.get(key.token(sha));
    const user = id ? await this.get(id) : undefined;
    return user?.tokenSha256 === sha ? user : undefined;
  }
}
