import { createWriteStream } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileNameProblem, type Task } from '../core/index.ts';
import type { ArtifactStore } from '../storage/index.ts';

/** The sandbox user: the runner's own uid when it is not root, else uid 1000 of the image. */
export function sandboxUser(): { user: string; uid: number; gid: number } {
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  if (uid === 0) return { user: '1000:1000', uid: 1000, gid: 1000 };
  return { user: `${uid}:${gid}`, uid, gid };
}

/**
 * Lays out a task's workspace on the runner's disk: in/ with the inputs fetched from the
 * artifact store, out/ for deliverables. It survives sandbox restarts, so a resumed run
 * finds what it already made.
 */
export async function prepareWorkspace(root: string, task: Task, store: ArtifactStore): Promise<string> {
  const dir = join(root, task.id);
  const inDir = join(dir, 'in');
  const outDir = join(dir, 'out');
  await mkdir(inDir, { recursive: true });
  await mkdir(outDir, { recursive: true });
  for (const file of task.inputs) {
    // Names were checked on the way in; checked again because this writes to disk.
    const problem = fileNameProblem(file.name);
    if (problem) throw new Error(`input ${JSON.stringify(file.name)}: ${problem}`);
    await pipeline(await store.get(file.key), createWriteStream(join(inDir, file.name)));
  }
  const { uid, gid } = sandboxUser();
  if (process.getuid?.() === 0) {
    for (const p of [dir, inDir, outDir]) await chown(p, uid, gid);
  }
  return dir;
}

export async function removeWorkspace(root: string, taskId: string): Promise<void> {
  await rm(join(root, taskId), { recursive: true, force: true });
}
