import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { type FakeAnthropicServer, startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { freePort } from '../helpers/cluster.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker } from '../helpers/docker.ts';
import { call, finishDoneMd as finishing, doneMdPlan as plan } from '../helpers/model-scripts.ts';

const cli = new URL('../../bin/handoff.js', import.meta.url).pathname;
const docker = new Dockerode();

/** `handoff dev` as a person starts it: its own process group, so a group signal reaches all of it. */
interface DevProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: string | null; at: number }>;
}

function startDev(env: Record<string, string>): DevProcess {
  let out = '';
  const child = spawn(process.execPath, [cli, 'dev'], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return { child, output: () => out, exited };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** redis-server processes whose working directory is `dir` (found through /proc). */
async function redisServersIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const comm = await readlink(`/proc/${name}/exe`);
      if (!comm.includes('redis')) continue;
      if ((await readlink(`/proc/${name}/cwd`)) === dir) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function sandboxesOf(taskId: string) {
  return docker.listContainers({ all: true, filters: { label: [`org.handoff.task=${taskId}`] } });
}

describeDocker('`handoff dev` as a process: SIGTERM to its group, kill -9 and restart', () => {
  let model: FakeAnthropicServer;
  let dataDir: string;
  const running: DevProcess[] = [];

  beforeAll(async () => {
    model = await startFakeAnthropic({ apiKey: 'sk-ant-test-key' });
  });
  afterEach(async () => {
    for (const p of running.splice(0)) {
      try {
        process.kill(-p.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const pid of dataDir ? await redisServersIn(join(dataDir, 'redis')) : []) process.kill(pid, 'SIGKILL');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    model.clearQueue();
  });
  afterAll(async () => {
    await model?.close();
  });

  async function devOn(port: number): Promise<{ dev: DevProcess; client: ConsoleClient }> {
    const dev = startDev({
      HANDOFF_PORT: String(port),
      HANDOFF_DATA_DIR: dataDir,
      ANTHROPIC_API_KEY: 'sk-ant-test-key',
      ANTHROPIC_BASE_URL: model.url,
    });
    running.push(dev);
    await waitFor('the console URL', () => dev.output().includes('Web console:'), 60_000);
    return { dev, client: new ConsoleClient(`http://127.0.0.1:${port}`) };
  }

  async function longRun(client: ConsoleClient): Promise<{ thread: string; taskId: string }> {
    const posted = await client.post('@handoff write done.md');
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const buttons = planButtons(card.html!);
    await client.action({ action: 'approve', ...buttons });
    await client.waitForCard(thread, (h) => h.includes('sleep 60'), 60_000);
    return { thread, taskId: buttons.taskId };
  }

  it('stops within its shutdown time on SIGTERM to the group, Redis last, and the run resumes after a restart', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'handoff-sigterm-'));
    const port = await freePort();
    model.enqueue(plan, call('run_command', { command: 'sleep 60', step: 1 }), ...finishing);
    const { dev, client } = await devOn(port);
    const { thread, taskId } = await longRun(client);

    const sent = Date.now();
    process.kill(-dev.child.pid!, 'SIGTERM');
    const exit = await dev.exited;
    expect(exit.at - sent).toBeLessThan(12_000);
    expect(exit.code).toBe(0);
    const log = dev.output();
    // Redis was stopped by Handoff, last, not by the signal: no reconnect storm.
    expect((log.match(/ECONNREFUSED/g) ?? []).length).toBeLessThan(5);
    expect(await redisServersIn(join(dataDir, 'redis'))).toEqual([]);
    // The run was handed back, not left running in a container.
    expect(await sandboxesOf(taskId)).toEqual([]);

    const again = await devOn(port);
    const result = await again.client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    process.kill(-again.dev.child.pid!, 'SIGTERM');
    expect((await again.dev.exited).code).toBe(0);
  }, 300_000);

  it('after kill -9 of the whole group, a restart reuses the data dir with one Redis and finishes the run', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'handoff-kill9-'));
    const port = await freePort();
    model.enqueue(plan, call('run_command', { command: 'sleep 60', step: 1 }), ...finishing);
    const { dev, client } = await devOn(port);
    const { thread, taskId } = await longRun(client);

    process.kill(-dev.child.pid!, 'SIGKILL');
    await dev.exited;
    // Its Redis lives in a group of its own, so it outlived the kill.
    expect(await redisServersIn(join(dataDir, 'redis'))).toHaveLength(1);

    const again = await devOn(port);
    expect(await redisServersIn(join(dataDir, 'redis'))).toHaveLength(1);
    const result = await again.client.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    expect(result.html).toContain('Done');
    // The dead process's sandbox is gone too.
    await waitFor('the old sandbox to go', async () => (await sandboxesOf(taskId)).length === 0, 30_000);
    process.kill(-again.dev.child.pid!, 'SIGTERM');
    expect((await again.dev.exited).code).toBe(0);
    expect(await redisServersIn(join(dataDir, 'redis'))).toEqual([]);
  }, 300_000);

  it('stops when what started it is killed outright (npm start)', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'handoff-parent-'));
    const port = await freePort();
    // A parent shell standing in for npm: killed with SIGKILL, its child must not linger.
    let out = '';
    const parent = spawn('bash', ['-c', `HANDOFF_EXIT_WITH_PARENT=1 "${process.execPath}" "${cli}" dev & wait`], {
      env: { ...process.env, HANDOFF_PORT: String(port), HANDOFF_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    parent.stdout!.on('data', (d) => {
      out += d;
    });
    parent.stderr!.on('data', (d) => {
      out += d;
    });
    running.push({ child: parent, output: () => out, exited: new Promise(() => undefined) });
    await waitFor('the console URL', () => out.includes('Web console:'), 60_000);
    process.kill(parent.pid!, 'SIGKILL');
    await waitFor(
      'the port to be free',
      () =>
        new Promise<boolean>((resolve) => {
          const s = createServer();
          s.once('error', () => resolve(false));
          s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
        }),
      20_000,
    );
    await waitFor('its Redis to stop', async () => (await redisServersIn(join(dataDir, 'redis'))).length === 0, 20_000);
  }, 120_000);
});
