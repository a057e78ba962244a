import { type ConnectionOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ErrorCodes, HandoffError, type RunnerEvent } from '../core/index.ts';
import { type PlanJob, planJobId, queueNames, type RunJob, runJobId } from './jobs.ts';

export interface QueueOptions {
  connection: Redis | ConnectionOptions;
  /** Key prefix; tests give each run its own. */
  prefix?: string;
}

/**
 * Producers for the three queues. Failures to enqueue become a HandoffError the
 * surface can show ("the queue is unavailable"), never a silent drop.
 */
export class Queues {
  readonly plan: Queue<PlanJob>;
  readonly run: Queue<RunJob>;
  readonly notify: Queue<RunnerEvent>;
  private closed = false;

  constructor(options: QueueOptions) {
    const base = { connection: options.connection, prefix: options.prefix ?? 'hfq' };
    this.plan = new Queue<PlanJob>(queueNames.plan, {
      ...base,
      defaultJobOptions: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: 1000,
        removeOnFail: 5000,
      },
    });
    this.run = new Queue<RunJob>(queueNames.run, {
      ...base,
      defaultJobOptions: {
        attempts: 4,
        backoff: { type: 'exponential', delay: 3000 },
        removeOnComplete: 1000,
        removeOnFail: 5000,
      },
    });
    this.notify = new Queue<RunnerEvent>(queueNames.notify, {
      ...base,
      defaultJobOptions: {
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
        removeOnFail: 1000,
      },
    });
  }

  async enqueuePlan(job: PlanJob): Promise<void> {
    await guard(() => this.plan.add('plan', job, { jobId: planJobId(job.taskId, job.version) }));
  }

  /** Expires a plan's approval request at `atMs` unless it was decided by then. */
  async scheduleExpiry(job: PlanJob, atMs: number): Promise<void> {
    await guard(() =>
      this.plan.add('expire', job, {
        jobId: `expire-${job.taskId}-v${job.version}`,
        delay: Math.max(0, atMs - Date.now()),
      }),
    );
  }

  async enqueueRun(job: RunJob): Promise<void> {
    await guard(() => this.run.add('run', job, { jobId: runJobId(job.taskId, job.planVersion) }));
  }

  async emit(event: RunnerEvent): Promise<void> {
    await guard(() => this.notify.add(event.type, event));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.plan.close(), this.run.close(), this.notify.close()]);
  }
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new HandoffError(ErrorCodes.queueUnavailable, 'the work queue is unavailable right now; try again shortly', {
      cause: err,
      retryable: true,
    });
  }
}
