import { type ConnectionOptions, Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCodes, HandoffError, type RunnerEvent, tickJobId } from '../core/index.ts';
import {
  type NotifyOrder,
  notifyJobId,
  notifyOrderKey,
  notifyOrderTtlMs,
  type OrderedNotifyJob,
  type PlanJob,
  planJobId,
  queueNames,
  type RunJob,
  runJobId,
  type TickJob,
} from './jobs.ts';

/**
 * Issues the task's next sequence number (KEYS[1] the order hash; ARGV ttl, a fresh
 * generation). A new or expired record starts a new generation at 1 with nothing done.
 */
const stampOrderScript = `
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local gen = redis.call('HGET', KEYS[1], 'gen')
if n == 1 or not gen then
  gen = ARGV[2]
  redis.call('HSET', KEYS[1], 'gen', gen, 'done', n - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {n, gen}`;

export interface QueueOptions {
  connection: Redis | ConnectionOptions;
  /** Key prefix; tests give each run its own. */
  prefix?: string;
  /** How long finished jobs are kept (the task records' retention). Default 30 days. */
  retentionMs?: number;
  /**
   * How long an enqueue waits for a connection that is reconnecting before it gives up.
   * Default 2.5 s: longer than ioredis's longest pause between reconnect attempts, so a
   * producer is never refused just because Redis came back a moment ago.
   */
  reconnectWaitMs?: number;
}

/**
 * Producers for the four queues. Failures to enqueue become a HandoffError the
 * surface can show ("the queue is unavailable"), never a silent drop.
 */
export class Queues {
  readonly plan: Queue<PlanJob>;
  readonly run: Queue<RunJob>;
  readonly notify: Queue<OrderedNotifyJob>;
  readonly schedule: Queue<TickJob>;
  private readonly prefix: string;
  /** For the sequence numbers `emit` stamps: the given connection, or one of our own for plain options. */
  private readonly orderClient: Redis;
  private readonly ownsOrderClient: boolean;
  private readonly reconnectWaitMs: number;
  private closed = false;

