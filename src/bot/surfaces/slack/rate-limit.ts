/** Slack Web API error helpers, the per-message edit limiter and the gate it shares between bots. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** The `error` string of a Slack platform error (`channel_not_found`…), if that is what `err` is. */
export function slackErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; data?: { error?: unknown } } | undefined;
  if (e?.code === 'slack_webapi_platform_error' && typeof e.data?.error === 'string') return e.data.error;
  return undefined;
}

/** A 429 that the WebClient handed back (`rejectRateLimitedCalls: true`). */
export function isRateLimited(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'slack_webapi_rate_limited_error';
}

export function retryAfterMs(err: unknown): number {
  const seconds = Number((err as { retryAfter?: unknown }).retryAfter);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000;
}

/**
 * Send slots shared by every bot, so Slack's limits hold for all of them together: at
 * most one send per key (a message, a stream) per interval, and a `Retry-After` one bot
 * got delays that key's (or that method's) next call on every bot. MUST fail open: the
 * caller keeps its own spacing when the gate cannot be reached.
 */
export interface RateGate {
  /** Takes `key`'s slot for one send (held until `release`, at most `leaseMs`): 0 when taken, else ms to wait. */
  acquire(key: string, token: string, leaseMs: number): Promise<number>;
  /**
   * Ends a send: `key` stays blocked for `blockMs` from now (the edit interval, or a 429's
   * Retry-After). With `force` (a 429), the block applies even if another bot holds the slot.
   */
  release(key: string, token: string, blockMs: number, force?: boolean): Promise<void>;
  /** Blocks `key` on every bot for at least `ms` (a method after a 429). */
  block(key: string, ms: number): Promise<void>;
  /** How much longer `key` is blocked (0 when free). */
  blockedFor(key: string): Promise<number>;
}

/** KEYS[1] the slot; ARGV token, lease. Free: take it (0). Taken or blocked: how long is left. */
const acquireScript = `
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return left end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0`;

/**
 * KEYS[1] the slot; ARGV token, block ms, force. The holder (or nobody, after the lease ran
 * out) blocks the slot for the interval; a forced block (429) never shortens another's.
 */
const releaseScript = `
local cur = redis.call('GET', KEYS[1])
local ms = tonumber(ARGV[2])
if cur and cur ~= ARGV[1] then
  if ARGV[3] ~= '1' or redis.call('PTTL', KEYS[1]) >= ms then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
return 1`;

/** KEYS[1]; ARGV ms: blocked for at least that long from now. */
const blockScript = `
if redis.call('PTTL', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], '429', 'PX', ARGV[1])
return 1`;

/**
 * The gate in Redis: one key per slot (`{prefix}{key}`, e.g. `hf:slack:rl:edit:C1:1700.1`
 * or `hf:slack:rl:method:chat.postMessage`), whose expiry is the time left, so every key
 * disappears on its own once its interval or Retry-After has passed. BullMQ's limiter is
 * not used: it limits a whole queue's job rate, while Slack's limits are per message and
 * per method, and edits are not jobs.
 */
export class RedisRateGate implements RateGate {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'hf:slack:rl:',
  ) {}

  async acquire(key: string, token: string, leaseMs: number): Promise<number> {
    return Number(await this.redis.eval(acquireScript, 1, this.prefix + key, token, String(Math.ceil(leaseMs))));
  }

  async release(key: string, token: string, blockMs: number, force = false): Promise<void> {
    await this.redis.eval(
      releaseScript,
      1,
      this.prefix + key,
      token,
      String(Math.max(1, Math.ceil(blockMs))),
      force ? '1' : '0',
    );
  }

  async block(key: string, ms: number): Promise<void> {
    await this.redis.eval(blockScript, 1, this.prefix + key, String(Math.max(1, Math.ceil(ms))));
  }

  async blockedFor(key: string): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.prefix + key));
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Pending {
  send: () => Promise<void>;
  waiters: Waiter[];
  attempts: number;
}

interface Slot {
  lastSentAt: number;
  notBefore: number;
  pending?: Pending;
  /** Taking the shared slot or sending. */
  running: boolean;
  timer?: NodeJS.Timeout;
}

export interface EditLimiterOptions {
  minIntervalMs: number;
  maxRetryAfterMs: number;
  maxAttempts: number;
  /** Shares the interval and Retry-After with other bots; without it they hold in this process only. */
  gate?: RateGate;
  /** The longest one send holds the shared slot, should its bot stop mid-send. Default 15 s. */
  leaseMs?: number;
  /** Told when the gate cannot be reached (the send then goes by this process's spacing alone). */
  onGateError?: (err: unknown) => void;
}

/** The gate's key for the edits of one message or stream. */
const editKey = (key: string) => `edit:${key}`;

