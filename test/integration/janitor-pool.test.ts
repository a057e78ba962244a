import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/index.ts';
import { sweepSandboxesAndWorkspaces } from '../../src/runner/janitor.ts';
import type { RunnerDeps } from '../../src/runner/plan-processor.ts';
import type { Sandbox, SandboxDriver, SandboxInfo } from '../../src/runner/sandbox/index.ts';
import { type EmbeddedRedis, StateStore, startRedisServer } from '../../src/storage/index.ts';

/** The engine as the janitor sees it (SandboxDriver's in-memory stand-in): a list, and removals. */
class ListedSandboxes implements SandboxDriver {
  readonly name = 'listed';
  readonly removed: string[] = [];
  constructor(private boxes: SandboxInfo[]) {}
  async list(): Promise<SandboxInfo[]> {
    return this.boxes.map((b) => ({ ...b }));
  }
  async remove(id: string): Promise<void> {
    this.removed.push(id);
    this.boxes = this.boxes.filter((b) => b.id !== id);
  }
  async create(): Promise<Sandbox> {
    throw new Error('not used by the janitor');
  }
  async attach(): Promise<Sandbox | undefined> {
    return undefined;
  }
  async removeTaskSandboxes(): Promise<number> {
    return 0;
  }
  async ping(): Promise<void> {}
  async imagePresent(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}

describe('the janitor and warm-pool containers (real Redis)', () => {
  let dir: string;
  let server: EmbeddedRedis;
  let redis: Redis;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'handoff-janitor-pool-'));
    server = await startRedisServer({ dir: join(dir, 'redis') });
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves its own and live runners’ idle pool containers alone and removes a dead runner’s', async () => {
    const state = new StateStore(redis);
    await state.runnerHeartbeat('runner-live', 60_000);
    // Older than the janitor's settling time, so only ownership decides.
    const old = Date.now() - 10 * 60_000;
    const box = (id: string, runnerId: string, extra: Partial<SandboxInfo> = {}): SandboxInfo => ({
      id,
      taskId: '',
      runnerId,
      state: 'running',
      createdAtMs: old,
      pool: 'idle',
      ...extra,
    });
    const driver = new ListedSandboxes([
      box('idle-mine', 'runner-me'),
      box('idle-live', 'runner-live'),
      box('idle-dead', 'runner-dead'),
      box('claimed-mine-active', 'runner-me', { pool: 'claimed', taskId: 't_active' }),
      box('claimed-mine-ended', 'runner-me', { pool: 'claimed', taskId: 't_ended' }),
      box('claimed-dead', 'runner-dead', { pool: 'claimed', taskId: 't_other' }),
    ]);
    const deps = {
      state,
      driver,
      runnerId: 'runner-me',
      workspacesDir: join(dir, 'workspaces'),
      logger: createLogger('silent'),
    } as unknown as RunnerDeps;
    const result = await sweepSandboxesAndWorkspaces(deps, new Map([['t_active', 1]]));
    expect(driver.removed.sort()).toEqual(['claimed-dead', 'claimed-mine-ended', 'idle-dead']);
    expect(result.sandboxesRemoved).toBe(3);
  });
});
