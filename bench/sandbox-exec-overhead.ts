// One driver `exec` of `true` against a bare `docker exec` of `true` in the same hardened
// sandbox container, alternated A B A B so both see the same machine load. The ratio is what
// the driver adds around one command (wrapper, OOM reading, exit code, output fingerprint).
// The driver runs commands under the image's exec helper (handoff-exec); a third figure runs
// them under the shell wrapper an image without the helper gets (a copy of the image with its
// label emptied, in a container of its own with the same hardening), alternated with the others.
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { DockerSandboxDriver, type Sandbox } from '../src/runner/sandbox/index.ts';
import { buildShellWrapperImage } from '../test/helpers/docker.ts';
import { print, summary } from './stats.ts';

const rounds = Number(process.env.BENCH_RUNS ?? 30);
const docker = new Dockerode();
const image = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
const driver = new DockerSandboxDriver({ image, docker, sandboxUser: '1000:1000' });
const shellImage = `handoff-sandbox-shell-wrapper:bench-${process.pid}`;
await buildShellWrapperImage(docker, shellImage, image);
const shellDriver = new DockerSandboxDriver({ image: shellImage, docker, sandboxUser: '1000:1000' });
const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-exec-'));
for (const sub of ['in', 'out']) {
  await mkdir(join(dir, sub));
  if (process.getuid?.() === 0) await chown(join(dir, sub), 1000, 1000);
}
const spec = {
  taskId: 'bench',
  workspaceDir: dir,
  readOnlyWorkspace: false,
  limits: { memoryMb: 256, cpus: 1, pids: 64, tmpfsMb: 64, outputMb: 64 },
};
const sandbox = await driver.create({ ...spec, label: `bench-exec-${process.pid}` });
let shellSandbox: Sandbox | undefined;

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
const shellExec: number[] = [];
try {
  shellSandbox = await shellDriver.create({ ...spec, label: `bench-exec-shell-${process.pid}` });
  await bareExec();
  await sandbox.exec(['true'], { timeoutMs: 10_000 });
  await shellSandbox.exec(['true'], { timeoutMs: 10_000 });
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await bareExec();
    bare.push(performance.now() - t);
    t = performance.now();
    await sandbox.exec(['true'], { timeoutMs: 10_000 });
    driverExec.push(performance.now() - t);
    t = performance.now();
    await shellSandbox.exec(['true'], { timeoutMs: 10_000 });
    shellExec.push(performance.now() - t);
  }
  print('bare docker exec true', 'ms', bare);
  print('driver exec true (exec helper)', 'ms', driverExec);
  print('driver exec true (shell wrapper)', 'ms', shellExec);
  const ratio = (a: number[]) => (summary(a).median / summary(bare).median).toFixed(2);
  console.log(
    `ratio (medians) to bare docker exec: exec helper ${ratio(driverExec)}x, shell wrapper ${ratio(shellExec)}x`,
  );
} finally {
  await sandbox.destroy();
  await shellSandbox?.destroy();
  await driver.close();
  await shellDriver.close();
  await docker
    .getImage(shellImage)
    .remove({ force: true })
    .catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
