import { grantOfferFor, grantsForClick, type PlanPolicy, standingGrantRule } from '../approvals/index.ts';
import {
  type ChannelRef,
  ErrorCodes,
  type Grant,
  type GrantScope,
  HandoffError,
  type Identity,
  type PendingAction,
  type Surface,
  type Task,
} from '../core/index.ts';
import type { AuditLog, GrantStore } from '../storage/index.ts';

/** What the gateway lends the standing-grant commands. */
export interface GrantDeps {
  grants?: GrantStore | undefined;
  audit: AuditLog;
  /** How long a run grant lasts: the retention of the run's records. */
  runRetentionMs: number;
}

/** The grant buttons of a paused call's card; undefined when none are offered or grants are not set up. */
export function grantButtons(
  deps: GrantDeps,
  policy: PlanPolicy,
  pending: PendingAction,
): { run: boolean; channel: boolean; channelDays: number } | undefined {
  if (!deps.grants) return undefined;
  const offer = grantOfferFor(pending, policy);
  if (!offer.run && !offer.channel) return undefined;
  return { ...offer, channelDays: standingGrantRule(policy).maxDays };
}

/**
 * Checks a grant click before anything is recorded: only with Approve, only where grants
 * are set up, and only a button the card offered (a forged "Always allow" on a forbidden
 * kind, or in a channel whose policy does not allow it, is refused here).
 */
export function grantsToCreate(
  deps: GrantDeps,
  input: {
    task: Task;
    pending: PendingAction;
    scope: GrantScope;
    outcome: 'approved' | 'denied';
    by: Identity;
    policy: PlanPolicy;
  },
): Grant[] {
  if (input.outcome !== 'approved') throw new HandoffError(ErrorCodes.invalidInput, 'a grant comes with Approve only');
  if (!deps.grants) throw new HandoffError(ErrorCodes.invalidInput, 'standing grants are not available here');
  return grantsForClick({
    task: input.task,
    runId: input.task.runId!,
    pending: input.pending,
    scope: input.scope,
    by: input.by,
    policy: input.policy,
    now: new Date(),
    runRetentionMs: deps.runRetentionMs,
  });
}

/** Stores the grants of an approved click and audits each (`grant.created`). */
export async function storeGrants(deps: GrantDeps, task: Task, grants: readonly Grant[]): Promise<void> {
  for (const grant of grants) {
    await deps.grants!.create(grant);
    await deps.audit.append({
      type: 'grant.created',
      taskId: task.id,
      actor: grant.createdBy.id,
      data: {
        grantId: grant.id,
        pattern: grant.pattern,
        action: grant.action,
        scope: grant.scope,
        channel: `${grant.surface}:${grant.channel}`,
        runId: grant.runId,
        approvalId: grant.approvalId,
        expiresAt: grant.expiresAt,
      },
    });
  }
}

/** A channel's live grants, for its approvers. */
export async function listGrants(deps: GrantDeps, channel: ChannelRef): Promise<Grant[]> {
  if (!deps.grants) throw new HandoffError(ErrorCodes.invalidInput, 'standing grants are not available here');
  return deps.grants.forChannel(channel);
}

/**
 * Revokes a grant; `mayRevoke` says whether the person is an approver where it applies.
 * A grant of another surface is not found from this one. It stops applying at the next call.
 */
export async function revokeGrant(
  deps: GrantDeps,
  input: { id: string; by: Identity; surface: Surface },
  mayRevoke: (grant: Grant) => Promise<boolean>,
): Promise<Grant> {
  if (!deps.grants) throw new HandoffError(ErrorCodes.invalidInput, 'standing grants are not available here');
  const grant = await deps.grants.get(input.id);
  if (!grant || grant.surface !== input.surface)
    throw new HandoffError(ErrorCodes.notFound, `there is no grant ${input.id.slice(0, 64)}`);
  if (!(await mayRevoke(grant)))
    throw new HandoffError(ErrorCodes.notApprover, "only the channel's approvers may revoke a grant");
  const revoked = await deps.grants.revoke(grant.id, input.by);
  await deps.audit.append({
    type: 'grant.revoked',
    taskId: grant.taskId,
    actor: input.by.id,
    data: {
      grantId: grant.id,
      pattern: grant.pattern,
      scope: grant.scope,
      channel: `${grant.surface}:${grant.channel}`,
    },
  });
  return revoked;
}

/** "for the rest of this run" / "in this channel until 2025-04-01 12:00 UTC". */
export function grantWords(grant: Pick<Grant, 'scope' | 'expiresAt'>): string {
  return grant.scope === 'run'
    ? 'for the rest of this run'
    : `in this channel until ${grant.expiresAt.replace('T', ' ').slice(0, 16)} UTC`;
}
