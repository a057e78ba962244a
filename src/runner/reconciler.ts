import { ErrorCodes, HandoffError, isTerminal, newId, runIsLive, type Task, transition } from '../core/index.ts';
import { traceOf } from '../observability/index.ts';
import { planJobId, runIdFor, runJobId } from '../queue/index.ts';
import { expirePlan, failPlanning, type RunnerDeps } from './plan-processor.ts';

/** A task changed more recently than this is left to whoever is working on it. */
const settleMs = 20_000;
/** Job states in which the queue still owns the work. */
const inQueue = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

export interface ReconcileResult {
  requeued: number;
  failed: number;
  cancelled: number;
}

/**
 * Finds tasks whose work fell through the cracks — a Redis outage that lost a job's
 * completion, a job removed or failed without its task being told — and puts each back
 * on the queue or ends it with a message that says why. Cancel always ends a task: a
 * cancel nobody acted on (no runner holds the run) is carried out here. One runner at a
 * time does this (a lock in Redis).
 */
export async function reconcile(deps: RunnerDeps, options: { now?: number } = {}): Promise<ReconcileResult> {
  const result: ReconcileResult = { requeued: 0, failed: 0, cancelled: 0 };
  const now = options.now ?? Date.now();
  if (!(await deps.state.tryLock('reconcile', newId('rc'), 25_000))) return result;
  for (const id of await deps.state.activeTaskIds(1000)) {
    const task = await deps.state.getTask(id);
    if (!task) {
      await deps.state.forgetActive(id);
      continue;
    }
    if (isTerminal(task.state)) {
      await deps.state.expireTaskRecords(task);
      continue;
    }
    if (now - Date.parse(task.updatedAt) < settleMs) continue;
    try {
      await reconcileTask(deps, task, now, result);
    } catch (err) {
      deps.logger.warn({ err, taskId: id }, 'reconciler: could not check a task');
    }
  }
  if (result.requeued + result.failed + result.cancelled > 0) deps.logger.info(result, 'reconciler: repaired tasks');
  return result;
}

async function reconcileTask(deps: RunnerDeps, task: Task, now: number, result: ReconcileResult): Promise<void> {
  const { state, queues, audit } = deps;
  const cancelAsked = await state.cancelRequested(task.id);

  if (task.state === 'requested' || task.state === 'planning') {
    const job = await queues.plan.getJob(planJobId(task.id, task.planVersion + 1));
    const jobState = job ? await job.getState() : 'missing';
    if (inQueue.has(jobState)) return;
    if (cancelAsked) {
      await endCancelled(deps, task, result);
      return;
    }
    if (jobState === 'failed') {
      await failPlanning(
        deps,
        task.id,
        new HandoffError(ErrorCodes.runnerLost, job?.failedReason || 'the planning job failed'),
      );
      result.failed++;
      return;
    }
    await job?.remove().catch(() => undefined);
    await queues.enqueuePlan({ taskId: task.id, version: task.planVersion + 1, ...traceOf(task.trace) });
    await audit.append({ type: 'task.requeued', taskId: task.id, data: { queue: 'plan', jobState } });
    result.requeued++;
    return;
  }

  if (task.state === 'awaiting_approval') {
    if (task.approvalExpiresAt && Date.parse(task.approvalExpiresAt) <= now) {
      await expirePlan(deps, { taskId: task.id, version: task.planVersion });
      return;
    }
    // The expiry job is keyed by task and version: adding it again is a no-op when it exists.
    if (task.approvalExpiresAt)
      await queues.scheduleExpiry({ taskId: task.id, version: task.planVersion }, Date.parse(task.approvalExpiresAt));
    return;
  }

  if (!runIsLive(task.state)) return;
  const job = await queues.run.getJob(runJobId(task.id, task.planVersion));
  const jobState = job ? await job.getState() : 'missing';
  if (cancelAsked && jobState !== 'active') {
    // Nobody is running it: the cancel is carried out here, and the kept sandbox goes with the next sweep.
    await endCancelled(deps, task, result);
    return;
  }
  if (inQueue.has(jobState)) return;
  if (jobState === 'failed') {
    const message = `The run failed: ${job?.failedReason || 'its job failed without saying why'}`;
    const { after } = await state.updateTask(task.id, (t) =>
      isTerminal(t.state)
        ? t
        : transition(t, 'failed', new Date(), { failure: { code: ErrorCodes.runnerLost, message } }),
    );
    if (after.state === 'failed') {
      await audit.append({ type: 'run.failed', taskId: task.id, data: { code: ErrorCodes.runnerLost, message } });
      await queues.emit({ type: 'result', taskId: task.id, runId: task.runId ?? runIdFor(task.id, task.planVersion) });
      result.failed++;
    }
    return;
  }
  // Missing, or completed while the task never heard: the checkpoint has the run; put it back.
  await job?.remove().catch(() => undefined);
  await queues.enqueueRun({
    taskId: task.id,
    planVersion: task.planVersion,
    runId: task.runId ?? runIdFor(task.id, task.planVersion),
    ...traceOf(job?.data.trace ?? task.trace),
  });
  await audit.append({ type: 'task.requeued', taskId: task.id, data: { queue: 'run', jobState } });
  result.requeued++;
}

async function endCancelled(deps: RunnerDeps, task: Task, result: ReconcileResult): Promise<void> {
  const { after, before } = await deps.state.updateTask(task.id, (t) =>
    isTerminal(t.state) ? t : transition(t, 'cancelled', new Date()),
  );
  if (before.state === after.state) return;
  await deps.audit.append({ type: 'task.cancelled', taskId: task.id, data: { by: 'reconciler' } });
  await deps.queues.emit({ type: 'result', taskId: task.id, runId: task.runId ?? 'none' });
  result.cancelled++;
}
