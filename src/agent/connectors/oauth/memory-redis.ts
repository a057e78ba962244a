import type { ConnectionRedis } from './token-store.ts';

/**
 * An in-memory {@link ConnectionRedis} for fast unit tests of code above the
 * {@link TokenStore}: strings with optional expiry, and sets. Not for production.
 */
export class MemoryConnectionRedis implements ConnectionRedis {
  readonly #strings = new Map<string, { value: string; expiresAtMs?: number }>();
  readonly #sets = new Map<string, Set<string>>();

  async get(key: string): Promise<string | null> {
    return this.#live(key)?.value ?? null;
  }

  async set(key: string, value: string, unit?: 'PX', ms?: number): Promise<'OK'> {
    this.#sets.delete(key);
    this.#strings.set(key, unit === 'PX' && ms !== undefined ? { value, expiresAtMs: Date.now() + ms } : { value });
    return 'OK';
  }

  async getdel(key: string): Promise<string | null> {
    const value = this.#live(key)?.value ?? null;
    this.#strings.delete(key);
    return value;
  }

  async del(...keys: string[]): Promise<number> {
    let n = 0;
    for (const key of keys) {
      if (this.#live(key)) n++;
      else if (this.#sets.has(key)) n++;
      this.#strings.delete(key);
      this.#sets.delete(key);
    }
    return n;
  }

  async sadd(key: string, member: string): Promise<number> {
    const set = this.#sets.get(key) ?? new Set<string>();
    this.#sets.set(key, set);
    if (set.has(member)) return 0;
    set.add(member);
    return 1;
  }

  async srem(key: string, member: string): Promise<number> {
    const set = this.#sets.get(key);
    const removed = set?.delete(member) ? 1 : 0;
    if (set?.size === 0) this.#sets.delete(key);
    return removed;
  }

  async smembers(key: string): Promise<string[]> {
    return [...(this.#sets.get(key) ?? [])];
  }

  /** Every live key with its value(s), for tests that inspect what is stored. */
  dump(): Map<string, string | string[]> {
    const out = new Map<string, string | string[]>();
    for (const key of this.#strings.keys()) {
      const entry = this.#live(key);
      if (entry) out.set(key, entry.value);
    }
    for (const [key, set] of this.#sets) out.set(key, [...set]);
    return out;
  }

  #live(key: string): { value: string; expiresAtMs?: number } | undefined {
    const entry = this.#strings.get(key);
    if (entry?.expiresAtMs !== undefined && entry.expiresAtMs <= Date.now()) {
      this.#strings.delete(key);
      return undefined;
    }
    return entry;
  }
}
