import type { Redis } from 'ioredis';
import { type ChannelRef, ErrorCodes, HandoffError, type Schedule, ScheduleSchema } from '../core/index.ts';

const k = {
  schedule: (id: string) => `hf:schedule:${id}`,
  byChannel: (surface: string, channel: string) => `hf:schedules:channel:${surface}:${channel}`,
  all: 'hf:schedules:all',
  post: (taskId: string) => `hf:brief:post:${taskId}`,
};

/** KEYS[1] record; ARGV expected JSON, next JSON, ttl ms ('' keeps it without one). */
const compareAndSet = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`;

/** What a brief's post went through: claimed before it is sent, its ref once it was. */
export type PostClaim = { state: 'new' } | { state: 'claimed'; since: number } | { state: 'posted'; ref: string };

/**
 * Schedules in Redis: the source of truth the clock (BullMQ job schedulers) is reconciled
 * from. A live schedule's record never expires; a deleted one is kept for the retention,
 * so the audit trail's ids still resolve.
 */
export class ScheduleStore {
  constructor(
    private readonly redis: Redis,
    private readonly retentionMs: number,
  ) {}

  async create(schedule: Schedule): Promise<void> {
    const s = ScheduleSchema.parse(schedule);
    const at = Date.parse(s.createdAt);
    const ok = await this.redis
      .multi()
      .set(k.schedule(s.id), JSON.stringify(s), 'NX')
      .zadd(k.byChannel(s.target.surface, s.target.channel), at, s.id)
      .zadd(k.all, at, s.id)
      .exec();
    if (ok?.[0]?.[1] !== 'OK') throw new HandoffError(ErrorCodes.invalidInput, `schedule ${s.id} already exists`);
  }

  async get(id: string): Promise<Schedule | undefined> {
    const raw = await this.redis.get(k.schedule(id));
    return raw ? ScheduleSchema.parse(JSON.parse(raw)) : undefined;
  }

  async require(id: string): Promise<Schedule> {
    const s = await this.get(id);
    if (!s || s.status === 'deleted') throw new HandoffError(ErrorCodes.notFound, `there is no schedule ${id}`);
    return s;
  }

  /**
   * Applies `change` atomically (compare-and-set, retried when another bot got there
   * first). `change` may throw to refuse. A schedule that becomes deleted leaves the
   * indexes and starts its retention countdown.
   */
  async update(id: string, change: (s: Schedule) => Schedule): Promise<{ before: Schedule; after: Schedule }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const raw = await this.redis.get(k.schedule(id));
      if (!raw) throw new HandoffError(ErrorCodes.notFound, `there is no schedule ${id}`);
      const before = ScheduleSchema.parse(JSON.parse(raw));
      const after = ScheduleSchema.parse({ ...change(before), updatedAt: new Date().toISOString() });
      const deleted = after.status === 'deleted';
      const swapped = await this.redis.eval(
        compareAndSet,
        1,
        k.schedule(id),
        raw,
        JSON.stringify(after),
        deleted ? String(this.retentionMs) : '',
      );
      if (swapped === 1) {
        if (deleted && before.status !== 'deleted')
          await this.redis
            .multi()
            .zrem(k.byChannel(after.target.surface, after.target.channel), id)
            .zrem(k.all, id)
            .exec();
        return { before, after };
      }
    }
    throw new HandoffError(ErrorCodes.queueUnavailable, `schedule ${id} is being changed by too many writers`, {
      retryable: true,
    });
  }

  /** A channel's schedules (not deleted), oldest first. */
  async inChannel(target: Pick<ChannelRef, 'surface' | 'channel'>): Promise<Schedule[]> {
    return this.load(await this.redis.zrange(k.byChannel(target.surface, target.channel), 0, -1));
  }

  async countInChannel(target: Pick<ChannelRef, 'surface' | 'channel'>): Promise<number> {
    return this.redis.zcard(k.byChannel(target.surface, target.channel));
  }

  /** The ids of every schedule that is not deleted (the reconciler walks them; `load` reads them in pages). */
  async allIds(): Promise<string[]> {
    return this.redis.zrange(k.all, 0, -1);
  }

  async load(ids: string[]): Promise<Schedule[]> {
    if (ids.length === 0) return [];
    const out: Schedule[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const raws = await this.redis.mget(ids.slice(i, i + 500).map(k.schedule));
      for (const raw of raws) {
        if (!raw) continue;
        const s = ScheduleSchema.parse(JSON.parse(raw));
        if (s.status !== 'deleted') out.push(s);
      }
    }
    return out;
  }

  /**
   * Claims the one post of a tick's brief before it is sent: the first caller gets 'new'
   * and must send it, then call `posted`; later callers see the claim or the ref and never
   * send it again.
   */
  async claimPost(taskId: string): Promise<PostClaim> {
    const key = k.post(taskId);
    const now = Date.now();
    const set = await this.redis.set(key, JSON.stringify({ since: now }), 'PX', this.retentionMs, 'NX');
    if (set === 'OK') return { state: 'new' };
    const raw = await this.redis.get(key);
    const seen = raw ? (JSON.parse(raw) as { since?: number; ref?: string }) : {};
    return seen.ref ? { state: 'posted', ref: seen.ref } : { state: 'claimed', since: seen.since ?? now };
  }

  async posted(taskId: string, ref: string): Promise<void> {
    await this.redis.set(k.post(taskId), JSON.stringify({ ref }), 'PX', this.retentionMs);
  }

  /** Gives a claim back when the post certainly did not go out (the platform refused it). */
  async releasePost(taskId: string): Promise<void> {
    await this.redis.del(k.post(taskId));
  }
}
