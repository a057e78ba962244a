import { UnrecoverableError } from 'bullmq';
import {
  type ConnectionService,
  ConnectorHub,
  draftPlan,
  type HubOptions,
  loadSkillToolName,
  type ModelProvider,
  type OfferedTool,
  type PlannerOptions,
  type PlannerResult,
  type PlanReach,
  type Redactor,
  type SkillCatalog,
  toolsForPlan,
} from '../agent/index.ts';
import { type PlanPolicy, planBlockers, stepTrustLevels } from '../approvals/index.ts';
import type { ConnectorConfig } from '../config/index.ts';
import {
  addUsage,
  asHandoffError,
  type ConversationRef,
  changeRequestsFor,
  connectionUserId,
  costUsd,
  ErrorCodes,
  followUpFor,
  type Plan,
  type PlanDraft,
  type Prices,
  redact,
  type Task,
  transition,
} from '../core/index.ts';
import { type Logger, Metrics } from '../observability/index.ts';
import type { PlanJob, Queues } from '../queue/index.ts';
import type { ArtifactStore, AuditLog, ChannelSettingsStore, GrantStore, StateStore } from '../storage/index.ts';
import { planChannelContext } from './channel-settings.ts';
import type { EgressNetwork } from './run-egress.ts';
import { channelSkills } from './run-skills.ts';
import { connectorsFor, connectorTrustPolicy } from './run-tools.ts';
import type { SandboxDriver, SandboxLimits } from './sandbox/index.ts';
import { prepareWorkspace, removeWorkspace } from './workspace.ts';

export interface RunnerDeps {
  state: StateStore;
  queues: Queues;
  audit: AuditLog;
  store: ArtifactStore;
  driver: SandboxDriver;
  provider: ModelProvider;
  logger: Logger;
  workspacesDir: string;
  limits: SandboxLimits;
  /** This runner process; its sandboxes carry it, so the janitor can tell whose they are. */
  runnerId: string;
  /** How long a waiting run keeps its (frozen) container before it is removed. */
  pausedSandboxTtlMs: number;
  /** max_tokens of each model call. */
  maxTokensPerCall: number;
  /** Most bytes of deliverables one run may store. */
  maxArtifactBytesPerRun: number;
  commandTimeoutMs: number;
  runTimeoutMs: number;
  questionTimeoutMs: number;
  /** How long a paused call waits for a person before the run stops. */
  approvalExpiryMs: number;
  maxTokensPerRun: number;
  maxCostUsdPerRun: number;
  prices: Prices;
  policy: PlanPolicy;
  /** The policy of the channel a task came from; `policy` where unset. */
  policyFor?: (conversation: ConversationRef) => PlanPolicy;
  /** Connectors from handoff.yaml (docs/connectors.md). */
  connectors?: readonly ConnectorConfig[];
  /** Where connectors' `env:` references are read from (default process.env). */
  connectorEnv?: NodeJS.ProcessEnv;
  /** Per-user connections (OAuth), when HANDOFF_CONNECTIONS_KEY is set: runs act as their requester. */
  connections?: ConnectionService;
  /** Whether runs with web domains in their envelope get the web_fetch tool. Default true. */
  webFetch?: boolean;
  /** DNS and connect for the egress proxy and web_fetch (tests map names to loopback servers). */
  egressNetwork?: EgressNetwork;
  /** Agent Skills loaded at start (docs/skills.md); the channel's policy says which a task may use. */
  skills?: SkillCatalog;
  /** Standing grants ("Approve for the rest of this run", "Always allow in this channel"), checked before a call pauses. */
  grants?: GrantStore;
  /** Channel instructions and memory, sent with every plan and run; proposals from `propose_memory`. */
  channelSettings?: ChannelSettingsStore;
  /** This process's Prometheus metrics (/metrics); unset in tests that do not read them. */
  metrics?: Metrics;
}

