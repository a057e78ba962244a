import { createWriteStream } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { abbreviateStrings, loadSkillToolName, type RunOutcome, runAgentLoop, type ToolHost } from '../agent/index.ts';
import {
  abortCode,
  addUsage,
  asHandoffError,
  type Checkpoint,
  costUsd,
  ErrorCodes,
  fileNameProblem,
  HandoffError,
  isTerminal,
  newId,
  type Plan,
  type Task,
  transition,
  type Usage,
  type Workstream,
  type WorkstreamOutput,
  type WorkstreamProgress,
  type WorkstreamRecord,
  zeroUsage,
} from '../core/index.ts';
import { continueTrace, jobLogContext, throttledLog, withLogContext } from '../observability/index.ts';
import {
  Flows,
  type FlowsOptions,
  type RunJob,
  type WorkstreamJob,
  WorkstreamJobSchema,
  workstreamQueueName,
} from '../queue/index.ts';
import { WorkstreamStore } from '../storage/index.ts';
import { runChannelContext } from './channel-settings.ts';
import { channelPolicy, type RunnerDeps, redactorFor } from './plan-processor.ts';
import { standingGrantCheck } from './run-grants.ts';
import { runSkills } from './run-skills.ts';
import type { Sandbox } from './sandbox/index.ts';
import { prepareWorkspace, removeWorkspace, sandboxUser } from './workspace.ts';

/** The failure code of a task stopped because a workstream failed (rules `fail` and `retry`). */
export const workstreamFailedCode = 'handoff_workstream_failed';

/** Default per-task limit of workstreams running at once. */
export const defaultMaxParallelWorkstreams = 4;
/** Default number of workstreams one runner process works on at once (all tasks together). */
export const defaultWorkstreamConcurrency = 4;

/** Tools a workstream may use (never more than its plan's envelope names); load_skill gives it the parent's skills. */
const childTools = new Set([
  'read_file',
  'list_files',
  'write_file',
  'edit_file',
  'run_command',
  'deliver_artifact',
  loadSkillToolName,
]);

/** Thrown by the gate when the run job now waits for its children (BullMQ `waiting-children`). */
export class RunWaitingForWorkstreams extends Error {
  constructor() {
    super('the run waits for its workstreams');
    this.name = 'RunWaitingForWorkstreams';
  }
}

/** What the parent run job lends the gate: its own BullMQ job. */
export interface ParentJobControl {
  /** Moves the run job to `waiting-children`; false when no child is pending. */
  waitForChildren(): Promise<boolean>;
  /** Removes children that have not started (the task ended). */
  removeUnprocessedChildren(): Promise<void>;
}

/** What the merge step starts from once every workstream is done. */
export interface FanIn {
  /** The workstreams' usage, counted against the plan's budget with the merge's own. */
  usage: Usage;
  /** How long the fan-out took; the merge has what is left of the plan's wall time. */
  elapsedMs: number;
  /** For the model: where the workstreams' files are, and which failed. */
  notes: string[];
  /** Where each workstream ended, for the progress card. */
  progress: WorkstreamProgress[];
  /** Lays out the workstreams' files under `<workspace>/in/workstreams/<id>/`. */
  layout(workspaceDir: string): Promise<void>;
}

export interface WorkstreamRunnerOptions {
  connection: Redis;
  prefix?: string;
  /** Workstreams this runner process works on at once (all tasks together). Default 4. */
  concurrency?: number;
  /** Workstreams of one task running at once, across runners. Default 4. */
  maxParallelPerTask?: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
}

/**
 * Sub-agents for parallel workstreams. A plan with `workstreams` turns its run job into the
 * parent of a BullMQ flow: `gate` adds one child job per workstream (queue
 * `handoff-workstream`) and parks the run job in `waiting-children`; each child runs the
 * agent loop in its own sandbox under the plan's envelope (narrowed: files and commands
 * only, no asking) with a slice of its budget, and hands its files back through the
 * artifact store; when the children are done (or one failed, per `onChildFailure`) the run
 * job wakes and the merge step runs with their files in /workspace/in/workstreams/<id>/.
 */
