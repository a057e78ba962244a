import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  abbreviateStrings,
  ConnectorHub,
  combineExtraTools,
  type QuestionOutcome,
  type RunOutcome,
  runAgentLoop,
  type ToolHost,
} from '../agent/index.ts';
import {
  type ActionDecision,
  abortCode,
  addUsage,
  asHandoffError,
  type Checkpoint,
  costUsd,
  ErrorCodes,
  fileNameProblem,
  HandoffError,
  isTerminal,
  mediaTypeFor,
  newId,
  type OutputFile,
  type Plan,
  type Task,
  transition,
  type WorkspaceManifest,
  zeroUsage,
} from '../core/index.ts';
import { withSpan } from '../observability/index.ts';
import type { RunJob } from '../queue/index.ts';
import { formatBytes } from '../storage/index.ts';
import { memoryProposalTools, runChannelContext, withProposalTool } from './channel-settings.ts';
import { askToConnect, channelPolicy, connectionHooks, type RunnerDeps, redactorFor } from './plan-processor.ts';
import { type RunEgress, startRunEgress } from './run-egress.ts';
import { standingGrantCheck } from './run-grants.ts';
import { runSkills } from './run-skills.ts';
import { connectorsFor, connectorTrustPolicy, extraToolsFor } from './run-tools.ts';
import type { Sandbox } from './sandbox/index.ts';
import { prepareWorkspace, removeWorkspace, workspaceDir } from './workspace.ts';
import type { FanIn } from './workstreams.ts';

/** How a run parks itself while a person decides on a call, without holding a worker slot. */
export interface RunControl {
  /** Moves the job to the delayed set until `untilMs`; an approval or an answer promotes it sooner. */
  park(untilMs: number): Promise<void>;
  /**
   * For a plan with workstreams (workstreams.ts): fans out, waits for the children (throws
   * `RunWaitingForWorkstreams`), and returns what the merge starts from, or `ended`.
   */
  workstreams?(task: Task, plan: Plan): Promise<FanIn | 'ended'>;
}

/** Thrown after parking: the job goes back to BullMQ as delayed, not failed. */
export class RunParked extends Error {
  constructor() {
    super('the run is waiting for a person');
    this.name = 'RunParked';
  }
}

/**
 * Thrown when this runner must let go of a run without deciding its outcome: it is
 * shutting down (the run is handed back to the queue at once) or another runner took
 * it over. The checkpoint holds everything; nothing about the task is written.
 */
export class RunHandedBack extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RunHandedBack';
  }
}

/** The workspace's durable state while a run works; saved with every checkpoint. */
interface WorkspaceState {
  manifest: WorkspaceManifest;
}

/** A task's leftover sandboxes being cleared and its inputs being laid out, side by side. */
interface Layout {
  cleared: Promise<unknown>;
  /** The workspace directory once its inputs are in place; none when a kept sandbox has them. */
  workspace: Promise<string> | undefined;
  /** Both done, either way. */
  settled: Promise<void>;
}

function layOut(
  deps: RunnerDeps,
  task: Task,
  inputs: ReadonlyArray<{ name: string; key: string }> | undefined,
  keep: { id?: string; label: string },
): Layout {
  const cleared = deps.driver.removeTaskSandboxes(task.id, keep.id, keep.label);
  const workspace = inputs ? prepareWorkspace(deps.workspacesDir, task.id, inputs, deps.store) : undefined;
  // Each is awaited where it is used; a failure is that step's to report.
  cleared.catch(() => undefined);
  workspace?.catch(() => undefined);
  return { cleared, workspace, settled: Promise.allSettled([cleared, workspace]).then(() => undefined) };
}