/** The connector tools a planner is shown for a task, listed by starting each allowed connector briefly. */
export async function planReach(
  deps: RunnerDeps,
  task: Task,
  signal?: AbortSignal,
): Promise<{ reach: PlanReach; tools: OfferedTool[] }> {
  const policy = channelPolicy(deps, task);
  const configs = connectorsFor(deps.connectors ?? [], policy, task);
  let tools: OfferedTool[] = [];
  const unavailable: string[] = [];
  if (configs.length > 0) {
    const hub = await ConnectorHub.open({
      configs,
      policy: connectorTrustPolicy(policy),
      ...connectionHooks(deps, task),
      ...(signal ? { signal } : {}),
    });
    try {
      tools = hub.tools().filter((t) => t.trust !== 'forbidden');
      unavailable.push(...hub.problems);
      await askToConnect(deps, task, hub.needsConnection);
    } finally {
      await hub.close();
    }
  }
  const egressForbidden = policy.trustLevels.network_egress === 'forbidden';
  return {
    tools,
    reach: {
      connectorTools: tools.map((t) => ({
        name: t.name,
        title: t.title,
        action: t.action,
        trust: t.trust,
        description: t.description,
      })),
      unavailable,
      egressDomains: egressForbidden ? [] : [...(policy.egressDomains ?? [])],
      webFetch: deps.webFetch !== false && !egressForbidden,
      webSearch: policy.webSearch === true && !egressForbidden && deps.provider.offersWebSearch !== false,
      skills: channelSkills(deps.skills, policy).map((s) => ({ name: s.name, description: s.description })),
    },
  };
}

/** The person a task's per-user connectors act as: its requester (a brief's requester is the schedule's owner). */
export function connectionUser(task: Task): string {
  return connectionUserId(task.conversation.surface, task.requester.id);
}

/** What a hub needs to start a task's connectors: their environment and, per-user, the requester's connection. */
export function connectionHooks(
  deps: RunnerDeps,
  task: Task,
): Pick<HubOptions, 'env' | 'transportFor' | 'explainFailure'> {
  const c = deps.connections;
  return {
    ...(deps.connectorEnv ? { env: deps.connectorEnv } : {}),
    ...(c
      ? {
          transportFor: (config: ConnectorConfig) => c.sessionFor(config.name, connectionUser(task)),
          explainFailure: (config: ConnectorConfig, err: unknown) => c.toConnectionError(config.name, err),
        }
      : {}),
  };
}

/** Tells the thread that the requester can connect these services (the bot offers a Connect button). */
export async function askToConnect(deps: RunnerDeps, task: Task, configs: readonly ConnectorConfig[]): Promise<void> {
  for (const c of configs) {
    await deps.audit.append({ type: 'connection.needed', taskId: task.id, data: { connector: c.name } });
    await deps.queues.emit({
      type: 'connection.needed',
      taskId: task.id,
      connector: c.name,
      title: (c.spec.title ?? c.name).slice(0, 80),
    });
  }
}

/** Whether a channel allowlist admits a domain an envelope names (`*.x.com` only by the same wildcard). */
export function domainAllowed(allowlist: readonly string[], domain: string): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (d.startsWith('*.')) return allowlist.includes(d);
  return allowlist.some((a) => (a.startsWith('*.') ? d.endsWith(a.slice(1)) : a === d));
}

export function channelPolicy(deps: RunnerDeps, task: Task): PlanPolicy {
  return deps.policyFor?.(task.conversation) ?? deps.policy;
}

/** The redactor a channel's policy asks for, if any. */
export function redactorFor(policy: PlanPolicy): Redactor | undefined {
  const r = policy.redaction;
  if (!r?.enabled || r.kinds.length === 0) return undefined;
  return (text) => {
    const out = redact(text, r.kinds);
    return { text: out.text, counts: out.counts };
  };
}

