import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type Logger, throttledLog } from '../observability/index.ts';
import { type NotifyJob, queueNames } from '../queue/index.ts';
import type { Gateway } from './gateway.ts';

/**
 * Consumes runner events and renders them through the gateway. One job at a time per
 * bot, so a task's messages are created once and then edited in order.
 */
export function startNotifyWorker(
  gateway: Gateway,
  connection: Redis,
  logger: Logger,
  prefix = 'hfq',
): Worker<NotifyJob> {
  const worker = new Worker<NotifyJob>(queueNames.notify, (job) => gateway.handleEvent(job.data), {
    connection,
    prefix,
    concurrency: 1,
  });
  worker.on('failed', (job, err) =>
    logger.warn({ err, event: job?.data.type, taskId: job?.data.taskId }, 'could not deliver an event to chat'),
  );
  worker.on(
    'error',
    throttledLog((skipped, err) => logger.error({ err, skipped }, 'notify worker error')),
  );
  return worker;
}
