import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { abbreviateStrings, type RunOutcome, runAgentLoop, type ToolHost } from '../agent/index.ts';
import {
  type ActionDecision,
  addUsage,
  asHandoffError,
  type Checkpoint,
  costUsd,
  ErrorCodes,
  fileNameProblem,
  HandoffError,
  isTerminal,
  mediaTypeFor,
  type Task,
  transition,
  zeroUsage,
} from '../core/index.ts';
import type { RunJob } from '../queue/index.ts';
import { channelPolicy, type RunnerDeps, redactorFor } from './plan-processor.ts';
import type { Sandbox } from './sandbox/index.ts';
import { prepareWorkspace } from './workspace.ts';

/** How a run parks itself while a person decides on a call, without holding a worker slot. */
export interface RunControl {
  /** Moves the job to the delayed set until `untilMs`; an approval promotes it sooner. */
  park(untilMs: number): Promise<void>;
}

/** Thrown after parking: the job goes back to BullMQ as delayed, not failed. */
export class RunParked extends Error {
  constructor() {
    super('the run is waiting for an approval');
    this.name = 'RunParked';
  }
}

/**
 * Runs one approved plan version: resumes from its checkpoint when there is one,
 * gives the agent a hardened sandbox over the task's workspace, streams progress,
 * stores deliverables, parks while a person decides on a call, and always ends with
 * one clear outcome.
 */
