import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { HandoffError } from '../core/index.ts';
import type { Logger } from '../observability/index.ts';
import {
  acquireDataDirLock,
  type DataDirLock,
  type DataDirLockInfo,
  dataDirLockedCode,
  processRuns,
  procStat,
} from './data-dir-lock.ts';

export interface EmbeddedRedis {
  url: string;
  /** Process id of the redis-server. */
  pid: number;
  /**
   * Stops the server: SIGTERM, on which it writes and fsyncs its append-only file and
   * exits; SIGKILL to its process group after `stopTimeoutMs` (a truncated AOF tail is
   * repaired by redis-server on load). Then releases the data-dir lock. Idempotent.
   * The server is in its own process group, so signals sent to Handoff's group never
   * reach it: Handoff's shutdown MUST call this last, after its workers and connections
   * are closed.
   */
  stop(): Promise<void>;
}

export interface StartRedisServerOptions {
  /** Data directory: the AOF, `redis.pid` and the `handoff.lock` that keeps one server per directory. */
  dir: string;
  /** TCP port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** AOF on (default true). */
  appendOnly?: boolean;
  /** More redis-server arguments, after Handoff's own (a later one wins). */
  extraArgs?: string[];
  /** How long `stop()` waits for a clean exit before SIGKILL. Default 10,000 ms. */
  stopTimeoutMs?: number;
  /** Told when a redis-server left behind by an earlier owner is stopped, or when one still running is waited for. */
  logger?: Pick<Logger, 'warn'>;
  /**
   * How long to wait for another live owner of the directory to stop (one shutting down
   * as this one starts) before refusing. Default 0: refuse at once.
   */
  waitForOwnerMs?: number;
}

const defaultStopTimeoutMs = 10_000;
/** After SIGKILL, how long to wait for the process to disappear. */
const killWaitMs = 2000;

interface Claim {
  /** 0 until spawned. */
  pid: number;
  starting: boolean;
  exited: () => boolean;
}

/** Servers started by this process, by data directory; stopped with SIGTERM if the process exits without `stop()`. */
const running = new Map<string, Claim>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // `exit` runs on a normal end and on an uncaught exception (not on a fatal signal):
  // a SIGTERM still lets each server flush its AOF. The lock stays behind, and the next
  // start treats it as stale.
  process.on('exit', () => {
    for (const server of running.values()) if (server.pid > 0 && !server.exited()) signal(server.pid, 'SIGTERM');
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** For a server this process spawned: its exit, which also means its pid may now be reused. */
interface OwnChild {
  exited: Promise<unknown>;
  hasExited: () => boolean;
}

/** Waits until `pid` no longer runs; false when it still does after `timeoutMs`. */
async function waitGone(pid: number, timeoutMs: number, own?: OwnChild): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const gone = () => (own ? own.hasExited() : !processRuns(pid));
  while (!gone()) {
    if (Date.now() >= deadline) return false;
    await Promise.race([sleep(25), own?.exited]);
  }
  return true;
}

/**
 * SIGTERM, then SIGKILL to its process group (or to itself when it leads none) after
 * `timeoutMs`. An own child is never signalled once it has exited.
 */
async function terminate(pid: number, timeoutMs: number, own?: OwnChild): Promise<void> {
  const send = (target: number, name: NodeJS.Signals) => {
    if (!own?.hasExited()) signal(target, name);
  };
  send(pid, 'SIGTERM');
  if (await waitGone(pid, timeoutMs, own)) return;
  send(own || procStat(pid)?.pgrp === pid ? -pid : pid, 'SIGKILL');
  if (!(await waitGone(pid, killWaitMs, own)))
    throw new Error(`redis-server (pid ${pid}) did not exit after SIGTERM and SIGKILL`);
}

/** Whether the redis-server answering on `port` is process `pid`, working in `dir`. */
async function answersFor(port: number, pid: number, dir: string): Promise<boolean> {
  const probe = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    const info = await probe.info('server');
    if (Number(/process_id:(\d+)/.exec(info)?.[1]) !== pid) return false;
    const reported = ((await probe.config('GET', 'dir').catch(() => [])) as string[])[1];
    return reported === undefined || (await realpath(reported).catch(() => reported)) === dir;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/**
 * redis-servers running on `dir`. On Linux every one is found through /proc (the
 * server's working directory is its `--dir`; its command line is rewritten to
 * "redis-server host:port", so it cannot tell the directory). Elsewhere the pid the
 * previous lock named is checked by asking the server itself.
 */
async function serversOnDir(dir: string, previous: DataDirLockInfo | undefined): Promise<number[]> {
  if (existsSync('/proc/self/stat')) {
    const found: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      try {
        if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() !== 'redis-server') continue;
        // Unreadable (another user's process): not one of ours.
        if ((await readlink(`/proc/${pid}/cwd`)) === dir && processRuns(pid)) found.push(pid);
      } catch {
        // Gone meanwhile, or not ours.
      }
    }
    return found;
  }
  const pid = previous?.redisPid;
  if (pid && previous.port && processRuns(pid) && (await answersFor(previous.port, pid, dir))) return [pid];
  return [];
}

function unrefStream(stream: Readable | null): void {
  (stream as unknown as { unref?: () => void } | null)?.unref?.();
}

/**
 * Starts `redis-server` from PATH on loopback with AOF on and `noeviction`, as
 * `handoff dev` and the integration tests do. Throws with the install line when missing.
 *
 * One server per directory: `<dir>/handoff.lock` names the owning process and its
 * server. When another live process holds it, this throws `handoff_data_dir_locked`
 * naming that process. When the owner died (kill -9) and left its server running, that
 * server is stopped with SIGTERM (it flushes its AOF) before a fresh one starts on the
 * same directory; it is not reused, so every server runs with these settings and is
 * watched by the process that owns it.
 *
 * The server runs in its own process group (a Ctrl-C or a SIGTERM to Handoff's group
 * does not stop it under Handoff's feet) and does not keep this process alive.
 */
