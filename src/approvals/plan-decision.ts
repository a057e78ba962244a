import {
  type ActionKind,
  ErrorCodes,
  HandoffError,
  type Identity,
  type Plan,
  type Task,
  type TrustLevel,
} from '../core/index.ts';
import { defaultTrustLevels, strictest } from './default-policy.ts';
import { planHash } from './plan-hash.ts';

export interface PlanPolicy {
  trustLevels: Readonly<Record<ActionKind, TrustLevel>>;
  /** Whether the requester may approve their own plan. */
  allowSelfApproval: boolean;
  /** Who may approve; undefined means anyone in the conversation. */
  approvers?: readonly string[];
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

export interface ApprovalClick {
  taskId: string;
  planVersion: number;
  planHash: string;
  by: Identity;
  outcome: 'approved' | 'denied';
}

/**
 * Checks a click on a plan card against the task, the current plan and policy.
 * Throws a HandoffError whose message is fit to show the person who clicked.
 */
export function checkPlanDecision(task: Task, plan: Plan | undefined, click: ApprovalClick, policy: PlanPolicy): void {
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
  if (policy.approvers && !policy.approvers.includes(click.by.id)) {
    throw new HandoffError(ErrorCodes.notApprover, 'you are not an approver for this channel');
  }
  if (click.outcome === 'approved') {
    if (click.by.id === task.requester.id && !policy.allowSelfApproval) {
      throw new HandoffError(ErrorCodes.notApprover, 'you cannot approve your own request; ask an approver');
    }
    const blockers = planBlockers(plan, policy);
    if (blockers.length > 0) {
      throw new HandoffError(ErrorCodes.planNotApprovable, `this plan cannot be approved: ${blockers.join('; ')}`);
    }
  }
}
