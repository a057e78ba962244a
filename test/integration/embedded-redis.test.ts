import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { dataDirLockedCode, type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';

const root = resolve(import.meta.dirname, '../..');
const ownerScript = join(root, 'test/helpers/redis-owner.ts');

interface Owner {
  child: ChildProcess;
  pid: number;
  url: string;
  redisPid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dirs: string[] = [];
let owners: Owner[] = [];
let servers: EmbeddedRedis[] = [];
let clients: Redis[] = [];

/** redis-server processes whose working directory (their `--dir`) is `dir`, from /proc. */
function serversOn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z') continue;
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'redis-server') continue;
      if (readlinkSync(`/proc/${entry}/cwd`) === dir) pids.push(Number(entry));
    } catch {
      // Gone, or another user's.
    }
  }
  return pids;
}

function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

async function tempDir(): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'handoff-embedded-redis-')));
  dirs.push(dir);
  return dir;
}

function client(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  clients.push(redis);
  return redis;
}

/** Starts the owner script in its own process group, as a shell or a service manager would. */
async function startOwner(dir: string, mode?: 'graceful'): Promise<Owner> {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', ownerScript, dir, ...(mode ? [mode] : [])], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const owner: Owner = { child, pid: child.pid!, url: '', redisPid: 0, output: () => out, exited };
  owners.push(owner);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (line) {
      const said = JSON.parse(line) as { url?: string; pid?: number; error?: string };
      if (said.error) throw new Error(`owner failed: ${said.error}`);
      owner.url = said.url!;
      owner.redisPid = said.pid!;
      return owner;
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`owner did not start: ${out}`);
    await sleep(50);
  }
}

afterEach(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.stop().catch(() => {});
  for (const o of owners) {
    try {
      process.kill(-o.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  // Orphans: every redis-server still working in a directory of this file's tests.
  for (const dir of dirs) {
    for (const pid of serversOn(dir)) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && serversOn(dir).length > 0; i++) await sleep(20);
    expect(serversOn(dir), `redis-server left on ${dir}`).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  }
  clients = [];
  servers = [];
  owners = [];
  dirs = [];
});

it('runs redis-server in its own process group and records it in the data-dir lock', async () => {
  const dir = await tempDir();
  const server = await startRedisServer({ dir });
  servers.push(server);
  expect(processGroup(server.pid)).toBe(server.pid);
  expect(processGroup(server.pid)).not.toBe(processGroup(process.pid));
  expect(serversOn(dir)).toEqual([server.pid]);
  const lock = JSON.parse(await readFile(join(dir, 'handoff.lock'), 'utf8'));
  expect(lock).toMatchObject({
    ownerPid: process.pid,
    redisPid: server.pid,
    port: Number(new URL(server.url).port),
    dir,
  });
  expect(await readFile(join(dir, 'redis.pid'), 'utf8')).toContain(String(server.pid));
});

it('stop() flushes the AOF, releases the lock, and is idempotent', async () => {
  const dir = await tempDir();
  const first = await startRedisServer({ dir });
  await client(first.url).set('written', 'right before stop');
  const stopping = first.stop();
  expect(first.stop()).toBe(stopping);
  await stopping;
  await first.stop();
  expect(serversOn(dir)).toEqual([]);
  expect(existsSync(join(dir, 'handoff.lock'))).toBe(false);

  const second = await startRedisServer({ dir });
  servers.push(second);
  expect(await client(second.url).get('written')).toBe('right before stop');
});

it('stop() is bounded: a server that does not exit on SIGTERM is killed after stopTimeoutMs', async () => {
  const dir = await tempDir();
  const server = await startRedisServer({ dir, stopTimeoutMs: 500 });
  process.kill(server.pid, 'SIGSTOP');
  const started = Date.now();
  await server.stop();
  expect(Date.now() - started).toBeLessThan(3000);
  expect(serversOn(dir)).toEqual([]);
  expect(existsSync(join(dir, 'handoff.lock'))).toBe(false);
});

it('after the owner is killed with SIGKILL, the next start stops its orphan: one server, same data', async () => {
  const dir = await tempDir();
  const owner = await startOwner(dir);
  await client(owner.url).set('k', 'written before the crash');
  process.kill(-owner.pid, 'SIGKILL');
  expect((await owner.exited).signal).toBe('SIGKILL');
  // Orphaned, and still running on the directory.
  expect(serversOn(dir)).toEqual([owner.redisPid]);

  const next = await startRedisServer({ dir });
  servers.push(next);
  expect(next.pid).not.toBe(owner.redisPid);
  expect(serversOn(dir)).toEqual([next.pid]);
  expect(await client(next.url).get('k')).toBe('written before the crash');
  const lock = JSON.parse(await readFile(join(dir, 'handoff.lock'), 'utf8'));
  expect(lock).toMatchObject({ ownerPid: process.pid, redisPid: next.pid });
});

it("a SIGTERM to the owner's process group does not reach its redis-server", async () => {
  const dir = await tempDir();
  const owner = await startOwner(dir);
  expect(processGroup(owner.redisPid)).not.toBe(owner.pid);
  process.kill(-owner.pid, 'SIGTERM');
  expect((await owner.exited).signal).toBe('SIGTERM');

  const redis = client(owner.url);
  expect(await redis.ping()).toBe('PONG');
  // Not merely slow to stop: still the same server a moment later.
  await sleep(500);
  expect(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]).toBe(String(owner.redisPid));
  expect(serversOn(dir)).toEqual([owner.redisPid]);
});