/**
 * Runs one approved plan version: resumes from its checkpoint when there is one, gives
 * the agent a hardened sandbox over the task's workspace (kept, paused, while the run
 * waits for a person; rebuilt from the artifact store on any runner otherwise), streams
 * progress, stores deliverables, parks while a person decides or answers, and always
 * ends with one clear outcome.
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
    // Cancelled while parked: the container kept for the wait goes now, with the workspace.
    await dropKeptSandbox(deps, job.runId);
    await removeWorkspace(deps.workspacesDir, task.id);
    return;
  }
  let actionDecision: ActionDecision | undefined;
  let questionOutcome: QuestionOutcome | undefined;
  /** A new run's plan, read while the task is marked running. */
  let planRead: Promise<Plan | undefined> | undefined;
  /** A new run's `run.started` record, written while the run is claimed and awaited with the claim. */
  let runStarted: Promise<unknown> | undefined;
  const isNew = task.state === 'queued';
  if (task.state === 'queued') {
    planRead = state.getPlan(task.id, job.planVersion);
    planRead.catch(() => undefined);
    task = (await state.updateTask(task.id, (t) => transition(t, 'running', new Date(), { runId: job.runId }))).after;
    runStarted = audit.append({
      type: 'run.started',
      taskId: task.id,
      data: { runId: job.runId, planVersion: job.planVersion, runner: deps.runnerId },
    });
    runStarted.catch(() => undefined);
    deps.logger.info({ planVersion: job.planVersion, runner: deps.runnerId }, 'run started');
  } else if (task.state === 'waiting_for_approval') {
    const pending = (await state.getCheckpoint(job.runId, { messages: false }))?.pendingAction;
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
      data: { approvalId: pending.id, outcome: actionDecision.outcome, runner: deps.runnerId },
    });
  } else if (task.state === 'waiting_for_answer') {
    const question = (await state.getCheckpoint(job.runId, { messages: false }))?.pendingQuestion;
    if (!question)
      throw new HandoffError(ErrorCodes.notFound, `run ${job.runId} waits for an answer that is not recorded`);
    const answer = await state.getAnswer(job.runId, question.id);
    if (answer) questionOutcome = answer;
    else if (Date.now() < Date.parse(question.expiresAt)) {
      await control.park(Date.parse(question.expiresAt));
      throw new RunParked();
    } else questionOutcome = { questionId: question.id, expired: true };
    task = (await state.updateTask(task.id, (t) => transition(t, 'running', new Date()))).after;
    await audit.append({
      type: answer ? 'run.resumed_after_answer' : 'run.question_expired',
      taskId: task.id,
      ...(answer ? { actor: answer.by.id } : {}),
      data: { questionId: question.id, runner: deps.runnerId },
    });
  } else if (task.state !== 'running') {
    return;
  }
  const plan = await (planRead ?? state.getPlan(task.id, job.planVersion));
  if (!plan) throw new HandoffError(ErrorCodes.notFound, `plan version ${job.planVersion} of ${task.id} is missing`);
  /** Names this attempt's sandbox; the removal of what the task left spares it. */
  const label = `run-${job.runId}-${Date.now().toString(36)}`;
  // A new run without workstreams lays out its inputs (and clears what this task left) while
  // it claims the run and reads the rest; a run with workstreams must not: its children's
  // sandboxes are the task's too, and they are running.
  const early = isNew && !plan.workstreams?.length ? layOut(deps, task, task.inputs, { label }) : undefined;
  // Workstreams first: the run job waits for its children, then runs the merge step.
  if (plan.workstreams?.length) await runStarted;
  const fanIn = plan.workstreams?.length && control.workstreams ? await control.workstreams(task, plan) : undefined;
  if (fanIn === 'ended') return;

  // From here on this attempt alone may write the run's checkpoint; a runner this one
  // took over from finds out at its next save and lets go.
  const owner = newId('o');
  // Sent together: the read comes after the claim on the same connection.
  const [, resumed] = await Promise.all([
    state.claimRun(job.runId, owner),
    state.getCheckpoint(job.runId),
    runStarted,
  ]).catch(async (err: unknown) => {
    // The attempt ends here: nothing it started may go on writing the workspace.
    await early?.settled;
    throw err;
  });
  const checkpoint: Checkpoint = resumed ?? {
    runId: job.runId,
    taskId: task.id,
    planVersion: plan.version,
    turn: 0,
    messages: [],
    // After workstreams: their usage and time count against the plan's budget too.
    usage: fanIn?.usage ?? zeroUsage,
    stepStatus: plan.steps.map(() => 'pending'),
    toolCalls: [],
    delivered: [],
    partialResults: [],
    notes: fanIn?.notes ?? [],
    continuations: 0,
    redactions: {},
    startedAt: new Date().toISOString(),
    elapsedMs: fanIn?.elapsedMs ?? 0,
  };
  const ws: WorkspaceState = {
    // The request's files are the inputs until a person approves changing one.
    manifest: checkpoint.workspace ?? {
      inputs: task.inputs,
      outputs: [],
      deliveredBytes: 0,
    },
  };
  if (resumed && !actionDecision && !questionOutcome)
    await audit.append({
      type: 'run.resumed',
      taskId: task.id,
      data: { runId: job.runId, turn: resumed.turn, runner: deps.runnerId },
    });

  // Wall time counts across resumes, and waiting for a person does not count: the budget is for work.
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
  let latest: Checkpoint = { ...checkpoint, workspace: ws.manifest };
  const save = async (cp: Checkpoint) => {
    latest = { ...cp, workspace: ws.manifest, elapsedMs: checkpoint.elapsedMs + (Date.now() - attemptStart) };
    await state.saveCheckpoint(latest, owner);
  };

  let sandbox: Sandbox | undefined;
  /** The run's sandbox, once it is there; a new run's is made while its first model request runs. */
  let boxReady: Promise<Sandbox> | undefined;
  let acquireError: unknown;
  const acquireFailed = new AbortController();
  let hub: ConnectorHub | undefined;
  let egress: RunEgress | undefined;
  let outcome: RunOutcome;
  let keepSandbox = false;
  try {
    // Web access first: a new sandbox is created with the proxy's socket mounted, and a kept
    // one finds the proxy listening again at the same path.
    egress = await startRunEgress({
      envelope: plan.envelope,
      granted: checkpoint.egressGranted ?? [],
      egressLevel: channelPolicy(deps, task).trustLevels.network_egress,
      workspacesDir: deps.workspacesDir,
      runId: job.runId,
      taskId: task.id,
      audit,
      logger: deps.logger,
      ...(deps.egressNetwork ? { network: deps.egressNetwork } : {}),
    });
    // The channel's skills: load_skill, and their folders mounted read-only under /skills.
    const skills = runSkills({
      catalog: deps.skills,
      policy: channelPolicy(deps, task),
      envelope: plan.envelope,
      task,
      runId: job.runId,
      audit,
    });
    // A run that waited for a person gets its own container back, /tmp and all.
    const keptId = checkpoint.sandboxId;
    if (keptId) {
      sandbox = await deps.driver.attach(keptId);
      if (sandbox) await state.setSandboxOwner(sandbox.id, deps.runnerId);
      await state.releaseSandbox(keptId);
      checkpoint.sandboxId = undefined;
    }
    const egressSocketDir = egress.socketDir;
    const acquire = async (): Promise<Sandbox> => {
      // Whatever else this task left (a runner that died mid-run) goes while the inputs are laid
      // out and the new sandbox is made (a pool claim starts before the inputs are all there).
      // The early layout holds a new run's inputs; a run with a checkpoint has its own manifest
      // (and maybe a kept sandbox), laid out once an early one is done, so two never write at once.
      if (early && resumed) await early.settled;
      const { cleared, workspace } =
        early && !resumed
          ? early
          : layOut(deps, task, sandbox ? undefined : ws.manifest.inputs, { id: sandbox?.id, label });
      try {
        if (sandbox) {
          await cleared;
          return sandbox;
        }
        const workspaceReady = workspace!.then((dir) => fanIn?.layout(dir));
        workspaceReady.catch(() => undefined);
        const making = deps.driver.create(
          {
            taskId: task.id,
            label,
            workspaceDir: workspaceDir(deps.workspacesDir, task.id),
            workspaceReady,
            readOnlyWorkspace: false,
            limits: deps.limits,
            runnerId: deps.runnerId,
            ...(egressSocketDir ? { egressSocketDir } : {}),
            ...(skills.mounts.length > 0 ? { readOnlyMounts: skills.mounts } : {}),
          },
          runSignal,
        );
        const [madeStep, clearedStep] = await Promise.allSettled([making, cleared]);
        if (madeStep.status === 'rejected') throw madeStep.reason;
        const made = madeStep.value;
        // From here the run's cleanup removes it, whatever fails next.
        sandbox = made;
        if (clearedStep.status === 'rejected') throw clearedStep.reason;
        await Promise.all([state.setSandboxOwner(made.id, deps.runnerId), restoreOutputs(deps, made, ws)]);
        return made;
      } finally {
        // Nothing writes the workspace once this returns or throws.
        await workspace?.catch(() => undefined);
      }
    };
    if (!sandbox && resumed && resumed.messages.length > 0) {
      // A resumed run tells the model what the new sandbox lost, so it has the sandbox first.
      boxReady = Promise.resolve(await acquire());
      checkpoint.notes = [
        ...(checkpoint.notes ?? []),
        keptId
          ? `while the run waited, its sandbox was replaced (it is kept for at most ${Math.round(deps.pausedSandboxTtlMs / 60_000)} min, or the run moved to another runner): files in /tmp and any running processes are gone; /workspace/out was restored as of your last tool call.`
          : 'the run was resumed in a new sandbox (its runner stopped): files in /tmp and any running processes are gone; /workspace/out was restored as of your last completed tool call.',
      ];
    } else if (!sandbox) {
      // A new run's first model request goes out while its sandbox is made (or claimed from the
      // pool): nothing in it depends on the sandbox, and the first tool call waits for it. A
      // sandbox that cannot be made stops the run as it did before, with its own error.
      boxReady = acquire();
      boxReady.catch((err: unknown) => {
        acquireError = err;
        acquireFailed.abort(err);
      });
    } else boxReady = Promise.resolve(await acquire());
    const box = () => boxReady!;
    const policy = channelPolicy(deps, task);
    const redact = redactorFor(policy);
    // One client per connector the approved plan uses, for this attempt only.
    const connectorConfigs = connectorsFor(deps.connectors ?? [], policy, task, plan.envelope);
    if (connectorConfigs.length > 0) {
      hub = await ConnectorHub.open({
        configs: connectorConfigs,
        policy: connectorTrustPolicy(policy),
        ...connectionHooks(deps, task),
        signal: runSignal,
      });
      await askToConnect(deps, task, hub.needsConnection);
      deps.logger.info(
        {
          taskId: task.id,
          runId: job.runId,
          connectors: connectorConfigs.map((c) => c.name),
          tools: hub.tools().length,
        },
        'connectors started',
      );
      if (hub.problems.length > 0) {
        deps.logger.warn({ taskId: task.id, problems: hub.problems }, 'some connectors could not be started');
        await audit.append({
          type: 'connector.unavailable',
          taskId: task.id,
          data: { runId: job.runId, problems: hub.problems.map((p) => p.slice(0, 500)) },
        });
        checkpoint.notes = [
          ...(checkpoint.notes ?? []),
          `some connectors could not be started, so their tools are missing: ${hub.problems.join('; ').slice(0, 1500)}`,
        ];
      }
    }
    // A brief has no result card to accept proposals on: only a task's run may propose facts.
    const memoryTools =
      deps.channelSettings && !task.brief
        ? memoryProposalTools({
            store: deps.channelSettings,
            audit,
            task,
            runId: job.runId,
            redactionKinds: policy.redaction?.enabled ? policy.redaction.kinds : [],
          })
        : undefined;
    const grantCheck = standingGrantCheck(deps, task, job.runId);
    const extraTools = combineExtraTools(
      extraToolsFor(hub, plan.envelope, egress.webFetch, policy.trustLevels.network_egress),
      memoryTools,
      skills.tools,
    );
    const channelContext = await runChannelContext(deps.channelSettings, task, plan, policy.instructions);
    const web = egress;
    const host: ToolHost = {
      exec: async (argv, o) => explainFullDisk(await (await box()).exec(argv, { ...o, signal: runSignal }), deps),
      deliver: async (path, name) =>
        deliver(deps, task, job.runId, await box(), path, name, ws, plan.envelope.deliverableTypes),
      changeInput: (name, content) => changeInput(deps, task, job.runId, name, content, ws),
      threadMessages: () => state.threadMessages(task.id),
      consumeThreadMessages: (count) => state.consumeThreadMessages(task.id, count),
      syncOutputs: async () => syncOutputs(deps, task.id, job.runId, await box(), ws),
      takeHeldEgress: () => web.takeHeld(),
      grantEgress: (domains) => web.grant(domains),
    };
    outcome = await runAgentLoop({
      provider: deps.provider,
      host,
      task,
      plan: memoryTools ? withProposalTool(plan) : plan,
      ...(channelContext ? { channelContext } : {}),
      checkpoint,
      // A sandbox that could not be made stops the loop, even in the middle of a model request.
      signal: AbortSignal.any([runSignal, acquireFailed.signal]),
      commandTimeoutMs: deps.commandTimeoutMs,
      prices: deps.prices,
      trustLevels: policy.trustLevels,
      maxTokensPerCall: deps.maxTokensPerCall,
      questionTimeoutMs: deps.questionTimeoutMs,
      ...(redact ? { redact } : {}),
      ...(extraTools ? { extraTools } : {}),
      ...(plan.envelope.webSearch && plan.envelope.egressDomains.length > 0
        ? {
            serverTools: [
              {
                type: 'web_search_20250305' as const,
                name: 'web_search' as const,
                // The API admits sub-domains of a listed domain; `*.example.com` becomes example.com.
                allowed_domains: [...new Set(plan.envelope.egressDomains.map((d) => d.replace(/^\*\./, '')))],
                max_uses: 20,
              },
            ],
            onServerToolUse: async (use: { name: string; input: unknown }) => {
              await audit.append({
                type: 'tool.web_search',
                taskId: task.id,
                data: {
                  runId: job.runId,
                  tool: use.name,
                  input: abbreviateStrings((use.input ?? {}) as Record<string, unknown>, 500, 200),
                },
              });
            },
          }
        : {}),
      approvalExpiryMs: policy.approvalExpiryMs ?? deps.approvalExpiryMs,
      ...(actionDecision ? { actionDecision } : {}),
      ...(questionOutcome ? { questionOutcome } : {}),
      ...(grantCheck ? { standingGrant: grantCheck } : {}),
      save,
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
            ...(fanIn ? { workstreams: fanIn.progress } : {}),
          })
          .catch((err) => deps.logger.warn({ err, taskId: task.id }, 'progress event dropped'));
      },
      // Awaited: a call whose audit record cannot be written does not go back to the model.
      onToolCall: (record, input) => {
        deps.metrics?.toolCalls.inc({ kind: record.action, trust_level: record.trust, decision: record.decision });
        const connector = hub?.lookup(record.tool);
        if (connector)
          deps.logger.debug(
            {
              taskId: task.id,
              tool: record.tool,
              decision: record.decision,
              isError: record.isError,
              ms: record.durationMs,
            },
            'connector call',
          );
        return audit
          .append({
            type: 'tool.call',
            taskId: task.id,
            data: {
              ...record,
              ...(connector ? { connector: connector.connector, connectorTool: connector.tool } : {}),
              input: abbreviateStrings(input, 500, 200),
            },
          })
          .then(() => undefined);
      },
    });
    if (outcome.status === 'paused') {
      // A call may pause before any command ran: the container it waits in must be there.
      await box();
      keepSandbox = true;
    }
  } catch (err) {
    // What stopped a loop whose sandbox could not be made is that failure, as if it came first.
    const e = asHandoffError(acquireError ?? err);
    const reason = abortCode(runSignal);
    if (e.code === ErrorCodes.runTakenOver || reason === ErrorCodes.runTakenOver)
      throw new RunHandedBack('another runner took this run over');
    if (reason === ErrorCodes.runnerStopping) throw new RunHandedBack('the runner is shutting down');
    // Infrastructure trouble (Docker or Redis unreachable) is worth another attempt; BullMQ backs off.
    if (e.retryable && !runSignal.aborted) throw e;
    outcome = {
      status: 'failed',
      summary: e.message,
      failure: { code: e.code, message: plainReason(e) },
      checkpoint: latest,
    };
  } finally {
    clearTimeout(timer);
    // Connectors never outlive the attempt: a waiting run starts them again when it resumes.
    await hub?.close().catch((err) => deps.logger.warn({ err }, 'could not stop a connector'));
    await egress?.close().catch((err) => deps.logger.warn({ err }, 'could not stop the egress proxy'));
    // A sandbox still being made when the loop ended is removed once it is there.
    await boxReady?.catch(() => undefined);
    await early?.settled;
    if (!keepSandbox && sandbox) {
      const box = sandbox;
      await box
        .destroy()
        .then(() => state.forgetSandbox(box.id))
        .catch((err) => deps.logger.warn({ err }, 'could not remove a sandbox'));
    }
  }

  if (outcome.status === 'paused') {
    await parkRun(deps, task, job.runId, outcome, sandbox!, save, control);
    throw new RunParked();
  }

  const cancelled = outcome.failure?.code === ErrorCodes.cancelled;
  const finalState = outcome.status === 'succeeded' ? 'succeeded' : cancelled ? 'cancelled' : 'failed';
  const cp = outcome.checkpoint;
  // The last fenced write: a runner that lost the run to another one stops here.
  try {
    await save(cp);
  } catch (err) {
    if (asHandoffError(err).code === ErrorCodes.runTakenOver)
      throw new RunHandedBack('another runner took this run over');
    throw err;
  }
  const ended = await state.updateTask(task.id, (t) =>
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
  if (!isTerminal(ended.before.state)) {
    deps.metrics?.runDuration.observe({ outcome: finalState }, (latest.elapsedMs ?? 0) / 1000);
    deps.metrics?.modelUsage(task.conversation, cp.usage, runCost);
  }
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
  deps.logger.info({ outcome: finalState, ...(outcome.failure ? { code: outcome.failure.code } : {}) }, 'run finished');
  await removeWorkspace(deps.workspacesDir, task.id).catch(() => undefined);
  if (egress?.socketDir) await rm(egress.socketDir, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * A call waits for a person, or a question for an answer: the container is kept, frozen
 * (for a bounded time), the task says what it waits for, and the job is parked before
 * the card is posted, so the quickest click still finds a delayed job to promote.
 */
async function parkRun(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  outcome: RunOutcome,
  sandbox: Sandbox,
  save: (cp: Checkpoint) => Promise<void>,
  control: RunControl,
): Promise<void> {
  const { state, audit, queues } = deps;
  const cp = outcome.checkpoint;
  const pending = cp.pendingAction;
  const question = cp.pendingQuestion;
  const waitUntil = Date.parse((pending?.expiresAt ?? question?.expiresAt)!);
  await save({ ...cp, sandboxId: sandbox.id });
  try {
    await sandbox.suspend();
    await state.keepSandbox(sandbox.id, Math.min(waitUntil, Date.now() + deps.pausedSandboxTtlMs));
  } catch (err) {
    // Not fatal: the run resumes in a rebuilt sandbox and the model is told what was lost.
    deps.logger.warn({ err, taskId: task.id }, 'could not keep the sandbox of a waiting run');
    await sandbox.destroy().catch(() => undefined);
  }
  if (pending) {
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
    await control.park(waitUntil);
    await queues.emit({ type: 'approval.needed', taskId: task.id, runId, approvalId: pending.id });
    return;
  }
  const q = question!;
  // Opened before the card is posted: the first reply after this moment is the answer.
  await state.openQuestion(task.id, { runId, questionId: q.id, askedAt: q.askedAt, expiresAt: q.expiresAt });
  await state.updateTask(task.id, (t) => transition(t, 'waiting_for_answer', new Date()));
  await audit.append({
    type: 'run.question',
    taskId: task.id,
    data: { runId, questionId: q.id, question: q.question, expiresAt: q.expiresAt },
  });
  await control.park(waitUntil);
  await queues.emit({
    type: 'question',
    taskId: task.id,
    runId,
    question: q.question,
    questionId: q.id,
    expiresAt: q.expiresAt,
  });
}

/** Removes the container a waiting run kept, if any. */
async function dropKeptSandbox(deps: RunnerDeps, runId: string): Promise<void> {
  const kept = (await deps.state.getCheckpoint(runId, { messages: false }))?.sandboxId;
  if (!kept) return;
  await deps.driver.remove(kept).catch((err) => deps.logger.warn({ err }, 'could not remove a kept sandbox'));
  await deps.state.forgetSandbox(kept);
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
  await dropKeptSandbox(deps, runId);
  await deps.state.updateTask(task.id, (t) =>
    isTerminal(t.state)
      ? t
      : transition(t, 'failed', new Date(), { failure: { code: ErrorCodes.approvalExpired, message } }),
  );
  await deps.audit.append({ type: 'action.approval_expired', taskId: task.id, data: { runId, reason } });
  await deps.queues.emit({ type: 'result', taskId: task.id, runId });
  await removeWorkspace(deps.workspacesDir, task.id).catch(() => undefined);
}

/**
 * An approved change to an input: made on the workspace, outside the sandbox, where
 * inputs are read-only, and saved to the artifact store so a resumed run (on any
 * runner) sees the changed input, not the original.
 */
async function changeInput(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  name: string,
  content: string | undefined,
  ws: WorkspaceState,
): Promise<void> {
  const problem = fileNameProblem(name);
  if (problem)
    throw new HandoffError(ErrorCodes.invalidInput, `cannot change input ${JSON.stringify(name)}: ${problem}`);
  const path = join(deps.workspacesDir, task.id, 'in', name);
  const others = ws.manifest.inputs.filter((f) => f.name !== name);
  if (content === undefined) {
    await rm(path, { force: true });
    ws.manifest = { ...ws.manifest, inputs: others };
  } else {
    const key = `tasks/${task.id}/ws/${runId}/in/${newId('i')}`;
    const mediaType = mediaTypeFor(name);
    const stored = await deps.store.put(key, Readable.from([Buffer.from(content)]), { mediaType });
    await writeFile(path, content);
    ws.manifest = {
      ...ws.manifest,
      inputs: [...others, { name, key, sha256: stored.sha256, size: stored.size, mediaType }],
    };
  }
  await deps.audit.append({
    type: 'input.changed',
    taskId: task.id,
    data: {
      runId,
      name,
      ...(content === undefined
        ? { deleted: true }
        : { sha256: ws.manifest.inputs.find((f) => f.name === name)?.sha256, size: Buffer.byteLength(content) }),
    },
  });
}

/**
 * Saves what changed under /workspace/out since the last call to the artifact store: the
 * workspace's durable state, from which a run resumes on any runner.
 */
async function syncOutputs(
  deps: RunnerDeps,
  taskId: string,
  runId: string,
  box: Sandbox,
  ws: WorkspaceState,
): Promise<void> {
  const files = await box.listOutputs();
  const known = new Map(ws.manifest.outputs.map((f) => [f.path, f]));
  const next: OutputFile[] = [];
  const replaced: string[] = [];
  for (const f of files) {
    const before = known.get(f.path);
    known.delete(f.path);
    if (before && before.size === f.size && before.mtime === f.mtime) {
      next.push(before);
      continue;
    }
    const { stream } = await box.readFileStream(`/workspace/out/${f.path}`);
    const key = `tasks/${taskId}/ws/${runId}/out/${newId('o')}`;
    const stored = await deps.store.put(key, stream, { mediaType: 'application/octet-stream' });
    next.push({ path: f.path, key, sha256: stored.sha256, size: stored.size, mtime: f.mtime });
    if (before) replaced.push(before.key);
  }
  for (const gone of known.values()) replaced.push(gone.key);
  ws.manifest = { ...ws.manifest, outputs: next };
  // Old copies go once the checkpoint that no longer names them could be written; a miss is swept by retention.
  for (const key of replaced) void deps.store.delete(key).catch(() => undefined);
}

/** Puts the saved outputs back into a new sandbox, and notes their times as the sandbox reports them. */
async function restoreOutputs(deps: RunnerDeps, box: Sandbox, ws: WorkspaceState): Promise<void> {
  const outputs = ws.manifest.outputs;
  if (outputs.length === 0) return;
  await box.writeOutputs(
    outputs.map((f) => ({
      path: f.path,
      size: f.size,
      open: () => deps.store.get(f.key),
      mtime: new Date(Math.floor(Number(f.mtime)) * 1000),
    })),
  );
  const now = new Map((await box.listOutputs()).map((f) => [f.path, f]));
  ws.manifest = {
    ...ws.manifest,
    outputs: outputs.map((f) => {
      const seen = now.get(f.path);
      return seen && seen.size === f.size ? { ...f, mtime: seen.mtime } : f;
    }),
  };
}

/** A command that filled /workspace/out or /tmp is told which limit it hit. */
function explainFullDisk<T extends { stderr: string; stdout: string }>(result: T, deps: RunnerDeps): T {
  if (!/No space left on device/i.test(result.stderr) && !/No space left on device/i.test(result.stdout)) return result;
  return {
    ...result,
    stderr: `${result.stderr}\n[handoff] A disk limit was reached: /workspace/out holds at most ${deps.limits.outputMb} MiB and /tmp ${deps.limits.tmpfsMb} MiB. Remove files you no longer need or write smaller ones.`,
  };
}

/** Streams one deliverable out of the sandbox into the artifact store and onto the task. */
async function deliver(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  sandbox: Sandbox,
  path: string,
  name: string,
  ws: WorkspaceState,
  allowedTypes: readonly string[],
) {
  const problem = fileNameProblem(name);
  if (problem) throw new HandoffError(ErrorCodes.invalidInput, `cannot deliver ${JSON.stringify(name)}: ${problem}`);
  const type = name.includes('.') ? name.slice(name.lastIndexOf('.') + 1).toLowerCase() : '';
  if (!(allowedTypes as readonly string[]).includes(type)) {
    throw new HandoffError(
      ErrorCodes.invalidInput,
      `cannot deliver ${JSON.stringify(name)}: the approved plan delivers only ${allowedTypes.join(', ')} files`,
    );
  }
  const { stream, size } = await sandbox.readFileStream(path);
  const cap = deps.maxArtifactBytesPerRun;
  if (ws.manifest.deliveredBytes + size > cap) {
    stream.destroy();
    throw new HandoffError(
      ErrorCodes.outputLimit,
      `delivering ${name} (${formatBytes(size)}) would take this run past its limit of ${formatBytes(cap)} of deliverables (${formatBytes(ws.manifest.deliveredBytes)} delivered so far)`,
    );
  }
  // A key of its own per delivery: two names that look alike never share one.
  const key = `tasks/${task.id}/out/${newId('f')}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100)}`;
  const mediaType = mediaTypeFor(name);
  const put = () => deps.store.put(key, stream, { mediaType, maxBytes: cap - ws.manifest.deliveredBytes });
  const end = (s: { size: number }) => ({ 'handoff.artifact.size_bytes': s.size });
  const stored = await withSpan('artifact.upload', { 'handoff.artifact.media_type': mediaType }, put, { end });
  ws.manifest = { ...ws.manifest, deliveredBytes: ws.manifest.deliveredBytes + stored.size };
  const artifact = {
    name,
    mediaType,
    size: stored.size,
    sha256: stored.sha256,
    key,
    createdAt: new Date().toISOString(),
  };
  // Recorded at once, so a file already delivered is never lost if the run fails later.
  const { before } = await deps.state.updateTask(task.id, (t) => ({
    ...t,
    artifacts: [...t.artifacts.filter((a) => a.name !== name), artifact],
  }));
  const replaced = before.artifacts.find((a) => a.name === name);
  if (replaced && replaced.key !== key) void deps.store.delete(replaced.key).catch(() => undefined);
  await deps.audit.append({
    type: 'artifact.stored',
    taskId: task.id,
    data: { runId, name, size: stored.size, sha256: stored.sha256 },
  });
  return { name, size: stored.size };
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
