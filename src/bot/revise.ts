import { type PlanPolicy, planHash } from '../approvals/index.ts';
import { type ConversationRef, ErrorCodes, HandoffError, type Identity, type Task, transition } from '../core/index.ts';
import { traceOf } from '../observability/index.ts';
import type { Queues } from '../queue/index.ts';
import type { AuditLog, StateStore } from '../storage/index.ts';

/** What a change request needs (a subset of the gateway's dependencies). */
export interface ReviseDeps {
  state: StateStore;
  queues: Queues;
  audit: AuditLog;
  policy: PlanPolicy;
  /** Per-channel policy; defaults to `policy`. */
  policyFor?: (conversation: ConversationRef) => PlanPolicy;
}

/** The longest change request accepted from the "Request changes" dialog or form. */
export const maxChangeRequestChars = 2000;

/**
 * "Request changes" on a plan card: the task goes back to planning and the next plan
 * version is queued with the requested change. Only the requester or an approver may
 * ask, only for the latest version, and only while it waits for approval.
 *
 * The change text is kept on the task (`changeRequests`), apart from the original
 * request: the planner shows it to the model next to the plan it revises, and the card
 * of the next version says who asked for what.
 */
export async function requestChanges(
  deps: ReviseDeps,
  input: {
    taskId: string;
    planVersion: number;
    /** When given, MUST be the hash of that version: a card for another plan is refused. */
    planHash?: string;
    by: Identity;
    text: string;
    /**
     * Whether the caller already found `by` to be an approver (groups need I/O, which the
     * compare-and-set below cannot do). When unset, the policy's listed approvers decide.
     */
    approver?: boolean;
  },
): Promise<Task> {
  const text = input.text.trim();
  if (text.length === 0) throw new HandoffError(ErrorCodes.invalidInput, 'say what should change');
  if (text.length > maxChangeRequestChars) {
    throw new HandoffError(ErrorCodes.invalidInput, `at most ${maxChangeRequestChars} characters, please`);
  }
  const { state, queues, audit } = deps;
  if (input.planHash !== undefined) {
    const plan = await state.getPlan(input.taskId, input.planVersion);
    if (!plan || planHash(plan) !== input.planHash) {
      throw new HandoffError(
        ErrorCodes.staleApproval,
        'this card does not show the plan on record; use the latest card',
      );
    }
  }
  const { before, after } = await state.updateTask(input.taskId, (task) => {
    if (task.state !== 'awaiting_approval') {
      throw new HandoffError(
        ErrorCodes.staleApproval,
        `this task is ${task.state.replace(/_/g, ' ')}: changes can only be requested while the plan waits for approval`,
      );
    }
    if (task.planVersion !== input.planVersion) {
      throw new HandoffError(ErrorCodes.staleApproval, 'this card shows an outdated plan version; use the latest card');
    }
    const policy = deps.policyFor?.(task.conversation) ?? deps.policy;
    const approver = input.approver ?? (!policy.approvers || policy.approvers.includes(input.by.id));
    if (input.by.id !== task.requester.id && !approver) {
      throw new HandoffError(ErrorCodes.notApprover, 'only the requester or an approver can request changes');
    }
    const at = new Date();
    const changeRequests = [
      ...(task.changeRequests ?? []),
      { version: task.planVersion, by: input.by, text, at: at.toISOString() },
    ];
    return transition(task, 'planning', at, { changeRequests });
  });
  try {
    await queues.enqueuePlan({ taskId: after.id, version: before.planVersion + 1, ...traceOf(after.trace) });
  } catch (err) {
    await state
      .updateTask(after.id, (t) =>
        t.state === 'planning'
          ? transition(t, 'failed', new Date(), {
              failure: { code: ErrorCodes.queueUnavailable, message: 'the new plan version could not be queued' },
            })
          : t,
      )
      .catch(() => undefined);
    throw err;
  }
  await audit.append({
    type: 'plan.changes_requested',
    taskId: after.id,
    actor: input.by.id,
    data: { fromVersion: before.planVersion, text },
  });
  return after;
}
