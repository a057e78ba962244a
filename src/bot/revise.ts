import { ErrorCodes, HandoffError, type Identity, type Task, transition } from '../core/index.ts';
import type { GatewayDeps } from './gateway.ts';

/** The heading under which a change request is appended to the task's request. */
export function planChangeMarker(version: number): string {
  return `Changes requested for plan version ${version}`;
}

/** The longest change request accepted from the "Request changes" dialog. */
export const maxChangeRequestChars = 2000;

/**
 * "Request changes" on a plan card: the task goes back to planning and the next plan
 * version is queued with the requested change. Only the requester or an approver may
 * ask, only for the latest version, and only while it waits for approval.
 *
 * Where the change text lives: appended to the task's request under a marked heading,
 * so the planner (and later the run) read it as part of what was asked, and the thread's
 * history of changes stays on the task.
 */
export async function requestChanges(
  deps: Pick<GatewayDeps, 'state' | 'queues' | 'audit' | 'policy'>,
  input: { taskId: string; planVersion: number; by: Identity; text: string },
): Promise<Task> {
  const text = input.text.trim();
  if (text.length === 0) throw new HandoffError(ErrorCodes.invalidInput, 'say what should change');
  if (text.length > maxChangeRequestChars) {
    throw new HandoffError(ErrorCodes.invalidInput, `at most ${maxChangeRequestChars} characters, please`);
  }
  const { state, queues, audit, policy } = deps;
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
    if (policy.approvers && input.by.id !== task.requester.id && !policy.approvers.includes(input.by.id)) {
      throw new HandoffError(ErrorCodes.notApprover, 'only the requester or an approver can request changes');
    }
    const request = `${task.request}\n\n${planChangeMarker(task.planVersion + 1)} (asked by ${input.by.name}):\n${text}`;
    return transition(task, 'planning', new Date(), { request });
  });
  try {
    await queues.enqueuePlan({ taskId: after.id, version: before.planVersion + 1 });
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
