import {
  defaultStandingGrantRule,
  describeGrantPattern,
  ErrorCodes,
  type Grant,
  type GrantOffer,
  type GrantScope,
  grantOffer,
  HandoffError,
  type Identity,
  newId,
  type PendingAction,
  type StandingGrantRule,
  type Task,
} from '../core/index.ts';
import type { PlanPolicy } from './plan-decision.ts';

const dayMs = 86_400_000;

/** A channel's standing-grant rule: off unless its policy says `standingGrants: { allow: true }`. */
export function standingGrantRule(policy: PlanPolicy): StandingGrantRule {
  return policy.standingGrants ?? defaultStandingGrantRule;
}

/**
 * The grant buttons a paused call's card offers under a channel's policy (src/core/grant.ts,
 * `grantOffer`). A web domain is granted in a channel only when the channel's
 * `egressDomains` admits it: a standing grant never reaches past the channel's allowlist.
 */
export function grantOfferFor(pending: PendingAction, policy: PlanPolicy): GrantOffer {
  const offer = grantOffer(pending, policy.trustLevels, standingGrantRule(policy));
  const patterns = pending.grantPatterns ?? [];
  return offer.channel && !patterns.every((p) => channelPatternAdmitted(p, policy))
    ? { ...offer, channel: false }
    : offer;
}

/** Whether a channel's policy still admits a pattern for a channel grant (egress: its `egressDomains`). */
export function channelPatternAdmitted(pattern: string, policy: PlanPolicy): boolean {
  if (!pattern.startsWith('egress:')) return true;
  const host = pattern.slice('egress:'.length);
  return (policy.egressDomains ?? []).some((d) => (d.startsWith('*.') ? host.endsWith(d.slice(1)) : host === d));
}

/**
 * The grants a click on "Approve for the rest of this run" (`run`) or "Always allow in
 * this channel" (`channel`) creates: one per pattern of the paused call. Throws when the
 * card did not offer that button (a forged or stale click): nothing is granted then.
 * A run grant lasts as long as the run's records (`runRetentionMs`); a channel grant
 * `maxDays` of the channel's policy.
 */
export function grantsForClick(input: {
  task: Task;
  runId: string;
  pending: PendingAction;
  scope: GrantScope;
  by: Identity;
  policy: PlanPolicy;
  now: Date;
  runRetentionMs: number;
}): Grant[] {
  const { task, runId, pending, scope, by, policy, now } = input;
  const offer = grantOfferFor(pending, policy);
  if (!offer[scope]) {
    throw new HandoffError(
      ErrorCodes.notApprover,
      scope === 'channel'
        ? "this step cannot be allowed for the whole channel: the channel's policy does not allow standing grants, or this kind of call cannot have one"
        : 'this step cannot be approved for the rest of the run',
    );
  }
  const expiresAt = new Date(
    now.getTime() + (scope === 'channel' ? standingGrantRule(policy).maxDays * dayMs : input.runRetentionMs),
  ).toISOString();
  return (pending.grantPatterns ?? []).map((pattern) => ({
    id: newId('g'),
    pattern,
    action: pending.action,
    scope,
    surface: task.conversation.surface,
    ...(task.conversation.workspace !== undefined ? { workspace: task.conversation.workspace } : {}),
    channel: task.conversation.channel,
    taskId: task.id,
    runId,
    approvalId: pending.id,
    description: describeGrantPattern(pattern).slice(0, 500),
    createdBy: by,
    createdAt: now.toISOString(),
    expiresAt,
  }));
}
