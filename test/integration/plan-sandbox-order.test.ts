import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterEach, expect, it } from 'vitest';
import { DockerSandboxDriver } from '../../src/runner/index.ts';
import type { Sandbox, SandboxDriver, SandboxSpec } from '../../src/runner/sandbox/index.ts';
import { StateStore } from '../../src/storage/index.ts';
import { ConsoleClient, planButtons } from '../helpers/console-client.ts';
import { describeDocker, sandboxImage, sandboxUser } from '../helpers/docker.ts';
import { startDevHandoff, type TestHandoff } from '../helpers/handoff.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const taskLabel = 'org.handoff.task';

/**
 * The real Docker driver, watched: what state the task was in when each planning sandbox
 * was destroyed, and how many leftovers each `removeTaskSandboxes` found.
 */
class WatchedDriver implements SandboxDriver {
  readonly name: string;
  /** Set once Handoff is up: the task records the watcher reads. */
  state: StateStore | undefined;
  readonly planDestroys: Array<{ taskId: string; taskState: string | undefined }> = [];
  readonly removals: Array<{ taskId: string; removed: number }> = [];

  constructor(private readonly inner: DockerSandboxDriver) {
    this.name = inner.name;
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const box = await this.inner.create(spec, signal);
    if (!spec.label.startsWith('plan-')) return box;
    return {
      id: box.id,
      exec: (argv, options) => box.exec(argv, options),
      readFileStream: (path) => box.readFileStream(path),
      suspend: () => box.suspend(),
      listOutputs: () => box.listOutputs(),
      writeOutputs: (files) => box.writeOutputs(files),
      destroy: async () => {
        const task = await this.state?.getTask(spec.taskId);
        this.planDestroys.push({ taskId: spec.taskId, taskState: task?.state });
        await box.destroy();
      },
    };
  }
  attach(id: string) {
    return this.inner.attach(id);
  }
  list() {
    return this.inner.list();
  }
  remove(id: string) {
    return this.inner.remove(id);
  }
  async removeTaskSandboxes(taskId: string, keepId?: string) {
    const removed = await this.inner.removeTaskSandboxes(taskId, keepId);
    this.removals.push({ taskId, removed });
    return removed;
  }
  ping() {
    return this.inner.ping();
  }
  imagePresent() {
    return this.inner.imagePresent();
  }
  close() {
    return this.inner.close();
  }
}

describeDocker('the planning sandbox is removed before the plan card is posted', () => {
  const docker = new Dockerode();
  let handoff: TestHandoff | undefined;
  let redis: Redis | undefined;

  function containersOf(taskId: string) {
    return docker.listContainers({ all: true, filters: { label: [`${taskLabel}=${taskId}`] } });
  }

  afterEach(async () => {
    redis?.disconnect();
    redis = undefined;
    await handoff?.close();
    handoff = undefined;
  });

  it('leaves no container of the task once the card is visible, and the run removes nothing', async () => {
    const driver = new WatchedDriver(new DockerSandboxDriver({ image: sandboxImage, docker, sandboxUser }));
    handoff = await startDevHandoff({ driver });
    redis = new Redis(handoff.redisUrl);
    driver.state = new StateStore(redis);
    const client = new ConsoleClient(handoff.url);

    const posted = await client.post(
      '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      [{ name: 'sales.csv', path: salesCsv }],
    );
    expect(posted.status).toBe(201);
    const thread = posted.body.message!.id;
    const taskId = posted.body.taskId!;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));

    // The moment a person can see (and click) the card, the planning container is gone.
    expect(await containersOf(taskId)).toEqual([]);
    // Destroyed while the task was still planning: before it could be approved or its card posted.
    expect(driver.planDestroys).toEqual([{ taskId, taskState: 'planning' }]);

    // Approve at once: the run finds nothing of the planning sandbox left to remove.
    expect((await client.action({ action: 'approve', ...planButtons(card.html!) })).status).toBe(200);
    const result = await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
    expect(result.html).toContain('Done');
    const runRemovals = driver.removals.filter((r) => r.taskId === taskId);
    // One before planning, one before the run: neither found a sandbox to remove.
    expect(runRemovals).toEqual([
      { taskId, removed: 0 },
      { taskId, removed: 0 },
    ]);
    expect(await containersOf(taskId)).toEqual([]);
  }, 240_000);
});
