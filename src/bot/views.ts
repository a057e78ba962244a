import {
  followUpApproval,
  type PlanDiff,
  type PlanPolicy,
  planBlockers,
  planDiff,
  planHash,
  stepTrustLevels,
} from '../approvals/index.ts';
import {
  type ActionDecision,
  type Artifact,
  changeRequestsFor,
  type DeliverableSpec,
  isTerminal,
  type PendingAction,
  type Plan,
  type ProgressEvent,
  runIsLive,
  type StepStatus,
  type Task,
  type TrustLevel,
  threadContextNote,
  type WorkstreamProgress,
} from '../core/index.ts';
import { channelContextNote } from './channel-context-note.ts';

/** Surface-neutral views; each surface renders them its own way (HTML, Block Kit, Adaptive Cards). */
export interface StatusView {
  kind: 'status';
  text: string;
  tone: 'info' | 'error';
  demo: boolean;
}

export interface PlanView {
  kind: 'plan';
  taskId: string;
  version: number;
  hash: string;
  requester: string;
  summary: string;
  steps: Array<{ title: string; detail: string; level: TrustLevel }>;
  deliverables: DeliverableSpec[];
  budget: { estimatedTokens: number; estimatedCostUsd: number; maxCostUsd: number; maxWallTimeMin: number };
  blockers: string[];
  demo: boolean;
  model: string;
  /** Set once someone decided; the buttons are gone then. */
  decision?: { outcome: 'approved' | 'denied' | 'cancelled' | 'superseded' | 'expired'; by: string; at: string };
  /** Approvals so far when a quorum of several is needed. */
  votes?: { names: string[]; needed: number };
  expiresAt?: string;
  /** On a revised plan (version > 1): who asked for what, and what changed since the previous version. */
  changes?: { requestedBy: string; text: string; diff: PlanDiff; followUp?: FollowUpNote };
  /** On a schedule's standing plan: the schedule, shown above the plan. */
  schedule?: ScheduleInfo;
  /** What the plan may reach beyond its files; set only when it reaches anything. */
  reach?: PlanReachView;
  /** A plan that fans out: its parallel workstreams, the merge and the failure rule. */
  workstreams?: PlanWorkstreamsView;
  /** "Used N earlier messages from this thread…", or why they could not be read. */
  context?: string;
  /** "Follows this channel's instructions and 3 remembered facts.": counts from the plan's snapshot, no texts. */
  channelNote?: string;
}

/** A plan's reach beyond its files, as the card shows it. */
export interface PlanReachView {
  /** `Records: lookup` with its kind and level. */
  connectors: Array<{ label: string; action: 'read' | 'write'; trust: TrustLevel }>;
  egressDomains: string[];
  webFetch: boolean;
  webSearch: boolean;
  mayOverwrite: string[];
  mayDelete: string[];
}

/** The reach of a plan as plain lines (each surface escapes and styles them). */
export function reachLines(reach: PlanReachView): string[] {
  const lines: string[] = [];
  const level = (t: TrustLevel) => (t === 'watched' ? 'watched: asks before each call' : t);
  if (reach.connectors.length > 0)
    lines.push(
      `Connector tools: ${reach.connectors.map((c) => `${c.label} (${c.action}, ${level(c.trust)})`).join('; ')}`,
    );
  if (reach.egressDomains.length > 0)
    lines.push(
      `Web access: ${reach.egressDomains.join(', ')}${reach.webFetch ? ' (pages read with web_fetch, or from the sandbox through the allowlisting proxy)' : ' (through the allowlisting proxy)'}${reach.webSearch ? '; web search limited to these domains' : ''}; any other domain asks first`,
    );
  if (reach.mayOverwrite.length > 0) lines.push(`May overwrite inputs: ${reach.mayOverwrite.join(', ')} (asks first)`);
  if (reach.mayDelete.length > 0) lines.push(`May delete inputs: ${reach.mayDelete.join(', ')} (asks first)`);
  return lines;
}