export async function processRunJob(
  deps: RunnerDeps,
  job: RunJob,
  signal: AbortSignal,
  control: RunControl,
): Promise<void> {
  const { state, audit, queues } = deps;
  let task = await state.requireTask(job.taskId);
  if (isTerminal(task.state)) {
    // Cancelled while parked: the container kept for the approval goes now.
    const kept = (await state.getCheckpoint(job.runId))?.sandboxId;
    if (kept) await (await deps.driver.attach(kept))?.destroy();
    return;
  }
  let actionDecision: ActionDecision | undefined;
  if (task.state === 'queued') {
    task = (await state.updateTask(task.id, (t) => transition(t, 'running', new Date(), { runId: job.runId }))).after;
    await audit.append({
      type: 'run.started',
      taskId: task.id,
      data: { runId: job.runId, planVersion: job.planVersion },
    });
  } else if (task.state === 'waiting_for_approval') {
    const waiting = await state.getCheckpoint(job.runId);
    const pending = waiting?.pendingAction;
    if (!pending)
      throw new HandoffError(ErrorCodes.notFound, `run ${job.runId} waits for an approval that is not recorded`);
    actionDecision = await state.getActionDecision(job.runId, pending.id);
    if (!actionDecision) {
      if (Date.now() < Date.parse(pending.expiresAt)) {
        await control.park(Date.parse(pending.expiresAt));
        throw new RunParked();
      }
      await expireRun(deps, task, job.runId, pending.reason, pending.expiresAt);
      return;
    }
    task = (await state.updateTask(task.id, (t) => transition(t, 'running', new Date()))).after;
    await audit.append({
      type: 'run.resumed_after_decision',
      taskId: task.id,
      actor: actionDecision.by.id,
      data: { approvalId: pending.id, outcome: actionDecision.outcome },
    });
  } else if (task.state !== 'running') {
    return;
  }
  const plan = await state.getPlan(task.id, job.planVersion);
  if (!plan) throw new HandoffError(ErrorCodes.notFound, `plan version ${job.planVersion} of ${task.id} is missing`);

  const resumed = await state.getCheckpoint(job.runId);
  const checkpoint: Checkpoint = resumed ?? {
    runId: job.runId,
    taskId: task.id,
    planVersion: plan.version,
    turn: 0,
    messages: [],
    usage: zeroUsage,
    stepStatus: plan.steps.map(() => 'pending'),
    toolCalls: [],
    delivered: [],
    partialResults: [],
    redactions: {},
    startedAt: new Date().toISOString(),
    elapsedMs: 0,
  };
  if (resumed && !actionDecision)
    await audit.append({ type: 'run.resumed', taskId: task.id, data: { runId: job.runId, turn: resumed.turn } });

  // Wall time counts across resumes: the budget is for the run, not for this attempt.
  const remainingMs = Math.max(1000, plan.envelope.budget.maxWallTimeMs - checkpoint.elapsedMs);
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new HandoffError(
          ErrorCodes.runTimeout,
          `the run reached its time limit of ${Math.round(plan.envelope.budget.maxWallTimeMs / 60000)} min`,
        ),
      ),
    remainingMs,
  );
  const runSignal = AbortSignal.any([signal, timeout.signal]);
  const attemptStart = Date.now();
  let seq = 0;
  let lastProgress = 0;
  let latest = checkpoint;

  let sandbox: Sandbox | undefined;
  let outcome: RunOutcome;
  let keepSandbox = false;
  try {
    const workspace = await prepareWorkspace(deps.workspacesDir, task, deps.store);
    // A run that waited for an approval gets its own container back, /tmp and all.
    sandbox = checkpoint.sandboxId ? await deps.driver.attach(checkpoint.sandboxId) : undefined;
    // Whatever else this task left running (a runner that died mid-run) goes now.
    await deps.driver.removeTaskSandboxes(task.id, sandbox?.id);
    sandbox ??= await deps.driver.create(
      {
        taskId: task.id,
        label: `run-${job.runId}-${Date.now().toString(36)}`,
        workspaceDir: workspace,
        readOnlyWorkspace: false,
        limits: deps.limits,
      },
      runSignal,
    );
    const box = sandbox;
    const redact = redactorFor(channelPolicy(deps, task));
    const host: ToolHost = {
      exec: (argv, o) => box.exec(argv, { ...o, signal: runSignal }),
      deliver: (path, name) => deliver(deps, task, box, path, name),
      ask: (question) => waitForAnswer(deps, task, job.runId, question, runSignal),
      changeInput: (name, content) => changeInput(workspace, name, content),
    };
    outcome = await runAgentLoop({
      provider: deps.provider,
      host,
      task,
      plan,
      checkpoint,
      signal: runSignal,
      commandTimeoutMs: deps.commandTimeoutMs,
      prices: deps.prices,
      trustLevels: channelPolicy(deps, task).trustLevels,
      ...(redact ? { redact } : {}),
      approvalExpiryMs: channelPolicy(deps, task).approvalExpiryMs ?? deps.approvalExpiryMs,
      ...(actionDecision ? { actionDecision } : {}),
      save: async (cp) => {
        latest = { ...cp, elapsedMs: checkpoint.elapsedMs + (Date.now() - attemptStart) };
        await state.saveCheckpoint(latest);
      },
      progress: (update) => {
        // At most one progress event a second per run; the surface coalesces further.
        const now = Date.now();
        if (now - lastProgress < 1000 && !update.outputTail) return;
        lastProgress = now;
        seq += 1;
        void queues
          .emit({
            type: 'progress',
            taskId: task.id,
            runId: job.runId,
            steps: plan.steps.map((s, i) => ({ title: s.title, status: update.stepStatus[i] ?? 'pending' })),
            ...(update.activity ? { activity: update.activity.slice(0, 500) } : {}),
            ...(update.outputTail ? { outputTail: update.outputTail.slice(-4000) } : {}),
            elapsedMs: checkpoint.elapsedMs + (now - attemptStart),
            usage: update.usage,
            seq: (checkpoint.turn + 1) * 100_000 + seq,
          })
          .catch((err) => deps.logger.warn({ err, taskId: task.id }, 'progress event dropped'));
      },
      onToolCall: (record, input) => {
        void audit
          .append({
            type: 'tool.call',
            taskId: task.id,
            data: { ...record, input: abbreviateStrings(input, 500, 200) },
          })
          .catch((err) => deps.logger.error({ err, taskId: task.id }, 'audit append failed'));
      },
    });
  } catch (err) {
    const e = asHandoffError(err);
    // Infrastructure trouble before anything ran is worth another attempt; BullMQ backs off.
    if (e.retryable && !runSignal.aborted) throw e;
    outcome = {
      status: 'failed',
      summary: e.message,
      failure: { code: e.code, message: plainReason(e) },
      checkpoint: latest,
    };
    if (outcome.status === 'paused') keepSandbox = true;
  } finally {
    clearTimeout(timer);
    if (!keepSandbox) await sandbox?.destroy();
  }

  if (outcome.status === 'paused') {
    const pending = outcome.checkpoint.pendingAction!;
    await state.saveCheckpoint({ ...latest, sandboxId: sandbox?.id });
    await state.updateTask(task.id, (t) => transition(t, 'waiting_for_approval', new Date()));
    await audit.append({
      type: 'action.approval_requested',
      taskId: task.id,
      data: {
        approvalId: pending.id,
        tool: pending.tool,
        action: pending.action,
        trust: pending.trust,
        reason: pending.reason,
        input: pending.input,
        expiresAt: pending.expiresAt,
      },
    });
    // Parked before the card is posted, so the quickest click still finds a delayed job to promote.
    await control.park(Date.parse(pending.expiresAt));
    await queues.emit({ type: 'approval.needed', taskId: task.id, runId: job.runId, approvalId: pending.id });
    throw new RunParked();
  }

  const cancelled = outcome.failure?.code === ErrorCodes.cancelled;
  const finalState = outcome.status === 'succeeded' ? 'succeeded' : cancelled ? 'cancelled' : 'failed';
  const cp = outcome.checkpoint;
  await state.saveCheckpoint({ ...cp, elapsedMs: checkpoint.elapsedMs + (Date.now() - attemptStart) });
  await state.updateTask(task.id, (t) =>
    isTerminal(t.state)
      ? t
      : transition(t, finalState, new Date(), {
          usage: addUsage(t.usage, cp.usage),
          costUsd: t.costUsd + costUsd(cp.usage, deps.prices),
          ...(outcome.failure ? { failure: outcome.failure } : {}),
          resultSummary: outcome.status === 'succeeded' ? outcome.summary : undefined,
        }),
  );
  const runCost = costUsd(cp.usage, deps.prices);
  if (runCost > 0) await state.addChannelCost(task.conversation, runCost, new Date());
  if (Object.keys(cp.redactions ?? {}).length > 0) {
    await audit.append({ type: 'run.redactions', taskId: task.id, data: { runId: job.runId, counts: cp.redactions } });
  }
  await audit.append({
    type: `run.${finalState}`,
    taskId: task.id,
    data: {
      runId: job.runId,
      usage: cp.usage,
      costUsd: costUsd(cp.usage, deps.prices),
      ...(outcome.failure ? { failure: outcome.failure } : {}),
    },
  });
  await queues.emit({ type: 'result', taskId: task.id, runId: job.runId });
}

