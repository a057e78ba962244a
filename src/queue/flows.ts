import { FlowProducer, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type ChildFailureRule, ErrorCodes, HandoffError, TraceContextSchema } from '../core/index.ts';
import { traceField } from '../observability/index.ts';
import { queueNames, runJobId } from './jobs.ts';

/** The queue of workstreams: child runs of a task's run job (a BullMQ flow). */
export const workstreamQueueName = 'handoff-workstream';

export const WorkstreamJobSchema = z.object({
  taskId: z.string(),
  planVersion: z.number().int().positive(),
  /** The parent run's id. */
  runId: z.string(),
  workstreamId: z.string().min(1).max(32),
  /** The parent run's trace (its span), continued by the child's runner. */
  trace: TraceContextSchema.optional(),
});
export type WorkstreamJob = z.infer<typeof WorkstreamJobSchema>;

/** One child job per workstream of a plan version. BullMQ job ids may not contain ':'. */
export function workstreamJobId(taskId: string, planVersion: number, workstreamId: string): string {
  return `ws-${taskId}-v${planVersion}-${workstreamId}`;
}

/**
 * How a child's failure reaches its parent, per the plan's rule. `retry` and `fail` wake the
 * parent at the first failure (`continueParentOnFailure`; a `retry` child gets a second
 * attempt first), so it can stop the task while the others still run; `continue` records
 * the failure and lets the parent wait for the rest (`ignoreDependencyOnFailure`).
 */
export function childJobOptions(
  rule: ChildFailureRule,
): Pick<JobsOptions, 'attempts' | 'continueParentOnFailure' | 'ignoreDependencyOnFailure'> {
  if (rule === 'continue') return { attempts: 1, ignoreDependencyOnFailure: true };
  return { attempts: rule === 'retry' ? 2 : 1, continueParentOnFailure: true };
}

export interface FlowsOptions {
  connection: Redis;
  prefix?: string;
  /** How long finished jobs are kept (the task records' retention). Default 30 days. */
  retentionMs?: number;
}

/**
 * Adds a task's workstreams as children of its run job, so BullMQ holds the run job in
 * `waiting-children` until they are done (or one fails, per the plan's rule).
 */
export class Flows {
  readonly workstreams: Queue<WorkstreamJob>;
  private readonly producer: FlowProducer;
  private readonly prefix: string;
  private readonly age: number;
  private closed = false;

  constructor(options: FlowsOptions) {
    this.prefix = options.prefix ?? 'hfq';
    this.age = Math.round((options.retentionMs ?? 30 * 86_400_000) / 1000);
    this.producer = new FlowProducer({ connection: options.connection, prefix: this.prefix });
    this.workstreams = new Queue<WorkstreamJob>(workstreamQueueName, {
      connection: options.connection,
      prefix: this.prefix,
    });
    this.producer.on('error', () => undefined);
    this.workstreams.on('error', () => undefined);
  }

  /**
   * Adds the children that are not in the queue yet (all of them the first time; after a
   * crash between two adds, the missing ones). Their parent is the run job of the plan version.
   */
  async addChildren(
    parent: { taskId: string; planVersion: number; runId: string },
    workstreamIds: readonly string[],
    rule: ChildFailureRule,
  ): Promise<number> {
    const missing: string[] = [];
    for (const id of workstreamIds) {
      const existing = await this.workstreams.getJob(workstreamJobId(parent.taskId, parent.planVersion, id));
      if (!existing) missing.push(id);
    }
    if (missing.length === 0) return 0;
    const parentRef = {
      id: runJobId(parent.taskId, parent.planVersion),
      queue: `${this.prefix}:${queueNames.run}`,
    };
    try {
      await this.producer.addBulk(
        missing.map((id) => ({
          name: 'workstream',
          queueName: workstreamQueueName,
          data: {
            taskId: parent.taskId,
            planVersion: parent.planVersion,
            runId: parent.runId,
            workstreamId: id,
            ...traceField(),
          },
          opts: {
            jobId: workstreamJobId(parent.taskId, parent.planVersion, id),
            parent: parentRef,
            ...childJobOptions(rule),
            backoff: { type: 'fixed', delay: 1000 },
            removeOnComplete: { age: this.age, count: 1000 },
            removeOnFail: { age: this.age, count: 5000 },
          },
        })),
      );
    } catch (err) {
      throw new HandoffError(
        ErrorCodes.queueUnavailable,
        'the work queue is unavailable right now; try again shortly',
        {
          cause: err,
          retryable: true,
        },
      );
    }
    return missing.length;
  }

  /** The state of each child job (`completed`, `failed`, `active`, …; `missing` when there is none). */
  async childStates(taskId: string, planVersion: number, ids: readonly string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const id of ids) {
      const job = await this.workstreams.getJob(workstreamJobId(taskId, planVersion, id));
      out[id] = job ? await job.getState() : 'missing';
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.producer.close(), this.workstreams.close()]);
  }
}
