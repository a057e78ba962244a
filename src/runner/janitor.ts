import { isTerminal } from '../core/index.ts';
import type { RunnerDeps } from './plan-processor.ts';
import { listWorkspaces, removeWorkspace } from './workspace.ts';

/** A sandbox younger than this may be one a runner is still setting up: left alone. */
const settleMs = 60_000;
/** A workspace of a live task with no sandbox on this host is left this long before it goes. */
const idleWorkspaceMs = 10 * 60_000;

export interface SweepResult {
  sandboxesRemoved: number;
  workspacesRemoved: number;
}

/**
 * Removes what runners that died left on this Docker engine and this disk: sandboxes of
 * runners whose heartbeat lapsed, kept (frozen) sandboxes past their time or no longer
 * waited for, and workspaces of tasks that ended or that nobody here works on. Sandboxes
 * of live runners, kept ones still waited for, and this runner's own are left alone.
 */
export async function sweepSandboxesAndWorkspaces(
  deps: RunnerDeps,
  activeHere: ReadonlyMap<string, unknown>,
): Promise<SweepResult> {
  const { driver, state } = deps;
  const now = Date.now();
  const alive = new Map<string, boolean>();
  const isAlive = async (runnerId: string) => {
    if (runnerId === deps.runnerId) return true;
    if (!alive.has(runnerId)) alive.set(runnerId, await state.runnerAlive(runnerId));
    return alive.get(runnerId)!;
  };
  let sandboxesRemoved = 0;
  const remove = async (id: string) => {
    await driver.remove(id);
    await state.forgetSandbox(id);
    sandboxesRemoved++;
  };
  const liveTasks = new Set<string>();
  for (const box of await driver.list()) {
    if (box.state === 'paused') {
      const until = await state.sandboxKeptUntil(box.id);
      const task = await state.getTask(box.taskId);
      if (until !== undefined && until > now && task && !isTerminal(task.state)) {
        liveTasks.add(box.taskId);
        continue;
      }
      await remove(box.id);
      continue;
    }
    if (now - box.createdAtMs < settleMs) {
      liveTasks.add(box.taskId);
      continue;
    }
    const owner = (await state.sandboxOwner(box.id)) ?? box.runnerId;
    // This runner's idle warm-pool containers are its pool's to manage; a dead runner's go below.
    if (box.pool === 'idle' && owner === deps.runnerId) continue;
    if (owner === deps.runnerId) {
      if (activeHere.has(box.taskId)) {
        liveTasks.add(box.taskId);
        continue;
      }
      await remove(box.id);
      continue;
    }
    if (owner && (await isAlive(owner))) {
      liveTasks.add(box.taskId);
      continue;
    }
    if (!owner) {
      // Made by an older version that did not label its owner: only once its task is over.
      const task = await state.getTask(box.taskId);
      if (task && !isTerminal(task.state)) {
        liveTasks.add(box.taskId);
        continue;
      }
    }
    await remove(box.id);
  }

  let workspacesRemoved = 0;
  for (const ws of await listWorkspaces(deps.workspacesDir)) {
    if (activeHere.has(ws.taskId) || liveTasks.has(ws.taskId)) continue;
    const task = await state.getTask(ws.taskId);
    const over = !task || isTerminal(task.state);
    if (!over && now - ws.changedAtMs < idleWorkspaceMs) continue;
    await removeWorkspace(deps.workspacesDir, ws.taskId, ws.purpose);
    workspacesRemoved++;
  }
  if (sandboxesRemoved + workspacesRemoved > 0)
    deps.logger.info({ sandboxesRemoved, workspacesRemoved }, 'janitor: removed what stopped runners left');
  return { sandboxesRemoved, workspacesRemoved };
}

/** Removes the stored files (inputs, deliverables, workspace copies) of tasks past their retention. */
export async function sweepArtifacts(deps: RunnerDeps): Promise<number> {
  const due = await deps.state.artifactsDue(Date.now(), 100);
  for (const taskId of due) {
    await deps.store.deletePrefix(`tasks/${taskId}/`);
    await deps.state.artifactsRemoved(taskId);
  }
  if (due.length > 0) deps.logger.info({ tasks: due.length }, 'retention: removed the files of ended tasks');
  return due.length;
}