export class WorkstreamRunner {
  readonly store: WorkstreamStore;
  /** Made at the first fan-out: a runner that never fans out keeps no extra clients on its connection. */
  private flowsMade: Flows | undefined;
  private readonly flowsOptions: FlowsOptions;
  private readonly worker: Worker<WorkstreamJob>;
  private readonly active = new Map<string, Set<AbortController>>();
  private readonly maxParallel: number;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly deps: RunnerDeps,
    options: WorkstreamRunnerOptions,
  ) {
    this.maxParallel = options.maxParallelPerTask ?? defaultMaxParallelWorkstreams;
    this.flowsOptions = { connection: options.connection, ...(options.prefix ? { prefix: options.prefix } : {}) };
    this.store = new WorkstreamStore(options.connection);
    this.worker = new Worker<WorkstreamJob>(
      workstreamQueueName,
      (job, token, signal) =>
        withLogContext(jobLogContext(job.data), () =>
          // Continues the parent run's trace; a child put back for a moment is not a failure.
          continueTrace(
            job.data.trace,
            'workstream',
            workstreamSpan(job.data),
            () => this.processChild(job, token, signal),
            {
              expected: (err) => err instanceof DelayedError,
            },
          ),
        ),
      {
        connection: options.connection,
        prefix: options.prefix ?? 'hfq',
        concurrency: options.concurrency ?? defaultWorkstreamConcurrency,
        lockDuration: options.lockDurationMs,
        stalledInterval: options.stalledIntervalMs,
        maxStalledCount: options.maxStalledCount,
      },
    );
    this.worker.on(
      'error',
      throttledLog((skipped, err) => deps.logger.error({ err, skipped }, 'workstream worker error')),
    );
    this.worker.on('lockRenewalFailed', (ids: string[]) => {
      for (const id of ids) this.worker.cancelJob(id, ErrorCodes.runTakenOver);
    });
  }

  async waitUntilReady(): Promise<void> {
    await this.worker.waitUntilReady();
  }

  private flows(): Flows {
    if (this.closing)
      throw new HandoffError(ErrorCodes.runnerStopping, 'the runner is shutting down', { retryable: true });
    this.flowsMade ??= new Flows(this.flowsOptions);
    return this.flowsMade;
  }

  /** Tasks with a workstream running on this runner (the janitor leaves their sandboxes alone). */
  activeTaskIds(): string[] {
    return [...this.active.keys()];
  }

  /** Cancel: every workstream of the task running here stops now. */
  cancel(taskId: string, reason: HandoffError = new HandoffError(ErrorCodes.cancelled, 'the run was cancelled')): void {
    for (const c of this.active.get(taskId) ?? []) c.abort(reason);
  }

  /**
   * Called by the run job of a plan with workstreams before anything else: fans out the
   * first time, then waits, decides on failures per the plan's rule, and finally returns
   * what the merge step starts from. `ended`: the task ended here (a workstream failed
   * and the plan says stop, or every workstream failed).
   */
  async gate(task: Task, plan: Plan, job: RunJob, parent: ParentJobControl): Promise<FanIn | 'ended'> {
    const streams = plan.workstreams ?? [];
    const rule = plan.onChildFailure ?? 'fail';
    // Cancelled while this run job held its lock (so the card only asked it to stop): it stops here.
    if (await this.deps.state.cancelRequested(task.id)) {
      await parent.removeUnprocessedChildren().catch(() => undefined);
      await this.cancelTask(task, job);
      return 'ended';
    }
    const ref = { taskId: task.id, version: plan.version };
    const startedAt = await this.store.markStarted(ref, Date.now());
    let records = await this.store.all(ref);
    if (records.size === 0) {
      for (const w of streams)
        await this.store.put(ref, { id: w.id, state: 'queued', attempts: 0, outputs: [], usage: zeroUsage });
      await this.deps.audit.append({
        type: 'workstreams.started',
        taskId: task.id,
        data: {
          runId: job.runId,
          workstreams: streams.map((w) => w.id),
          onChildFailure: rule,
          maxParallel: this.maxParallel,
        },
      });
      records = await this.store.all(ref);
    }
    const failed = streams.filter((w) => records.get(w.id)?.state === 'failed');
    if (failed.length > 0 && rule !== 'continue') {
      await parent.removeUnprocessedChildren().catch(() => undefined);
      await this.failTask(task, job, failed[0]!, records.get(failed[0]!.id)!, rule, records);
      return 'ended';
    }
    const added = await this.flows().addChildren(
      job,
      streams.filter((w) => !isFinal(records.get(w.id)?.state)).map((w) => w.id),
      rule,
    );
    if (added > 0) await this.emitProgress(task, plan, job.runId);
    if (await parent.waitForChildren()) throw new RunWaitingForWorkstreams();

    records = await this.store.all(ref);
    const done = streams.filter((w) => records.get(w.id)?.state === 'done');
    const lost = streams.filter((w) => records.get(w.id)?.state !== 'done');
    if (done.length === 0) {
      const first = lost[0]!;
      await this.failTask(task, job, first, records.get(first.id), 'continue', records);
      return 'ended';
    }
    let usage = zeroUsage;
    for (const r of records.values()) usage = addUsage(usage, r.usage);
    const notes = [
      `The workstreams of the approved plan ran in their own sandboxes. Their files are under /workspace/in/workstreams/<id>/:\n${done
        .map(
          (w) =>
            `- ${w.id} (${w.title}): ${
              records
                .get(w.id)!
                .outputs.map((o) => o.name)
                .join(', ') || 'no files'
            }`,
        )
        .join('\n')}\nNow do the merge step${plan.merge ? `: ${plan.merge}` : ''}, then deliver the deliverables.`,
    ];
    if (lost.length > 0)
      notes.push(
        `These workstreams failed and the plan says to continue without them; say so in your summary: ${lost
          .map((w) => `${w.id} (${w.title}): ${records.get(w.id)?.error ?? 'no result'}`)
          .join('; ')}`,
      );
    if (await this.store.markMerged(ref))
      await this.deps.audit.append({
        type: 'workstreams.merged',
        taskId: task.id,
        data: { runId: job.runId, done: done.map((w) => w.id), failed: lost.map((w) => w.id) },
      });
    return {
      usage,
      elapsedMs: Math.max(0, Date.now() - startedAt),
      notes,
      progress: streams.map((w) => ({ id: w.id, title: w.title, state: records.get(w.id)?.state ?? 'queued' })),
      layout: (dir) => this.layout(dir, done, records),
    };
  }

  private async layout(dir: string, done: Workstream[], records: Map<string, WorkstreamRecord>): Promise<void> {
    const root = join(dir, 'in', 'workstreams');
    const { uid, gid } = sandboxUser();
    const asRoot = process.getuid?.() === 0;
    await mkdir(root, { recursive: true });
    if (asRoot) await chown(root, uid, gid);
    for (const w of done) {
      const target = join(root, w.id);
      await mkdir(target, { recursive: true });
      if (asRoot) await chown(target, uid, gid);
      for (const out of records.get(w.id)?.outputs ?? []) {
        // Names were checked when the workstream handed them back; checked again because this writes to disk.
        if (fileNameProblem(out.name)) continue;
        await pipeline(await this.deps.store.get(out.key), createWriteStream(join(target, out.name)));
      }
    }
  }

  /** A workstream failed and the plan says stop (or nothing is left to merge): the task fails, the others stop. */
  private async failTask(
    task: Task,
    job: RunJob,
    w: Workstream,
    record: WorkstreamRecord | undefined,
    rule: 'retry' | 'fail' | 'continue',
    records: Map<string, WorkstreamRecord>,
  ): Promise<void> {
    const { state, audit, queues } = this.deps;
    const why = record?.error ?? 'it did not finish';
    const message =
      rule === 'continue'
        ? `Every workstream failed, so there was nothing to merge. The first, "${w.title}": ${why}`
        : `Workstream "${w.title}" failed${rule === 'retry' ? ' twice' : ''}: ${why}. The plan says to stop when a workstream fails, so the task stopped.`;
    let usage = zeroUsage;
    for (const r of records.values()) usage = addUsage(usage, r.usage);
    const { after, before } = await state.updateTask(task.id, (t) =>
      isTerminal(t.state)
        ? t
        : transition(t, 'failed', new Date(), {
            usage: addUsage(t.usage, usage),
            costUsd: t.costUsd + costUsd(usage, this.deps.prices),
            failure: { code: workstreamFailedCode, message },
          }),
    );
    if (before.state === after.state) return;
    this.deps.metrics?.modelUsage(task.conversation, usage, costUsd(usage, this.deps.prices));
    // The others stop: every runner aborts this task's workstreams on the cancel channel.
    await state.requestCancel(task.id);
    await audit.append({
      type: 'run.failed',
      taskId: task.id,
      data: { runId: job.runId, failure: { code: workstreamFailedCode, message }, workstream: w.id },
    });
    await queues.emit({ type: 'result', taskId: task.id, runId: job.runId });
    await removeWorkspace(this.deps.workspacesDir, task.id).catch(() => undefined);
  }

  private async cancelTask(task: Task, job: RunJob): Promise<void> {
    const { after, before } = await this.deps.state.updateTask(task.id, (t) =>
      isTerminal(t.state) ? t : transition(t, 'cancelled', new Date()),
    );
    if (before.state === after.state) return;
    await this.deps.audit.append({ type: 'task.cancelled', taskId: task.id, data: { runId: job.runId } });
    await this.deps.queues.emit({ type: 'result', taskId: task.id, runId: job.runId });
    await removeWorkspace(this.deps.workspacesDir, task.id).catch(() => undefined);
  }

  /** The progress card during the fan-out: every workstream's state. */
  async emitProgress(task: Task, plan: Plan, runId: string): Promise<void> {
    const streams = plan.workstreams ?? [];
    const ref = { taskId: task.id, version: plan.version };
    const records = await this.store.all(ref);
    const list = streams.map((w) => ({ id: w.id, title: w.title, state: records.get(w.id)?.state ?? 'queued' }));
    const finished = list.filter((w) => w.state === 'done').length;
    const running = list.filter((w) => w.state === 'running').length;
    let usage = zeroUsage;
    for (const r of records.values()) usage = addUsage(usage, r.usage);
    const startedAt = (await this.store.startedAt(ref)) ?? Date.now();
    const seq = await this.store.nextSeq(ref);
    await this.deps.queues
      .emit({
        type: 'progress',
        taskId: task.id,
        runId,
        steps: plan.steps.map((s) => ({ title: s.title, status: 'pending' as const })),
        activity: `Workstreams: ${finished} of ${list.length} done, ${running} running`,
        elapsedMs: Math.max(0, Date.now() - startedAt),
        usage,
        seq,
        workstreams: list,
      })
      .catch((err) => this.deps.logger.warn({ err, taskId: task.id }, 'progress event dropped'));
  }

  private async processChild(job: Job<WorkstreamJob>, token: string | undefined, jobSignal?: AbortSignal) {
    const data = WorkstreamJobSchema.parse(job.data);
    const { state } = this.deps;
    const task = await state.getTask(data.taskId);
    const plan = task ? await state.getPlan(task.id, data.planVersion) : undefined;
    const w = plan?.workstreams?.find((x) => x.id === data.workstreamId);
    if (!task || !plan || !w)
      throw new UnrecoverableError(`workstream ${data.workstreamId} of ${data.taskId} is unknown`);
    const ref = { taskId: task.id, version: plan.version };
    if (isTerminal(task.state) || (await state.cancelRequested(task.id))) {
      await this.store.update(ref, w.id, (r) => ({ ...r, state: 'cancelled', endedAt: new Date().toISOString() }));
      throw new UnrecoverableError(`${ErrorCodes.cancelled}: the task ended before this workstream ran`);
    }
    // One of the task's parallel slots, or back to the queue for a moment (no attempt used).
    const holder = job.id ?? w.id;
    const childWallMs = childBudget(plan, this.maxParallel).maxWallTimeMs;
    const leaseMs = Math.max(30_000, Math.min(childWallMs + 60_000, 3_600_000));
    if (!(await this.store.takeSlot(task.id, holder, this.maxParallel, leaseMs))) {
      await job.moveToDelayed(Date.now() + 500, token);
      throw new DelayedError();
    }
    const renew = setInterval(
      () => void this.store.takeSlot(task.id, holder, this.maxParallel, leaseMs).catch(() => undefined),
      Math.max(5_000, leaseMs / 3),
    );
    renew.unref();
    const controller = new AbortController();
    const set = this.active.get(task.id) ?? new Set<AbortController>();
    set.add(controller);
    this.active.set(task.id, set);
    const signal = jobSignal ? AbortSignal.any([jobSignal, controller.signal]) : controller.signal;
    const attempt = job.attemptsMade + 1;
    const lastAttempt = attempt >= (job.opts.attempts ?? 1);
    try {
      await this.store.update(ref, w.id, (r) => ({
        ...r,
        state: 'running',
        attempts: attempt,
        startedAt: new Date().toISOString(),
      }));
      await this.deps.audit.append({
        type: 'workstream.started',
        taskId: task.id,
        data: { runId: data.runId, workstream: w.id, attempt, runner: this.deps.runnerId },
      });
      await this.emitProgress(task, plan, data.runId);
      const result = await this.runChild(task, plan, w, data.runId, signal);
      if (result.outcome.status === 'succeeded') {
        await this.store.update(ref, w.id, (r) => ({
          ...r,
          state: 'done',
          outputs: result.outputs,
          usage: addUsage(r.usage, result.outcome.checkpoint.usage),
          endedAt: new Date().toISOString(),
        }));
        await this.deps.audit.append({
          type: 'workstream.finished',
          taskId: task.id,
          data: {
            runId: data.runId,
            workstream: w.id,
            attempt,
            outcome: 'done',
            outputs: result.outputs.map((o) => ({ name: o.name, size: o.size, sha256: o.sha256 })),
            usage: result.outcome.checkpoint.usage,
          },
        });
        await this.emitProgress(task, plan, data.runId);
        return { outputs: result.outputs.map((o) => o.name) };
      }
      const reason =
        result.outcome.status === 'paused'
          ? `a workstream cannot wait for a person, and it needed to (${result.outcome.summary.slice(0, 300)})`
          : (result.outcome.failure?.message ?? result.outcome.summary);
      throw new HandoffError(result.outcome.failure?.code ?? workstreamFailedCode, reason);
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      const stop = abortCode(signal);
      if (stop === ErrorCodes.runnerStopping) {
        // Shutting down: the workstream starts over (a fresh sandbox) on another runner, at once.
        await this.store.update(ref, w.id, (r) => ({ ...r, state: 'queued' }));
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      const e = asHandoffError(err);
      const cancelled = stop === ErrorCodes.cancelled || e.code === ErrorCodes.cancelled;
      const message = (e.code === ErrorCodes.runTimeout ? `it reached its time limit: ${e.message}` : e.message).slice(
        0,
        1500,
      );
      const retrying = !cancelled && !lastAttempt;
      await this.store.update(ref, w.id, (r) => ({
        ...r,
        state: cancelled ? 'cancelled' : retrying ? 'queued' : 'failed',
        error: message,
        endedAt: new Date().toISOString(),
      }));
      await this.deps.audit.append({
        type: 'workstream.finished',
        taskId: task.id,
        data: {
          runId: data.runId,
          workstream: w.id,
          attempt,
          outcome: cancelled ? 'cancelled' : 'failed',
          code: e.code,
          error: message,
          ...(retrying ? { retrying: true } : {}),
        },
      });
      await this.emitProgress(task, plan, data.runId);
      if (cancelled) throw new UnrecoverableError(`${ErrorCodes.cancelled}: the workstream was cancelled`);
      throw new Error(`${e.code}: ${message}`);
    } finally {
      clearInterval(renew);
      set.delete(controller);
      if (set.size === 0 && this.active.get(task.id) === set) this.active.delete(task.id);
      await this.store.releaseSlot(task.id, holder).catch(() => undefined);
    }
  }

  /** One workstream: its own sandbox over its inputs, the agent loop, its files to the store. */
  private async runChild(
    task: Task,
    plan: Plan,
    w: Workstream,
    runId: string,
    parentSignal: AbortSignal,
  ): Promise<{ outcome: RunOutcome; outputs: WorkstreamOutput[] }> {
    const deps = this.deps;
    const budget = childBudget(plan, this.maxParallel);
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          new HandoffError(
            ErrorCodes.runTimeout,
            `a workstream may run ${Math.max(1, Math.round(budget.maxWallTimeMs / 1000))} s (its slice of the plan's wall time)`,
          ),
        ),
      budget.maxWallTimeMs,
    );
    const signal = AbortSignal.any([parentSignal, timeout.signal]);
    const wanted = w.inputs ? new Set(w.inputs) : undefined;
    const inputs = wanted ? task.inputs.filter((f) => wanted.has(f.name)) : task.inputs;
    const root = join(deps.workspacesDir, task.id, 'workstreams');
    const outputs: WorkstreamOutput[] = [];
    let sandbox: Sandbox | undefined;
    try {
      const policy = channelPolicy(deps, task);
      // The parent run's skills (same envelope, same channel policy): load_skill and the read-only mounts.
      const skills = runSkills({
        catalog: deps.skills,
        policy,
        envelope: plan.envelope,
        task,
        runId,
        audit: deps.audit,
        workstream: w.id,
      });
      const dir = await prepareWorkspace(root, w.id, inputs, deps.store);
      sandbox = await deps.driver.create(
        {
          taskId: task.id,
          label: `ws-${runId}-${w.id}-${Date.now().toString(36)}`,
          workspaceDir: dir,
          readOnlyWorkspace: false,
          limits: deps.limits,
          runnerId: deps.runnerId,
          ...(skills.mounts.length > 0 ? { readOnlyMounts: skills.mounts } : {}),
        },
        signal,
      );
      await deps.state.setSandboxOwner(sandbox.id, deps.runnerId);
      const box = sandbox;
      const redact = redactorFor(policy);
      const childPlan: Plan = {
        ...plan,
        summary: `Workstream "${w.title}" (${w.id}) of the approved plan: ${plan.summary}`,
        steps: [{ title: w.title, detail: w.brief, actions: ['read_files', 'create_files', 'run_commands'] }],
        deliverables: [],
        envelope: {
          ...plan.envelope,
          // Narrower, never wider: files, commands and skills of the envelope only; no web, connectors or questions.
          tools: plan.envelope.tools.filter((t) => childTools.has(t)),
          egressDomains: [],
          connectors: [],
          webFetch: false,
          webSearch: false,
          mayOverwrite: [],
          mayDelete: [],
          budget,
        },
        workstreams: undefined,
      };
      const cap = Math.floor(deps.maxArtifactBytesPerRun / Math.max(1, plan.workstreams?.length ?? 1));
      let handedBack = 0;
      const host: ToolHost = {
        exec: (argv, o) => box.exec(argv, { ...o, signal }),
        deliver: async (path, name) => {
          const problem = fileNameProblem(name);
          if (problem)
            throw new HandoffError(ErrorCodes.invalidInput, `cannot hand back ${JSON.stringify(name)}: ${problem}`);
          const { stream, size } = await box.readFileStream(path);
          if (handedBack + size > cap) {
            stream.destroy();
            throw new HandoffError(ErrorCodes.outputLimit, `a workstream may hand back at most ${cap} bytes`);
          }
          const key = `tasks/${task.id}/ws/${runId}/workstreams/${w.id}/${newId('f')}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}`;
          const stored = await deps.store.put(key, stream, {
            mediaType: 'application/octet-stream',
            maxBytes: cap - handedBack,
          });
          handedBack += stored.size;
          const i = outputs.findIndex((o) => o.name === name);
          const out = { name, key, size: stored.size, sha256: stored.sha256 };
          if (i >= 0) outputs[i] = out;
          else outputs.push(out);
          return { name, size: stored.size };
        },
        changeInput: async () => {
          throw new HandoffError(ErrorCodes.invalidInput, 'a workstream cannot change input files');
        },
      };
      const checkpoint: Checkpoint = {
        runId: `${runId}-${w.id}`,
        taskId: task.id,
        planVersion: plan.version,
        turn: 0,
        messages: [],
        usage: zeroUsage,
        stepStatus: ['pending'],
        toolCalls: [],
        delivered: [],
        partialResults: [],
        notes: [
          `You are workstream "${w.id}" (${w.title}), one of ${plan.workstreams?.length ?? 1} parts of this task running in parallel, each in its own sandbox. Do only this part: ${w.brief}\nHand your result files back with deliver_artifact (they go to the merge step, not to the thread), then end with one or two sentences on what you found.`,
        ],
        continuations: 0,
        redactions: {},
        startedAt: new Date().toISOString(),
        elapsedMs: 0,
      };
      // What the parent run gets: the plan's snapshot of the channel's settings (a brief: the current ones).
      const channelContext = await runChannelContext(deps.channelSettings, task, plan, policy.instructions);
      // The parent run's grants and the channel's, checked at use as in the parent; `grant.used` names the workstream.
      const grantCheck = standingGrantCheck(deps, task, runId, w.id);
      const outcome = await runAgentLoop({
        provider: deps.provider,
        host,
        task: { ...task, inputs },
        plan: childPlan,
        ...(channelContext ? { channelContext } : {}),
        ...(grantCheck ? { standingGrant: grantCheck } : {}),
        checkpoint,
        signal,
        commandTimeoutMs: Math.min(deps.commandTimeoutMs, budget.maxWallTimeMs),
        prices: deps.prices,
        trustLevels: policy.trustLevels,
        maxTokensPerCall: deps.maxTokensPerCall,
        questionTimeoutMs: deps.questionTimeoutMs,
        approvalExpiryMs: deps.approvalExpiryMs,
        ...(redact ? { redact } : {}),
        ...(skills.tools ? { extraTools: skills.tools } : {}),
        // A workstream starts over when it is retried: nothing to resume from.
        save: async () => undefined,
        progress: () => undefined,
        onToolCall: (record, input) => {
          deps.metrics?.toolCalls.inc({ kind: record.action, trust_level: record.trust, decision: record.decision });
          return deps.audit
            .append({
              type: 'tool.call',
              taskId: task.id,
              data: { ...record, workstream: w.id, input: abbreviateStrings(input, 500, 200) },
            })
            .then(() => undefined);
        },
      });
      return { outcome, outputs };
    } finally {
      clearTimeout(timer);
      if (sandbox) {
        const box = sandbox;
        await box
          .destroy()
          .then(() => deps.state.forgetSandbox(box.id))
          .catch((err) => deps.logger.warn({ err }, 'could not remove a workstream sandbox'));
      }
      await rm(join(root, w.id), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Idempotent: stops taking workstreams and hands running ones back to the queue. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopping = new HandoffError(ErrorCodes.runnerStopping, 'the runner is shutting down', { retryable: true });
      const closed = this.worker.close();
      for (const set of this.active.values()) for (const c of set) c.abort(stopping);
      await Promise.allSettled([closed]);
      await this.flowsMade?.close();
    })();
    return this.closing;
  }
}

