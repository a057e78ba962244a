/** Slack Web API error helpers and the per-message edit limiter. */

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
  running: boolean;
  timer?: NodeJS.Timeout;
}

export interface EditLimiterOptions {
  minIntervalMs: number;
  maxRetryAfterMs: number;
  maxAttempts: number;
}

/**
 * At most one edit per message per interval. Edits that arrive meanwhile replace each
 * other: only the newest is sent, and everyone waiting on a replaced edit is settled
 * with the newest one's outcome. A 429 postpones the message's next edit by its
 * `Retry-After` (bounded; after `maxAttempts` the edit fails).
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
    const now = Date.now();
    const wait = Math.max(slot.lastSentAt + this.options.minIntervalMs, slot.notBefore) - now;
    if (wait > 0) {
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        this.pump(key, slot);
      }, wait);
      return;
    }
    const job = slot.pending;
    slot.pending = undefined;
    slot.running = true;
    slot.lastSentAt = now;
    job.attempts++;
    job
      .send()
      .then(
        () => {
          for (const w of job.waiters) w.resolve();
        },
        (err: unknown) => {
          const wait = retryAfterMs(err);
          if (isRateLimited(err) && job.attempts < this.options.maxAttempts && wait <= this.options.maxRetryAfterMs) {
            slot.notBefore = Date.now() + wait;
            if (slot.pending) slot.pending.waiters.unshift(...job.waiters);
            else slot.pending = job;
            return;
          }
          for (const w of job.waiters) w.reject(err);
        },
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
