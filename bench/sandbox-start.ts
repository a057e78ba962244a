// What a sandbox costs before the first command: a fresh container per run (what a pod per
// run would add to, see docs/scaling.md) against one more command in a warm one. Uses the
// real Docker driver and sandbox image, as a runner does:
//   cold   create the sandbox (container create + start, workspace mounts, /workspace/out
//          volume) and run `true` in it
//   warm   run `true` in a sandbox that is already up
//   remove destroy a sandbox
// Env: BENCH_RUNS (default 20), HANDOFF_SANDBOX_IMAGE (default handoff-sandbox:latest).
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerSandboxDriver, type Sandbox } from '../src/runner/sandbox/index.ts';
import { print } from './stats.ts';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const image = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
const driver = new DockerSandboxDriver({ image, sandboxUser: '1000:1000' });
const limits = { memoryMb: 512, cpus: 1, pids: 128, tmpfsMb: 64, outputMb: 64 };
const root = await mkdtemp(join(tmpdir(), 'handoff-bench-sandbox-'));

async function workspace(i: number): Promise<string> {
  const dir = join(root, `ws-${i}`);
  await mkdir(join(dir, 'in'), { recursive: true });
  await mkdir(join(dir, 'out'), { recursive: true });
  await chown(join(dir, 'out'), 1000, 1000).catch(() => undefined);
  return dir;
}

const cold: number[] = [];
const warm: number[] = [];
const remove: number[] = [];
let kept: Sandbox | undefined;
try {
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const sandbox = await driver.create({
      taskId: `bench-${i}`,
      label: `bench-${process.pid}-${i}`,
      workspaceDir: await workspace(i),
      readOnlyWorkspace: false,
      limits,
    });
    const r = await sandbox.exec(['true'], { timeoutMs: 30_000 });
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}: ${r.stderr}`);
    cold.push(performance.now() - t0);
    if (i === 0) {
      kept = sandbox;
      continue;
    }
    const t1 = performance.now();
    await sandbox.destroy();
    remove.push(performance.now() - t1);
  }
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = await (kept as Sandbox).exec(['true'], { timeoutMs: 30_000 });
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
    warm.push(performance.now() - t0);
  }
  print(`cold: create sandbox + first command (${image})`, 'ms', cold);
  print('warm: one more command in a running sandbox', 'ms', warm);
  print('remove a sandbox', 'ms', remove);
} finally {
  await kept?.destroy();
  await driver.close();
  await rm(root, { recursive: true, force: true });
}