/** A pending approval ran out: the run stops cleanly and the thread says why. */
async function expireRun(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  reason: string,
  expiresAt: string,
): Promise<void> {
  const message = `The run stopped: nobody decided on "${reason}" before the approval expired (${expiresAt.replace('T', ' ').slice(0, 16)} UTC).`;
  const cp = await deps.state.getCheckpoint(runId);
  if (cp?.sandboxId) await (await deps.driver.attach(cp.sandboxId))?.destroy();
  await deps.state.updateTask(task.id, (t) =>
    isTerminal(t.state)
      ? t
      : transition(t, 'failed', new Date(), { failure: { code: ErrorCodes.approvalExpired, message } }),
  );
  await deps.audit.append({ type: 'action.approval_expired', taskId: task.id, data: { runId, reason } });
  await deps.queues.emit({ type: 'result', taskId: task.id, runId });
}

/** An approved change to an input: made on the workspace, outside the sandbox, where inputs are read-only. */
async function changeInput(workspace: string, name: string, content: string | undefined): Promise<void> {
  const problem = fileNameProblem(name);
  if (problem)
    throw new HandoffError(ErrorCodes.invalidInput, `cannot change input ${JSON.stringify(name)}: ${problem}`);
  const path = join(workspace, 'in', name);
  if (content === undefined) await rm(path, { force: true });
  else await writeFile(path, content);
}

/** Streams one deliverable out of the sandbox into the artifact store and onto the task. */
async function deliver(deps: RunnerDeps, task: Task, sandbox: Sandbox, path: string, name: string) {
  const problem = fileNameProblem(name);
  if (problem) throw new HandoffError(ErrorCodes.invalidInput, `cannot deliver ${JSON.stringify(name)}: ${problem}`);
  const { stream } = await sandbox.readFileStream(path);
  const key = `tasks/${task.id}/out/${name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const mediaType = mediaTypeFor(name);
  const stored = await deps.store.put(key, stream, { mediaType });
  const artifact = {
    name,
    mediaType,
    size: stored.size,
    sha256: stored.sha256,
    key,
    createdAt: new Date().toISOString(),
  };
  // Recorded at once, so a file already delivered is never lost if the run fails later.
  await deps.state.updateTask(task.id, (t) => ({
    ...t,
    artifacts: [...t.artifacts.filter((a) => a.name !== name), artifact],
  }));
  await deps.audit.append({
    type: 'artifact.stored',
    taskId: task.id,
    data: { name, size: stored.size, sha256: stored.sha256 },
  });
  return { name, size: stored.size };
}

/** Posts the agent's question in the thread and waits for a reply (or the time limit). */
async function waitForAnswer(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  question: string,
  signal: AbortSignal,
): Promise<string> {
  await deps.queues.emit({ type: 'question', taskId: task.id, runId, question });
  await deps.audit.append({ type: 'run.question', taskId: task.id, data: { question } });
  const deadline = Date.now() + deps.questionTimeoutMs;
  while (Date.now() < deadline) {
    if (signal.aborted)
      throw signal.reason instanceof HandoffError
        ? signal.reason
        : new HandoffError(ErrorCodes.cancelled, 'the run was cancelled');
    const answer = await deps.state.takeAnswer(task.id);
    if (answer) {
      await deps.audit.append({
        type: 'run.answer',
        taskId: task.id,
        actor: answer.by,
        data: { length: answer.text.length },
      });
      return answer.text;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return 'No one answered within the time limit. Proceed with your best judgement and say what you assumed.';
}

function plainReason(e: HandoffError): string {
  switch (e.code) {
    case ErrorCodes.sandboxUnavailable:
      return `The sandbox could not be started: ${e.message}`;
    case ErrorCodes.modelFailed:
      return `The model could not be reached: ${e.message}`;
    default:
      return e.message;
  }
}