/** The reach view of a plan, undefined when it reaches nothing beyond its files. */
export function planReachView(plan: Plan): PlanReachView | undefined {
  const e = plan.envelope;
  const connectors = (e.connectors ?? []).map((t) => ({
    label: `${t.title ?? t.connector}: ${t.tool}`,
    action: t.action === 'connector_read' ? ('read' as const) : ('write' as const),
    trust: t.trust,
  }));
  if (connectors.length + e.egressDomains.length + e.mayOverwrite.length + e.mayDelete.length === 0) return undefined;
  return {
    connectors,
    egressDomains: [...e.egressDomains],
    webFetch: e.webFetch === true,
    webSearch: e.webSearch === true,
    mayOverwrite: [...e.mayOverwrite],
    mayDelete: [...e.mayDelete],
  };
}

/** A schedule as a card shows it: when, where, whose, and the envelope each run stays in. */
export interface ScheduleInfo {
  /** Set once the schedule exists (after approval). */
  scheduleId?: string;
  /** The rule in words, e.g. "every weekday (Mon–Fri) at 08:30". */
  words: string;
  tz: string;
  /** Where the zone came from, in words ("given in the request", "the channel's zone", …). */
  tzSource: string;
  /** The next runs, formatted in the zone. */
  nextRuns: string[];
  owner: string;
  /** The channel briefs are posted in (the surface's id). */
  target: string;
  envelope: {
    tools: string[];
    connectors: string[];
    deliverableTypes: string[];
    maxCostUsdPerRun: number;
    maxWallTimeMin: number;
    /** The channel's monthly cost cap, when one is set. */
    monthlyCapUsd?: number;
  };
  catchUp: 'latest' | 'none';
  /** The schedule approving this one replaces (an edit of what it does). */
  replaces?: string;
}

export interface ProgressView {
  kind: 'progress';
  taskId: string;
  steps: Array<{ title: string; status: StepStatus }>;
  activity?: string;
  outputTail?: string;
  elapsedMs: number;
  /** Tokens so far, by kind. */
  usage: TokenBreakdown;
  cancellable: boolean;
  /** A run that fans out: where each workstream is. */
  workstreams?: WorkstreamProgress[];
  demo: boolean;
}

export interface FileLink {
  name: string;
  mediaType: string;
  size: number;
  url: string;
  expiresAt: string;
}

