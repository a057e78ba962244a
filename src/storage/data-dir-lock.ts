import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { HandoffError } from '../core/index.ts';

/** Error code when another live process holds the embedded Redis data directory. */
export const dataDirLockedCode = 'handoff_data_dir_locked';

/** The lock file's name inside the embedded Redis data directory. */
export const lockFileName = 'handoff.lock';

/**
 * `<dir>/handoff.lock`: which process owns the directory and which redis-server it runs
 * there. Created complete and atomically (a hard link of a finished temporary file), so a
 * reader never sees half of it.
 */
export const DataDirLockSchema = z.object({
  version: z.literal(1),
  /** The Handoff process holding the directory. */
  ownerPid: z.number().int().positive(),
  /** Its start time in clock ticks after boot (`/proc/<pid>/stat`), so a reused pid is not mistaken for it. */
  ownerStartTicks: z.number().int().nonnegative().optional(),
  /** The redis-server it started, once started. */
  redisPid: z.number().int().positive().optional(),
  port: z.number().int().positive().optional(),
  dir: z.string(),
  /** Random per acquisition: only the holder removes or rewrites the file. */
  token: z.string(),
  createdAt: z.string(),
});
export type DataDirLockInfo = z.infer<typeof DataDirLockSchema>;

interface ProcStat {
  state: string;
  pgrp: number;
  startTicks: number;
}

/** `/proc/<pid>/stat` on Linux; undefined elsewhere or when the process is gone. */
export function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', pgrp: Number(fields[2]), startTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs (a zombie does not); with `startTicks`, whether it is still that same process. */
export function processRuns(pid: number, startTicks?: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(pid);
  if (!st) return true;
  if (st.state === 'Z' || st.state === 'X') return false;
  return startTicks === undefined || st.startTicks === startTicks;
}

function parseLock(raw: string): DataDirLockInfo | undefined {
  try {
    const parsed = DataDirLockSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export class DataDirLock {
  private info: DataDirLockInfo;

  constructor(
    readonly path: string,
    info: DataDirLockInfo,
  ) {
    this.info = info;
  }

  /** Records the redis-server this owner started. Replaces the file atomically. */
  async update(fields: { redisPid: number; port: number }): Promise<void> {
    this.info = { ...this.info, ...fields };
    const tmp = `${this.path}.${this.info.token}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.info)}\n`);
    await rename(tmp, this.path);
  }

  /** Removes the file if it is still this holder's. Idempotent. */
  async release(): Promise<void> {
    const raw = await readFile(this.path, 'utf8').catch(() => undefined);
    if (raw !== undefined && parseLock(raw)?.token === this.info.token) await unlink(this.path).catch(() => {});
  }
}

/**
 * Takes `<dir>/handoff.lock`. A lock whose owner no longer runs is stale and taken over;
 * `previous` is what it said, so the caller can deal with a redis-server left behind.
 * A lock naming this very process counts as stale too: the caller MUST have checked
 * that nothing in this process still uses the directory.
 * Throws `handoff_data_dir_locked`, naming the owner and how to stop it, when another
 * live process holds it.
 */
export async function acquireDataDirLock(
  dir: string,
  options: { waitForOwnerMs?: number; onWait?: (ownerPid: number) => void } = {},
): Promise<{ lock: DataDirLock; previous?: DataDirLockInfo }> {
  // An owner that is shutting down (its parent was killed, a restart came quickly) is given
  // time to finish before its lock counts as held.
  const waitUntil = Date.now() + (options.waitForOwnerMs ?? 0);
  let told = false;
  const path = join(dir, lockFileName);
  const token = randomBytes(12).toString('hex');
  const ownerStartTicks = procStat(process.pid)?.startTicks;
  const mine: DataDirLockInfo = {
    version: 1,
    ownerPid: process.pid,
    ...(ownerStartTicks === undefined ? {} : { ownerStartTicks }),
    dir,
    token,
    createdAt: new Date().toISOString(),
  };
  const tmp = `${path}.${token}.tmp`;
  await writeFile(tmp, `${JSON.stringify(mine)}\n`);
  let previous: DataDirLockInfo | undefined;
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await link(tmp, path);
        return { lock: new DataDirLock(path, mine), ...(previous ? { previous } : {}) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
          // A file system without hard links: exclusive create (readers wait for the content, below).
          try {
            await writeFile(path, `${JSON.stringify(mine)}\n`, { flag: 'wx' });
            return { lock: new DataDirLock(path, mine), ...(previous ? { previous } : {}) };
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          }
        } else if (code !== 'EEXIST') throw err;
      }
      const raw = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (raw === undefined) continue;
      const held = parseLock(raw);
      if (!held) {
        // Being written (exclusive-create fallback), or left corrupt long ago.
        const ageMs = await stat(path).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (ageMs < 2000) {
          await sleep(50);
          continue;
        }
      } else if (held.ownerPid !== process.pid && processRuns(held.ownerPid, held.ownerStartTicks)) {
        if (Date.now() < waitUntil) {
          if (!told) options.onWait?.(held.ownerPid);
          told = true;
          attempt--;
          await sleep(250);
          continue;
        }
        throw new HandoffError(
          dataDirLockedCode,
          `another Handoff process (pid ${held.ownerPid}) is using ${dir}` +
            (held.redisPid ? ` with its redis-server (pid ${held.redisPid}, port ${held.port})` : '') +
            `: stop it first (Ctrl-C in its terminal, or \`kill ${held.ownerPid}\`), or set HANDOFF_DATA_DIR to another directory`,
        );
      }
      if (await removeIfUnchanged(path, raw, token)) previous = held ?? previous;
    }
    throw new HandoffError(dataDirLockedCode, `could not lock ${dir}: ${path} keeps changing`);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * Removes a stale lock only if it is still the one that was judged stale: it is moved
 * aside first (one rename wins), and put back if someone had just replaced it.
 */
async function removeIfUnchanged(path: string, raw: string, token: string): Promise<boolean> {
  const aside = `${path}.${token}.stale`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== raw) await link(aside, path).catch(() => {});
  await unlink(aside).catch(() => {});
  return moved === raw;
}
