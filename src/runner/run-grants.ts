import type { RunLoopOptions } from '../agent/index.ts';
import { channelPatternAdmitted, standingGrantRule } from '../approvals/index.ts';
import { grantIsLive, type Task } from '../core/index.ts';
import { channelPolicy, type RunnerDeps } from './plan-processor.ts';

/**
 * The run's standing-grant check: before a call pauses, its run's grants and then its
 * channel's are looked up for every one of the call's exact patterns. A grant counts only
 * while it is unrevoked and unexpired, its kind is not forbidden by the channel's policy
 * as it is now, and (for a channel grant) that policy still allows standing grants and,
 * for a web domain, its `egressDomains` still admits it. A use
 * is audited (`grant.used`) before the call runs. Grants that cannot be read count as none.
 */
export function standingGrantCheck(
  deps: RunnerDeps,
  task: Task,
  runId: string,
  /** A workstream's id when the check is a child run's (its calls use the parent's run grants). */
  workstream?: string,
): NonNullable<RunLoopOptions['standingGrant']> | undefined {
  const store = deps.grants;
  if (!store) return undefined;
  return async (pending) => {
    const patterns = pending.grantPatterns ?? [];
    if (patterns.length === 0) return undefined;
    const policy = channelPolicy(deps, task);
    const rule = standingGrantRule(policy);
    // Grants only ever spare a person's click: when they cannot be read, the call asks.
    const found = await store
      .covering(
        { runId, channel: task.conversation, patterns, action: pending.action },
        (grant) =>
          grantIsLive(grant, Date.now(), policy.trustLevels, rule) &&
          (grant.scope === 'run' || channelPatternAdmitted(grant.pattern, policy)),
      )
      .catch((err: unknown) => {
        deps.logger.warn({ err, taskId: task.id }, 'standing grants could not be read; the call asks a person');
        return undefined;
      });
    if (!found || found.length === 0) return undefined;
    await deps.audit.append({
      type: 'grant.used',
      taskId: task.id,
      actor: found[0]!.createdBy.id,
      data: {
        runId,
        ...(workstream ? { workstream } : {}),
        grantIds: found.map((g) => g.id),
        scopes: [...new Set(found.map((g) => g.scope))],
        patterns,
        tool: pending.tool,
        action: pending.action,
        toolUseId: pending.toolUseId,
      },
    });
    return { grantIds: found.map((g) => g.id), by: found[0]!.createdBy };
  };
}