export async function startRedisServer(options: StartRedisServerOptions): Promise<EmbeddedRedis> {
  await mkdir(options.dir, { recursive: true });
  const dir = await realpath(options.dir);
  // A server this process started earlier and never stopped is replaced like a leftover
  // (below); only two starts racing each other are refused.
  if (running.get(dir)?.starting)
    throw new HandoffError(dataDirLockedCode, `a redis-server is already being started on ${dir} by this process`);
  const claim: Claim = { pid: 0, starting: true, exited: () => false };
  running.set(dir, claim);
  const unclaim = () => {
    if (running.get(dir) === claim) running.delete(dir);
  };
  const stopTimeoutMs = options.stopTimeoutMs ?? defaultStopTimeoutMs;
  let acquired: Awaited<ReturnType<typeof acquireDataDirLock>>;
  try {
    acquired = await acquireDataDirLock(dir, {
      waitForOwnerMs: options.waitForOwnerMs ?? 0,
      onWait: (pid) =>
        options.logger?.warn(
          { pid, waitForOwnerMs: options.waitForOwnerMs },
          `another Handoff process (pid ${pid}) is using ${dir}; waiting for it to stop`,
        ),
    });
  } catch (err) {
    unclaim();
    throw err;
  }
  const { lock, previous } = acquired;
  try {
    for (const pid of await serversOnDir(dir, previous)) {
      options.logger?.warn(
        { pid, previousOwnerPid: previous?.ownerPid, dir },
        'stopping a redis-server left running on the data directory by an earlier owner, before starting a fresh one',
      );
      await terminate(pid, stopTimeoutMs);
    }
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      try {
        return await launch(dir, port, options, lock, claim, stopTimeoutMs, unclaim);
      } catch (err) {
        // Another process took the free port between the check and the bind: pick another.
        if (options.port !== undefined || attempt >= 3 || !/Address already in use/.test((err as Error).message))
          throw err;
      }
    }
  } catch (err) {
    unclaim();
    await lock.release();
    throw err;
  }
}

async function launch(
  dir: string,
  port: number,
  options: StartRedisServerOptions,
  lock: DataDirLock,
  claim: Claim,
  stopTimeoutMs: number,
  unclaim: () => void,
): Promise<EmbeddedRedis> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--pidfile',
    join(dir, 'redis.pid'),
    '--appendonly',
    options.appendOnly === false ? 'no' : 'yes',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--protected-mode',
    'yes',
    '--daemonize',
    'no',
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess;
  try {
    // detached: its own process group (and session), so signals to ours do not reach it.
    child = spawn('redis-server', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`cannot start redis-server: ${(err as Error).message}`);
  }
  // Its log and errors, kept for the message when it fails to start; always read, so a
  // full pipe never blocks the server.
  let output = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      output = (output + chunk).slice(-4000);
    });
  }
  let hasExited = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
  });
  const failed = new Promise<Error>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(
        err.code === 'ENOENT'
          ? new Error('redis-server is not installed: run `sudo apt-get install -y redis-server` or set REDIS_URL')
          : err,
      ),
    );
    // `close`: after its output has been read, so the message can quote it.
    child.once('close', (code) => {
      const said = output
        .split('\n')
        .filter((line) => /#|error|fatal|can't|could not/i.test(line))
        .slice(-3)
        .join(' ')
        .trim();
      resolve(new Error(`redis-server exited with code ${code}${said ? `: ${said}` : ''}`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw await failed;
  const own: OwnChild = { exited, hasExited: () => hasExited };
  claim.pid = pid;
  claim.exited = () => hasExited;
  const url = `redis://127.0.0.1:${port}`;
  try {
    // Recorded before it answers, so a crash from here on still names this server.
    await lock.update({ redisPid: pid, port });
    await waitUntilAnswering(url, pid, failed);
  } catch (err) {
    await terminate(pid, 1000, own).catch(() => {});
    throw err;
  }
  claim.starting = false;
  child.unref();
  unrefStream(child.stdout);
  unrefStream(child.stderr);
  installExitHook();

  let stopping: Promise<void> | undefined;
  return {
    url,
    pid,
    stop: () => {
      stopping ??= (async () => {
        await terminate(pid, stopTimeoutMs, own);
        unclaim();
        // Only once it is gone: a lock released early would let a second server start.
        await lock.release();
      })();
      return stopping;
    },
  };
}

/** Polls until the server answers as process `pid` (not something else on the port), or fails. */
async function waitUntilAnswering(url: string, pid: number, failed: Promise<Error>): Promise<void> {
  const probe = new Redis(url, {
    lazyConnect: true,
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  const deadline = Date.now() + 10_000;
  try {
    for (;;) {
      const early = await Promise.race([failed, sleep(100).then(() => undefined)]);
      if (early) throw early;
      try {
        if (probe.status !== 'ready') await probe.connect();
        await probe.ping();
        const info = await probe.info('server').catch(() => undefined);
        const answering = info === undefined ? pid : Number(/process_id:(\d+)/.exec(info)?.[1]);
        if (answering === pid) return;
        throw new Error(`another process (redis pid ${answering}) answers on ${url}`);
      } catch (err) {
        probe.disconnect();
        if (Date.now() > deadline)
          throw new Error(`redis-server did not answer on ${url}: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    probe.disconnect();
  }
}
