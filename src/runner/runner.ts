import { DelayedError, type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { asHandoffError, ErrorCodes, HandoffError, isTerminal, transition } from '../core/index.ts';
import { throttledLog } from '../observability/index.ts';
import { type PlanJob, PlanJobSchema, queueNames, type RunJob, RunJobSchema } from '../queue/index.ts';
import { cancelChannel } from '../storage/index.ts';
import { expirePlan, failPlanning, processPlanJob, type RunnerDeps, toJobError } from './plan-processor.ts';
import { processRunJob, type RunControl, RunParked } from './run-processor.ts';

export interface RunnerOptions {
  /** A connection for the workers (maxRetriesPerRequest null); duplicated per worker. */
  connection: Redis;
  prefix?: string;
  concurrency: number;
  /** How long a job's lock lives without renewal; a killed runner's job is picked up after it. */
  lockDurationMs?: number;
}

/**
 * The runner role: workers for planning and runs. Cancel clicks arrive over Redis
 * pub/sub and abort the job's signal, the same path every timeout takes.
 */
export class Runner {
  private readonly planWorker: Worker<PlanJob>;
  private readonly runWorker: Worker<RunJob>;
  private readonly subscriber: Redis;
  private readonly active = new Map<string, AbortController>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly deps: RunnerDeps,
    options: RunnerOptions,
  ) {
    const common = {
      connection: options.connection,
      prefix: options.prefix ?? 'hfq',
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      maxStalledCount: 1,
    };
    this.planWorker = new Worker<PlanJob>(queueNames.plan, (job, _token, signal) => this.plan(job, signal), common);
    this.runWorker = new Worker<RunJob>(queueNames.run, (job, token, signal) => this.run(job, token, signal), common);
    const workerError = throttledLog((skipped, err) => deps.logger.error({ err, skipped }, 'worker error'));
    for (const worker of [this.planWorker, this.runWorker]) {
      worker.on('failed', (job, err) => void this.onFailed(job, err));
      worker.on('error', workerError);
    }
    this.subscriber = options.connection.duplicate();
    // The main connection already reports Redis trouble.
    this.subscriber.on('error', () => undefined);
    void this.subscriber
      .subscribe(cancelChannel)
      .catch((err) => deps.logger.error({ err }, 'cannot subscribe to cancels'));
    this.subscriber.on('message', (_channel, taskId: string) => {
      this.active.get(taskId)?.abort(new HandoffError(ErrorCodes.cancelled, 'the run was cancelled'));
    });
  }

  private async plan(job: Job<PlanJob>, jobSignal?: AbortSignal): Promise<void> {
    const data = PlanJobSchema.parse(job.data);
    if (job.name === 'expire') {
      await expirePlan(this.deps, data);
      return;
    }
    await this.withSignal(data.taskId, jobSignal, async (signal) => {
      try {
        await processPlanJob(this.deps, data, signal);
      } catch (err) {
        const e = asHandoffError(err);
        const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        if (!e.retryable || lastAttempt || signal.aborted) await failPlanning(this.deps, data.taskId, e);
        throw toJobError(e);
      }
    });
  }

  private async run(job: Job<RunJob>, token: string | undefined, jobSignal?: AbortSignal): Promise<void> {
    const data = RunJobSchema.parse(job.data);
    const control: RunControl = {
      park: async (untilMs) => {
        await job.moveToDelayed(untilMs, token);
      },
    };
    await this.withSignal(data.taskId, jobSignal, async (signal) => {
      try {
        await processRunJob(this.deps, data, signal, control);
      } catch (err) {
        // Parked for an approval: BullMQ keeps the job delayed; the worker slot is free.
        if (err instanceof RunParked) throw new DelayedError();
        const e = asHandoffError(err);
        const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        if (!e.retryable || lastAttempt) await this.failRun(data.taskId, e.code, `The run failed: ${e.message}`);
        throw toJobError(e);
      }
    });
  }

  private async withSignal(taskId: string, jobSignal: AbortSignal | undefined, fn: (s: AbortSignal) => Promise<void>) {
    const controller = new AbortController();
    this.active.set(taskId, controller);
    // A cancel that arrived while this runner was down is still honoured.
    if (await this.deps.state.cancelRequested(taskId)) {
      controller.abort(new HandoffError(ErrorCodes.cancelled, 'the run was cancelled'));
    }
    const signal = jobSignal ? AbortSignal.any([jobSignal, controller.signal]) : controller.signal;
    try {
      await fn(signal);
    } finally {
      if (this.active.get(taskId) === controller) this.active.delete(taskId);
    }
  }

  /** A job that will not run again (stalled twice: its runner died) fails its task loudly. */
  private async onFailed(job: Job<PlanJob | RunJob> | undefined, err: Error): Promise<void> {
    if (!job) return;
    const lastAttempt = job.attemptsMade >= (job.opts.attempts ?? 1);
    const stalled = /stalled/i.test(err.message);
    if (!stalled && !lastAttempt) return;
    const taskId = job.data.taskId;
    const task = await this.deps.state.getTask(taskId).catch(() => undefined);
    if (!task || isTerminal(task.state)) return;
    const message = stalled
      ? 'The runner working on this task stopped responding twice; the task was stopped. Try again.'
      : `The task failed: ${err.message}`;
    if (job.queueName === queueNames.plan)
      await failPlanning(this.deps, taskId, new HandoffError(ErrorCodes.runnerLost, message));
    else await this.failRun(taskId, ErrorCodes.runnerLost, message);
  }

  private async failRun(taskId: string, code: string, message: string): Promise<void> {
    try {
      const { after } = await this.deps.state.updateTask(taskId, (t) =>
        isTerminal(t.state) ? t : transition(t, 'failed', new Date(), { failure: { code, message } }),
      );
      if (after.state !== 'failed' || after.failure?.message !== message) return;
      await this.deps.audit.append({ type: 'run.failed', taskId, data: { code, message } });
      await this.deps.queues.emit({ type: 'result', taskId, runId: after.runId ?? 'none' });
    } catch (err) {
      this.deps.logger.error({ err, taskId }, 'could not record a run failure');
    }
  }

  async waitUntilReady(): Promise<void> {
    await Promise.all([this.planWorker.waitUntilReady(), this.runWorker.waitUntilReady()]);
  }

  /** Idempotent; stops taking work, lets active jobs finish or be picked up after restart. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([this.planWorker.close(), this.runWorker.close()]);
      await Promise.allSettled([this.subscriber.quit()]);
    })();
    return this.closing;
  }
}
