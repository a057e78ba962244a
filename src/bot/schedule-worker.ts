import { DelayedError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type Logger, throttledLog } from '../observability/index.ts';
import { queueNames, type TickJob } from '../queue/index.ts';
import { type Schedules, TickDeferred } from './schedules.ts';

export interface ScheduleWorkerOptions {
  /** BullMQ key prefix; tests give each run its own. Default `hfq`. */
  prefix?: string;
  /** Ticks handled at once. Default 8: a tick only posts a message and queues a run. */
  concurrency?: number;
}

/**
 * Takes schedule ticks off the queue the job schedulers (the clock) fill, on every bot:
 * whichever bot takes a tick posts its brief; one task per tick keeps it to one.
 */
export function startScheduleWorker(
  schedules: Schedules,
  connection: Redis,
  logger: Logger,
  options: ScheduleWorkerOptions = {},
): Worker<TickJob> {
  const worker = new Worker<TickJob>(
    queueNames.schedule,
    async (job, token) => {
      try {
        await schedules.tick(job);
      } catch (err) {
        // Waiting for another bot's post: back to the delayed set, no attempt used.
        if (!(err instanceof TickDeferred)) throw err;
        await job.moveToDelayed(err.untilMs, token);
        throw new DelayedError();
      }
    },
    {
      connection,
      prefix: options.prefix ?? 'hfq',
      concurrency: options.concurrency ?? 8,
    },
  );
  worker.on('failed', (job, err) =>
    logger.warn({ err, scheduleId: job?.data.scheduleId, attempt: job?.attemptsMade }, 'a schedule tick failed'),
  );
  worker.on(
    'error',
    throttledLog((skipped, err) => logger.error({ err, skipped }, 'schedule worker error')),
  );
  return worker;
}