function isFinal(state: WorkstreamRecord['state'] | undefined): boolean {
  return state === 'done' || state === 'failed' || state === 'cancelled';
}

/**
 * A workstream's slice of the plan's budget: tokens and cost split evenly between the
 * workstreams and the merge step (n + 1 parts); wall time split between the waves of
 * workstreams the parallel limit allows and the merge (ceil(n / limit) + 1 parts).
 */
export function childBudget(plan: Plan, maxParallel: number): Plan['envelope']['budget'] {
  const n = Math.max(1, plan.workstreams?.length ?? 1);
  const waves = Math.ceil(n / Math.max(1, maxParallel));
  const b = plan.envelope.budget;
  return {
    maxTokens: Math.max(1, Math.floor(b.maxTokens / (n + 1))),
    maxCostUsd: b.maxCostUsd / (n + 1),
    maxWallTimeMs: Math.max(1000, Math.floor(b.maxWallTimeMs / (waves + 1))),
  };
}

/** The ids a workstream's span carries (job data is validated later, by the processor). */
function workstreamSpan(data: Partial<WorkstreamJob>): Record<string, string> {
  return {
    ...(data.taskId ? { 'handoff.task.id': data.taskId } : {}),
    ...(data.runId ? { 'handoff.run.id': data.runId } : {}),
    ...(data.workstreamId ? { 'handoff.workstream.id': data.workstreamId } : {}),
  };
}