it("on SIGTERM Handoff's shutdown still reaches Redis, then stops it last; the data is kept", async () => {
  const dir = await tempDir();
  const owner = await startOwner(dir, 'graceful');
  process.kill(-owner.pid, 'SIGTERM');
  expect(await owner.exited).toEqual({ code: 0, signal: null });
  expect(owner.output()).toContain('checkpointed');
  expect(serversOn(dir)).toEqual([]);
  expect(existsSync(join(dir, 'handoff.lock'))).toBe(false);

  const next = await startRedisServer({ dir });
  servers.push(next);
  expect(await client(next.url).get('shutdown-checkpoint')).toBe('written during shutdown');
});

it('refuses to start while another live process holds the directory, naming it and how to stop it', async () => {
  const dir = await tempDir();
  const owner = await startOwner(dir);
  const refused = await startRedisServer({ dir }).catch((err: unknown) => err as Error & { code: string });
  expect(refused).toBeInstanceOf(Error);
  expect((refused as { code: string }).code).toBe(dataDirLockedCode);
  expect((refused as Error).message).toContain(`another Handoff process (pid ${owner.pid}) is using ${dir}`);
  expect((refused as Error).message).toContain(`kill ${owner.pid}`);
  // The owner's server is untouched, and still the only one.
  expect(serversOn(dir)).toEqual([owner.redisPid]);
  expect(await client(owner.url).ping()).toBe('PONG');

  // A second owner process is refused the same way.
  await expect(startOwner(dir)).rejects.toThrow(`another Handoff process (pid ${owner.pid})`);
  expect(serversOn(dir)).toEqual([owner.redisPid]);
});

it('waits for an owner that is stopping (a quick restart), then starts on the directory', async () => {
  const dir = await tempDir();
  const owner = await startOwner(dir, 'graceful');
  const warnings: string[] = [];
  const starting = startRedisServer({
    dir,
    waitForOwnerMs: 20_000,
    logger: { warn: (_obj: object, msg?: string) => void warnings.push(String(msg)) },
  });
  await sleep(500);
  process.kill(-owner.pid, 'SIGTERM');
  const server = await starting;
  servers.push(server);
  expect(warnings.join('\n')).toContain(
    `another Handoff process (pid ${owner.pid}) is using ${dir}; waiting for it to stop`,
  );
  expect(await owner.exited).toEqual({ code: 0, signal: null });
  expect(serversOn(dir)).toEqual([server.pid]);
  expect(await client(server.url).get('shutdown-checkpoint')).toBe('written during shutdown');
});

it('treats a lock whose owner pid now belongs to another process as stale', async () => {
  const dir = await tempDir();
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const stale = {
      version: 1,
      ownerPid: sleeper.pid,
      // Not the start time of the process that has this pid now.
      ownerStartTicks: 1,
      dir,
      token: 'earlier',
      createdAt: new Date(0).toISOString(),
    };
    await writeFile(join(dir, 'handoff.lock'), JSON.stringify(stale));
    const server = await startRedisServer({ dir });
    servers.push(server);
    expect(serversOn(dir)).toEqual([server.pid]);

    // The same pid without a start time to tell them apart: the live process is the owner.
    await server.stop();
    const { ownerStartTicks: _, ...alive } = stale;
    await writeFile(join(dir, 'handoff.lock'), JSON.stringify(alive));
    await expect(startRedisServer({ dir })).rejects.toThrow(`another Handoff process (pid ${sleeper.pid})`);
    expect(serversOn(dir)).toEqual([]);
  } finally {
    sleeper.kill('SIGKILL');
  }
});

it('a server this process started and never stopped is replaced, not doubled', async () => {
  const dir = await tempDir();
  const first = await startRedisServer({ dir });
  await client(first.url).set('k', 'kept');
  const second = await startRedisServer({ dir });
  servers.push(first, second);
  expect(serversOn(dir)).toEqual([second.pid]);
  expect(await client(second.url).get('k')).toBe('kept');
  // The first one's stop() leaves the second one's lock alone.
  await first.stop();
  const lock = JSON.parse(await readFile(join(dir, 'handoff.lock'), 'utf8'));
  expect(lock.redisPid).toBe(second.pid);
});