/** Turns a draft into the plan people approve: the envelope and the budget estimate. */
export function buildPlan(
  task: Task,
  version: number,
  fullDraft: PlanDraft,
  deps: RunnerDeps,
  at: Date,
  offered: readonly OfferedTool[] = [],
): Plan {
  const { connectorTools: wanted, egressDomains: wantedDomains, mayOverwrite, mayDelete, ...draft } = fullDraft;
  const policy = channelPolicy(deps, task);
  // The envelope holds only what the channel allows: a tool or domain the model made up is dropped.
  const byName = new Map(offered.map((t) => [t.name, t]));
  const connectors = [...new Set(wanted ?? [])]
    .map((n) => byName.get(n))
    .filter((t): t is OfferedTool => t !== undefined)
    .map((t) => ({
      name: t.name,
      connector: t.connector,
      ...(t.title !== t.connector ? { title: t.title } : {}),
      tool: t.tool,
      action: t.action,
      trust: t.trust,
    }));
  const egressDomains =
    policy.trustLevels.network_egress === 'forbidden'
      ? []
      : [...new Set((wantedDomains ?? []).map((d) => d.toLowerCase()))].filter((d) =>
          domainAllowed(policy.egressDomains ?? [], d),
        );
  const inputs = new Set(task.inputs.map((f) => f.name));
  const webFetch = deps.webFetch !== false && egressDomains.length > 0;
  // Not on a platform without the server tool (Bedrock): the run reads pages with web_fetch instead.
  const webSearch = policy.webSearch === true && egressDomains.length > 0 && deps.provider.offersWebSearch !== false;
  // A rough estimate shown on the card: a few turns per step, priced like an average turn.
  const estimatedTokens = deps.provider.demo ? 0 : Math.min(deps.maxTokensPerRun, 12_000 * (draft.steps.length + 2));
  const estimatedCostUsd = costUsd(
    {
      inputTokens: Math.round(estimatedTokens * 0.85),
      outputTokens: Math.round(estimatedTokens * 0.15),
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    },
    deps.prices,
  );
  const caps = policy.budget ?? {};
  return {
    ...draft,
    taskId: task.id,
    version,
    envelope: {
      tools: [
        ...toolsForPlan(draft),
        ...connectors.map((t) => t.name),
        ...(webFetch ? ['web_fetch'] : []),
        // Skills are read-only instructions; the channel's skills come with every plan (docs/skills.md).
        ...(channelSkills(deps.skills, policy).length > 0 ? [loadSkillToolName] : []),
      ],
      egressDomains,
      mayOverwrite: [...new Set(mayOverwrite ?? [])].filter((n) => inputs.has(n)),
      mayDelete: [...new Set(mayDelete ?? [])].filter((n) => inputs.has(n)),
      deliverableTypes: [...new Set(draft.deliverables.map((d) => d.type))],
      ...(connectors.length > 0 ? { connectors } : {}),
      ...(webFetch ? { webFetch } : {}),
      ...(webSearch ? { webSearch } : {}),
      budget: {
        maxTokens: caps.maxTokens ?? deps.maxTokensPerRun,
        maxCostUsd: caps.maxCostUsd ?? deps.maxCostUsdPerRun,
        maxWallTimeMs: caps.maxWallTimeMs ?? deps.runTimeoutMs,
      },
    },
    estimatedTokens,
    estimatedCostUsd,
    model: deps.provider.model,
    demo: deps.provider.demo,
    createdAt: at.toISOString(),
  };
}

/**
 * Plans a task: a read-only sandbox over its inputs, one planning conversation, a
 * validated plan saved as the next version, and an event for the bot to post the card.
 */
