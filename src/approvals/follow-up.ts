import type { FollowUp, Identity, Plan, Task } from '../core/index.ts';
import type { PlanPolicy } from './plan-decision.ts';

/** Whether a plan stays inside an earlier plan's approved envelope, and if not, why not. */
export interface EnvelopeComparison {
  within: boolean;
  /** One short phrase per way the plan goes beyond the earlier envelope. */
  beyond: string[];
}

const newOnes = (next: readonly string[], previous: readonly string[]): string[] => {
  const had = new Set(previous);
  return [...new Set(next)].filter((x) => !had.has(x));
};

/**
 * Compares a follow-up plan with the plan that was approved and delivered. Inside means:
 * no tool, connector tool, egress domain, action kind, deliverable type, overwrite or
 * delete right the earlier plan did not have, no web fetch or web search it did not
 * have, and no budget cap larger than its. Pure.
 */
export function envelopeWithin(next: Plan, previous: Plan): EnvelopeComparison {
  const a = next.envelope;
  const b = previous.envelope;
  const beyond: string[] = [];
  const add = (what: string, items: string[]) => {
    if (items.length > 0) beyond.push(`new ${what}: ${items.join(', ')}`);
  };
  add('tools', newOnes(a.tools, b.tools));
  add(
    'connector tools',
    newOnes(
      (a.connectors ?? []).map((c) => c.name),
      (b.connectors ?? []).map((c) => c.name),
    ),
  );
  add('web domains', newOnes(a.egressDomains, b.egressDomains));
  add(
    'action kinds',
    newOnes(
      next.steps.flatMap((s) => s.actions),
      previous.steps.flatMap((s) => s.actions),
    ),
  );
  add('deliverable types', newOnes(a.deliverableTypes, b.deliverableTypes));
  add('overwrite rights', newOnes(a.mayOverwrite, b.mayOverwrite));
  add('delete rights', newOnes(a.mayDelete, b.mayDelete));
  if (a.webFetch && !b.webFetch) beyond.push('web fetch');
  if (a.webSearch && !b.webSearch) beyond.push('web search');
  if (a.budget.maxTokens > b.budget.maxTokens) beyond.push('a larger token budget');
  if (a.budget.maxCostUsd > b.budget.maxCostUsd) beyond.push('a larger cost budget');
  if (a.budget.maxWallTimeMs > b.budget.maxWallTimeMs) beyond.push('a longer time budget');
  return { within: beyond.length === 0, beyond };
}

/** What a follow-up plan card and its approval need to know. */
export interface FollowUpApproval {
  /** The follow-up this plan answers. */
  followUp: FollowUp;
  /** Inside the delivered plan's envelope, or why not (undefined when that plan is gone). */
  comparison?: EnvelopeComparison;
  /** Whether the requester may approve it alone under the channel's policy. */
  requesterAlone: boolean;
}

/**
 * For plan version `plan.version` of `task`: whether it answers a follow-up and, if so,
 * whether the requester alone may approve it (`policy.followUps`, and the plan inside
 * the envelope of `delivered`, the plan version the follow-up started from). Pure.
 */
export function followUpApproval(
  task: Pick<Task, 'followUps'>,
  plan: Plan,
  delivered: Plan | undefined,
  policy: Pick<PlanPolicy, 'followUps'>,
): FollowUpApproval | undefined {
  const followUp = (task.followUps ?? []).filter((f) => f.fromVersion < plan.version).at(-1);
  if (!followUp) return undefined;
  // Only the version drafted from the follow-up itself: one revised after "Request changes"
  // answers someone's change request, and is approved as usual.
  if (!delivered || delivered.version !== followUp.fromVersion || plan.version !== followUp.fromVersion + 1)
    return { followUp, requesterAlone: false };
  const comparison = envelopeWithin(plan, delivered);
  return {
    followUp,
    comparison,
    requesterAlone: policy.followUps?.requesterMayApproveWithinEnvelope === true && comparison.within,
  };
}

/**
 * The policy a plan decision is checked and tallied under: when the requester alone may
 * approve this follow-up plan and it is the requester who clicks, their approval is
 * enough (self-approval allowed, quorum one). Everyone else, and every plan outside the
 * envelope, is under `policy` as it stands. Pure.
 */
export function decisionPolicy(
  policy: PlanPolicy,
  approval: FollowUpApproval | undefined,
  task: Pick<Task, 'requester'>,
  by: Pick<Identity, 'id'>,
): PlanPolicy {
  if (!approval?.requesterAlone || by.id !== task.requester.id) return policy;
  return {
    ...policy,
    allowSelfApproval: true,
    quorum: 1,
    // Where approvers are named, the requester counts as one for this plan alone.
    ...(policy.approvers ? { approvers: [...policy.approvers, task.requester.id] } : {}),
  };
}
