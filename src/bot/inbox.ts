import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type Logger, throttledLog } from '../observability/index.ts';
import { inboxGroup } from '../queue/index.ts';

export interface InboxOptions {
  /** Record connection: the ack path's one round trip, acknowledgements and reclaims. */
  redis: Redis;
  /** Redis stream holding what was accepted and not yet handled, e.g. `hf:inbox:slack`. */
  stream: string;
  /** Key prefix of the de-duplication markers, e.g. `hf:slack:seen:`. */
  seenPrefix: string;
  /** How long a delivery id is remembered (Slack retries within minutes). */
  seenTtlSeconds: number;
  /**
   * Deliveries handled at once by this bot (`HANDOFF_INBOUND_CONCURRENCY`); 0: this bot only
   * accepts, and other bots do the work.
   */
  concurrency: number;
  /**
   * After taking a delivery with slots to spare, how long to wait for more to take with it
   * (`HANDOFF_INBOUND_BATCH_MS`): deliveries started together can share writes of their Redis
   * commands (auto-pipelined), which costs less CPU than one write each. Each starts at most
   * this much later; the acknowledgement does not wait. Default 0.
   */
  batchMs?: number;
  /**
   * Most deliveries waiting; past it `accept` answers `full` (the platform is told to retry
   * later) rather than letting the backlog grow without bound. Default 20 000.
   */
  maxBacklog?: number;
  /**
   * A delivery a bot took and did not finish this long ago (that bot died) is taken over by
   * another. Default 60 s.
   */
  reclaimAfterMs?: number;
  /** Names this bot's consumer in the stream's group; default random. */
  consumer?: string;
  logger: Logger;
  /** Works on one accepted payload. Errors are logged; the delivery is not retried. */
  handle(payload: string): Promise<void>;
}

/**
 * A bot's way from "acknowledged" to "handled" for chat deliveries that need no answer
 * but 200 (Slack events, Teams messages): the request path only verifies, de-duplicates
 * and queues (`accept`, one Redis round trip), and a worker with bounded concurrency does
 * the rest, so a burst of mentions never makes the acknowledgements wait behind the work.
 *
 * Backed by a Redis stream and a consumer group shared by every bot: whichever bot has a
 * free slot takes the next delivery, and one that a bot took and never finished (it was
 * killed) is taken over by another after `reclaimAfterMs`. A delivery is acknowledged and
 * deleted once handled, so the stream holds only the backlog.
 */
