import {
  type ActionKind,
  ErrorCodes,
  HandoffError,
  type Identity,
  type Plan,
  type RedactionKind,
  type Task,
  type TrustLevel,
  transition,
} from '../core/index.ts';
import { defaultTrustLevels, strictest } from './default-policy.ts';
import { planHash } from './plan-hash.ts';

export interface PlanPolicy {
  trustLevels: Readonly<Record<ActionKind, TrustLevel>>;
  /** Whether the requester may approve their own plan. */
  allowSelfApproval: boolean;
  /**
   * Who may approve, by user id; undefined means anyone in the conversation. With
   * `approverGroups`, members of those groups may approve too (an empty list then
   * means: only group members).
   */
  approvers?: readonly string[];
  /**
   * Groups whose members may approve (Slack user groups `S…`). Membership needs I/O, so
   * the caller resolves it and hands the answer to `checkPlanDecision` / `isApprover`;
   * a surface that cannot resolve groups answers no (fail closed).
   */
  approverGroups?: readonly string[];
  /** Distinct approvers needed to approve a plan (default 1). */
  quorum?: number;
  /** How long a plan waits for approval before it expires. */
  approvalExpiryMs?: number;
  /** Caps that replace the deployment's defaults for this channel. */
  budget?: { maxTokens?: number; maxCostUsd?: number; maxWallTimeMs?: number; monthlyCostCapUsd?: number };
  /** What is redacted from text before it reaches the model. */
  redaction?: { enabled: boolean; kinds: RedactionKind[] };
  /**
   * Rules for scheduled briefs in the channel: who may create one, how often it may run,
   * how many the channel may have, whether runs may use connectors, and the zone for
   * schedules that name none.
   */
  schedules?: {
    create: 'anyone' | 'approvers';
    minIntervalMs: number;
    maxPerChannel: number;
    connectors: boolean;
    timeZone?: string;
  };
  /** Connectors runs in the channel may use (default: none). */
  connectors?: readonly string[];
  /** Domains an envelope in the channel may name for egress (default: none). */
  egressDomains?: readonly string[];
  /** Whether runs may use the model API's web search on the envelope's domains. */
  webSearch?: boolean;
  /** Agent Skills runs in the channel may load: `'*'` or undefined for every installed skill, else these names. */
  skills?: readonly string[] | '*';
  /** The policy file's standing instructions for the channel (`instructions:`), sent with every plan and run. */
  instructions?: string;
  /**
   * Follow-ups (a reply in the thread after a delivery): whether the requester alone may
   * approve a follow-up plan inside the envelope of the plan that delivered (default false).
   */
  followUps?: { requesterMayApproveWithinEnvelope: boolean };
  /** Standing grants (`standingGrants:`): whether "Always allow in this channel" is offered, for how many days. */
  standingGrants?: { allow: boolean; maxDays: number };
  /** `NAME/TOOL` or `NAME/*` → level; these only tighten a connector tool's level. */
  connectorTrust?: Readonly<Record<string, TrustLevel>>;
  /** Per action kind: whether a policy file set its level (a connector's own override cannot loosen it then). */
  explicitTrust?: Partial<Record<ActionKind, boolean>>;
}

export function defaultPlanPolicy(allowSelfApproval: boolean): PlanPolicy {
  return { trustLevels: defaultTrustLevels, allowSelfApproval };
}

export interface StepTrust {
  title: string;
  level: TrustLevel;
}

/** Each step's trust level: the strictest of the actions it needs. */
export function stepTrustLevels(plan: Plan, policy: PlanPolicy): StepTrust[] {
  return plan.steps.map((s) => ({ title: s.title, level: strictest(s.actions.map((a) => policy.trustLevels[a])) }));
}

