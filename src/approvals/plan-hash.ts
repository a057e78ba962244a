import { createHash } from 'node:crypto';
import { canonicalJson, type Plan } from '../core/index.ts';

/**
 * The hash an approval binds to: task, version, what the plan says and its envelope.
 * Approving version 2 does not approve version 3, nor version 2 with a wider envelope.
 */
export function planHash(plan: Plan): string {
  const bound = {
    taskId: plan.taskId,
    version: plan.version,
    summary: plan.summary,
    steps: plan.steps,
    deliverables: plan.deliverables,
    envelope: plan.envelope,
    // Only when present, so the hash of a plan without workstreams is unchanged.
    ...(plan.workstreams
      ? { workstreams: plan.workstreams, merge: plan.merge ?? '', onChildFailure: plan.onChildFailure ?? 'fail' }
      : {}),
  };
  return createHash('sha256').update(canonicalJson(bound)).digest('hex');
}
