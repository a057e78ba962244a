import { Readable } from 'node:stream';
import { type ConnectionContext, ConnectionErrorCodes, type ConnectionService } from '../agent/index.ts';
import {
  type ApprovalClick,
  type ApproverLookup,
  checkDecider,
  checkPlanDecision,
  decisionPolicy,
  describeApprovers,
  followUpApproval,
  isApprover,
  type PlanPolicy,
  type Tally,
  tallyPlanDecision,
} from '../approvals/index.ts';
import { connectorNamePattern } from '../config/index.ts';
import {
  type ChannelRef,
  type ConversationRef,
  connectionUserId,
  ErrorCodes,
  fileNameProblem,
  followUpFor,
  type Grant,
  type GrantScope,
  HandoffError,
  type Identity,
  isTerminal,
  mediaTypeFor,
  newId,
  newTask,
  type Plan,
  parkedStates,
  type RunnerEvent,
  RunnerEventSchema,
  runIsLive,
  type StoredFile,
  type Surface,
  type Task,
  type ThreadContext,
  transition,
} from '../core/index.ts';
import { continueTrace, type Logger, type Metrics, traceField, withSpan } from '../observability/index.ts';
import { type Queues, runIdFor, runJobId } from '../queue/index.ts';
import {
  type ArtifactStore,
  type AuditLog,
  type ChannelSettingsStore,
  copyStoredFiles,
  formatBytes,
  type GrantStore,
  inputFileKey,
  type ScheduleStore,
  type StateStore,
} from '../storage/index.ts';
import { artifactLinks } from './artifact-links.ts';
import { ChannelSettings } from './channel-settings.ts';
import type { ChatSurface } from './chat-surface.ts';
import { FollowUps, type ReplyOutcome } from './follow-up.ts';
import {
  type GrantDeps,
  grantButtons,
  grantsToCreate,
  grantWords,
  listGrants,
  revokeGrant,
  storeGrants,
} from './grants.ts';
import type { ConnectAnswer, HandoffInbound, RequestInput } from './inbound.ts';
import { requestChanges } from './revise.ts';
import { Schedules } from './schedules.ts';
import {
  contextAuditData,
  contextRedactionKinds,
  defaultThreadContextChars,
  defaultThreadContextMessages,
  prepareThreadContext,
  type ThreadContextInput,
} from './thread-context.ts';
import { asUnavailable } from './unavailable.ts';
import {
  approvalView,
  type ConnectionsView,
  connectView,
  planView,
  progressView,
  questionView,
  resultView,
  statusView,
  tokenBreakdown,
  type View,
} from './views.ts';

export type { IncomingFile } from './incoming-file.ts';
export { asUnavailable } from './unavailable.ts';

export interface GatewayLimits {
  maxUploadBytes: number;
  maxFilesPerRequest: number;
  maxRequestChars: number;
  downloadTtlMs: number;
  /** Most earlier thread messages a request takes along (default 30; 0 turns it off). */
  threadContextMessages?: number;
  /** Most characters of earlier thread messages, newest kept (default 20,000). */
  threadContextChars?: number;
}

export interface GatewayDeps {
  state: StateStore;
  schedules: ScheduleStore;
  queues: Queues;
  audit: AuditLog;
  store: ArtifactStore;
  logger: Logger;
  metrics: Metrics;
  policy: PlanPolicy;
  limits: GatewayLimits;
  /** Per-channel policy; defaults to `policy` everywhere. */
  policyFor?: (conversation: ConversationRef) => PlanPolicy;
  /**
   * Resolves approver groups (`PlanPolicy.approverGroups`, e.g. Slack user groups):
   * whether `who` belongs to one of `groups` in that conversation's workspace. Asked
   * only for people not listed by id, before any task record changes. Without it, or
   * when it answers false for a surface it does not know, groups approve nobody. MAY
   * throw when the lookup fails: the click is then refused with that error.
   */
  inApproverGroup?: (conversation: ConversationRef, who: Identity, groups: readonly string[]) => Promise<boolean>;
  /** Names the approvers in a refusal in the surface's own syntax (Slack mentions); plain ids otherwise. */
  nameApprovers?: (
    conversation: ConversationRef,
    approvers: { users: readonly string[]; groups: readonly string[] },
  ) => string | undefined;
  /** Whether the demo model handles tasks (every card says so). */
  demo: boolean;
  surfaces: ChatSurface[];
  /**
   * Per-user connections (connectors with `auth:`), when such connectors are configured and
   * HANDOFF_CONNECTIONS_KEY is available: Connect buttons, the lists people manage their
   * connections in, and what happens once someone has connected.
   */
  connections?: ConnectionService;
  /** Why per-user connections cannot be used although connectors need them (no key): the refusal people see. */
  connectionsUnavailable?: string;
  /** Standing grants ("Approve for the rest of this run", "Always allow in this channel"); no grant buttons without. */
  grants?: GrantStore;
  /** How long a run grant lasts (the retention of task records). Default 30 days. */
  grantRetentionMs?: number;
  /** Channel instructions and memory; without it, those commands say they are not available. */
  channelSettings?: ChannelSettingsStore;
}

/**
 * The person per-user connectors act as: `<surface>:<id>`. The runner names a task's
 * requester the same way (`connectionUser`, src/runner/plan-processor.ts): keep both alike.
 */
export function connectionUserOf(surface: Surface, who: Pick<Identity, 'id'>): string {
  return connectionUserId(surface, who.id);
}

/** Message-reference slots of a task's Connect card for one connector. */
const connectSlot = (connector: string) => `connect:${connector}`;
/** Set to '1' once the requester connected (the card and the revision are done), '' while it is open. */
const connectedSlot = (connector: string) => `connect:${connector}:done`;
/** A revision to ask for once the plan being drafted is ready (the requester connected meanwhile). */
const reviseSlot = 'connect:revise';

/**
 * The surface-neutral half of the bot: turns what people do in chat into tasks,
 * decisions and cancels, and turns runner events into views for the task's surface.
 */
export class Gateway implements HandoffInbound {
  /** Scheduled briefs: proposing, ticking, managing. */
  readonly schedules: Schedules;
  /** Replies in a thread when no run is live: follow-ups and notices (src/bot/follow-up.ts). */
  private readonly followUps: FollowUps;
  /** Channel instructions and memory (src/bot/channel-settings.ts). */
  readonly channelSettings: ChannelSettings;

