import type { Redis } from 'ioredis';
import { type WorkstreamRecord, WorkstreamRecordSchema, zeroUsage } from '../core/index.ts';

const prefix = 'hf:';
/** One fan-out: a task's plan version (a follow-up's plan fans out afresh). */
export interface FanOutRef {
  taskId: string;
  version: number;
}

const k = {
  records: (f: FanOutRef) => `${prefix}workstreams:${f.taskId}:v${f.version}`,
  slots: (taskId: string) => `${prefix}workstreams:${taskId}:slots`,
  task: (taskId: string) => `${prefix}task:${taskId}`,
};

/** Used when the task's own record has no time to live (it always has one; a guard). */
const fallbackTtlMs = 75 * 86_400_000;

/**
 * Sets KEYS[1]'s field ARGV[1] to ARGV[2] and gives KEYS[1] the time to live of the task's
 * record (KEYS[2]), so a task's workstream records expire with the task's other records.
 */
const setFieldScript = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then ttl = tonumber(ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`;

/** Bumps the progress counter (KEYS[1] field seq), same time to live rule. */
const nextSeqScript = `
local n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then ttl = tonumber(ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return n`;

/**
 * Takes a parallel slot of a task (KEYS[1] a sorted set of holders by lease end): expired
 * leases go first; a holder renews; a newcomer gets one while fewer than ARGV[2] are held.
 */
const takeSlotScript = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then ttl = tonumber(ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`;

/**
 * The workstreams of a task in Redis: `hf:workstreams:{taskId}:v{version}` (a hash per plan
 * version: one JSON record per workstream under `ws:{id}`, `seq` for progress events,
 * `startedAt` and `mergedAt` of the fan-out) and
 * `hf:workstreams:{taskId}:slots` (who holds one of the task's parallel slots, until when).
 * Both expire with the task's own record.
 */
export class WorkstreamStore {
  constructor(private readonly redis: Redis) {}

  async get(f: FanOutRef, id: string): Promise<WorkstreamRecord | undefined> {
    const raw = await this.redis.hget(k.records(f), `ws:${id}`);
    return raw ? WorkstreamRecordSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** Every recorded workstream of the task, by id. */
  async all(f: FanOutRef): Promise<Map<string, WorkstreamRecord>> {
    const raw = await this.redis.hgetall(k.records(f));
    const out = new Map<string, WorkstreamRecord>();
    for (const [field, value] of Object.entries(raw)) {
      if (!field.startsWith('ws:')) continue;
      const parsed = WorkstreamRecordSchema.safeParse(JSON.parse(value));
      if (parsed.success) out.set(parsed.data.id, parsed.data);
    }
    return out;
  }

  async put(f: FanOutRef, record: WorkstreamRecord): Promise<void> {
    await this.redis.eval(
      setFieldScript,
      2,
      k.records(f),
      k.task(f.taskId),
      `ws:${record.id}`,
      JSON.stringify(WorkstreamRecordSchema.parse(record)),
      String(fallbackTtlMs),
    );
  }

  /** Changes one record (a fresh `queued` one when there is none). */
  async update(f: FanOutRef, id: string, change: (r: WorkstreamRecord) => WorkstreamRecord): Promise<WorkstreamRecord> {
    const before = (await this.get(f, id)) ?? {
      id,
      state: 'queued' as const,
      attempts: 0,
      outputs: [],
      usage: zeroUsage,
    };
    const after = change(before);
    await this.put(f, after);
    return after;
  }

  /** When the fan-out started (ms), recorded once. */
  async markStarted(f: FanOutRef, atMs: number): Promise<number> {
    await this.redis.hsetnx(k.records(f), 'startedAt', String(atMs));
    await this.redis.eval(
      setFieldScript,
      2,
      k.records(f),
      k.task(f.taskId),
      'touched',
      String(Date.now()),
      String(fallbackTtlMs),
    );
    return Number((await this.redis.hget(k.records(f), 'startedAt')) ?? atMs);
  }

  /** True the first time it is called for a task: the fan-in is audited once, not at every resume of the merge. */
  async markMerged(f: FanOutRef): Promise<boolean> {
    return (await this.redis.hsetnx(k.records(f), 'mergedAt', String(Date.now()))) === 1;
  }

  async startedAt(f: FanOutRef): Promise<number | undefined> {
    const raw = await this.redis.hget(k.records(f), 'startedAt');
    return raw ? Number(raw) : undefined;
  }

  /** The next number for a progress event of the fan-out (1, 2, 3…; runs' own numbers start at 100,000). */
  async nextSeq(f: FanOutRef): Promise<number> {
    return Number(await this.redis.eval(nextSeqScript, 2, k.records(f), k.task(f.taskId), String(fallbackTtlMs)));
  }

  /**
   * Takes (or renews) one of the task's `limit` parallel slots for `holder` until `leaseMs`
   * from now. False when all are held by others.
   */
  async takeSlot(taskId: string, holder: string, limit: number, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    const ok = await this.redis.eval(
      takeSlotScript,
      2,
      k.slots(taskId),
      k.task(taskId),
      holder,
      String(limit),
      String(now + leaseMs),
      String(now),
      String(fallbackTtlMs),
    );
    return Number(ok) === 1;
  }

  async releaseSlot(taskId: string, holder: string): Promise<void> {
    await this.redis.zrem(k.slots(taskId), holder);
  }

  /** How many slots are held right now. */
  async slotsHeld(taskId: string): Promise<number> {
    await this.redis.zremrangebyscore(k.slots(taskId), '-inf', Date.now());
    return this.redis.zcard(k.slots(taskId));
  }
}
