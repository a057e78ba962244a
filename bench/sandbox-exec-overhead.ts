// One driver `exec` of `true` against a bare `docker exec` of `true` in the same hardened
// sandbox container, alternated A B A B so both see the same machine load. The ratio is what
// the driver adds around one command (wrapper, OOM reading, exit code).
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { DockerSandboxDriver } from '../src/runner/sandbox/index.ts';
import { print, summary } from './stats.ts';

const rounds = Number(process.env.BENCH_RUNS ?? 30);
const docker = new Dockerode();
const driver = new DockerSandboxDriver({
  image: process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest',
  docker,
  sandboxUser: '1000:1000',
});
const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-exec-'));
for (const sub of ['in', 'out']) {
  await mkdir(join(dir, sub));
  if (process.getuid?.() === 0) await chown(join(dir, sub), 1000, 1000);
}
const sandbox = await driver.create({
  taskId: 'bench',
  label: `bench-exec-${process.pid}`,
  workspaceDir: dir,
  readOnlyWorkspace: false,
  limits: { memoryMb: 256, cpus: 1, pids: 64, tmpfsMb: 64, outputMb: 64 },
});

async function bareExec(): Promise<void> {
  const exec = await docker.getContainer(sandbox.id).exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
  await exec.inspect();
}

const bare: number[] = [];
const driverExec: number[] = [];
try {
  await bareExec();
  await sandbox.exec(['true'], { timeoutMs: 10_000 });
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await bareExec();
    bare.push(performance.now() - t);
    t = performance.now();
    await sandbox.exec(['true'], { timeoutMs: 10_000 });
    driverExec.push(performance.now() - t);
  }
  print('bare docker exec true', 'ms', bare);
  print('driver exec true', 'ms', driverExec);
  console.log(`ratio (medians): ${(summary(driverExec).median / summary(bare).median).toFixed(2)}x`);
} finally {
  await sandbox.destroy();
  await driver.close();
  await rm(dir, { recursive: true, force: true });
}