export async function processPlanJob(deps: RunnerDeps, job: PlanJob, signal: AbortSignal): Promise<void> {
  const { state, queues, audit } = deps;
  let task = await state.requireTask(job.taskId);
  if (task.planVersion >= job.version) return; // already planned: a redelivered job
  if (task.state === 'requested') {
    task = (await state.updateTask(task.id, (t) => transition(t, 'planning', new Date()))).after;
    await audit.append({ type: 'task.planning', taskId: task.id });
  } else if (task.state !== 'planning') {
    return; // cancelled or failed meanwhile
  }
  const planningStarted = performance.now();

  // A revision: the model sees the plan it replaces and what people asked to change.
  const previousPlan = job.version > 1 ? await state.getPlan(task.id, job.version - 1) : undefined;
  // A follow-up after a delivery: the plan it starts from ran, and its deliverables are inputs now.
  const delivered =
    previousPlan && followUpFor(task, job.version)?.fromVersion === previousPlan.version
      ? {
          deliverables: task.inputs
            .map((f) => f.name)
            .filter((n) => previousPlan.deliverables.some((d) => d.name === n)),
        }
      : undefined;
  const previous = previousPlan
    ? {
        plan: previousPlan,
        changes: changeRequestsFor(task, job.version).map((c) => c.text),
        ...(delivered ? { followUp: delivered } : {}),
      }
    : undefined;

  // The planning sandbox is gone before the card is posted: a quick Approve never waits for its removal.
  const { result, offered, channelContext } = await draftInSandbox(deps, task, job, previous, signal);
  const built = buildPlan(task, job.version, result.draft, deps, new Date(), offered);
  const plan = channelContext ? { ...built, channelContext } : built;
  await state.savePlan(plan);
  // Planning is real spend: it counts on the task and against the channel's month.
  const planningCost = costUsd(result.usage, deps.prices);
  if (planningCost > 0) await state.addChannelCost(task.conversation, planningCost, new Date());
  deps.metrics?.modelUsage(task.conversation, result.usage, planningCost);
  const expiresAtMs = Date.now() + (channelPolicy(deps, task).approvalExpiryMs ?? deps.approvalExpiryMs);
  await state.updateTask(task.id, (t) =>
    transition(t, 'awaiting_approval', new Date(), {
      planVersion: plan.version,
      usage: addUsage(t.usage, result.usage),
      costUsd: t.costUsd + planningCost,
      votes: [],
      approvalExpiresAt: new Date(expiresAtMs).toISOString(),
    }),
  );
  await queues.scheduleExpiry({ taskId: task.id, version: plan.version }, expiresAtMs);
  // The task id comes from the job's log context (log-context.ts), as on every line here.
  deps.logger.info({ planVersion: plan.version, steps: plan.steps.length }, 'plan ready for approval');
  await audit.append({
    type: 'plan.created',
    taskId: task.id,
    data: {
      version: plan.version,
      promptSha256: result.promptSha256,
      steps: stepTrustLevels(plan, channelPolicy(deps, task)),
      blockers: planBlockers(plan, channelPolicy(deps, task)),
      redactions: result.redactions,
      model: plan.model,
      // Which standing settings the planner was given: lengths and fact ids, never the texts.
      ...(channelContext
        ? {
            channelContext: {
              policyInstructionsLength: channelContext.policyInstructions?.length ?? 0,
              instructionsLength: channelContext.instructions?.length ?? 0,
              memoryFactIds: channelContext.memory.map((f) => f.id),
            },
          }
        : {}),
    },
  });
  deps.metrics?.planDuration.observe(Metrics.since(planningStarted));
  await queues.emit({ type: 'plan.ready', taskId: task.id, version: plan.version });
}

/**
 * The part of planning that needs the task's files: a read-only sandbox over them and the
 * planning conversation. The sandbox and its workspace are removed before this returns.
 */
