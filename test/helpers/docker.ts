import { randomUUID } from 'node:crypto';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { pack } from 'tar-stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, it } from 'vitest';
import {
  DockerSandboxDriver,
  type Sandbox,
  type SandboxLimits,
  type SandboxSpec,
} from '../../src/runner/sandbox/index.ts';

/** The image the Docker tests run; CI may point this at a freshly built tag. */
export const sandboxImage = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
/** Matches the `sandbox` user baked into the image. */
export const sandboxUser = '1000:1000';

/** Small limits keep the tests fast and make limit-breaking tests cheap. */
export const testLimits: SandboxLimits = { memoryMb: 256, cpus: 1, pids: 64, tmpfsMb: 64, outputMb: 64 };

let availability: Promise<{ ok: true } | { ok: false; reason: string }> | undefined;

function checkAvailability(): Promise<{ ok: true } | { ok: false; reason: string }> {
  availability ??= (async () => {
    const docker = new Dockerode();
    try {
      await docker.ping();
    } catch (err) {
      return { ok: false, reason: `the Docker engine is not reachable (${(err as Error).message})` };
    }
    try {
      await docker.getImage(sandboxImage).inspect();
    } catch {
      return { ok: false, reason: `the image ${sandboxImage} is missing (run \`npm run sandbox:build\`)` };
    }
    return { ok: true };
  })();
  return availability;
}

/** True when the engine answers and the sandbox image is present. */
export async function dockerAvailable(): Promise<boolean> {
  return (await checkAvailability()).ok;
}

/**
 * A `describe` for tests that need real Docker. Without Docker the suite is skipped with a loud
 * warning, or fails when HANDOFF_REQUIRE_DOCKER=1 (CI), so missing Docker is never silent.
 */
export function describeDocker(name: string, fn: () => void): void {
  // vitest awaits an async suite factory while collecting, which lets the check run first.
  describe(name, async () => {
    const result = await checkAvailability();
    if (result.ok) {
      fn();
      return;
    }
    if (process.env.HANDOFF_REQUIRE_DOCKER === '1') {
      it('has Docker available (HANDOFF_REQUIRE_DOCKER=1)', () => {
        throw new Error(`HANDOFF_REQUIRE_DOCKER=1 but ${result.reason}: "${name}" cannot run`);
      });
      return;
    }
    process.stderr.write(
      `\n!!! SKIPPING Docker tests "${name}": ${result.reason}. Set HANDOFF_REQUIRE_DOCKER=1 to make this a failure.\n\n`,
    );
    describe.skip(`${name} (skipped: no Docker)`, fn);
  });
}

export interface SandboxFixture {
  readonly driver: DockerSandboxDriver;
  readonly docker: Dockerode;
  /** A fresh host workspace with in/ and out/ the sandbox user can use; removed after the test. */
  workspace(): Promise<string>;
  /** Creates a sandbox on a fresh workspace; destroyed after the test whatever happens. */
  sandbox(overrides?: Partial<SandboxSpec>): Promise<{ sandbox: Sandbox; workspaceDir: string }>;
}

/** How commands run in the sandbox: the image's exec helper, or the shell wrapper an image without one gets. */
export type ExecWrapper = 'helper' | 'shell';
export const execWrappers: readonly ExecWrapper[] = ['helper', 'shell'];
/** How a suite title names a wrapper. */
export const wrapperName = (wrapper: ExecWrapper): string => (wrapper === 'helper' ? 'exec helper' : 'shell wrapper');

/**
 * Builds the sandbox image with its exec-helper label emptied, as a custom image without the
 * helper would be: commands run under the shell wrapper. No network is needed (no RUN step).
 */
export async function buildShellWrapperImage(docker: Dockerode, tag: string, from = sandboxImage): Promise<void> {
  const context = pack();
  context.entry({ name: 'Dockerfile' }, `FROM ${from}\nLABEL org.handoff.sandbox.exec=""\n`);
  context.finalize();
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag });
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => {
      const failed = err ?? out.find((event) => event.error);
      if (failed) reject(failed instanceof Error ? failed : new Error(failed.error));
      else resolve();
    }),
  );
}

/**
 * Registers hooks that give each test sandboxes which are always destroyed afterwards; when a
 * test fails, the ids of its containers are printed so `docker logs`/`inspect` can follow up.
 * Call inside a `describeDocker` body. `wrapper: 'shell'` runs on a copy of the image without
 * the exec helper, built before the tests and removed after them.
 */
export function useSandboxFixture(options: { wrapper?: ExecWrapper } = {}): SandboxFixture {
  const docker = new Dockerode();
  const image =
    options.wrapper === 'shell'
      ? `handoff-sandbox-shell-wrapper:test-${process.pid}-${randomUUID().slice(0, 8)}`
      : sandboxImage;
  const driver = new DockerSandboxDriver({ image, docker, sandboxUser });
  if (image !== sandboxImage) {
    beforeAll(() => buildShellWrapperImage(docker, image), 120_000);
    afterAll(() =>
      docker
        .getImage(image)
        .remove({ force: true })
        .catch(() => undefined),
    );
  }
  let sandboxes: Sandbox[] = [];
  let dirs: string[] = [];
  // Kept past afterEach: vitest reports the failure after the cleanup hooks ran.
  let idsThisTest: string[] = [];

  beforeEach((context) => {
    idsThisTest = [];
    context.onTestFailed(() => {
      const ids = idsThisTest.join(', ') || 'none';
      process.stderr.write(`\n[sandbox fixture] "${context.task.name}" failed; sandbox containers: ${ids}\n`);
    });
  });

  afterEach(async () => {
    const current = sandboxes;
    const currentDirs = dirs;
    sandboxes = [];
    dirs = [];
    await Promise.allSettled(current.map((sandbox) => sandbox.destroy()));
    await Promise.allSettled(currentDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  afterAll(() => driver.close());

  const workspace = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-sandbox-test-'));
    dirs.push(dir);
    for (const sub of ['in', 'out']) {
      const path = join(dir, sub);
      await mkdir(path);
      // A root test runner must hand out/ to the sandbox user, or nothing can be written there.
      if (process.getuid?.() === 0) await chown(path, 1000, 1000);
    }
    return dir;
  };

  return {
    driver,
    docker,
    workspace,
    async sandbox(overrides = {}) {
      const workspaceDir = overrides.workspaceDir ?? (await workspace());
      const label = `test-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      const sandbox = await driver.create({
        taskId: 'task-test',
        label,
        workspaceDir,
        readOnlyWorkspace: false,
        limits: testLimits,
        ...overrides,
      });
      sandboxes.push(sandbox);
      idsThisTest.push(sandbox.id);
      return { sandbox, workspaceDir };
    },
  };
}