/** Why a plan cannot be approved at all (a forbidden action), naming the step. */
export function planBlockers(plan: Plan, policy: PlanPolicy): string[] {
  const blockers: string[] = [];
  plan.steps.forEach((step, i) => {
    for (const action of step.actions) {
      if (policy.trustLevels[action] === 'forbidden') {
        blockers.push(`step ${i + 1} (“${step.title}”) needs ${action.replace(/_/g, ' ')}, which policy forbids`);
      }
    }
  });
  return blockers;
}

/**
 * Whether `userId` may approve under `policy`: anyone when no approvers are set;
 * otherwise a listed user, or a member of a listed group (`inApproverGroup`, resolved by
 * the caller). Self-approval is checked separately.
 */
export function isApprover(policy: PlanPolicy, userId: string, inApproverGroup = false): boolean {
  if (!policy.approvers) return true;
  if (policy.approvers.includes(userId)) return true;
  return inApproverGroup && (policy.approverGroups?.length ?? 0) > 0;
}

/** "U1, U2 or a member of S1" — who to ask, in plain ids, when the surface has no nicer names. */
export function describeApprovers(policy: PlanPolicy): string {
  if (!policy.approvers) return 'someone else in this conversation';
  const names = [...policy.approvers, ...(policy.approverGroups ?? []).map((g) => `a member of ${g}`)];
  if (names.length <= 1) return names[0] ?? 'an approver';
  return `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

/** What the caller resolved about the person who clicked, before the pure check. */
export interface ApproverLookup {
  /** Whether they belong to one of `PlanPolicy.approverGroups` (default: no). */
  inApproverGroup?: boolean;
  /** Who to ask, as the surface names them (Slack mentions); `describeApprovers` by default. */
  ask?: string;
}

/**
 * What a person asks of a task: approve or deny (a plan, or a step paused mid-run), or
 * cancel it.
 */
export type DeciderAct = 'approved' | 'denied' | 'cancel';

/** What an approval is about, for the words of a refusal: the plan, or a step paused mid-run. */
export type DecisionSubject = 'plan' | 'step';

/**
 * The one rule on who may decide a task, for plan cards, paused steps and Cancel alike:
 * the requester cannot approve their own request unless `policy.allowSelfApproval`; the
 * requester may always deny or cancel it (withdrawing); anyone else must be an approver.
 * Throws a HandoffError (`handoff_not_approver`) whose message is fit to show the person,
 * naming whom to ask (`lookup.ask`, else `describeApprovers`). Pure: group membership
 * comes resolved in `lookup`. `subject` only changes the words of an approval's refusal.
 */
export function checkDecider(
  task: Pick<Task, 'requester'>,
  by: Pick<Identity, 'id'>,
  act: DeciderAct,
  policy: PlanPolicy,
  lookup: ApproverLookup = {},
  subject: DecisionSubject = 'plan',
): void {
  const ask = lookup.ask ?? describeApprovers(policy);
  const byRequester = by.id === task.requester.id;
  if (act === 'approved' && byRequester && !policy.allowSelfApproval) {
    const what = subject === 'step' ? 'a step of your own request' : 'your own request';
    throw new HandoffError(ErrorCodes.notApprover, `you cannot approve ${what}; ask ${ask}`);
  }
  // The requester may always withdraw: deny their own plan or step, or cancel their task.
  if (act !== 'approved' && byRequester) return;
  if (isApprover(policy, by.id, lookup.inApproverGroup)) return;
  throw new HandoffError(
    ErrorCodes.notApprover,
    act === 'cancel'
      ? `only the requester or an approver can cancel this task; ask ${ask}`
      : `you are not an approver here; ask ${ask}`,
  );
}

export interface ApprovalClick {
  taskId: string;
  planVersion: number;
  planHash: string;
  by: Identity;
  outcome: 'approved' | 'denied';
}

/**
 * Checks a click on a plan card against the task, the current plan and policy.
 * Throws a HandoffError whose message is fit to show the person who clicked. Pure:
 * group membership comes resolved in `lookup`.
 */
export function checkPlanDecision(
  task: Task,
  plan: Plan | undefined,
  click: ApprovalClick,
  policy: PlanPolicy,
  now: number = Date.now(),
  lookup: ApproverLookup = {},
): void {
  if (task.state === 'expired') {
    throw new HandoffError(
      ErrorCodes.staleApproval,
      'this plan expired before it was approved; ask again for a new plan',
    );
  }
  if (task.state !== 'awaiting_approval') {
    const who = task.decision ? ` by ${task.decision.by.name}` : '';
    throw new HandoffError(
      ErrorCodes.staleApproval,
      task.decision
        ? `this plan was already ${task.decision.outcome}${who}`
        : `this task is ${task.state.replace(/_/g, ' ')} and is not waiting for approval`,
    );
  }
  if (!plan || click.planVersion !== task.planVersion || plan.version !== task.planVersion) {
    throw new HandoffError(ErrorCodes.staleApproval, 'this card shows an outdated plan version; use the latest card');
  }
  if (planHash(plan) !== click.planHash) {
    throw new HandoffError(ErrorCodes.staleApproval, 'this card does not match the current plan; use the latest card');
  }
  if (task.approvalExpiresAt && Date.parse(task.approvalExpiresAt) <= now) {
    throw new HandoffError(
      ErrorCodes.staleApproval,
      'this plan expired before it was approved; ask again for a new plan',
    );
  }
  checkDecider(task, click.by, click.outcome, policy, lookup, 'plan');
  if (
    click.outcome === 'approved' &&
    task.votes.some((v) => v.by.id === click.by.id && v.planVersion === click.planVersion)
  ) {
    throw new HandoffError(
      ErrorCodes.staleApproval,
      `you already approved this plan; it needs ${remainingVotes(task, policy)} more approver(s)`,
    );
  }
  if (click.outcome === 'approved') {
    const blockers = planBlockers(plan, policy);
    if (blockers.length > 0) {
      throw new HandoffError(ErrorCodes.planNotApprovable, `this plan cannot be approved: ${blockers.join('; ')}`);
    }
  }
}

function remainingVotes(task: Task, policy: PlanPolicy): number {
  const distinct = new Set(task.votes.filter((v) => v.planVersion === task.planVersion).map((v) => v.by.id));
  return Math.max(0, (policy.quorum ?? 1) - distinct.size);
}

export interface Tally {
  /** The task with the vote applied (state moved when the decision is final). */
  task: Task;
  /** approved/denied: final. pending: approved by fewer than the quorum so far. */
  outcome: 'approved' | 'denied' | 'pending';
  /** Approvals still needed when pending. */
  remaining: number;
}

/**
 * Applies one valid click (checked with checkPlanDecision first). A deny by an approver
 * denies at once; approvals count per distinct person until the quorum is reached.
 */
export function tallyPlanDecision(task: Task, click: ApprovalClick, policy: PlanPolicy, at: Date): Tally {
  const decision = {
    by: click.by,
    at: at.toISOString(),
    outcome: click.outcome,
    planVersion: click.planVersion,
    planHash: click.planHash,
  };
  if (click.outcome === 'denied')
    return { task: transition(task, 'denied', at, { decision }), outcome: 'denied', remaining: 0 };
  const votes = [
    ...task.votes.filter((v) => v.planVersion === click.planVersion),
    { by: click.by, at: decision.at, planVersion: click.planVersion, planHash: click.planHash },
  ];
  const withVote: Task = { ...task, votes, updatedAt: decision.at };
  const remaining = remainingVotes(withVote, policy);
  if (remaining > 0) return { task: withVote, outcome: 'pending', remaining };
  // A schedule's standing plan has no run to queue: approving it ends its task.
  const to = task.schedule ? 'succeeded' : 'queued';
  return { task: transition(withVote, to, at, { decision }), outcome: 'approved', remaining: 0 };
}
