// The bare-Docker baselines of the run-side benches: the same image with the same hardening as
// src/runner/sandbox/docker.ts gives a cold sandbox (user, read-only root, no network, CapDrop
// ALL, no-new-privileges, private IPC, pids/memory/CPU limits, /tmp tmpfs, docker-init, the
// read-only in/ bind and the size-capped tmpfs volume at /workspace/out), with nothing around it.
import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import Dockerode from 'dockerode';
import { nowMs, nsToMs, STAMP_COMMAND } from './stamp-model.ts';

export interface BareLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
  tmpfsMb: number;
  outputMb: number;
}

/** Handoff's defaults (src/config/settings.ts), which `handoff dev` runs with. */
export const defaultLimits: BareLimits = { memoryMb: 1024, cpus: 1, pids: 256, tmpfsMb: 256, outputMb: 256 };

export class BareDocker {
  readonly docker = new Dockerode();

  constructor(
    readonly image: string,
    /** Host folder mounted read-only at /workspace/in. */
    readonly inDir: string,
    readonly user = '1000:1000',
    readonly limits: BareLimits = defaultLimits,
  ) {}

  /** `docker run --rm <hardening flags> <image> bash -c 'date +%s%N'`: ms from just before the run to the stamp. */
  async cliRun(): Promise<number> {
    const [uid, gid] = this.user.split(':');
    const l = this.limits;
    const args = [
      'run',
      '--rm',
      '--network',
      'none',
      '--read-only',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      '--ipc',
      'private',
      '--pids-limit',
      String(l.pids),
      '--memory',
      `${l.memoryMb}m`,
      '--memory-swap',
      `${l.memoryMb}m`,
      '--cpus',
      String(l.cpus),
      '--tmpfs',
      `/tmp:rw,nosuid,nodev,size=${l.tmpfsMb}m`,
      '--init',
      '--user',
      this.user,
      '--workdir',
      '/workspace',
      '--env',
      'HOME=/home/sandbox',
      '--env',
      'LANG=C.UTF-8',
      '--volume',
      `${this.inDir}:/workspace/in:ro`,
      '--mount',
      `type=volume,dst=/workspace/out,volume-nocopy,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"volume-opt=o=size=${l.outputMb}m,uid=${uid},gid=${gid},mode=0755,nosuid,nodev"`,
      this.image,
      'bash',
      '-c',
      STAMP_COMMAND,
    ];
    const started = nowMs();
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('docker', args, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      ),
    );
    return nsToMs(stdout) - started;
  }

  /** The same container made through the Engine API (create, attach, start): ms to the stamp. */
  async apiRun(): Promise<number> {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const started = nowMs();
    const [, container] = (await this.docker.run(this.image, ['bash', '-c', STAMP_COMMAND], out, {
      ...this.createOptions(),
    })) as [unknown, Dockerode.Container];
    const stamp = nsToMs(text);
    await container.remove({ force: true, v: true });
    return stamp - started;
  }

  /** A long-lived container with the same hardening, for `docker exec` baselines. */
  async startIdle(name: string): Promise<Dockerode.Container> {
    const container = await this.docker.createContainer({
      name,
      ...this.createOptions(),
      Cmd: ['sleep', 'infinity'],
    });
    await container.start();
    return container;
  }

  /** A bare exec of `bash -c 'date +%s%N'` through the Engine API: ms from just before it to the stamp. */
  async exec(container: Dockerode.Container): Promise<{ ms: number; stamp: number }> {
    const started = nowMs();
    const exec = await container.exec({
      Cmd: ['bash', '-c', STAMP_COMMAND],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    container.modem.demuxStream(stream, out, new PassThrough());
    await new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    await exec.inspect();
    const stamp = nsToMs(text);
    return { ms: stamp - started, stamp };
  }

  createOptions(): Dockerode.ContainerCreateOptions {
    const [uid, gid] = this.user.split(':');
    const l = this.limits;
    const memory = l.memoryMb * 1024 * 1024;
    return {
      Image: this.image,
      User: this.user,
      WorkingDir: '/workspace',
      Env: ['HOME=/home/sandbox', 'LANG=C.UTF-8'],
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        IpcMode: 'private',
        PidsLimit: l.pids,
        Memory: memory,
        MemorySwap: memory,
        NanoCpus: Math.round(l.cpus * 1e9),
        Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${l.tmpfsMb}m` },
        Binds: [`${this.inDir}:/workspace/in:ro`],
        Mounts: [
          {
            Type: 'volume',
            Source: '',
            Target: '/workspace/out',
            VolumeOptions: {
              NoCopy: true,
              Labels: {},
              DriverConfig: {
                Name: 'local',
                Options: {
                  type: 'tmpfs',
                  device: 'tmpfs',
                  o: `size=${l.outputMb}m,uid=${uid},gid=${gid},mode=0755,nosuid,nodev`,
                },
              },
            },
          },
        ],
        Init: true,
      },
    };
  }
}