  constructor(private readonly deps: GatewayDeps) {
    this.channelSettings = new ChannelSettings({
      ...(deps.channelSettings ? { store: deps.channelSettings } : {}),
      audit: deps.audit,
      policyFor: (c) => deps.policyFor?.(c) ?? deps.policy,
      isApprover: (c, who) => this.isApprover(c, who),
      approversText: (c) => {
        const approvers = this.approversFor(c);
        return (
          (approvers && deps.nameApprovers?.(c, approvers)) || describeApprovers(deps.policyFor?.(c) ?? deps.policy)
        );
      },
      demo: deps.demo,
      // The result card the proposal sits on loses its buttons.
      proposalDecided: (taskId) => this.renderResult(taskId),
    });
    this.schedules = new Schedules({
      state: deps.state,
      schedules: deps.schedules,
      queues: deps.queues,
      audit: deps.audit,
      store: deps.store,
      logger: deps.logger,
      demo: deps.demo,
      downloadTtlMs: deps.limits.downloadTtlMs,
      policyFor: (c) => deps.policyFor?.({ ...c, thread: '-' }) ?? deps.policy,
      surfaceFor: (name) => this.surfaceNamed(name),
      isApprover: (c, who) => this.isApprover(c, who),
      approversText: (c) => {
        const policy = deps.policyFor?.(c) ?? deps.policy;
        const approvers = this.approversFor(c);
        return (approvers && deps.nameApprovers?.(c, approvers)) || describeApprovers(policy);
      },
      submit: (input) => this.submitRequest(input),
      acknowledge: (task) => this.acknowledge(task),
    });
    this.followUps = new FollowUps({
      state: deps.state,
      queues: deps.queues,
      audit: deps.audit,
      store: deps.store,
      logger: deps.logger,
      surfaceFor: (name) => this.surfaceNamed(name),
      maySteer: (task, who) => this.maySteer(task, who),
    });
  }

  /**
   * Accepts a request: checks it, stores its files, creates the task and queues its
   * planning. Throws a HandoffError fit to show the person; nothing is left half-written.
   */
  async submitRequest(input: RequestInput): Promise<Task> {
    // The task's trace starts here; its context goes on the record and in the plan job.
    const end = (task: Task) => ({ 'handoff.task.id': task.id, 'handoff.task.inputs': task.inputs.length });
    const attrs = { 'handoff.surface': input.conversation.surface };
    return await withSpan('task.request', attrs, () => this.request(input), { end });
  }

  private async request(input: RequestInput): Promise<Task> {
    const { limits, store, state, queues, audit } = this.deps;
    const text = input.text.trim();
    if (text.length === 0)
      throw new HandoffError(ErrorCodes.invalidInput, 'the request is empty: say what you need done');
    if (text.length > limits.maxRequestChars) {
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `the request is longer than ${limits.maxRequestChars} characters`,
      );
    }
    if (input.files.length > limits.maxFilesPerRequest) {
      throw new HandoffError(ErrorCodes.invalidInput, `at most ${limits.maxFilesPerRequest} files per request`);
    }
    const seen = new Set<string>();
    for (const f of input.files) {
      const problem = fileNameProblem(f.name);
      if (problem)
        throw new HandoffError(
          ErrorCodes.invalidInput,
          `${JSON.stringify(f.name.slice(0, 100))} was refused: ${problem}`,
        );
      if (seen.has(f.name.toLowerCase()))
        throw new HandoffError(ErrorCodes.invalidInput, `two files are named ${f.name}`);
      seen.add(f.name.toLowerCase());
      if (f.size > limits.maxUploadBytes) {
        throw new HandoffError(
          ErrorCodes.invalidInput,
          `${f.name} (${formatBytes(f.size)}) is over the upload limit of ${formatBytes(limits.maxUploadBytes)}`,
        );
      }
    }