async function draftInSandbox(
  deps: RunnerDeps,
  task: Task,
  job: PlanJob,
  previous: PlannerOptions['previous'],
  signal: AbortSignal,
): Promise<{ result: PlannerResult; offered: OfferedTool[]; channelContext: Plan['channelContext'] }> {
  // A planning sandbox left by a runner that died would block this one's name.
  await deps.driver.removeTaskSandboxes(task.id);
  const workspace = await prepareWorkspace(deps.workspacesDir, task.id, task.inputs, deps.store, {
    plan: job.version,
  });
  const sandbox = await deps.driver.create(
    {
      taskId: task.id,
      label: `plan-${task.id}-v${job.version}`,
      workspaceDir: workspace,
      readOnlyWorkspace: true,
      limits: deps.limits,
      runnerId: deps.runnerId,
    },
    signal,
  );
  try {
    const redact = redactorFor(channelPolicy(deps, task));
    const { reach, tools: offered } = await planReach(deps, task, signal);
    // Snapshotted on the plan: its run is told what the planner (and so the approver) saw.
    const channelContext = await planChannelContext(deps.channelSettings, task, channelPolicy(deps, task).instructions);
    const result = await draftPlan({
      ...(channelContext ? { channel: channelContext } : {}),
      provider: deps.provider,
      host: { exec: (argv, o) => sandbox.exec(argv, { ...o, signal }) },
      task,
      signal,
      maxTokensPerCall: deps.maxTokensPerCall,
      ...(redact ? { redact } : {}),
      ...(previous ? { previous } : {}),
      ...(reach.connectorTools.length > 0 ||
      reach.unavailable.length > 0 ||
      reach.egressDomains.length > 0 ||
      (reach.skills?.length ?? 0) > 0
        ? { reach }
        : {}),
    });
    return { result, offered, channelContext };
  } finally {
    // Not fatal: a sandbox that would not go is removed by this task's run (removeTaskSandboxes)
    // or by the janitor, and failing here would only plan the task again.
    await sandbox
      .destroy()
      .catch((err) => deps.logger.warn({ err, containerId: sandbox.id }, 'could not remove the planning sandbox'));
    // The inputs stay in the artifact store; the run lays them out again wherever it runs.
    await removeWorkspace(deps.workspacesDir, task.id, { plan: job.version }).catch(() => undefined);
  }
}

/** A plan nobody decided on in time: the task expires and its card says so. */
export async function expirePlan(deps: RunnerDeps, job: PlanJob): Promise<void> {
  const { after, before } = await deps.state.updateTask(job.taskId, (t) =>
    t.state === 'awaiting_approval' &&
    t.planVersion === job.version &&
    t.approvalExpiresAt &&
    Date.parse(t.approvalExpiresAt) <= Date.now()
      ? transition(t, 'expired', new Date())
      : t,
  );
  if (before.state === after.state) return;
  await deps.audit.append({ type: 'plan.expired', taskId: job.taskId, data: { version: job.version } });
  await deps.queues.emit({ type: 'plan.ready', taskId: job.taskId, version: job.version });
}

/** Called when a plan job will not be retried: the task fails and the thread is told why. */
export async function failPlanning(deps: RunnerDeps, taskId: string, err: unknown): Promise<void> {
  const e = asHandoffError(err);
  const message = e.code === ErrorCodes.demoUnsupported ? e.message : `Planning failed: ${e.message}`;
  try {
    await deps.state.updateTask(taskId, (t) =>
      t.state === 'requested' || t.state === 'planning'
        ? transition(t, 'failed', new Date(), { failure: { code: e.code, message } })
        : t,
    );
    await deps.audit.append({ type: 'task.failed', taskId, data: { code: e.code, message } });
    await deps.queues.emit({ type: 'plan.failed', taskId, code: e.code, message });
  } catch (inner) {
    deps.logger.error({ err: inner, taskId }, 'could not record a planning failure');
  }
}

/** Terminal errors skip BullMQ's retries; everything else is retried with backoff. */
export function toJobError(err: unknown): Error {
  const e = asHandoffError(err);
  return e.retryable ? e : new UnrecoverableError(`${e.code}: ${e.message}`);
}
