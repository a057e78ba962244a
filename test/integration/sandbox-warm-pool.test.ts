import { access, mkdir, mkdtemp, readdir, readlink, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterEach, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/index.ts';
import {
  containerHardeningProblems,
  DockerSandboxDriver,
  type Sandbox,
  WarmPool,
  type WarmPoolOptions,
} from '../../src/runner/sandbox/index.ts';
import { startFakeAnthropic } from '../fakes/anthropic-server.ts';
import { ConsoleClient, links, planButtons } from '../helpers/console-client.ts';
import { describeDocker, sandboxImage, sandboxUser, testLimits } from '../helpers/docker.ts';
import { startDevHandoff } from '../helpers/handoff.ts';
import { doneMdPlan, finishDoneMd } from '../helpers/model-scripts.ts';

const docker = new Dockerode();

/** Polls until `check` holds; fails with `what` after a generous deadline (no timing is asserted). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function exists(id: string): Promise<boolean> {
  try {
    await docker.getContainer(id).inspect();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    throw err;
  }
}

async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Pool containers of one runner, as the engine lists them. */
async function poolContainers(runnerId: string): Promise<Dockerode.ContainerInfo[]> {
  return await docker.listContainers({
    all: true,
    filters: { label: ['org.handoff.pool=1', `org.handoff.runner=${runnerId}`] },
  });
}

async function counter(metrics: Metrics, outcome: string): Promise<number> {
  const got = await metrics.sandboxPoolClaims.get();
  return got.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describeDocker('warm pool of sandboxes (real Docker)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
  });

  async function scratch(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-pool-test-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async function startPool(options: Partial<WarmPoolOptions> = {}) {
    const root = await scratch();
    const driver = new DockerSandboxDriver({ image: sandboxImage, docker, sandboxUser });
    const metrics = new Metrics();
    const runnerId = `pool-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const pool = new WarmPool(driver, {
      size: 2,
      limits: testLimits,
      runnerId,
      dir: join(root, 'pool'),
      metrics,
      refillDelayMs: 0,
      ...options,
    });
    const made: Sandbox[] = [];
    cleanups.push(async () => {
      await pool.close();
      await Promise.allSettled(made.map((s) => s.destroy()));
      for (const c of await poolContainers(runnerId)) await driver.remove(c.Id);
    });
    await pool.start();
    /** A run's workspace with one input file. */
    const workspace = async (input = 'hello from the task') => {
      const dir = join(root, `ws-${made.length}-${Math.random().toString(36).slice(2, 6)}`);
      await mkdir(join(dir, 'in'), { recursive: true });
      await writeFile(join(dir, 'in', 'input.txt'), input);
      return dir;
    };
    const create = async (taskId: string, workspaceDir: string, extra: object = {}) => {
      const box = await pool.create({
        taskId,
        label: `test-${taskId}-${Date.now().toString(36)}`,
        workspaceDir,
        readOnlyWorkspace: false,
        limits: testLimits,
        runnerId,
        ...extra,
      });
      made.push(box);
      return box;
    };
    return { pool, driver, metrics, runnerId, root, workspace, create };
  }

  it('a pool container has exactly the hardening of a cold one', async () => {
    const { pool, driver, runnerId, workspace, create } = await startPool({ size: 1 });
    await until('the pool holds a container', () => pool.idle === 1);
    const [idle] = await poolContainers(runnerId);
    const pooled = await docker.getContainer(idle!.Id).inspect();
    const cold = await driver.create({
      taskId: 'task-cold',
      label: `test-cold-${process.pid}-${Date.now().toString(36)}`,
      workspaceDir: await workspace(),
      readOnlyWorkspace: false,
      limits: testLimits,
      runnerId,
    });
    cleanups.push(() => cold.destroy());
    const coldInfo = await docker.getContainer(cold.id).inspect();

    expect(containerHardeningProblems(pooled)).toEqual([]);
    const hardening = (i: Dockerode.ContainerInspectInfo) => ({
      user: i.Config.User,
      cmd: i.Config.Cmd,
      env: i.Config.Env,
      image: i.Config.Image,
      workingDir: i.Config.WorkingDir,
      networkDisabled: (i.Config as { NetworkDisabled?: boolean }).NetworkDisabled,
      host: {
        NetworkMode: i.HostConfig.NetworkMode,
        ReadonlyRootfs: i.HostConfig.ReadonlyRootfs,
        CapDrop: i.HostConfig.CapDrop,
        CapAdd: i.HostConfig.CapAdd,
        SecurityOpt: i.HostConfig.SecurityOpt,
        Privileged: i.HostConfig.Privileged,
        IpcMode: i.HostConfig.IpcMode,
        PidsLimit: i.HostConfig.PidsLimit,
        Memory: i.HostConfig.Memory,
        MemorySwap: i.HostConfig.MemorySwap,
        NanoCpus: i.HostConfig.NanoCpus,
        Tmpfs: i.HostConfig.Tmpfs,
        Init: i.HostConfig.Init,
      },
      mounts: i.Mounts.map((m) => `${m.Type} ${m.Destination} ${m.RW ? 'rw' : 'ro'}`).sort(),
    });
    expect(hardening(pooled)).toEqual(hardening(coldInfo));

    // Once claimed it is the same container: still hardened, now named for its task.
    const box = await create('task-claimed', await workspace());
    expect(box.id).toBe(idle!.Id);
    expect(containerHardeningProblems(await docker.getContainer(box.id).inspect())).toEqual([]);
  });

  it('a claimed container sees its task’s inputs, live, and goes with its directory when destroyed', async () => {
    const { pool, driver, metrics, workspace, create } = await startPool({ size: 1 });
    await until('the pool holds a container', () => pool.idle === 1);
    const ws = await workspace('numbers: 1 2 3');
    const box = await create('task-inputs', ws);
    expect(await counter(metrics, 'hit')).toBe(1);

    const read = await box.exec(['cat', '/workspace/in/input.txt'], { timeoutMs: 20_000 });
    expect(read.stdout).toBe('numbers: 1 2 3');
    // What the runner writes to the run's in/ later (an approved input change) is what the sandbox sees.
    await writeFile(join(ws, 'in', 'input.txt'), 'changed');
    await writeFile(join(ws, 'in', 'added.txt'), 'new file');
    expect((await box.exec(['cat', '/workspace/in/input.txt'], { timeoutMs: 20_000 })).stdout).toBe('changed');
    expect((await box.exec(['cat', '/workspace/in/added.txt'], { timeoutMs: 20_000 })).stdout).toBe('new file');
    await unlink(join(ws, 'in', 'added.txt'));
    const gone = await box.exec(['test', '-e', '/workspace/in/added.txt'], { timeoutMs: 20_000 });
    expect(gone.exitCode).toBe(1);
    // The input stays read-only to the sandbox.
    const write = await box.exec(['sh', '-c', 'echo x > /workspace/in/input.txt'], { timeoutMs: 20_000 });
    expect(write.exitCode).not.toBe(0);

    // The janitor's view: the container is the task's.
    const listed = (await driver.list()).find((b) => b.id === box.id);
    expect(listed).toMatchObject({ taskId: 'task-inputs', pool: 'claimed' });

    // The run's in/ is the container's own host directory now, and that goes with the container.
    const ownDir = join(await readlink(join(ws, 'in')), '..');
    expect(await pathExists(join(ownDir, 'in', 'input.txt'))).toBe(true);
    await box.destroy();
    expect(await exists(box.id)).toBe(false);
    expect(await pathExists(ownDir)).toBe(false);
  });

  it('two tasks never get the same container, and the pool refills with new ones', async () => {
    const { pool, metrics, runnerId, workspace, create } = await startPool({ size: 2 });
    await until('the pool holds two containers', () => pool.idle === 2);
    const before = new Set((await poolContainers(runnerId)).map((c) => c.Id));
    const [a, b] = await Promise.all([create('task-a', await workspace()), create('task-b', await workspace())]);
    expect(a.id).not.toBe(b.id);
    expect(before.has(a.id) && before.has(b.id)).toBe(true);
    expect(await counter(metrics, 'hit')).toBe(2);

    await until('the pool refilled', () => pool.idle === 2);
    const idleNow = (await poolContainers(runnerId))
      .filter((c) => c.Names.some((n) => n.startsWith('/handoff-pool-')))
      .map((c) => c.Id);
    expect(idleNow).toHaveLength(2);
    expect(idleNow).not.toContain(a.id);
    expect(idleNow).not.toContain(b.id);

    // A third and fourth task get the new ones, never a claimed container again.
    const [c, d] = await Promise.all([create('task-c', await workspace()), create('task-d', await workspace())]);
    expect(new Set([a.id, b.id, c.id, d.id]).size).toBe(4);
  });

  it('a spec the pool cannot serve gets a cold container, counted as a miss', async () => {
    const { pool, metrics, workspace, create } = await startPool({ size: 1 });
    await until('the pool holds a container', () => pool.idle === 1);
    const egressDir = await scratch();
    const cold = [
      await create('task-ro', await workspace(), { readOnlyWorkspace: true }),
      await create('task-limits', await workspace(), { limits: { ...testLimits, memoryMb: testLimits.memoryMb * 2 } }),
      await create('task-egress', await workspace(), { egressSocketDir: egressDir }),
    ];
    const names = await Promise.all(cold.map(async (box) => (await docker.getContainer(box.id).inspect()).Name));
    for (const name of names) expect(name).not.toMatch(/handoff-claimed|handoff-pool-/);
    expect(await counter(metrics, 'unservable')).toBe(3);
    expect(await counter(metrics, 'hit')).toBe(0);
    expect(pool.idle).toBe(1);
  });

  it('a container that cannot be claimed (gone behind the pool’s back) gives way to a cold one with every input', async () => {
    const { pool, metrics, runnerId, workspace, create } = await startPool({ size: 1, refillDelayMs: 60_000 });
    await until('the pool holds a container', () => pool.idle === 1);
    const [idle] = await poolContainers(runnerId);
    await docker.getContainer(idle!.Id).remove({ force: true, v: true });
    const ws = await workspace('still here');
    const box = await create('task-fallback', ws);
    expect(box.id).not.toBe(idle!.Id);
    expect((await docker.getContainer(box.id).inspect()).Name).toMatch(/^\/handoff-test-task-fallback-/);
    expect((await box.exec(['cat', '/workspace/in/input.txt'], { timeoutMs: 20_000 })).stdout).toBe('still here');
    expect(await counter(metrics, 'hit')).toBe(0);
    expect(await counter(metrics, 'empty')).toBe(1);
  });

  it('claims its container while the inputs are still being laid out, and links them once they are there', async () => {
    const { pool, metrics, runnerId, root, create } = await startPool({ size: 1, refillDelayMs: 60_000 });
    await until('the pool holds a container', () => pool.idle === 1);
    const [idle] = await poolContainers(runnerId);
    const ws = join(root, 'ws-late');
    let laidOut: () => void = () => undefined;
    const workspaceReady = new Promise<void>((resolve) => {
      laidOut = resolve;
    });
    const claiming = create('task-late', ws, { workspaceReady });
    // The container is renamed for the task before any input exists.
    await until('the container is named for its task', async () =>
      (await docker.getContainer(idle!.Id).inspect()).Name.startsWith('/handoff-claimed.task-late.'),
    );
    expect(await pathExists(join(ws, 'in'))).toBe(false);
    await mkdir(join(ws, 'in'), { recursive: true });
    await writeFile(join(ws, 'in', 'input.txt'), 'laid out late');
    laidOut();
    const box = await claiming;
    expect(box.id).toBe(idle!.Id);
    expect((await box.exec(['cat', '/workspace/in/input.txt'], { timeoutMs: 20_000 })).stdout).toBe('laid out late');
    expect(await counter(metrics, 'hit')).toBe(1);
  });

  it('inputs that cannot be laid out fail the create with their error, without a cold container', async () => {
    const { pool, metrics, runnerId, root, create } = await startPool({ size: 1, refillDelayMs: 60_000 });
    await until('the pool holds a container', () => pool.idle === 1);
    const [idle] = await poolContainers(runnerId);
    const workspaceReady = Promise.reject(new Error('the artifact store is unreachable (test)'));
    await expect(create('task-no-inputs', join(root, 'ws-none'), { workspaceReady })).rejects.toThrow(
      'the artifact store is unreachable (test)',
    );
    // The claimed container went, and no cold one was made for the task.
    expect(await exists(idle!.Id)).toBe(false);
    const left = await docker.listContainers({ all: true, filters: { label: ['org.handoff.task=task-no-inputs'] } });
    expect(left).toEqual([]);
    expect(await counter(metrics, 'empty')).toBe(0);
  });

  it('removeTaskSandboxes removes a claimed container of that task only', async () => {
    const { pool, driver, workspace, create } = await startPool({ size: 2 });
    await until('the pool holds two containers', () => pool.idle === 2);
    const mine = await create('task-left', await workspace());
    const other = await create('task-other', await workspace());
    expect(await driver.removeTaskSandboxes('task-left')).toBe(1);
    expect(await exists(mine.id)).toBe(false);
    expect(await exists(other.id)).toBe(true);
  });

  it('removeTaskSandboxes spares the sandbox being made with the label it is told to keep, claimed or cold', async () => {
    const { pool, driver, workspace, create } = await startPool({ size: 1, refillDelayMs: 60_000 });
    await until('the pool holds a container', () => pool.idle === 1);
    const claimed = await create('task-keep', await workspace(), { label: 'run-keep-claimed' });
    const cold = await create('task-keep', await workspace(), { label: 'run-keep-cold' });
    expect((await docker.getContainer(claimed.id).inspect()).Name).toMatch(/^\/handoff-claimed\.task-keep\./);
    expect(await driver.removeTaskSandboxes('task-keep', undefined, 'run-keep-claimed')).toBe(1);
    expect(await exists(claimed.id)).toBe(true);
    expect(await exists(cold.id)).toBe(false);
    const again = await create('task-keep', await workspace(), { label: 'run-keep-cold-2' });
    expect(await driver.removeTaskSandboxes('task-keep', undefined, 'run-keep-cold-2')).toBe(1);
    expect(await exists(claimed.id)).toBe(false);
    expect(await exists(again.id)).toBe(true);
  });

  it('close drains the pool; a restarted runner removes idle containers an earlier process left', async () => {
    const { pool, runnerId, root } = await startPool({ size: 2 });
    await until('the pool holds two containers', () => pool.idle === 2);
    await pool.close();
    expect(await poolContainers(runnerId)).toEqual([]);
    expect(await readdir(join(root, 'pool'))).toEqual([]);

    // An idle container of this runner id that no pool holds (its process died).
    const next = new DockerSandboxDriver({ image: sandboxImage, docker, sandboxUser });
    const orphanDir = join(root, 'pool', 'pool-orphan');
    const orphan = await next.createIdle({
      label: `pool-orphan-${process.pid}`,
      hostDir: orphanDir,
      limits: testLimits,
      runnerId,
    });
    cleanups.push(() => next.remove(orphan.id));
    const restarted = new WarmPool(next, { size: 0, limits: testLimits, runnerId, dir: join(root, 'pool') });
    await restarted.start();
    expect(await exists(orphan.id)).toBe(false);
    expect(await pathExists(orphanDir)).toBe(false);
    await restarted.close();
  });

  it('a run with the pool on delivers its file from a pool container, which is gone after; shutdown drains the pool', async () => {
    const model = await startFakeAnthropic();
    cleanups.push(() => model.close());
    model.enqueue(doneMdPlan, ...finishDoneMd);
    const runnerId = `pool-run-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const handoff = await startDevHandoff({
      env: {
        ANTHROPIC_API_KEY: 'sk-ant-test',
        ANTHROPIC_BASE_URL: model.url,
        HANDOFF_SANDBOX_WARM_POOL: '1',
        HANDOFF_RUNNER_ID: runnerId,
      },
    });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await handoff.close();
    });
    await until('the pool holds a container', async () => (await poolContainers(runnerId)).length === 1);
    const [idle] = await poolContainers(runnerId);

    const events = (await docker.getEvents({
      filters: { type: ['container'], event: ['rename'], label: [`org.handoff.runner=${runnerId}`] },
    })) as NodeJS.ReadableStream & { destroy(): void };
    cleanups.push(async () => events.destroy());
    const renamed: Array<{ id: string; name: string }> = [];
    events.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const e = JSON.parse(line) as { Actor: { ID: string; Attributes: { name: string } } };
        renamed.push({ id: e.Actor.ID, name: e.Actor.Attributes.name });
      }
    });
    const ana = new ConsoleClient(handoff.url);
    const posted = await ana.post('@handoff write done.md');
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'));
    const { taskId } = planButtons(card.html!);
    await ana.action({ action: 'approve', ...planButtons(card.html!) });
    const result = await ana.waitForCard(thread, (h) => h.includes('card result'), 120_000);
    const file = links(result.html!).find((l) => l.name === 'done.md');
    expect(file).toBeDefined();
    const body = await (await fetch(new URL(file!.href, handoff.url))).text();
    expect(body).toContain('# Done');

    // The run's container was the pool's: it was renamed for the task when claimed, and is gone now.
    expect(renamed).toContainEqual({
      id: idle!.Id,
      name: expect.stringMatching(new RegExp(`^handoff-claimed\\.${taskId}\\.run-`)),
    });
    await until('the claimed container is removed', async () => !(await exists(idle!.Id)));
    await until('the pool refilled', async () => (await poolContainers(runnerId)).length === 1);
    expect((await poolContainers(runnerId))[0]!.Id).not.toBe(idle!.Id);

    await handoff.close();
    closed = true;
    expect(await poolContainers(runnerId)).toEqual([]);
  });
});