/** Tokens by kind, as the card and the result show them. */
export interface TokenBreakdown {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

export interface ResultView {
  kind: 'result';
  taskId: string;
  status: 'succeeded' | 'failed' | 'cancelled';
  summary?: string;
  reason?: string;
  files: FileLink[];
  durationMs: number;
  /** Tokens by kind (input, output, cache reads and writes). */
  usage: TokenBreakdown;
  costUsd: number;
  demo: boolean;
  /** Offers "Schedule…": run this request again on a schedule. */
  schedulable?: boolean;
  /** Facts the agent proposed for the channel's memory, still open: Accept / Dismiss for approvers. */
  memoryProposals?: Array<{ id: string; text: string }>;
}

/**
 * One tick's brief: a top-level message in the schedule's channel, edited in place from
 * "preparing" to the brief (or to a failure notice); its thread takes questions.
 */
export interface BriefView {
  kind: 'brief';
  taskId: string;
  scheduleId: string;
  title: string;
  /** The tick's scheduled time, in the schedule's zone. */
  date: string;
  state: 'running' | 'posted' | 'nothing_new' | 'failed' | 'cancelled';
  /** Set when the tick ran late (Handoff was down at its time), e.g. "2 h 10 min late". */
  late?: string;
  manual?: boolean;
  summary?: string;
  /** The brief's markdown deliverable, shown in the message (cut to fit). */
  body?: string;
  files: FileLink[];
  /** What failed, in plain words, and what to do. */
  reason?: string;
  advice?: string;
  /** Set when this failure paused the schedule. */
  paused?: string;
  owner: string;
  demo: boolean;
}

/** A channel's schedules, with the buttons the person may use. */
export interface ScheduleListView {
  kind: 'schedules';
  channel: string;
  items: Array<{
    id: string;
    request: string;
    owner: string;
    words: string;
    tz: string;
    status: 'active' | 'paused';
    pausedReason?: string;
    nextRun?: string;
    lastResult?: string;
  }>;
  demo: boolean;
}

export interface QuestionView {
  kind: 'question';
  taskId: string;
  question: string;
  /** Until when a reply in the thread answers it; after that the agent goes on without. */
  expiresAt?: string;
  /** Set once someone answered. */
  answeredBy?: string;
  demo: boolean;
}

/** A paused call: exactly what will happen if a person approves it. */
export interface ApprovalRequestView {
  kind: 'approval';
  taskId: string;
  approvalId: string;
  tool: string;
  action: string;
  trust: TrustLevel;
  reason: string;
  /** The command, the file and its new content, or the tool's arguments. */
  details: Array<{ label: string; value: string }>;
  expiresAt: string;
  state: 'pending' | 'approved' | 'denied' | 'expired' | 'stopped';
  decidedBy?: string;
  decidedAt?: string;
  /**
   * Grant buttons besides Approve/Deny (src/core/grant.ts): "Approve for the rest of this
   * run" and "Always allow in this channel" (for `channelDays` days), each only when offered.
   */
  grantOptions?: { run: boolean; channel: boolean; channelDays: number; patterns: string[] };
  /** Set when the approval also granted the call: for the rest of the run, or in the channel. */
  grantedScope?: 'run' | 'channel';
  demo: boolean;
}

/**
 * A per-user connector the task could use, but its requester has not connected: posted
 * once per task and connector in the task's thread, addressed to the requester. Its
 * Connect button starts signing in for whoever presses it, with their own account; the
 * sign-in link goes to that person alone and is never part of this shared card.
 */
export interface ConnectView {
  kind: 'connect';
  taskId: string;
  /** The connector's name in handoff.yaml: what the button carries. */
  connector: string;
  /** Its human name. */
  title: string;
  /** The requester's name: whose connection the task uses. */
  requester: string;
  /** What the requester did; the button stays until they have connected. */
  state: 'open' | 'connected' | 'declined';
  /** Who connected or declined (the requester). */
  by?: string;
  demo: boolean;
}

/** One person's per-user connections, with their buttons (`/handoff connections`, the console's panel). */
export interface ConnectionsView {
  kind: 'connections';
  /** Every per-user connector, connected or not, and connections kept for connectors no longer configured. */
  items: Array<{
    connector: string;
    title: string;
    connected: boolean;
    connectedAt?: string;
    /** When the current access expires, when the service said. */
    expiresAt?: string;
    /** Whether Handoff renews the access by itself (it holds a refresh token). */
    refreshable?: boolean;
  }>;
  demo: boolean;
}

export type View =
  | StatusView
  | PlanView
  | ProgressView
  | ResultView
  | QuestionView
  | ApprovalRequestView
  | BriefView
  | ScheduleListView
  | ConnectView
  | ConnectionsView;

/** The Connect card of a task for one connector. */
export function connectView(
  task: Pick<Task, 'id' | 'requester' | 'demo'>,
  connector: string,
  title: string,
  state: ConnectView['state'] = 'open',
  by?: string,
): ConnectView {
  return {
    kind: 'connect',
    taskId: task.id,
    connector,
    title,
    requester: task.requester.name,
    state,
    ...(by ? { by } : {}),
    demo: task.demo,
  };
}

/**
 * The Connect card's words as plain lines, the headline first (each surface escapes and
 * styles them). The button's label is {@link connectButtonLabel}.
 */
export function connectLines(view: ConnectView): string[] {
  switch (view.state) {
    case 'open':
      return [
        `${view.requester}: Handoff can use ${view.title} as you once you connect it.`,
        `Connect opens the ${view.title} sign-in page for whoever presses it. This task uses ${view.requester}'s connection only: anyone else who connects links their own account, for their own requests. Until then Handoff goes on without ${view.title}.`,
      ];
    case 'connected':
      return [
        `Connected by ${view.by ?? view.requester}: Handoff can now use ${view.title} as ${view.by ?? view.requester} for this task.`,
      ];
    case 'declined':
      return [
        `${view.by ?? view.requester} declined to connect ${view.title}.`,
        `Handoff goes on without it. Press Connect to try again.`,
      ];
  }
}

/** "Connect Notes". */
export function connectButtonLabel(title: string): string {
  return `Connect ${title}`;
}

/** One connection's facts as plain words: when it was made, until when it works, whether it renews itself. */
export function connectionFacts(item: ConnectionsView['items'][number]): string {
  if (!item.connected) return 'not connected';
  const parts: string[] = [];
  if (item.connectedAt) parts.push(`connected ${utcMinute(item.connectedAt)}`);
  if (item.expiresAt) parts.push(`access expires ${utcMinute(item.expiresAt)}`);
  parts.push(item.refreshable ? 'renewed automatically' : 'not renewable: connect again once it expires');
  return parts.join(' · ');
}

/** "2025-03-01 14:05 UTC". */
function utcMinute(iso: string): string {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC` : iso;
}

export function approvalView(
  task: Task,
  pending: PendingAction,
  decision: ActionDecision | undefined,
  /** The grant buttons the channel's policy offers for this call (`grantOfferFor`); none when absent. */
  offer?: { run: boolean; channel: boolean; channelDays: number },
): ApprovalRequestView {
  const details = Object.entries(pending.input)
    .filter(([k]) => k !== 'step')
    .map(([label, v]) => ({ label, value: typeof v === 'string' ? v : JSON.stringify(v) }));
  let state: ApprovalRequestView['state'] = decision ? decision.outcome : 'pending';
  if (!decision && isTerminal(task.state)) state = 'stopped';
  // Expiry is the more precise reason when both hold: it is what stopped the run.
  if (!decision && Date.parse(pending.expiresAt) <= Date.now()) state = 'expired';
  return {
    kind: 'approval',
    taskId: task.id,
    approvalId: pending.id,
    tool: pending.tool,
    action: pending.action,
    trust: pending.trust,
    reason: pending.reason,
    details,
    expiresAt: pending.expiresAt,
    state,
    ...(decision ? { decidedBy: decision.by.name, decidedAt: decision.at } : {}),
    ...(decision?.grant ? { grantedScope: decision.grant } : {}),
    ...(offer && (offer.run || offer.channel) && state === 'pending'
      ? { grantOptions: { ...offer, patterns: [...(pending.grantPatterns ?? [])] } }
      : {}),
    demo: task.demo,
  };
}

/** On a follow-up plan's card: how it compares with the envelope of the plan that delivered. */
export interface FollowUpNote {
  withinEnvelope: boolean;
  /** What it adds beyond that envelope (new tools, domains, rights, a larger budget). */
  beyond: string[];
  /** Whether the requester alone may approve it (channel policy `followUps`). */
  requesterAlone: boolean;
}

/** The words a renderer shows for a follow-up plan's envelope, after "Follow-up from NAME". */
export function followUpNoteText(note: FollowUpNote): string {
  if (!note.withinEnvelope) return `Goes beyond the delivered plan (${note.beyond.join('; ')}): approved as usual.`;
  return note.requesterAlone
    ? "Inside the delivered plan's approved envelope: the requester may approve it alone."
    : "Inside the delivered plan's approved envelope.";
}

/**
 * The plan card. `previous` is the version this plan revises (version - 1); with it, the
 * card shows the change that was asked for and what it changed.
 */
export function planView(task: Task, plan: Plan, policy: PlanPolicy, previous?: Plan): PlanView {
  const levels = stepTrustLevels(plan, policy);
  const view: PlanView = {
    kind: 'plan',
    taskId: task.id,
    version: plan.version,
    hash: planHash(plan),
    requester: task.requester.name,
    summary: plan.summary,
    steps: plan.steps.map((s, i) => ({ title: s.title, detail: s.detail, level: levels[i]!.level })),
    deliverables: plan.deliverables,
    budget: {
      estimatedTokens: plan.estimatedTokens,
      estimatedCostUsd: plan.estimatedCostUsd,
      maxCostUsd: plan.envelope.budget.maxCostUsd,
      maxWallTimeMin: Math.round(plan.envelope.budget.maxWallTimeMs / 60_000),
    },
    blockers: planBlockers(plan, policy),
    demo: plan.demo,
    model: plan.model,
    votes: {
      names: task.votes.filter((v) => v.planVersion === plan.version).map((v) => v.by.name),
      needed: policy.quorum ?? 1,
    },
    ...(task.approvalExpiresAt && task.planVersion === plan.version ? { expiresAt: task.approvalExpiresAt } : {}),
  };
  const reach = planReachView(plan);
  if (reach) view.reach = reach;
  if (plan.workstreams?.length) view.workstreams = planWorkstreamsView(plan);
  const context = threadContextNote(task.context);
  if (context) view.context = context;
  const channelNote = channelContextNote(plan.channelContext);
  if (channelNote) view.channelNote = channelNote;
  if (previous && plan.version > 1 && previous.version === plan.version - 1) {
    const asked = changeRequestsFor(task, plan.version).at(-1);
    view.changes = {
      requestedBy: asked?.by.name ?? '',
      text: asked?.text ?? '',
      diff: planDiff(previous, plan),
    };
    // A follow-up after the previous version delivered: whether it stays inside that envelope.
    const followUp = followUpApproval(task, plan, previous, policy);
    if (followUp?.comparison)
      view.changes.followUp = {
        withinEnvelope: followUp.comparison.within,
        beyond: followUp.comparison.beyond,
        requesterAlone: followUp.requesterAlone,
      };
  }
  // Changes asked on this version: it is replaced as soon as they are asked, not when the next is ready.
  const replacedBy = changeRequestsFor(task, plan.version + 1).at(-1);
  if (task.planVersion > plan.version || replacedBy) {
    view.decision = { outcome: 'superseded', by: replacedBy?.by.name ?? '', at: replacedBy?.at ?? task.updatedAt };
  } else if (task.decision && task.decision.planVersion === plan.version) {
    view.decision = { outcome: task.decision.outcome, by: task.decision.by.name, at: task.decision.at };
  } else if (task.state === 'expired') {
    view.decision = { outcome: 'expired', by: '', at: task.updatedAt };
  } else if (task.state === 'cancelled') {
    view.decision = { outcome: 'cancelled', by: task.cancelRequestedBy?.name ?? '', at: task.updatedAt };
  }
  return view;
}

export function progressView(task: Task, event: ProgressEvent): ProgressView {
  return {
    kind: 'progress',
    taskId: task.id,
    steps: event.steps,
    ...(event.activity ? { activity: event.activity } : {}),
    ...(event.outputTail ? { outputTail: event.outputTail } : {}),
    elapsedMs: event.elapsedMs,
    usage: tokenBreakdown(event.usage),
    cancellable: runIsLive(task.state),
    ...(event.workstreams?.length ? { workstreams: event.workstreams } : {}),
    demo: task.demo,
  };
}

/** The final card of a run; `links` are fresh download links for the task's artifacts. */
export function resultView(
  task: Task,
  plan: Plan | undefined,
  links: Array<{ artifact: Artifact; url: string; expiresAt: string }>,
): ResultView {
  const status = task.state === 'succeeded' ? 'succeeded' : task.state === 'cancelled' ? 'cancelled' : 'failed';
  const started = task.startedAt ? Date.parse(task.startedAt) : Date.parse(task.createdAt);
  const ended = task.finishedAt ? Date.parse(task.finishedAt) : Date.now();
  return {
    kind: 'result',
    taskId: task.id,
    status,
    ...(task.resultSummary ? { summary: task.resultSummary } : {}),
    ...(status !== 'succeeded' && task.failure ? { reason: task.failure.message } : {}),
    files: links.map(({ artifact, url, expiresAt }) => ({
      name: artifact.name,
      mediaType: artifact.mediaType,
      size: artifact.size,
      url,
      expiresAt,
    })),
    durationMs: Math.max(0, ended - started),
    usage: tokenBreakdown(task.usage),
    costUsd: task.costUsd,
    demo: plan?.demo ?? task.demo,
  };
}

export function questionView(
  task: Pick<Task, 'id' | 'demo'>,
  question: string,
  options: { expiresAt?: string; answeredBy?: string } = {},
): QuestionView {
  return { kind: 'question', taskId: task.id, question, ...options, demo: task.demo };
}

export function tokenBreakdown(usage: Task['usage']): TokenBreakdown {
  return {
    input: usage.inputTokens,
    output: usage.outputTokens,
    cacheRead: usage.cacheReadTokens,
    cacheWrite: usage.cacheWriteTokens,
  };
}

/** "12,300 in · 2,100 out · 80,000 cache read · 4,000 cache write" (zero kinds left out). */
export function formatTokens(u: TokenBreakdown): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const parts = [`${n(u.input)} in`, `${n(u.output)} out`];
  if (u.cacheRead > 0) parts.push(`${n(u.cacheRead)} cache read`);
  if (u.cacheWrite > 0) parts.push(`${n(u.cacheWrite)} cache write`);
  return parts.join(' · ');
}

export function statusView(task: Pick<Task, 'demo'>, text: string, tone: StatusView['tone'] = 'info'): StatusView {
  return { kind: 'status', text, tone, demo: task.demo };
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${s % 60} s`;
}

export function formatUsd(n: number): string {
  return n < 0.01 && n > 0 ? '< $0.01' : `$${n.toFixed(2)}`;
}

/** A brief's one-line headline, by its state: what notifications and the message's title say. */
export function briefHeadline(view: BriefView): string {
  switch (view.state) {
    case 'running':
      return `Preparing: ${view.title} (${view.date})`;
    case 'posted':
      return `${view.title} — ${view.date}`;
    case 'nothing_new':
      return `${view.title} — ${view.date}: nothing new`;
    case 'failed':
      return `Failed: ${view.title} (${view.date})`;
    case 'cancelled':
      return `Cancelled: ${view.title} (${view.date})`;
  }
}

/** A plan's workstreams as the card shows them. */
export interface PlanWorkstreamsView {
  items: Array<{ id: string; title: string; brief: string }>;
  merge?: string;
  onChildFailure: 'retry' | 'continue' | 'fail';
}

export function planWorkstreamsView(plan: Plan): PlanWorkstreamsView {
  return {
    items: (plan.workstreams ?? []).map((w) => ({ id: w.id, title: w.title, brief: w.brief })),
    ...(plan.merge ? { merge: plan.merge } : {}),
    onChildFailure: plan.onChildFailure ?? 'fail',
  };
}

const childFailureWords = {
  retry: 'a workstream that fails is retried once; if it fails again, the task stops',
  continue: 'a workstream that fails is reported and the merge goes on without it',
  fail: 'if a workstream fails, the others stop and the task fails',
} as const;

/** The plan card's workstream section as plain lines (each surface escapes and styles them). */
export function workstreamPlanLines(view: PlanWorkstreamsView): { heading: string; lines: string[] } {
  return {
    heading: `Runs as ${view.items.length} parallel workstreams, each in its own sandbox`,
    lines: [
      ...view.items.map((w) => `${w.title} (${w.id}): ${w.brief}`),
      ...(view.merge ? [`Then the merge: ${view.merge}`] : []),
      `If one fails: ${childFailureWords[view.onChildFailure]}`,
    ],
  };
}

const workstreamStateWords: Record<WorkstreamProgress['state'], string> = {
  queued: 'queued',
  running: 'running',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** The progress card's workstream lines: "North: running". */
export function workstreamProgressLines(list: readonly WorkstreamProgress[]): string[] {
  return list.map((w) => `${w.title}: ${workstreamStateWords[w.state]}`);
}