export class Inbox {
  readonly #options: Required<InboxOptions>;
  /** A connection of its own for the blocking read, made at start. */
  #reader: Redis | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #inFlight = 0;
  #slotFreed: (() => void) | undefined;
  /** Ends the wait for more deliveries to start with those taken (at stop). */
  #batchWait: (() => void) | undefined;
  #idle: (() => void) | undefined;
  #reclaimTimer: NodeJS.Timeout | undefined;
  readonly #warn = throttledLog((skipped, err) =>
    this.#options.logger.warn({ err: (err as Error)?.message, skipped }, 'inbox: reading the stream failed; retrying'),
  );

  constructor(options: InboxOptions) {
    this.#options = {
      batchMs: 0,
      maxBacklog: 20_000,
      reclaimAfterMs: 60_000,
      consumer: `bot-${randomBytes(6).toString('hex')}`,
      ...options,
    };
    const redis = options.redis as Redis & { handoffInboxAccept?: unknown };
    if (!redis.handoffInboxAccept) {
      redis.defineCommand('handoffInboxAccept', { numberOfKeys: 2, lua: acceptLua });
    }
  }

  /**
   * The request path: `queued` the first time `id` arrives, `duplicate` when it was seen
   * within the TTL (a platform retry), `full` when the backlog is at its bound (nothing is
   * remembered then, so the retry is taken). One Redis round trip.
   */
  async accept(id: string, payload: string): Promise<'queued' | 'duplicate' | 'full'> {
    const o = this.#options;
    const run = (this.#options.redis as unknown as { handoffInboxAccept: AcceptCommand }).handoffInboxAccept;
    const r = await run.call(
      this.#options.redis,
      `${o.seenPrefix}${id}`,
      o.stream,
      String(o.seenTtlSeconds),
      payload,
      String(o.maxBacklog),
    );
    return r === 1 ? 'queued' : r === 0 ? 'duplicate' : 'full';
  }

  /**
   * `accept`, or a rejection when Redis has not answered within `ms`: the request path then
   * handles the delivery itself. A late answer may still queue it; the listeners check the
   * same seen marker, on the same connection, so it is worked on once either way.
   */
  async acceptWithin(id: string, payload: string, ms: number): Promise<'queued' | 'duplicate' | 'full'> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.accept(id, payload),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts working on deliveries (this bot's share of them). */
  async start(): Promise<void> {
    if (this.#running || this.#options.concurrency === 0) return;
    try {
      await this.#options.redis.xgroup('CREATE', this.#options.stream, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    if (!this.#reader) {
      this.#reader = this.#options.redis.duplicate({ enableAutoPipelining: false });
      this.#reader.on('error', () => undefined);
    }
    this.#running = true;
    this.#loop = this.#read(this.#reader);
    this.#reclaimTimer = setInterval(() => void this.#reclaim(), Math.max(1000, this.#options.reclaimAfterMs / 2));
    this.#reclaimTimer.unref();
  }

  /**
   * Stops taking deliveries and waits up to `timeoutMs` for those in hand. One still running
   * after that stays pending in the stream and is taken over by another bot.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#reclaimTimer);
    this.#slotFreed?.();
    this.#batchWait?.();
    // The blocking read returns within its block time; disconnecting ends it at once.
    this.#reader?.disconnect();
    await this.#loop?.catch(() => undefined);
    if (this.#inFlight > 0) {
      await Promise.race([
        new Promise<void>((r) => {
          this.#idle = r;
        }),
        new Promise((r) => setTimeout(r, timeoutMs).unref()),
      ]);
    }
  }

  async #read(reader: Redis): Promise<void> {
    const o = this.#options;
    while (this.#running) {
      if (this.#inFlight >= o.concurrency) {
        await new Promise<void>((r) => {
          this.#slotFreed = r;
        });
        this.#slotFreed = undefined;
        continue;
      }
      let taken: Entry[];
      try {
        taken = await this.#take(reader, o.concurrency - this.#inFlight, 1000);
      } catch (err) {
        if (!this.#running) return;
        this.#warn(err);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const free = o.concurrency - this.#inFlight - taken.length;
      if (taken.length > 0 && free > 0 && o.batchMs > 0) taken.push(...(await this.#more(reader, free)));
      // All in one go: their first Redis commands can share a write (auto-pipelining), and so,
      // as long as they keep in step, can the next ones.
      for (const [id, fields] of taken) this.#work(id, fields);
    }
  }

  /** Waits `batchMs`, then takes what arrived meanwhile, up to `free`, without blocking. */
  async #more(reader: Redis, free: number): Promise<Entry[]> {
    const o = this.#options;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, o.batchMs);
      this.#batchWait = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#batchWait = undefined;
    if (!this.#running) return [];
    try {
      return await this.#take(reader, free);
    } catch (err) {
      // What was taken before still goes ahead; the next read retries.
      this.#warn(err);
      return [];
    }
  }

  /** Takes up to `count` new deliveries for this bot's consumer, waiting up to `blockMs` for one (none: no wait). */
  async #take(reader: Redis, count: number, blockMs?: number): Promise<Entry[]> {
    const o = this.#options;
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    const args = ['GROUP', group, o.consumer, 'COUNT', count, ...block, 'STREAMS', o.stream, '>'];
    const got = (await reader.call('XREADGROUP', args)) as StreamReply | null;
    return (got ?? []).flatMap(([, entries]) => entries);
  }

  #work(id: string, fields: string[]): void {
    const payload = fields[fields.indexOf('p') + 1];
    this.#inFlight += 1;
    const o = this.#options;
    void (async () => {
      try {
        if (payload !== undefined) await o.handle(payload);
      } catch (err) {
        o.logger.error({ err: (err as Error)?.message }, 'inbox: a delivery failed');
      } finally {
        // Done either way: a delivery that fails is not tried again (its handler reported it).
        await Promise.all([o.redis.xack(o.stream, group, id), o.redis.xdel(o.stream, id)]).catch((err: unknown) =>
          o.logger.warn({ err: (err as Error)?.message }, 'inbox: could not acknowledge a delivery'),
        );
        this.#inFlight -= 1;
        this.#slotFreed?.();
        if (this.#inFlight === 0) this.#idle?.();
      }
    })();
  }

  /** Takes over deliveries another bot took and never finished. */
  async #reclaim(): Promise<void> {
    const o = this.#options;
    if (!this.#running) return;
    const free = o.concurrency - this.#inFlight;
    if (free <= 0) return;
    try {
      const [, entries] = (await o.redis.xautoclaim(
        o.stream,
        group,
        o.consumer,
        o.reclaimAfterMs,
        '0-0',
        'COUNT',
        free,
      )) as [string, Array<[string, string[]] | null>];
      for (const entry of entries) {
        if (!entry) continue;
        o.logger.warn({ id: entry[0] }, 'inbox: taking over a delivery another bot did not finish');
        this.#work(entry[0], entry[1]);
      }
    } catch (err) {
      this.#warn(err);
    }
  }

  /** Deliveries accepted and not yet handled (for /metrics and tests). */
  async backlog(): Promise<number> {
    return this.#options.redis.xlen(this.#options.stream);
  }
}

const group = inboxGroup;

/** A stream entry: its id and its fields. */
type Entry = [string, string[]];
type StreamReply = Array<[string, Entry[]]>;
type AcceptCommand = (seenKey: string, stream: string, ttl: string, payload: string, max: string) => Promise<number>;

/** KEYS: seen marker, stream. ARGV: TTL seconds, payload, most waiting. 1 queued, 0 seen, -1 full. */
const acceptLua = `
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if not redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'NX') then return 0 end
redis.call('XADD', KEYS[2], '*', 'p', ARGV[2])
return 1
`;
