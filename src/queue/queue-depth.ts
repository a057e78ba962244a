import { type ConnectionOptions, type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { QueueDepth } from '../observability/index.ts';
import { workstreamQueueName } from './flows.ts';
import { queueNames } from './jobs.ts';

/** Every queue Handoff uses, by the short name its metrics carry. */
export const metricQueueNames: Readonly<Record<string, string>> = {
  plan: queueNames.plan,
  run: queueNames.run,
  notify: queueNames.notify,
  schedule: queueNames.schedule,
  workstream: workstreamQueueName,
};

/**
 * Reads the depth of every queue for /metrics: waiting (including prioritized), active
 * and delayed jobs, and how long the oldest waiting job has been ready to run. Its own
 * Queue handles, so it works in a process that produces to none of them (the runner).
 */
export class QueueDepthReader {
  private readonly queues: Array<{ name: string; queue: Queue }>;

  constructor(options: { connection: Redis | ConnectionOptions; prefix?: string }) {
    this.queues = Object.entries(metricQueueNames).map(([name, full]) => {
      const queue = new Queue(full, { connection: options.connection, prefix: options.prefix ?? 'hfq' });
      // The connection's owner reports Redis trouble; a failed read drops the scrape's queue series.
      queue.on('error', () => undefined);
      return { name, queue };
    });
  }

  async read(now = Date.now()): Promise<QueueDepth[]> {
    return Promise.all(
      this.queues.map(async ({ name, queue }) => {
        const counts = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed');
        const oldest = [
          ...(await queue.getJobs(['wait'], 0, 0, true)),
          ...(await queue.getJobs(['prioritized'], 0, 0, true)),
        ];
        const readySince = oldest.filter((j): j is Job => Boolean(j)).map(readySinceMs);
        const oldestMs = readySince.length > 0 ? Math.min(...readySince) : now;
        return {
          queue: name,
          waiting: (counts.wait ?? 0) + (counts.prioritized ?? 0),
          active: counts.active ?? 0,
          delayed: counts.delayed ?? 0,
          oldestWaitingAgeSeconds: Math.max(0, (now - oldestMs) / 1000),
        };
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queues.map(({ queue }) => queue.close()));
  }
}

/**
 * When a waiting job became ready to run, as well as BullMQ tells: added (plus its first
 * delay), or later when a worker had it already (a retry or a parked run woken since).
 * BullMQ keeps no "entered wait at" time, so this is the latest of what it keeps.
 */
function readySinceMs(job: Job): number {
  return Math.max(job.timestamp + (job.opts.delay ?? 0), job.processedOn ?? 0, job.finishedOn ?? 0);
}
