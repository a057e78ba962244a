import { createWriteStream } from 'node:fs';
import { chown, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileNameProblem } from '../core/index.ts';
import type { ArtifactStore } from '../storage/index.ts';

/** The sandbox user: the runner's own uid when it is not root, else uid 1000 of the image. */
export function sandboxUser(): { user: string; uid: number; gid: number } {
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  if (uid === 0) return { user: '1000:1000', uid: 1000, gid: 1000 };
  return { user: `${uid}:${gid}`, uid, gid };
}

/**
 * Lays out a task's inputs on the runner's disk (`<root>/<taskId>/in`), fetched from the
 * artifact store, for a read-only bind mount. `inputs` are the files as the run sees them:
 * the request's, or the workspace manifest's after an approved change. Outputs do not
 * live here: they are in the sandbox's own volume and saved to the artifact store.
 */
export async function prepareWorkspace(
  root: string,
  taskId: string,
  inputs: ReadonlyArray<{ name: string; key: string }>,
  store: ArtifactStore,
  purpose: WorkspacePurpose = 'run',
): Promise<string> {
  // Names were checked on the way in; checked again because this writes to disk.
  for (const file of inputs) {
    const problem = fileNameProblem(file.name);
    if (problem) throw new Error(`input ${JSON.stringify(file.name)}: ${problem}`);
  }
  const dir = workspaceDir(root, taskId, purpose);
  const inDir = join(dir, 'in');
  // Whatever an earlier attempt left is replaced: the store is the truth. A new run has
  // nothing there, and its in/ is made in one step; anything in the way (a folder, a link to
  // a pool container's in/, even a dangling one) is removed first. Each step waits its turn
  // on a busy runner's event loop, so the fewer in a row the sooner the sandbox has its inputs.
  const made = await mkdir(inDir, { recursive: true }).catch(() => undefined);
  if (made === undefined) {
    await rm(inDir, { recursive: true, force: true });
    await mkdir(inDir, { recursive: true });
  }
  const { uid, gid } = sandboxUser();
  await Promise.all([
    ...inputs.map(async (file) => {
      const path = join(inDir, file.name);
      if (store.copyToFile) await store.copyToFile(file.key, path);
      else await pipeline(await store.get(file.key), createWriteStream(path));
    }),
    // The folders are the sandbox user's (a root runner); the files need only be readable.
    ...(process.getuid?.() === 0 ? [dir, inDir].map((p) => chown(p, uid, gid)) : []),
  ]);
  return dir;
}

/**
 * Each planning attempt (by plan version) and the run have directories of their own, so a
 * planner cleaning up after a quick approval or a quick "Request changes" can never remove
 * inputs another job just laid out.
 */
export type WorkspacePurpose = 'run' | { plan: number };
const planPattern = /^(.+)\.plan(\d+)$/;

/** Where `prepareWorkspace` lays out a task's run (or planning attempt). */
export function workspaceDir(root: string, taskId: string, purpose: WorkspacePurpose = 'run'): string {
  return join(root, purpose === 'run' ? taskId : `${taskId}.plan${purpose.plan}`);
}

export async function removeWorkspace(root: string, taskId: string, purpose: WorkspacePurpose = 'run'): Promise<void> {
  await rm(workspaceDir(root, taskId, purpose), { recursive: true, force: true });
}

/** The task workspaces on this runner's disk, with when each was last changed. */
export async function listWorkspaces(
  root: string,
): Promise<Array<{ taskId: string; purpose: WorkspacePurpose; changedAtMs: number }>> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const out: Array<{ taskId: string; purpose: WorkspacePurpose; changedAtMs: number }> = [];
  for (const name of names) {
    try {
      const s = await stat(join(root, name));
      const plan = planPattern.exec(name);
      const purpose: WorkspacePurpose = plan ? { plan: Number(plan[2]) } : 'run';
      const taskId = plan ? plan[1]! : name;
      if (s.isDirectory()) out.push({ taskId, purpose, changedAtMs: s.mtimeMs });
    } catch {
      // removed meanwhile
    }
  }
  return out;
}
