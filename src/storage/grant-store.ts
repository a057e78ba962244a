import type { Redis } from 'ioredis';
import {
  type ChannelRef,
  ErrorCodes,
  type Grant,
  type GrantPattern,
  GrantSchema,
  HandoffError,
  type Identity,
} from '../core/index.ts';

const k = {
  grant: (id: string) => `hf:grant:${id}`,
  byRun: (runId: string) => `hf:grants:run:${runId}`,
  // By surface and channel, as the policy file names channels (a Slack channel id is unique
  // across workspaces; a Teams channel is `team/channel`).
  byChannel: (c: Pick<ChannelRef, 'surface' | 'channel'>) => `hf:grants:channel:${c.surface}:${c.channel}`,
  all: 'hf:grants:all',
};

/**
 * KEYS[1] record, KEYS[2] its run or channel index, KEYS[3] the index of all; ARGV expected
 * JSON, next JSON, id. Revoking keeps the record (its remaining time) and drops it from the
 * indexes, so the next call no longer finds it.
 */
const revokeScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1`;

/** KEYS: indexes; ARGV[1] ttl ms. An index lives as long as its longest-lived grant record. */
const extendTtl = `
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < tonumber(ARGV[1]) then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 1`;

/**
 * Standing approvals in Redis: one record per grant (kept until its expiry plus the
 * retention, so audit records naming it still resolve), indexed by run (a run grant,
 * under the same retention as the run's records) or by channel, scored by expiry. Every
 * key has a time to live: an index lives as long as its longest-lived grant record.
 */
export class GrantStore {
  constructor(
    private readonly redis: Redis,
    private readonly retentionMs: number,
  ) {}

  private indexOf(grant: Grant): string {
    return grant.scope === 'run' ? k.byRun(grant.runId) : k.byChannel(grant);
  }

  async create(grant: Grant): Promise<Grant> {
    const g = GrantSchema.parse(grant);
    const expires = Date.parse(g.expiresAt);
    const ttl = Math.max(1, expires - Date.now()) + this.retentionMs;
    const index = this.indexOf(g);
    const done = await this.redis
      .multi()
      .set(k.grant(g.id), JSON.stringify(g), 'PX', ttl, 'NX')
      .zadd(index, expires, g.id)
      .zadd(k.all, expires, g.id)
      .eval(extendTtl, 2, index, k.all, ttl)
      .exec();
    if (done?.[0]?.[1] !== 'OK') throw new HandoffError(ErrorCodes.invalidInput, `grant ${g.id} already exists`);
    // A transaction runs every command even when one fails: a grant missing from an index
    // would never be found, so it is removed and the failure is reported.
    const failed = done.find(([err]) => err)?.[0];
    if (failed) {
      await this.redis.del(k.grant(g.id)).catch(() => undefined);
      throw failed;
    }
    return g;
  }

  async get(id: string): Promise<Grant | undefined> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
    const raw = await this.redis.get(k.grant(id));
    return raw ? GrantSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** Unexpired, unrevoked grants of a run, soonest expiry first. */
  async forRun(runId: string, now = Date.now()): Promise<Grant[]> {
    return this.load(k.byRun(runId), now);
  }

  /** Unexpired, unrevoked grants of a channel, soonest expiry first. */
  async forChannel(channel: Pick<ChannelRef, 'surface' | 'channel'>, now = Date.now()): Promise<Grant[]> {
    return this.load(k.byChannel(channel), now);
  }

  /** Every unexpired, unrevoked grant (newest last), at most `limit`. */
  async all(now = Date.now(), limit = 500): Promise<Grant[]> {
    return this.load(k.all, now, limit);
  }

  /**
   * Grants covering every one of `patterns` for a call of `action`: the run's own grants
   * first, then the channel's; undefined unless each pattern has a grant that `live`
   * accepts (the caller checks expiry and the policy as it is now).
   */
  async covering(
    input: {
      runId: string;
      channel: Pick<ChannelRef, 'surface' | 'channel'>;
      patterns: readonly GrantPattern[];
      action: Grant['action'];
    },
    live: (grant: Grant) => boolean,
  ): Promise<Grant[] | undefined> {
    if (input.patterns.length === 0) return undefined;
    const now = Date.now();
    const candidates = [
      ...(await this.forRun(input.runId, now)),
      ...(await this.forChannel(input.channel, now)),
    ].filter(
      (g) =>
        g.action === input.action &&
        (g.scope === 'channel' || g.runId === input.runId) &&
        // A channel grant found through the index must still name this very channel.
        (g.scope === 'run' || (g.surface === input.channel.surface && g.channel === input.channel.channel)) &&
        live(g),
    );
    const found: Grant[] = [];
    for (const pattern of input.patterns) {
      const g = candidates.find((c) => c.pattern === pattern);
      if (!g) return undefined;
      if (!found.includes(g)) found.push(g);
    }
    return found;
  }

  /** Marks a grant revoked; it stops applying at once. Returns it, or throws when it is unknown or already revoked. */
  async revoke(id: string, by: Identity, at = new Date()): Promise<Grant> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const raw = /^[A-Za-z0-9_-]{1,64}$/.test(id) ? await this.redis.get(k.grant(id)) : null;
      if (!raw) throw new HandoffError(ErrorCodes.notFound, `there is no grant ${id}`);
      const before = GrantSchema.parse(JSON.parse(raw));
      if (before.revokedAt)
        throw new HandoffError(
          ErrorCodes.staleApproval,
          `grant ${id} was already revoked by ${before.revokedBy?.name ?? 'someone'}`,
        );
      const after = GrantSchema.parse({ ...before, revokedBy: by, revokedAt: at.toISOString() });
      const ok = await this.redis.eval(
        revokeScript,
        3,
        k.grant(id),
        this.indexOf(before),
        k.all,
        raw,
        JSON.stringify(after),
        id,
      );
      if (ok === 1) return after;
    }
    throw new HandoffError(ErrorCodes.staleApproval, `grant ${id} changed while it was being revoked; try again`);
  }

  private async load(key: string, now: number, limit = 500): Promise<Grant[]> {
    // Expired entries leave the index as they are met.
    await this.redis.zremrangebyscore(key, '-inf', now);
    const ids = await this.redis.zrange(key, 0, limit - 1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map(k.grant));
    const out: Grant[] = [];
    for (const raw of raws) {
      if (!raw) continue;
      const g = GrantSchema.safeParse(JSON.parse(raw));
      if (g.success && !g.data.revokedAt && Date.parse(g.data.expiresAt) > now) out.push(g.data);
    }
    return out;
  }
}