    const cap =
      this.deps.policyFor?.(input.conversation)?.budget?.monthlyCostCapUsd ??
      this.deps.policy.budget?.monthlyCostCapUsd;
    if (cap !== undefined) {
      const now = new Date();
      const spent = await state.channelCost(input.conversation, now).catch((err) => {
        throw asUnavailable(err);
      });
      if (spent >= cap) {
        const month = now.toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
        throw new HandoffError(
          ErrorCodes.budgetExceeded,
          `this channel has used $${spent.toFixed(2)} of its $${cap.toFixed(2)} monthly budget for ${month}; ask an admin to raise the cap in the policy`,
        );
      }
    }
    const id = newId('t');
    const inputs: StoredFile[] = [];
    try {
      for (const [index, f] of input.files.entries()) {
        const key = inputFileKey(`tasks/${id}/in`, index + 1, f.name);
        const body = Buffer.isBuffer(f.body) ? Readable.from([f.body]) : f.body;
        const mediaType = mediaTypeFor(f.name);
        const stored = await store.put(key, body, { mediaType, maxBytes: limits.maxUploadBytes });
        inputs.push({ name: f.name, mediaType, size: stored.size, sha256: stored.sha256, key });
      }
      inputs.push(...(await copyStoredFiles(store, input.copyInputs ?? [], `tasks/${id}/in`, inputs.length + 1)));
      const base = newTask(
        {
          id,
          conversation: input.conversation,
          requester: input.requester,
          request: text,
          inputs,
          demo: this.deps.demo,
        },
        new Date(),
      );
      const withSchedule: Task = input.schedule ? { ...base, schedule: input.schedule } : base;
      const context = input.context && this.threadContext(input.conversation, input.context);
      const task: Task = { ...(context ? { ...withSchedule, context } : withSchedule), ...traceField() };
      await state.createTask(task);
      try {
        // Recorded before anything acts on it: a request whose record cannot be written is not taken.
        // The thread's index goes in the same round trip; it points at a task that exists either way.
        const recorded = audit.append({
          type: 'task.requested',
          taskId: task.id,
          actor: task.requester.id,
          data: {
            surface: task.conversation.surface,
            channel: task.conversation.channel,
            // The digests of the bytes the run will get: each stored under a key of its own.
            inputs: inputs.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })),
            // Earlier messages taken along (untrusted): how many and their digest, never the words.
            ...(task.context ? { context: contextAuditData(task.context) } : {}),
          },
        });
        const linked = state.linkThread(
          task.conversation.surface,
          task.conversation.channel,
          task.conversation.thread,
          task.id,
        );
        await Promise.all([recorded, linked]);
        await queues.enqueuePlan({ taskId: task.id, version: 1, ...traceField() });
      } catch (err) {
        // The task exists but nothing will plan it: mark it failed rather than leave it hanging.
        await state
          .updateTask(task.id, (t) =>
            transition(t, 'failed', new Date(), {
              failure: { code: ErrorCodes.queueUnavailable, message: 'could not be recorded and queued' },
            }),
          )
          .catch(() => undefined);
        throw err;
      }
      // Counted where it is created (StateStore.createTask), with the tasks schedules create.
      return task;
    } catch (err) {
      await Promise.allSettled(inputs.map((f) => store.delete(f.key)));
      throw asUnavailable(err);
    }
  }

  /**
   * The earlier messages a surface read, capped and redacted per the channel's policy. What
   * a surface hands in malformed is not used, and the card says so; the request goes ahead.
   */
  private threadContext(conversation: ConversationRef, raw: ThreadContextInput): ThreadContext | undefined {
    const { limits } = this.deps;
    const caps = {
      maxMessages: limits.threadContextMessages ?? defaultThreadContextMessages,
      maxChars: limits.threadContextChars ?? defaultThreadContextChars,
    };
    const kinds = contextRedactionKinds(this.deps.policyFor?.(conversation) ?? this.deps.policy);
    try {
      return prepareThreadContext(raw, caps, kinds);
    } catch (err) {
      this.deps.logger.warn({ err: String(err).slice(0, 500) }, 'gateway: thread context refused');
      const source = raw?.source === 'channel' ? 'channel' : 'thread';
      return prepareThreadContext(
        { source, messages: [], error: 'they were not in a form Handoff reads' },
        caps,
        kinds,
      );
    }
  }

  /** Posts the immediate answer under a new request. */
  async acknowledge(task: Task): Promise<void> {
    const text = task.schedule
      ? `Drafting the standing plan for a schedule (${task.schedule.timing.words}, ${task.schedule.timing.tz})…`
      : task.inputs.length > 0
        ? `Planning… (${task.inputs.length} file${task.inputs.length === 1 ? '' : 's'} received)`
        : 'Planning…';
    const ref = await this.surface(task).post(task.conversation, statusView(task, text));
    await this.deps.state.setMessageRef(task.id, 'status', ref);
  }

  /** A click on Approve or Deny. Returns the words to show the person who clicked. */
  async decide(click: ApprovalClick & { surface?: Surface }): Promise<string> {
    const { state, queues, audit } = this.deps;
    const [plan, current] = await Promise.all([
      state.getPlan(click.taskId, click.planVersion),
      this.taskOn(click.taskId, click.surface),
    ]);
    // Group membership needs I/O: resolved first, so the compare-and-set below stays synchronous.
    const { lookup } = await this.lookupApprover(current.conversation, click.by);
    // A follow-up plan is compared with the plan that delivered (src/approvals/follow-up.ts).
    const base = followUpFor(current, click.planVersion);
    const delivered = base ? await state.getPlan(click.taskId, base.fromVersion) : undefined;
    let tally: Tally | undefined;
    let requesterAlone = false;
    const { after } = await state.updateTask(click.taskId, (task) => {
      const channel = this.policyFor(task);
      const policy = plan
        ? decisionPolicy(channel, followUpApproval(task, plan, delivered, channel), task, click.by)
        : channel;
      requesterAlone = policy !== channel;
      checkPlanDecision(task, plan, click, policy, Date.now(), lookup);
      tally = tallyPlanDecision(task, click, policy, new Date());
      return tally.task;
    });
    await audit.append({
      type: tally!.outcome === 'pending' ? 'plan.vote' : `plan.${click.outcome}`,
      taskId: click.taskId,
      actor: click.by.id,
      data: {
        version: click.planVersion,
        planHash: click.planHash,
        remaining: tally!.remaining,
        // The requester approved a follow-up inside the delivered envelope, as the policy lets them.
        ...(requesterAlone && click.outcome === 'approved' ? { followUpWithinEnvelope: true } : {}),
      },
    });
    if (tally!.outcome !== 'pending' && plan)
      this.deps.metrics.approvalWait.observe(
        { kind: 'plan', outcome: click.outcome },
        Math.max(0, Date.now() - Date.parse(plan.createdAt)) / 1000,
      );
    if (tally!.outcome === 'pending') {
      await this.renderPlan(after.id, click.planVersion);
      return `Approval recorded: ${tally!.remaining} more approver(s) needed.`;
    }
    if (click.outcome === 'approved' && after.schedule && plan) {
      // A standing plan: approving it starts the schedule; nothing runs now.
      const schedule = await this.schedules.activate(after, plan);
      await this.renderPlan(after.id, click.planVersion);
      await this.upsert(after, 'status', statusView(after, this.schedules.activeText(schedule)));
      return `Approved: schedule ${schedule.id} is active.`;
    }
    if (click.outcome === 'approved') {
      try {
        // The run joins the task's trace, under a span for the approval that queued it.
        const attrs = { 'handoff.task.id': after.id, 'handoff.plan.version': click.planVersion };
        await continueTrace(after.trace, 'plan.approved', attrs, () =>
          queues.enqueueRun({
            taskId: after.id,
            planVersion: click.planVersion,
            runId: runIdFor(after.id, click.planVersion),
            ...traceField(),
          }),
        );
      } catch (err) {
        await state.updateTask(after.id, (t) =>
          t.state === 'queued'
            ? transition(t, 'failed', new Date(), {
                failure: { code: ErrorCodes.queueUnavailable, message: 'the run could not be queued' },
              })
            : t,
        );
        throw err;
      }
    }
    await this.renderPlan(after.id, click.planVersion);
    return click.outcome === 'approved' ? 'Approved: the run is queued.' : 'Denied: nothing will run.';
  }

  /**
   * A click on Approve or Deny of a paused call. The first decision wins (recorded with
   * SET NX), and the parked run is woken at once.
   */
  async decideAction(click: {
    taskId: string;
    approvalId: string;
    by: Identity;
    outcome: 'approved' | 'denied';
    surface?: Surface;
    /** Approve and grant the call's exact patterns for the rest of the run, or in the channel. */
    grant?: GrantScope;
  }): Promise<string> {
    const { state, audit } = this.deps;
    const task = await this.taskOn(click.taskId, click.surface);
    const policy = this.policyFor(task);
    const earlier = task.runId ? await state.getActionDecision(task.runId, click.approvalId) : undefined;
    if (earlier)
      throw new HandoffError(
        ErrorCodes.staleApproval,
        `this step was already ${earlier.outcome} by ${earlier.by.name}`,
      );
    const checkpoint = task.runId ? await state.getCheckpoint(task.runId) : undefined;
    const pending = checkpoint?.pendingAction;
    if (!task.runId || !pending || pending.id !== click.approvalId) {
      throw new HandoffError(ErrorCodes.staleApproval, 'this approval request is no longer open');
    }
    if (task.state !== 'waiting_for_approval')
      throw new HandoffError(ErrorCodes.staleApproval, 'this run is not waiting for this approval');
    if (Date.parse(pending.expiresAt) <= Date.now())
      throw new HandoffError(ErrorCodes.staleApproval, 'this approval request has expired');
    const { lookup } = await this.lookupApprover(task.conversation, click.by);
    checkDecider(task, click.by, click.outcome, policy, lookup, 'step');
    // Checked before anything is recorded: a grant the card did not offer is refused outright.
    const grants = click.grant
      ? grantsToCreate(this.grantDeps(), {
          task,
          pending,
          scope: click.grant,
          outcome: click.outcome,
          by: click.by,
          policy,
        })
      : [];
    const decision = {
      approvalId: pending.id,
      outcome: click.outcome,
      by: click.by,
      at: new Date().toISOString(),
      ...(click.grant ? { grant: click.grant } : {}),
    };
    if (!(await state.recordActionDecision(task.runId, decision))) {
      const first = await state.getActionDecision(task.runId, pending.id);
      throw new HandoffError(
        ErrorCodes.staleApproval,
        `this step was already ${first?.outcome ?? 'decided'} by ${first?.by.name ?? 'someone'}`,
      );
    }
    this.deps.metrics.approvalWait.observe(
      { kind: 'action', outcome: click.outcome },
      Math.max(0, Date.now() - Date.parse(pending.requestedAt)) / 1000,
    );
    await audit.append({
      type: `action.${click.outcome}`,
      taskId: task.id,
      actor: click.by.id,
      data: {
        approvalId: pending.id,
        tool: pending.tool,
        action: pending.action,
        ...(click.grant ? { grant: click.grant } : {}),
      },
    });
    // Stored before the run wakes, so its next call of the same pattern finds them. The
    // approval is recorded already: a grant that cannot be stored does not hold the run up.
    const stored =
      grants.length > 0
        ? await storeGrants(this.grantDeps(), task, grants).then(
            () => true,
            (err) => {
              this.deps.logger.warn({ err, taskId: task.id }, 'a standing grant could not be stored');
              return false;
            },
          )
        : false;
    // The run parks itself before its card is posted; waking fails only if it already woke.
    await this.wakeRun(task);
    // The card says a grant was given only when it was stored.
    const shown = grants[0] && !stored ? { ...decision, grant: undefined } : decision;
    await this.upsert(task, `approval:${pending.id}`, approvalView(task, pending, shown));
    if (grants[0] && !stored) return 'Approved: the run continues, but the grant could not be stored; try again later.';
    if (grants[0]) return `Approved, and allowed ${grantWords(grants[0])}: the run continues.`;
    return click.outcome === 'approved'
      ? 'Approved: the run continues.'
      : 'Denied: the agent is told and continues without it.';
  }

  /** The Cancel button: stops planning or a run, whoever of requester and approvers asks. */
  async cancel(taskId: string, by: Identity, surface?: Surface): Promise<string> {
    const { state, audit } = this.deps;
    const task = await this.taskOn(taskId, surface);
    if (isTerminal(task.state)) return `This task is already ${task.state}.`;
    // The requester may always cancel: groups are looked up (I/O) only for someone else.
    if (by.id !== task.requester.id) {
      const { policy, lookup } = await this.lookupApprover(task.conversation, by);
      checkDecider(task, by, 'cancel', policy, lookup);
    }
    await state.requestCancel(taskId);
    await audit.append({ type: 'task.cancel_requested', taskId, actor: by.id });
    // A run no runner holds (its runner died, or Redis lost its job) is cancelled right here:
    // Cancel always ends a task.
    if (task.state === 'running' && !(await this.deps.queues.runIsHeld(task.id, task.planVersion))) {
      const { after } = await state.updateTask(taskId, (t) =>
        isTerminal(t.state) ? t : transition(t, 'cancelled', new Date(), { cancelRequestedBy: by }),
      );
      if (after.state === 'cancelled') await audit.append({ type: 'task.cancelled', taskId, actor: by.id });
      await this.renderResult(taskId);
      return 'Cancelled.';
    }
    // Not yet running, or parked for a person: cancel right here. A running task is stopped by its runner.
    if (parkedStates.includes(task.state)) {
      await state.updateTask(taskId, (t) =>
        isTerminal(t.state) ? t : transition(t, 'cancelled', new Date(), { cancelRequestedBy: by }),
      );
      // Wakes the parked job so its runner removes the container it kept.
      await this.wakeRun(task);
      await this.renderResult(taskId);
      return 'Cancelled.';
    }
    if (task.state !== 'running') {
      const { after } = await state.updateTask(taskId, (t) =>
        isTerminal(t.state) ? t : transition(t, 'cancelled', new Date(), { cancelRequestedBy: by }),
      );
      if (after.planVersion > 0) await this.renderPlan(taskId, after.planVersion);
      if (task.state === 'queued') await this.renderResult(taskId);
      return 'Cancelled.';
    }
    await state.updateTask(taskId, (t) => ({ ...t, cancelRequestedBy: by }));
    return 'Cancelling: the run stops within seconds.';
  }

  /**
   * "Request changes" on a plan card, from any surface: the requester or an approver (the
   * rule of Cancel) sends the plan back with what should change; the card loses its
   * buttons and the next version is drafted. Returns the words to show the person.
   */
  async requestChanges(input: {
    taskId: string;
    planVersion: number;
    planHash?: string;
    by: Identity;
    text: string;
    surface?: Surface;
  }): Promise<string> {
    const task = await this.taskOn(input.taskId, input.surface);
    const approver = input.by.id === task.requester.id || (await this.isApprover(task.conversation, input.by));
    const after = await requestChanges(this.deps, { ...input, approver });
    await this.renderPlan(after.id, input.planVersion);
    return `Changes requested: drafting plan version ${input.planVersion + 1}…`;
  }

  /**
   * A reply in a task's thread, from someone the surface lets talk to the agent. While the
   * agent waits on a question, the first reply posted after the question is its answer
   * (bound to that question) and wakes the parked run. Otherwise, while the run is queued,
   * working or waiting for an approval, the reply reaches the agent at its next turn.
   * When no run is live, the follow-up rules apply (src/bot/follow-up.ts): after a
   * delivery, a reply from the requester or an approver plans the task again; otherwise,
   * and for a task whose records expired, the thread is told why nothing happens.
   * Returns what happened to it.
   */
  async reply(conversation: ConversationRef, by: Identity, text: string): Promise<ReplyOutcome> {
    const { state, audit } = this.deps;
    const taskId = await state.taskForThread(conversation.surface, conversation.channel, conversation.thread);
    const said = text.trim().slice(0, 4000);
    if (!said) return 'ignored';
    const task = taskId ? await state.getTask(taskId) : undefined;
    if (!task || task.conversation.surface !== conversation.surface) return this.followUps.expired(conversation, by);
    if (!runIsLive(task.state)) return this.followUps.reply(task, by, text.trim());
    if (!task.runId) return 'ignored';
    const at = new Date().toISOString();
    if (task.state === 'waiting_for_answer') {
      const open = await state.getOpenQuestion(task.id);
      if (open && open.runId === task.runId && Date.parse(open.askedAt) <= Date.parse(at)) {
        const answer = { questionId: open.questionId, by: { id: by.id, name: by.name }, text: said, at };
        if (await state.recordAnswer(task.runId, answer)) {
          await audit.append({
            type: 'run.answer',
            taskId: task.id,
            actor: by.id,
            data: { questionId: open.questionId, length: said.length },
          });
          await this.wakeRun(task);
          await this.renderQuestion(task, open.questionId).catch((err) =>
            this.deps.logger.warn({ err, taskId }, 'could not update the question card'),
          );
          return 'answered';
        }
      }
    }
    await state.pushThreadMessage(task.id, { by: { id: by.id, name: by.name }, text: said, at });
    await audit.append({ type: 'run.thread_message', taskId: task.id, actor: by.id, data: { length: said.length } });
    return 'delivered';
  }

  async task(taskId: string, surface: Surface): Promise<Task | undefined> {
    const task = await this.deps.state.getTask(taskId);
    return task?.conversation.surface === surface ? task : undefined;
  }

  async taskInThread(conversation: ConversationRef): Promise<Task | undefined> {
    const { surface, channel, thread } = conversation;
    const taskId = await this.deps.state.taskForThread(surface, channel, thread);
    return taskId ? this.task(taskId, surface) : undefined;
  }

  async tasksOf(surface: Surface, personId: string, limit: number): Promise<Task[]> {
    const ids = await this.deps.state.taskIdsOf(surface, personId, limit);
    return (await Promise.all(ids.map((id) => this.task(id, surface)))).filter((t): t is Task => t !== undefined);
  }

  async awaitingApprovalBy(surface: Surface, who: Identity, limit: number): Promise<Task[]> {
    const waiting: Task[] = [];
    for (const id of await this.deps.state.awaitingApprovalIds(200)) {
      if (waiting.length >= limit) break;
      const t = await this.task(id, surface);
      if (t?.state !== 'awaiting_approval' || t.requester.id === who.id) continue;
      // Only where approvers are named: "anyone may approve" would list every plan.
      if (this.approversFor(t.conversation) && (await this.isApprover(t.conversation, who))) waiting.push(t);
    }
    return waiting;
  }

  async maySteer(task: Task, who: Identity): Promise<boolean> {
    return who.id === task.requester.id || (await this.isApprover(task.conversation, who));
  }

  /** Promotes the task's parked run job, if it is parked: an answer or a decision wakes it. */
  private async wakeRun(task: Task): Promise<void> {
    await (await this.deps.queues.run.getJob(runJobId(task.id, task.planVersion)))?.promote().catch(() => undefined);
  }

  /** Renders a runner event for the task's surface. Called by the notifications worker. */
  async handleEvent(raw: unknown): Promise<void> {
    const event: RunnerEvent = RunnerEventSchema.parse(raw);
    switch (event.type) {
      case 'plan.ready': {
        await this.renderPlan(event.taskId, event.version);
        const task = await this.deps.state.requireTask(event.taskId);
        const ref = await this.deps.state.getMessageRef(task.id, 'status');
        if (ref)
          await this.surface(task).update(
            task.conversation,
            ref,
            statusView(task, `Plan version ${event.version} is ready for approval.`),
          );
        await this.reviseIfConnected(task, event.version);
        return;
      }
      case 'plan.failed': {
        const task = await this.deps.state.requireTask(event.taskId);
        const view = statusView(task, event.message, 'error');
        const ref = await this.deps.state.getMessageRef(task.id, 'status');
        if (ref) await this.surface(task).update(task.conversation, ref, view);
        else await this.surface(task).post(task.conversation, view);
        return;
      }
      case 'progress': {
        if (!(await this.deps.state.advanceProgressSeq(event.taskId, event.seq))) return;
        const task = await this.deps.state.requireTask(event.taskId);
        if (isTerminal(task.state)) return;
        await this.upsert(task, 'progress', progressView(task, event));
        return;
      }
      case 'question': {
        const task = await this.deps.state.requireTask(event.taskId);
        if (!event.questionId) {
          await this.surface(task).post(task.conversation, questionView(task, event.question));
          return;
        }
        await this.renderQuestion(task, event.questionId, event.question, event.expiresAt);
        return;
      }
      case 'result':
        await this.renderResult(event.taskId);
        return;
      case 'approval.needed': {
        const task = await this.deps.state.requireTask(event.taskId);
        const pending = (await this.deps.state.getCheckpoint(event.runId))?.pendingAction;
        if (!pending || pending.id !== event.approvalId) return;
        const decision = await this.deps.state.getActionDecision(event.runId, pending.id);
        await this.upsert(
          task,
          `approval:${pending.id}`,
          approvalView(task, pending, decision, grantButtons(this.grantDeps(), this.policyFor(task), pending)),
        );
        await this.deps.state.setMessageRef(task.id, 'approval:last', pending.id);
        return;
      }
      case 'connection.needed': {
        const task = await this.deps.state.requireTask(event.taskId);
        await this.offerConnection(task, event.connector, event.title);
        return;
      }
    }
  }

  /**
   * The Connect card for a per-user connector the requester has not connected: one per task
   * and connector, opened again (edited, not posted again) when it is asked for anew.
   * Without per-user connections set up here, one status line says why it is left out.
   */
  private async offerConnection(task: Task, connector: string, title: string): Promise<void> {
    const { state } = this.deps;
    const service = this.deps.connections;
    if (!service) {
      if (await state.getMessageRef(task.id, connectSlot(connector))) return;
      const ref = await this.surface(task).post(
        task.conversation,
        statusView(
          task,
          `${title} acts as each person who asks, but per-user connections are not set up on this Handoff (HANDOFF_CONNECTIONS_KEY): it goes on without ${title}.`,
        ),
      );
      await state.setMessageRef(task.id, connectSlot(connector), ref);
      return;
    }
    // Asked for again (the stored connection stopped working): the card is open once more.
    await state.setMessageRef(task.id, connectedSlot(connector), '');
    await this.upsert(task, connectSlot(connector), connectView(task, connector, title));
  }

  /**
   * Someone completed connecting (the callback route's `onConnected`). Audited; when it is
   * the requester of the task the Connect card came from, the card says so and a plan that
   * waits for approval is drafted again, so the planner now sees the connector's tools.
   * Anyone else connected their own account: nothing about the task changes.
   */
  async connectionConnected(user: string, connector: string, context: ConnectionContext | undefined): Promise<void> {
    await this.deps.audit.append({
      type: 'connection.connected',
      ...(context?.taskId ? { taskId: context.taskId } : {}),
      actor: user,
      data: { connector, user },
    });
    const task = await this.requesterTask(user, context);
    if (task) await this.requesterConnected(task, connector);
  }

  /** The person was sent back without connecting (declined, or the service failed): the card says so. */
  async connectionDeclined(user: string, connector: string, context: ConnectionContext | undefined): Promise<void> {
    await this.deps.audit.append({
      type: 'connection.declined',
      ...(context?.taskId ? { taskId: context.taskId } : {}),
      actor: user,
      data: { connector, user },
    });
    const task = await this.requesterTask(user, context);
    const ref = task ? await this.deps.state.getMessageRef(task.id, connectSlot(connector)) : undefined;
    if (!task || !ref || (await this.deps.state.getMessageRef(task.id, connectedSlot(connector))) === '1') return;
    const title = this.deps.connections?.title(connector) ?? connector;
    await this.surface(task).update(
      task.conversation,
      ref,
      connectView(task, connector, title, 'declined', task.requester.name),
    );
  }

  /** The task a connection came back for, when `user` is its requester (whose connection it uses). */
  private async requesterTask(user: string, context: ConnectionContext | undefined): Promise<Task | undefined> {
    if (!context?.taskId) return undefined;
    const task = await this.deps.state.getTask(context.taskId);
    if (!task || connectionUserOf(task.conversation.surface, task.requester) !== user) return undefined;
    return task;
  }

  /** The requester has connected: the card says so (once) and the plan is drafted again to use it. */
  private async requesterConnected(task: Task, connector: string): Promise<void> {
    const { state, logger } = this.deps;
    if ((await state.getMessageRef(task.id, connectedSlot(connector))) === '1') return;
    await state.setMessageRef(task.id, connectedSlot(connector), '1');
    const title = this.deps.connections?.title(connector) ?? connector;
    const ref = await state.getMessageRef(task.id, connectSlot(connector));
    if (ref) {
      await this.surface(task)
        .update(task.conversation, ref, connectView(task, connector, title, 'connected', task.requester.name))
        .catch((err) => logger.warn({ err, taskId: task.id }, 'could not update the Connect card'));
    }
    const text = `${task.requester.name} connected ${title}; use it where the request needs it.`;
    const now = await state.requireTask(task.id);
    if (now.state === 'awaiting_approval') await this.reviseForConnection(now, now.planVersion, text);
    // The plan being drafted did not see the connector: it is revised as soon as it is ready.
    else if (now.state === 'requested' || now.state === 'planning')
      await state.setMessageRef(task.id, reviseSlot, text);
  }

  /** A plan is ready: when the requester connected while it was drafted, the next version is asked for now. */
  private async reviseIfConnected(task: Task, version: number): Promise<void> {
    const text = await this.deps.state.getMessageRef(task.id, reviseSlot);
    if (!text) return;
    await this.deps.state.setMessageRef(task.id, reviseSlot, '');
    if (task.state === 'awaiting_approval' && task.planVersion === version)
      await this.reviseForConnection(task, version, text);
  }

  /** Asks for the next plan version through the "Request changes" path, as the requester. */
  private async reviseForConnection(task: Task, version: number, text: string): Promise<void> {
    try {
      await requestChanges(this.deps, { taskId: task.id, planVersion: version, by: task.requester, text });
      await this.renderPlan(task.id, version);
    } catch (err) {
      // Decided or revised meanwhile: that version stands, and the run uses the connection.
      this.deps.logger.info(
        { taskId: task.id, reason: asUnavailable(err).message },
        'no new plan version after connecting',
      );
    }
  }

  /**
   * Connect, as the person who pressed it (`HandoffInbound.connect`). On a task's card, the
   * requester's "already connected" also counts as connecting now (the card and the plan
   * catch up).
   */
  async connect(click: { connector: string; by: Identity; surface: Surface; taskId?: string }): Promise<ConnectAnswer> {
    const service = this.connectionService();
    const connector = this.perUserConnector(service, click.connector);
    const task = click.taskId ? await this.taskOn(click.taskId, click.surface) : undefined;
    const title = service.title(connector);
    const user = connectionUserOf(click.surface, click.by);
    const own = !task || task.requester.id === click.by.id;
    const others = own
      ? ''
      : ` This connects your own ${title} account, for your own requests; this task uses ${task.requester.name}'s.`;
    let begun: Awaited<ReturnType<ConnectionService['begin']>>;
    try {
      begun = await service.begin(
        connector,
        user,
        task ? { taskId: task.id, conversation: task.conversation } : undefined,
      );
    } catch (err) {
      throw connectionProblem(err);
    }
    if (begun.status === 'connected') {
      if (task && own) await this.requesterConnected(task, connector);
      return { status: 'connected', title, message: `Your ${title} account is already connected.${others}` };
    }
    return {
      status: 'needs_authorization',
      title,
      authorizationUrl: begun.authorizationUrl,
      message: `Open the sign-in page to connect ${title} as you. The link is yours alone and works once, for a few minutes.${others}`,
    };
  }

  /** A person's own connections (`HandoffInbound.connections`). */
  async connections(surface: Surface, who: Identity): Promise<ConnectionsView> {
    const service = this.connectionService();
    const stored = await service.list(connectionUserOf(surface, who));
    const byName = new Map(stored.map((s) => [s.connector, s]));
    const names = [...new Set([...service.connectorNames(), ...byName.keys()])];
    return {
      kind: 'connections',
      items: names.map((connector) => {
        const s = byName.get(connector);
        if (!s) return { connector, title: service.title(connector), connected: false };
        return {
          connector,
          title: s.title,
          connected: true,
          connectedAt: s.connectedAt,
          ...(s.expiresAt ? { expiresAt: s.expiresAt } : {}),
          refreshable: s.refreshable,
        };
      }),
      demo: this.deps.demo,
    };
  }

  /** Disconnect (`HandoffInbound.disconnect`): removed here, revoked remotely where the service allows; audited. */
  async disconnect(input: { connector: string; by: Identity; surface: Surface }): Promise<string> {
    const service = this.connectionService();
    if (!connectorNamePattern.test(input.connector))
      throw new HandoffError(ErrorCodes.invalidInput, 'that is not a connector name');
    const user = connectionUserOf(input.surface, input.by);
    const title = service.title(input.connector);
    const result = await service.revoke(user, input.connector);
    await this.deps.audit.append({
      type: 'connection.revoked',
      actor: user,
      data: {
        connector: input.connector,
        user,
        removedLocally: result.removedLocally,
        remote: result.remote,
        ...(result.problem ? { problem: result.problem } : {}),
      },
    });
    switch (result.remote) {
      case 'not_connected':
        return result.removedLocally
          ? `Disconnected ${title}: what Handoff kept for it is removed.`
          : `${title} was not connected.`;
      case 'revoked':
        return `Disconnected ${title}: Handoff no longer holds your access, and ${title} revoked it.`;
      case 'not_supported':
        return `Disconnected ${title}: Handoff no longer holds your access. ${title} offers no way to revoke it from here; remove Handoff from the apps connected to your account there if you want it gone there too.`;
      case 'failed':
        return `Disconnected ${title}: Handoff no longer holds your access, but ${title} did not confirm revoking it (${result.problem ?? 'no reason given'}). Remove Handoff from the apps connected to your account there to be sure.`;
    }
  }

  private connectionService(): ConnectionService {
    const service = this.deps.connections;
    if (service) return service;
    throw new HandoffError(
      ErrorCodes.invalidInput,
      this.deps.connectionsUnavailable ??
        'no connector here acts as each person (none has `auth:` in handoff.yaml), so there is nothing to connect',
    );
  }

  private perUserConnector(service: ConnectionService, name: string): string {
    if (!service.connectorNames().includes(name))
      throw new HandoffError(
        ErrorCodes.notFound,
        `no connector here is connected per person as ${JSON.stringify(name.slice(0, 40))}`,
      );
    return name;
  }

  /** The agent's question card: open until it expires, or who answered it. */
  private async renderQuestion(task: Task, questionId: string, question?: string, expiresAt?: string): Promise<void> {
    const slot = `question:${questionId}`;
    const checkpoint = task.runId ? await this.deps.state.getCheckpoint(task.runId, { messages: false }) : undefined;
    const pending = checkpoint?.pendingQuestion?.id === questionId ? checkpoint.pendingQuestion : undefined;
    const text = question ?? pending?.question;
    if (!text) return;
    const until = expiresAt ?? pending?.expiresAt;
    const answer = task.runId ? await this.deps.state.getAnswer(task.runId, questionId) : undefined;
    await this.upsert(
      task,
      slot,
      questionView(task, text, {
        ...(until ? { expiresAt: until } : {}),
        ...(answer ? { answeredBy: answer.by.name } : {}),
      }),
    );
  }

  private async renderPlan(taskId: string, version: number): Promise<void> {
    const task = await this.deps.state.requireTask(taskId);
    const plan = await this.deps.state.getPlan(taskId, version);
    if (!plan) return;
    // A revision's card shows what changed since the version it replaces.
    const previous = version > 1 ? await this.deps.state.getPlan(taskId, version - 1) : undefined;
    const policy = this.policyFor(task);
    const view = planView(task, plan, policy, previous);
    const schedule = this.schedules.info(task, plan, policy);
    await this.upsert(task, `plan:${version}`, schedule ? { ...view, schedule } : view);
  }

  private async renderResult(taskId: string): Promise<void> {
    const task = await this.deps.state.requireTask(taskId);
    // A tick's result is its brief, edited into the top-level message that opened it.
    if (task.brief) {
      await this.closeProgress(task);
      await this.schedules.renderBrief(task);
      return;
    }
    const plan = task.planVersion > 0 ? await this.deps.state.getPlan(taskId, task.planVersion) : undefined;
    const links = await artifactLinks(this.deps.store, task.artifacts, this.deps.limits.downloadTtlMs);
    await this.closeProgress(task, plan);
    const base = resultView(task, plan, links);
    const proposals = await this.channelSettings.openProposals(task.id);
    const result = proposals.length > 0 ? { ...base, memoryProposals: proposals } : base;
    const view = task.state === 'succeeded' && !task.schedule ? { ...result, schedulable: true } : result;
    const posted = { 'handoff.task.id': task.id, 'handoff.task.state': task.state, 'handoff.artifacts': links.length };
    await continueTrace(task.trace, 'deliverable.post', posted, () => this.upsert(task, 'result', view));
    const lastApproval = await this.deps.state.getMessageRef(task.id, 'approval:last');
    const pending = task.runId ? (await this.deps.state.getCheckpoint(task.runId))?.pendingAction : undefined;
    if (lastApproval && pending && pending.id === lastApproval && task.runId) {
      const decision = await this.deps.state.getActionDecision(task.runId, pending.id);
      await this.upsert(task, `approval:${pending.id}`, approvalView(task, pending, decision));
    }
  }

  /** The progress message ends showing the final step states, without a Cancel button. */
  private async closeProgress(task: Task, known?: Plan): Promise<void> {
    const plan = known ?? (task.planVersion > 0 ? await this.deps.state.getPlan(task.id, task.planVersion) : undefined);
    const progressRef = await this.deps.state.getMessageRef(task.id, 'progress');
    if (!progressRef || !plan) return;
    // A fan-out's workstreams stay listed with where each one ended.
    const ended = plan.workstreams?.length ? await this.deps.state.workstreamStates(task.id, plan.version) : undefined;
    await this.surface(task)
      .update(task.conversation, progressRef, {
        kind: 'progress',
        taskId: task.id,
        steps: plan.steps.map((s) => ({ title: s.title, status: task.state === 'succeeded' ? 'done' : 'skipped' })),
        elapsedMs: task.finishedAt && task.startedAt ? Date.parse(task.finishedAt) - Date.parse(task.startedAt) : 0,
        usage: tokenBreakdown(task.usage),
        cancellable: false,
        demo: task.demo,
        ...(ended && plan.workstreams
          ? {
              workstreams: plan.workstreams.map((w) => ({
                id: w.id,
                title: w.title,
                state: ended.get(w.id) ?? 'queued',
              })),
            }
          : {}),
      })
      .catch((err) => this.deps.logger.warn({ err, taskId: task.id }, 'could not close the progress message'));
  }

  private async upsert(task: Task, slot: string, view: View): Promise<void> {
    const surface = this.surface(task);
    const ref = await this.deps.state.getMessageRef(task.id, slot);
    if (ref) {
      await surface.update(task.conversation, ref, view);
      return;
    }
    const posted = await surface.post(task.conversation, view);
    await this.deps.state.setMessageRef(task.id, slot, posted);
  }

  private grantDeps(): GrantDeps {
    return {
      grants: this.deps.grants,
      audit: this.deps.audit,
      runRetentionMs: this.deps.grantRetentionMs ?? 30 * 86_400_000,
    };
  }

  /** A channel's live standing grants; for its approvers only. */
  async listGrants(channel: ChannelRef, who: Identity): Promise<Grant[]> {
    if (!(await this.isApprover({ ...channel, thread: '-' }, who)))
      throw new HandoffError(ErrorCodes.notApprover, "only the channel's approvers may list its grants");
    return listGrants(this.grantDeps(), channel);
  }

  /** Revokes a standing grant (an approver where it applies); it stops applying at the run's next call. */
  async revokeGrant(input: { id: string; by: Identity; surface: Surface }): Promise<string> {
    const grant = await revokeGrant(this.grantDeps(), input, (g) =>
      this.isApprover(
        {
          surface: g.surface,
          ...(g.workspace !== undefined ? { workspace: g.workspace } : {}),
          channel: g.channel,
          thread: '-',
        },
        input.by,
      ),
    );
    return `Revoked: ${grant.description} now needs an approval again.`;
  }

  private policyFor(task: Task): PlanPolicy {
    return this.deps.policyFor?.(task.conversation) ?? this.deps.policy;
  }

  /**
   * Whether `who` may approve in a conversation under its policy: anyone when no
   * approvers are set, else a listed user or a member of a listed group. Self-approval
   * is not considered. Surfaces use it for what the gateway does not decide itself
   * (whose thread replies reach the agent, App Home).
   */
  async isApprover(conversation: ConversationRef, who: Identity): Promise<boolean> {
    const { policy, lookup } = await this.lookupApprover(conversation, who);
    return isApprover(policy, who.id, lookup.inApproverGroup);
  }

  /** The approvers a conversation's policy names; undefined when anyone there may approve. */
  approversFor(conversation: ConversationRef): { users: readonly string[]; groups: readonly string[] } | undefined {
    const policy = this.deps.policyFor?.(conversation) ?? this.deps.policy;
    return policy.approvers ? { users: policy.approvers, groups: policy.approverGroups ?? [] } : undefined;
  }

  /** Resolves what the pure checks cannot: group membership (I/O) and how the surface names approvers. */
  private async lookupApprover(
    conversation: ConversationRef,
    who: Identity,
  ): Promise<{ policy: PlanPolicy; lookup: ApproverLookup }> {
    const policy = this.deps.policyFor?.(conversation) ?? this.deps.policy;
    if (!policy.approvers) return { policy, lookup: {} };
    const groups = policy.approverGroups ?? [];
    const inApproverGroup =
      !policy.approvers.includes(who.id) &&
      groups.length > 0 &&
      (await this.deps.inApproverGroup?.(conversation, who, groups)) === true;
    const ask = this.deps.nameApprovers?.(conversation, { users: policy.approvers, groups });
    return { policy, lookup: { inApproverGroup, ...(ask ? { ask } : {}) } };
  }

  /**
   * A task, as a click from `surface` may see it: a task of another surface is not found
   * there (an id seen in one chat cannot be acted on from another, whose people its
   * policy does not know).
   */
  private async taskOn(taskId: string, surface: Surface | undefined): Promise<Task> {
    const task = await this.deps.state.requireTask(taskId);
    if (surface && task.conversation.surface !== surface)
      throw new HandoffError(ErrorCodes.notFound, `no task ${taskId}`);
    return task;
  }

  private surface(task: Task): ChatSurface {
    return this.surfaceNamed(task.conversation.surface);
  }

  private surfaceNamed(name: string): ChatSurface {
    const surface = this.deps.surfaces.find((s) => s.name === name);
    if (!surface) throw new HandoffError(ErrorCodes.notFound, `no ${name} surface is configured`);
    return surface;
  }
}

/** A failure to start signing in, in words fit for the person (they carry no token material). */
function connectionProblem(err: unknown): unknown {
  if (
    err instanceof HandoffError &&
    (err.code === ConnectionErrorCodes.connectionFailed ||
      err.code === ConnectionErrorCodes.connectionUnavailable ||
      err.code === ConnectionErrorCodes.serverUnsupported)
  ) {
    return new HandoffError(ErrorCodes.connectorFailed, `${err.message}; try again later or tell an admin`, {
      cause: err,
      retryable: err.retryable,
    });
  }
  return err;
}
