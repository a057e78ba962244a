import { DelayedError, type Job, WaitingChildrenError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { abortCode, asHandoffError, ErrorCodes, HandoffError, isTerminal, transition } from '../core/index.ts';
import { continueTrace, jobLogContext, throttledLog, withLogContext } from '../observability/index.ts';
import { type PlanJob, PlanJobSchema, queueNames, type RunJob, RunJobSchema } from '../queue/index.ts';
import { cancelChannel } from '../storage/index.ts';
import { sweepArtifacts, sweepSandboxesAndWorkspaces } from './janitor.ts';
import { expirePlan, failPlanning, processPlanJob, type RunnerDeps, toJobError } from './plan-processor.ts';
import { reconcile } from './reconciler.ts';
import { processRunJob, type RunControl, RunHandedBack, RunParked } from './run-processor.ts';
import { RunWaitingForWorkstreams, WorkstreamRunner } from './workstreams.ts';

export interface RunnerOptions {
  /** A connection for the workers (maxRetriesPerRequest null); duplicated per worker. */
  connection: Redis;
  prefix?: string;
  concurrency: number;
  /**
   * How long a job's lock lives without renewal (renewed at half of it). A killed runner's
   * job is picked up by another runner after at most this plus `stalledIntervalMs`.
   */
  lockDurationMs?: number;
  /** How often workers look for jobs whose runner stopped renewing their lock. */
  stalledIntervalMs?: number;
  /** How many times a job may be picked up again after its runner died before it fails. */
  maxStalledCount?: number;
  /** How often the janitor and the reconciler run. */
  sweepIntervalMs?: number;
  /** Workstreams (child runs of a fan-out) this runner works on at once, all tasks together. Default 4. */
  workstreamConcurrency?: number;
  /** Workstreams of one task running at once, across runners. Default 4. */
  maxParallelWorkstreams?: number;
}

/** Defaults that resume a dead runner's run on another runner within about 12 s. */
export const defaultLockDurationMs = 8_000;
export const defaultStalledIntervalMs = 4_000;

/**
 * The runner role: workers for planning and runs. Cancel clicks arrive over Redis
 * pub/sub and abort the job's signal, the same path every timeout takes. A janitor
 * removes what dead runners left, a reconciler finds tasks whose job is gone, and
 * `close()` hands running work back to the queue rather than waiting for it.
 */
export class Runner {
  private readonly planWorker: Worker<PlanJob>;
  private readonly runWorker: Worker<RunJob>;
  private readonly workstreams: WorkstreamRunner;
  private readonly subscriber: Redis;
  private readonly active = new Map<string, AbortController>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closing: Promise<void> | undefined;
  private readonly lockDurationMs: number;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly options: RunnerOptions,
  ) {
    this.lockDurationMs = options.lockDurationMs ?? defaultLockDurationMs;
    const common = {
      connection: options.connection,
      prefix: options.prefix ?? 'hfq',
      concurrency: options.concurrency,
      lockDuration: this.lockDurationMs,
      stalledInterval: options.stalledIntervalMs ?? defaultStalledIntervalMs,
      maxStalledCount: options.maxStalledCount ?? 5,
    };
    // Every line logged while a job is worked on names its task (and run): log-context.ts.
    this.planWorker = new Worker<PlanJob>(
      queueNames.plan,
      (job, _token, signal) => withLogContext(jobLogContext(job.data), () => this.plan(job, signal)),
      common,
    );
    this.runWorker = new Worker<RunJob>(
      queueNames.run,
      (job, token, signal) => withLogContext(jobLogContext(job.data), () => this.run(job, token, signal)),
      common,
    );
    // Children of fan-outs have workers of their own, so N of them run at once beside the runs.
    this.workstreams = new WorkstreamRunner(deps, {
      connection: options.connection,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      ...(options.workstreamConcurrency ? { concurrency: options.workstreamConcurrency } : {}),
      ...(options.maxParallelWorkstreams ? { maxParallelPerTask: options.maxParallelWorkstreams } : {}),
      lockDurationMs: common.lockDuration,
      stalledIntervalMs: common.stalledInterval,
      maxStalledCount: common.maxStalledCount,
    });
    const workerError = throttledLog((skipped, err) => deps.logger.error({ err, skipped }, 'worker error'));
    for (const worker of [this.planWorker, this.runWorker]) {
      worker.on('failed', (job, err) => void this.onFailed(job, err));
      worker.on('error', workerError);
      // A lock that could not be renewed belongs to someone else now: stop working on that job.
      worker.on('lockRenewalFailed', (jobIds: string[]) => {
        for (const id of jobIds) {
          worker.cancelJob(id, ErrorCodes.runTakenOver);
        }
      });
    }
    this.subscriber = options.connection.duplicate();
    // The main connection already reports Redis trouble.
    this.subscriber.on('error', () => undefined);
    void this.subscriber
      .subscribe(cancelChannel)
      .catch((err) => deps.logger.error({ err }, 'cannot subscribe to cancels'));
    this.subscriber.on('message', (_channel, taskId: string) => {
      this.active.get(taskId)?.abort(new HandoffError(ErrorCodes.cancelled, 'the run was cancelled'));
      this.workstreams.cancel(taskId);
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
        // Continues the trace the bot started (job data), so request and plan are one trace.
        const attrs = { 'handoff.task.id': data.taskId, 'handoff.plan.version': data.version };
        await continueTrace(data.trace, 'plan', attrs, () => processPlanJob(this.deps, data, signal));
      } catch (err) {
        const stop = abortCode(signal);
        if (stop === ErrorCodes.runnerStopping) {
          // Shutting down: planning starts over on another runner, at once.
          await job.moveToDelayed(Date.now(), job.token);
          throw new DelayedError();
        }
        if (stop === ErrorCodes.runTakenOver) throw new DelayedError();
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
      workstreams: (task, plan) =>
        this.workstreams.gate(task, plan, data, {
          waitForChildren: () => job.moveToWaitingChildren(token ?? ''),
          removeUnprocessedChildren: () => job.removeUnprocessedChildren(),
        }),
    };
    await this.withSignal(data.taskId, jobSignal, async (signal) => {
      try {
        const attrs = { 'handoff.task.id': data.taskId, 'handoff.run.id': data.runId };
        const expected = (err: unknown) => err instanceof RunParked || err instanceof RunHandedBack;
        const work = () => processRunJob(this.deps, data, signal, control);
        await continueTrace(data.trace, 'run', attrs, work, { expected });
        // A run whose task ended while some of its workstreams still stop completes after them.
        if (token && (await job.moveToWaitingChildren(token))) throw new RunWaitingForWorkstreams();
      } catch (err) {
        // Parked for a person: BullMQ keeps the job delayed; the worker slot is free.
        if (err instanceof RunParked) throw new DelayedError();
        // Waiting for its workstreams: BullMQ wakes the job when they are done.
        if (err instanceof RunWaitingForWorkstreams) throw new WaitingChildrenError();
        if (err instanceof RunHandedBack) {
          // Shutting down: the checkpoint has everything; another runner resumes it now.
          // Taken over: the job is someone else's; leave it alone.
          if (abortCode(signal) === ErrorCodes.runnerStopping) await job.moveToDelayed(Date.now(), token);
          throw new DelayedError();
        }
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

  /** A job that will not run again (stalled too often: its runners died) fails its task loudly. */
  private async onFailed(job: Job<PlanJob | RunJob> | undefined, err: Error): Promise<void> {
    if (!job) return;
    const lastAttempt = job.attemptsMade >= (job.opts.attempts ?? 1);
    const stalled = /stalled/i.test(err.message);
    if (!stalled && !lastAttempt) return;
    const taskId = job.data.taskId;
    const task = await this.deps.state.getTask(taskId).catch(() => undefined);
    if (!task || isTerminal(task.state)) return;
    const message = stalled
      ? 'The runners working on this task stopped responding too many times; the task was stopped. Try again.'
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

  /**
   * Whether this runner can take work (`/readyz`): its plan and run workers run on a
   * connected Redis client, and the Docker engine answers within 3 s.
   */
  async ready(): Promise<{ ok: boolean; reason?: string }> {
    const answer = await this.readiness();
    this.deps.metrics?.runnerReady.set(answer.ok ? 1 : 0);
    return answer;
  }

  private async readiness(): Promise<{ ok: boolean; reason?: string }> {
    if (this.closing) return { ok: false, reason: 'the runner is shutting down' };
    for (const worker of [this.planWorker, this.runWorker]) {
      if (!worker.isRunning()) return { ok: false, reason: `the ${worker.name} worker is not running` };
      if ((await worker.backend.client).status !== 'ready')
        return { ok: false, reason: `the ${worker.name} worker is not connected to Redis` };
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), 3000);
    });
    try {
      const pinged = await Promise.race([this.deps.driver.ping().then(() => 'ok' as const), late]);
      if (pinged === 'late') return { ok: false, reason: 'Docker did not answer within 3 s' };
    } catch (err) {
      return { ok: false, reason: `Docker does not answer: ${asHandoffError(err).message}` };
    } finally {
      clearTimeout(timer);
    }
    return { ok: true };
  }

  /** Starts the workers' companions: the heartbeat, the janitor and the reconciler. */
  async waitUntilReady(): Promise<void> {
    await Promise.all([
      this.planWorker.waitUntilReady(),
      this.runWorker.waitUntilReady(),
      this.workstreams.waitUntilReady(),
    ]);
    const beat = () =>
      this.deps.state
        .runnerHeartbeat(this.deps.runnerId, this.lockDurationMs * 2)
        .catch((err) => this.deps.logger.debug({ err }, 'heartbeat failed'));
    await beat();
    this.every(this.lockDurationMs / 3, beat);
    const sweep = async () => {
      if (this.closing) return;
      const busy = new Map<string, unknown>([
        ...this.active,
        ...this.workstreams.activeTaskIds().map((id) => [id, 1] as const),
      ]);
      await sweepSandboxesAndWorkspaces(this.deps, busy).catch((err) =>
        this.deps.logger.warn({ err: asHandoffError(err).message }, 'janitor: sweep failed'),
      );
      await sweepArtifacts(this.deps).catch((err) =>
        this.deps.logger.warn({ err: asHandoffError(err).message }, 'janitor: artifact retention failed'),
      );
      await reconcile(this.deps).catch((err) =>
        this.deps.logger.warn({ err: asHandoffError(err).message }, 'reconciler failed'),
      );
    };
    // What a runner that died left behind goes at the next start.
    void sweep();
    this.every(this.options.sweepIntervalMs ?? 30_000, sweep);
  }

  private every(ms: number, fn: () => unknown): void {
    const timer = setInterval(() => void fn(), ms);
    timer.unref();
    this.timers.push(timer);
  }

  /**
   * Idempotent. Stops taking work, aborts what runs (each run's checkpoint has
   * everything; the job goes back to the queue and another runner resumes it at once),
   * closes the workers, then says this runner is gone.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      const stopping = new HandoffError(ErrorCodes.runnerStopping, 'the runner is shutting down', { retryable: true });
      const closed = Promise.allSettled([this.planWorker.close(), this.runWorker.close(), this.workstreams.close()]);
      for (const controller of this.active.values()) controller.abort(stopping);
      await closed;
      await Promise.allSettled([this.subscriber.quit(), this.deps.state.runnerGone(this.deps.runnerId)]);
    })();
    return this.closing;
  }
}