  constructor(options: QueueOptions) {
    this.prefix = options.prefix ?? 'hfq';
    this.reconnectWaitMs = options.reconnectWaitMs ?? 2500;
    this.ownsOrderClient = !(options.connection instanceof Redis);
    this.orderClient =
      options.connection instanceof Redis
        ? options.connection
        : new Redis({ ...(options.connection as RedisOptions), lazyConnect: true, maxRetriesPerRequest: 1 });
    const base = { connection: options.connection, prefix: this.prefix };
    // Finished jobs are kept as long as the task records, and never more than a few thousand.
    const age = Math.round((options.retentionMs ?? 30 * 86_400_000) / 1000);
    const keepDone = { age, count: 1000 };
    const keepFailed = { age, count: 5000 };
    this.plan = new Queue<PlanJob>(queueNames.plan, {
      ...base,
      defaultJobOptions: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: keepDone,
        removeOnFail: keepFailed,
      },
    });
    this.run = new Queue<RunJob>(queueNames.run, {
      ...base,
      defaultJobOptions: {
        attempts: 4,
        backoff: { type: 'exponential', delay: 3000 },
        removeOnComplete: keepDone,
        removeOnFail: keepFailed,
      },
    });
    this.notify = new Queue<OrderedNotifyJob>(queueNames.notify, {
      ...base,
      defaultJobOptions: {
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
        removeOnFail: keepFailed,
      },
    });
    this.schedule = new Queue<TickJob>(queueNames.schedule, {
      ...base,
      defaultJobOptions: {
        attempts: 5,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: keepDone,
        removeOnFail: keepFailed,
      },
    });
    // A queue without an 'error' listener prints every reconnect failure; the connection's
    // owner already reports Redis trouble (throttled).
    for (const queue of [this.plan, this.run, this.notify, this.schedule]) queue.on('error', () => undefined);
  }

  /**
   * Whether a live runner is working on a task's run right now: a worker holds its job's
   * lock (an active job whose runner died has lost it).
   */
  async runIsHeld(taskId: string, planVersion: number): Promise<boolean> {
    // BullMQ holds a job's lock only while a worker has it active.
    return (await this.orderClient.exists(`${this.run.toKey(runJobId(taskId, planVersion))}:lock`)) === 1;
  }

  async enqueuePlan(job: PlanJob): Promise<void> {
    await this.guard(() => this.plan.add('plan', job, { jobId: planJobId(job.taskId, job.version) }));
  }

  /** Expires a plan's approval request at `atMs` unless it was decided by then. */
  async scheduleExpiry(job: PlanJob, atMs: number): Promise<void> {
    await this.guard(() =>
      this.plan.add('expire', job, {
        jobId: `expire-${job.taskId}-v${job.version}`,
        delay: Math.max(0, atMs - Date.now()),
      }),
    );
  }

  async enqueueRun(job: RunJob): Promise<void> {
    await this.guard(() => this.run.add('run', job, { jobId: runJobId(job.taskId, job.planVersion) }));
  }

  /**
   * Queues an event for the bot, stamped with the task's next sequence number so every
   * bot renders a task's events in the order they were emitted (see notify-worker.ts).
   * A number issued for a job that then failed to be added leaves a gap, which the
   * worker steps over after a grace period.
   */
  async emit(event: RunnerEvent): Promise<void> {
    await this.guard(async () => {
      const order = await this.stampOrder(event.taskId);
      await this.notify.add(event.type, { ...event, order }, { jobId: notifyJobId(event.taskId, order) });
    });
  }

  /**
   * Makes the clock tick for a schedule: one BullMQ job scheduler per schedule id, so
   * two bots doing this at once leave one. Changing the pattern or zone replaces it.
   */
  async upsertScheduleClock(scheduleId: string, pattern: string, tz: string): Promise<void> {
    await this.guard(() =>
      this.schedule.upsertJobScheduler(
        scheduleId,
        { pattern, tz },
        { name: 'tick', data: { scheduleId }, opts: { attempts: 5, backoff: { type: 'exponential', delay: 2000 } } },
      ),
    );
  }

  /** Stops a schedule's clock; its next tick's job goes with it. */
  async removeScheduleClock(scheduleId: string): Promise<void> {
    await this.guard(() => this.schedule.removeJobScheduler(scheduleId));
  }

  /** The ids of every schedule that has a clock, for reconciling them with the records. */
  async scheduleClockIds(): Promise<Array<{ id: string; pattern?: string; tz?: string }>> {
    const out: Array<{ id: string; pattern?: string; tz?: string }> = [];
    for (let start = 0; ; start += 500) {
      const page = await this.guard(() => this.schedule.getJobSchedulers(start, start + 499, true));
      for (const s of page)
        out.push({ id: s.key, ...(s.pattern ? { pattern: s.pattern } : {}), ...(s.tz ? { tz: s.tz } : {}) });
      if (page.length < 500) return out;
    }
  }

  /** A tick Handoff starts itself (a catch-up, "Run now"): its id is its time, so it runs once. */
  async enqueueTick(job: TickJob & { scheduledAtMs: number }): Promise<void> {
    await this.guard(() => this.schedule.add('tick', job, { jobId: tickJobId(job.scheduleId, job.scheduledAtMs) }));
  }

  private async stampOrder(taskId: string): Promise<NotifyOrder> {
    const client = this.orderClient;
    const fresh = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
    const [n, gen] = (await client.eval(
      stampOrderScript,
      1,
      notifyOrderKey(this.prefix, taskId),
      String(notifyOrderTtlMs),
      fresh,
    )) as [number, string];
    return { gen, n };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.plan.close(), this.run.close(), this.notify.close(), this.schedule.close()]);
    if (this.ownsOrderClient) this.orderClient.disconnect();
  }

  /**
   * Runs a producer call; a failure becomes "the queue is unavailable". A call refused while
   * the connection is reconnecting (it fails fast rather than queueing offline) is tried once
   * more when the connection is back within `reconnectWaitMs`: Redis may be back already for
   * other connections, which reconnect on their own schedule. Every add has a job id, so the
   * second try never makes a second job.
   */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (this.closed || !reconnecting(this.orderClient)) throw unavailable(err);
      if (!(await readyWithin(this.orderClient, this.reconnectWaitMs))) throw unavailable(err);
      try {
        return await fn();
      } catch (again) {
        throw unavailable(again);
      }
    }
  }
}

function reconnecting(redis: Redis): boolean {
  return redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'reconnecting';
}

/** Whether a connection becomes ready within `ms`. */
async function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ready);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    redis.on('ready', onReady);
  });
}

function unavailable(err: unknown): HandoffError {
  return new HandoffError(ErrorCodes.queueUnavailable, 'the work queue is unavailable right now; try again shortly', {
    cause: err,
    retryable: true,
  });
}
