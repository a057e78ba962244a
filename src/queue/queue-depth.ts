import { type ConnectionOptions, type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { QueueDepth } from '../observability/index.ts';
import { workstreamQueueName } from './flows.ts';
import { inboxGroup, inboxStreams, queueNames } from './jobs.ts';

/** Every queue Handoff uses, by the short name its metrics carry. */
export const metricQueueNames: Readonly<Record<string, string>> = {
  plan: queueNames.plan,
  run: queueNames.run,
  notify: queueNames.notify,
  schedule: queueNames.schedule,
  workstream: workstreamQueueName,
  inbox_slack: inboxStreams.slack,
  inbox_teams: inboxStreams.teams,
};

/**
 * Reads the depth of every queue for /metrics: waiting (including prioritized), active
 * and delayed jobs, and how long the oldest waiting job has been ready to run. Its own
 * Queue handles, so it works in a process that produces to none of them (the runner).
 */
export class QueueDepthReader {
  private readonly queues: Array<{ name: string; queue: Queue }>;
  private readonly redis: Redis | undefined;

  /** With a connection (not options), the bots' inbox streams are read too. */
  constructor(options: { connection: Redis | ConnectionOptions; prefix?: string }) {
    this.redis = isRedis(options.connection) ? options.connection : undefined;
    const streams = new Set<string>(Object.values(inboxStreams));
    this.queues = Object.entries(metricQueueNames)
      .filter(([, full]) => !streams.has(full))
      .map(([name, full]) => {
        const queue = new Queue(full, { connection: options.connection, prefix: options.prefix ?? 'hfq' });
        // The connection's owner reports Redis trouble; a failed read drops the scrape's queue series.
        queue.on('error', () => undefined);
        return { name, queue };
      });
  }

  async read(now = Date.now()): Promise<QueueDepth[]> {
    const redis = this.redis;
    const inboxes = redis
      ? Object.entries(inboxStreams).map(([surface, stream]) => inboxDepth(redis, `inbox_${surface}`, stream, now))
      : [];
    const queues = Promise.all(
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
    return [...(await queues), ...(await Promise.all(inboxes))];
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

function isRedis(c: Redis | ConnectionOptions): c is Redis {
  return typeof (c as Redis).xlen === 'function';
}

/**
 * An inbox stream as a queue: entries no bot has taken are waiting, those taken and not
 * finished are active. A stream entry's id starts with the time it was added, so the
 * oldest entry (taken or not: the stream keeps only what is unfinished) gives the age.
 */
async function inboxDepth(redis: Redis, queue: string, stream: string, now: number): Promise<QueueDepth> {
  const [length, first, pending] = await Promise.all([
    redis.xlen(stream),
    redis.xrange(stream, '-', '+', 'COUNT', 1),
    redis.xpending(stream, inboxGroup).catch(() => [0]) as Promise<[number, ...unknown[]]>,
  ]);
  const active = Number(pending[0] ?? 0);
  const addedAt = first[0] ? Number(first[0][0].split('-')[0]) : now;
  return {
    queue,
    waiting: Math.max(0, length - active),
    active,
    delayed: 0,
    oldestWaitingAgeSeconds: length - active > 0 ? Math.max(0, (now - addedAt) / 1000) : 0,
  };
}
