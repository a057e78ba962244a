import { DelayedError, Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobLogContext, type Logger, throttledLog, withLogContext } from '../observability/index.ts';
import {
  type NotifyOrder,
  NotifyOrderSchema,
  notifyJobId,
  notifyOrderKey,
  notifyOrderTtlMs,
  type OrderedNotifyJob,
  queueNames,
} from '../queue/index.ts';
import type { Gateway } from './gateway.ts';

export interface NotifyWorkerOptions {
  /** BullMQ key prefix; tests give each run its own. Default `hfq`. */
  prefix?: string;
  /** Jobs this bot renders at once (`HANDOFF_NOTIFY_CONCURRENCY`). Default 16. */
  concurrency?: number;
  /**
   * A sequence number whose job never showed up (its emit failed after the number was
   * issued) is stepped over once the event waiting behind it is this old. Default 30 s.
   */
  gapGraceMs?: number;
}

/**
 * Consumes runner events and renders them through the gateway. Many jobs at once, so one
 * slow delivery (a large upload) never holds up other threads; a task's own events are
 * rendered strictly in emit order, by every bot together.
 *
 * `Queues.emit` stamps each event with the task's next sequence number. A job runs when
 * the task's `done` counter has reached its predecessor; otherwise it is moved back to
 * the delayed set for a moment (BullMQ `moveToDelayed` + `DelayedError`), so a waiting
 * event holds no worker slot and uses up no attempt. A job that finishes, or fails for
 * good after its attempts, moves the counter on and wakes its successor, so a thread
 * never wedges behind a failed event.
 */
export function startNotifyWorker(
  gateway: Gateway,
  connection: Redis,
  logger: Logger,
  options: NotifyWorkerOptions = {},
): Worker<OrderedNotifyJob> {
  const prefix = options.prefix ?? 'hfq';
  // Looks jobs up through the worker below; only ever called while it processes a job.
  const order = new TaskOrder(
    (id) => Job.fromId<OrderedNotifyJob>(worker, id),
    connection,
    prefix,
    options.gapGraceMs ?? 30_000,
    logger,
  );
  const worker = new Worker<OrderedNotifyJob>(
    queueNames.notify,
    (job, token) => withLogContext(jobLogContext(job.data), () => deliver(job, token)),
    { connection, prefix, concurrency: options.concurrency ?? 16 },
  );
  async function deliver(job: Job<OrderedNotifyJob>, token: string | undefined): Promise<void> {
    const stamped = NotifyOrderSchema.safeParse(job.data.order);
    const taskId = job.data.taskId;
    // Jobs queued before ordering existed, or malformed stamps: rendered as they come.
    if (!stamped.success || typeof taskId !== 'string') return gateway.handleEvent(job.data);
    const turn = await order.turn(job, taskId, stamped.data);
    if (turn === 'wait') {
      await job.moveToDelayed(Date.now() + retryDelayMs(job), token);
      throw new DelayedError();
    }
    try {
      await gateway.handleEvent(job.data);
    } catch (err) {
      if (turn === 'mine' && isFinalAttempt(job, err)) await order.finish(taskId, stamped.data);
      throw err;
    }
    if (turn === 'mine') await order.finish(taskId, stamped.data);
  }
  worker.on('failed', (job, err) =>
    logger.warn(
      { err, event: job?.data.type, taskId: job?.data.taskId, attempt: job?.attemptsMade },
      'could not deliver an event to chat',
    ),
  );
  worker.on(
    'error',
    throttledLog((skipped, err) => logger.error({ err, skipped }, 'notify worker error')),
  );
  return worker;
}

/** Moves `done` from ARGV[2] to ARGV[3] in generation ARGV[1] (compare-and-set), refreshing the TTL. */
const advanceScript = `
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'done') or '0') ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'done', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return tonumber(redis.call('HGET', KEYS[1], 'n') or '0')`;

/** The per-task order the bots agree on, kept in Redis by `Queues.emit` and here. */
class TaskOrder {
  constructor(
    private readonly jobById: (id: string) => Promise<Job<OrderedNotifyJob> | undefined>,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly gapGraceMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Whether this job may render now (`mine`), must wait for an earlier event (`wait`), or
   * renders outside the order (`unordered`: its record expired, or it arrived after the
   * order had already stepped over it; rendering late beats losing it).
   */
  async turn(job: Job<OrderedNotifyJob>, taskId: string, order: NotifyOrder): Promise<'mine' | 'wait' | 'unordered'> {
    const key = notifyOrderKey(this.prefix, taskId);
    // Each pass steps over one finished or lost predecessor; a long run of them is taken in turns.
    for (let pass = 0; pass < 32; pass++) {
      const [gen, doneRaw] = await this.redis.hmget(key, 'gen', 'done');
      if (gen !== order.gen) return 'unordered';
      const done = Number(doneRaw ?? 0);
      if (done >= order.n) return 'unordered';
      if (done === order.n - 1) return 'mine';
      const next: NotifyOrder = { gen: order.gen, n: done + 1 };
      const earlier = await this.jobById(notifyJobId(taskId, next));
      const state = earlier ? await earlier.getState() : 'unknown';
      // Finished without moving the counter (its bot stopped in between): step over it now.
      const finished = state === 'completed' || state === 'failed';
      const lost = state === 'unknown' && Date.now() - job.timestamp >= this.gapGraceMs;
      if (!finished && !lost) return 'wait';
      if (lost)
        this.logger.warn({ taskId, missing: next.n }, 'an event for this task never arrived; going on without it');
      await this.advance(key, order.gen, done, next.n);
    }
    return 'wait';
  }

  /** Marks this event rendered (or given up on) and wakes the next one if it is waiting. */
  async finish(taskId: string, order: NotifyOrder): Promise<void> {
    try {
      const issued = await this.advance(notifyOrderKey(this.prefix, taskId), order.gen, order.n - 1, order.n);
      // Usually nothing was emitted after this event yet: then there is nothing to wake.
      if (issued <= order.n) return;
      const next = await this.jobById(notifyJobId(taskId, { gen: order.gen, n: order.n + 1 }));
      // Only a delayed job can be promoted; one already waiting or running is left alone.
      await next?.promote().catch(() => undefined);
    } catch (err) {
      // The event was rendered: failing the job now would render it twice. The next event
      // steps over this one after the grace period instead.
      this.logger.warn({ err, taskId, n: order.n }, 'could not record an event as rendered');
    }
  }

  /** Moves the task's counter from `from` to `to` (if it is still at `from`); returns how many events were issued. */
  private async advance(key: string, gen: string, from: number, to: number): Promise<number> {
    return Number(
      await this.redis.eval(advanceScript, 1, key, gen, String(from), String(to), String(notifyOrderTtlMs)),
    );
  }
}

/** Short at first, longer for an event that has waited long (its predecessor wakes it anyway). */
function retryDelayMs(job: Job): number {
  return Math.round(Math.min(1000, Math.max(50, (Date.now() - job.timestamp) / 10)));
}

function isFinalAttempt(job: Job, err: unknown): boolean {
  return err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