/**
 * At most one edit per message per interval. Edits that arrive meanwhile replace each
 * other: only the newest is sent, and everyone waiting on a replaced edit is settled
 * with the newest one's outcome. A 429 postpones the message's next edit by its
 * `Retry-After` (bounded; after `maxAttempts` the edit fails).
 *
 * With a `gate`, the interval runs from the end of the last send of any bot, and a 429
 * any bot got postpones every bot's next edit of that message. Coalescing stays in
 * process: each bot sends only the newest view it has.
 */
export class EditLimiter {
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  constructor(private readonly options: EditLimiterOptions) {}

  submit(key: string, send: () => Promise<void>): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the Slack surface is closed'));
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { lastSentAt: 0, notBefore: 0, running: false };
      this.slots.set(key, slot);
    }
    const promise = new Promise<void>((resolve, reject) => {
      if (slot.pending) {
        slot.pending.send = send;
        slot.pending.attempts = 0;
        slot.pending.waiters.push({ resolve, reject });
      } else {
        slot.pending = { send, waiters: [{ resolve, reject }], attempts: 0 };
      }
    });
    this.pump(key, slot);
    return promise;
  }

  /** How many messages have edits pending or in flight. */
  get busy(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.pending || s.running) n++;
    return n;
  }

  close(): void {
    this.closed = true;
    for (const slot of this.slots.values()) {
      if (slot.timer) clearTimeout(slot.timer);
      for (const w of slot.pending?.waiters ?? []) w.reject(new Error('the Slack surface is closed'));
    }
    this.slots.clear();
  }

  private pump(key: string, slot: Slot): void {
    if (this.closed || slot.running || slot.timer || !slot.pending) return;
    const wait = Math.max(slot.lastSentAt + this.options.minIntervalMs, slot.notBefore) - Date.now();
    if (wait > 0) {
      this.pumpIn(key, slot, wait);
      return;
    }
    const gate = this.options.gate;
    if (!gate) {
      this.send(key, slot);
      return;
    }
    slot.running = true;
    const token = randomBytes(8).toString('hex');
    gate
      .acquire(editKey(key), token, this.options.leaseMs ?? 15_000)
      .catch((err: unknown) => {
        this.options.onGateError?.(err);
        return 0;
      })
      .then((left) => {
        slot.running = false;
        if (this.closed) return;
        // Held or blocked by another bot: look again within an interval (a held slot frees early).
        if (left > 0) this.pumpIn(key, slot, Math.min(left, this.options.minIntervalMs));
        else this.send(key, slot, token);
      });
  }

  private pumpIn(key: string, slot: Slot, ms: number): void {
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      this.pump(key, slot);
    }, ms);
  }

  /** Sends the newest pending edit; with a token, the shared slot is released afterwards. */
  private send(key: string, slot: Slot, token?: string): void {
    const job = slot.pending;
    if (!job) return;
    slot.pending = undefined;
    slot.running = true;
    slot.lastSentAt = Date.now();
    job.attempts++;
    let blockMs = this.options.minIntervalMs;
    let limited = false;
    job
      .send()
      .then(
        () => {
          for (const w of job.waiters) w.resolve();
        },
        (err: unknown) => {
          const wait = retryAfterMs(err);
          if (isRateLimited(err)) {
            blockMs = Math.max(blockMs, wait);
            limited = true;
          }
          if (isRateLimited(err) && job.attempts < this.options.maxAttempts && wait <= this.options.maxRetryAfterMs) {
            slot.notBefore = Date.now() + wait;
            if (slot.pending) slot.pending.waiters.unshift(...job.waiters);
            else slot.pending = job;
            return;
          }
          for (const w of job.waiters) w.reject(err);
        },
      )
      // The shared slot is given back before the next send here, so that one finds it blocked for the interval.
      .then(() =>
        token
          ? this.options.gate?.release(editKey(key), token, blockMs, limited).catch((err: unknown) => {
              this.options.onGateError?.(err);
            })
          : undefined,
      )
      .finally(() => {
        slot.running = false;
        if (!slot.pending && !slot.timer) {
          // Forget idle messages once their interval has passed, so the map stays small.
          const forget = setTimeout(
            () => {
              // Not while a later send's interval is still running: its own timer forgets the slot.
              const quiet = Date.now() >= Math.max(slot.lastSentAt + this.options.minIntervalMs, slot.notBefore);
              if (quiet && !slot.pending && !slot.running && this.slots.get(key) === slot) this.slots.delete(key);
            },
            Math.max(this.options.minIntervalMs, slot.notBefore - Date.now()),
          );
          forget.unref();
        }
        this.pump(key, slot);
      });
  }
}
