import { randomBytes } from 'node:crypto';
import { chown, mkdir, rm, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, resolve as resolvePath } from 'node:path';
import { type Duplex, PassThrough, type Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import Dockerode from 'dockerode';
import { extract, pack } from 'tar-stream';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import { Metrics, traceSandboxExec, withSpan } from '../../observability/index.ts';
import { EGRESS_SOCKET_NAME } from '../egress/index.ts';
import type {
  ExecOptions,
  ExecResult,
  IdleSandboxSpec,
  OutputFileInfo,
  OutputFileWrite,
  PoolingSandboxDriver,
  Sandbox,
  SandboxInfo,
  SandboxSpec,
} from './driver.ts';
import { OomTrailer } from './oom-trailer.ts';

/** Label every sandbox container carries; `attach` adopts only containers that have it. */
const SANDBOX_LABEL = 'org.handoff.sandbox';
const TASK_LABEL = 'org.handoff.task';
const RUNNER_LABEL = 'org.handoff.runner';
/** Set on warm-pool containers (`1`); labels cannot change, so a claimed one is renamed (claimedName). */
const POOL_LABEL = 'org.handoff.pool';
/** A warm-pool container's own host directory (its in/), removed with it. */
const POOL_DIR_LABEL = 'org.handoff.pool.dir';
/**
 * Image label naming the static helper every command runs under (sandbox/handoff-exec.c): the
 * shell wrapper's work in one process. An image without it gets the shell wrapper.
 */
const EXEC_HELPER_LABEL = 'org.handoff.sandbox.exec';
/** Name of a claimed pool container: carries its task, which its labels cannot. */
const CLAIMED_NAME = /^\/?handoff-claimed\.([A-Za-z0-9_-]+)\./;
const WORKSPACE = '/workspace';
const OUTPUTS = `${WORKSPACE}/out`;
/** Where a run's egress proxy socket directory is mounted, read-only. */
const EGRESS_DIR = '/run/handoff-egress';
/** The sandbox's end of the egress bridge: on its own loopback, the only interface it has. */
const EGRESS_PORT = 3128;
const EGRESS_PROXY_URL = `http://127.0.0.1:${EGRESS_PORT}`;
/**
 * The container's main process when it may reach the egress proxy: socat relays each
 * connection to 127.0.0.1:3128 to the proxy's unix socket, and is started again should it end
 * (a command of the run may kill it: it runs as the same user). Unprivileged (port > 1024), and
 * paused and resumed with the container like everything else in it.
 */
const EGRESS_BRIDGE =
  `while :; do socat TCP-LISTEN:${EGRESS_PORT},bind=127.0.0.1,fork,reuseaddr ` +
  `UNIX-CONNECT:${EGRESS_DIR}/${EGRESS_SOCKET_NAME}; sleep 1; done`;
/** Points every tool that honours the usual variables (curl, Python, pip, npm) at the bridge. */
const EGRESS_ENV = [
  `HTTP_PROXY=${EGRESS_PROXY_URL}`,
  `HTTPS_PROXY=${EGRESS_PROXY_URL}`,
  `http_proxy=${EGRESS_PROXY_URL}`,
  `https_proxy=${EGRESS_PROXY_URL}`,
  // Empty on purpose: even "localhost" goes to the proxy (which refuses it).
  'NO_PROXY=',
  'no_proxy=',
];
/**
 * Waits (up to 5 s) until socat listens, without connecting to it: in /proc/net/tcp,
 * `0100007F:0C38` is 127.0.0.1:3128 and state `0A` is LISTEN.
 */
const EGRESS_READY_PROBE =
  "for i in $(seq 100); do grep -q ' 0100007F:0C38 00000000:0000 0A ' /proc/net/tcp && exit 0; sleep 0.05; done; exit 1";
/** The most files `listOutputs` reports; a run that makes more is told by the sync. */
const MAX_LISTED_OUTPUTS = 10_000;
const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;
/**
 * For images without an exec helper (EXEC_HELPER_LABEL), which does the same in one process.
 * Runs the command under coreutils `timeout` (which puts it in a process group of its own and
 * kills that group at the deadline), then kills whatever the group left behind: background jobs
 * or the rest of a fork bomb would otherwise starve every later command of pids. stdin goes
 * through fd 3 because sh points a background job's stdin at /dev/null. A process that leaves
 * the group on purpose (setsid) lives until the sandbox is destroyed.
 *
 * The same exec reads the cgroup's `oom_kill` counter before the command and after its group is
 * killed, and writes both as the last line of stderr behind a per-exec nonce (see OomTrailer),
 * so an OOM kill costs no extra exec. The nonce is the first line of stdin, read before the
 * command starts: it is never in an argv or environment the command could read from /proc.
 * cgroup v2 first; cgroup v1 kernels (4.13+) expose the same counter in memory.oom_control.
 * The trailer also carries the command's exit status, which the wrapper exits with, so the
 * engine is not asked for it, and a fingerprint of /workspace/out after the command (`cksum` of
 * each entry's size, mtime and path): when it matches the one of the last listing,
 * `listOutputs` answers from that listing instead of spending an exec on `find` after every
 * command. The fingerprint is piped straight to stderr, not through a command substitution,
 * which would cost one more process per command.
 * Arguments: $1 is the time limit, the rest is the command.
 */
const EXEC_WRAPPER =
  'IFS= read -r n || exit 125; ' +
  'o() { v=; for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do ' +
  'if [ -r "$f" ]; then while read -r k x; do [ "$k" = oom_kill ] && v=$x; done < "$f"; break; fi; done; }; ' +
  't=$1; shift; o; b=$v; exec 3<&0; timeout --kill-after=2s "$t" "$@" <&3 3<&- & p=$!; exec 3<&-; ' +
  'wait "$p"; rc=$?; kill -9 "-$p" 2>/dev/null; o; ' +
  'printf \'\\036handoff-oom %s %s %s %s \' "$n" "$b" "$v" "$rc" >&2; ' +
  `{ find ${OUTPUTS} -xdev -printf '%s %T@ %P\\n' 2>/dev/null | cksum; } >&2 || echo >&2; exit "$rc"`;
/** How long past the command's own deadline the host waits before it gives up on the exec stream. */
const HOST_GRACE_MS = 10_000;
/** Budget for the fallback `cat` that reads the OOM counter when a command left no trailer. */
const PROBE_TIMEOUT_MS = 5_000;
/** cgroup v2 first; cgroup v1 kernels (4.13+) expose the same counter in memory.oom_control. */
const OOM_COUNTER_FILES = ['/sys/fs/cgroup/memory.events', '/sys/fs/cgroup/memory/memory.oom_control'];
/** Errors that mean the engine itself cannot be reached, so retrying later may work. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ESOCKETTIMEDOUT',
]);

/** Minimal logger; pino's matches. */
export interface SandboxLogger {
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface DockerSandboxDriverOptions {
  /** Sandbox image, e.g. `handoff-sandbox:latest` (built by `npm run sandbox:build`). */
  image: string;
  /** Engine client. Default: `new Dockerode()`, which honours DOCKER_HOST. */
  docker?: Dockerode;
  /** `uid:gid` the sandboxed commands run as; MUST NOT be root. e.g. `1000:1000`. */
  sandboxUser: string;
  logger?: SandboxLogger;
  /** Times sandbox creation and every command (/metrics). */
  metrics?: Metrics;
}

/** Runs each sandbox as a hardened Docker container (DESIGN §7). */
export class DockerSandboxDriver implements PoolingSandboxDriver {
  readonly name = 'docker';
  readonly #image: string;
  readonly #docker: Dockerode;
  readonly #user: string;
  /** The sandbox user's uid and gid (from `sandboxUser`): owners of /workspace/out and restored files. */
  readonly #owner: { uid: number; gid: number };
  readonly #logger: SandboxLogger | undefined;
  readonly #metrics: Metrics | undefined;
  #closed = false;

  constructor(options: DockerSandboxDriverOptions) {
    if (isRootUser(options.sandboxUser)) {
      throw new HandoffError(ErrorCodes.config, `The sandbox user must not be root (got "${options.sandboxUser}")`);
    }
    this.#image = options.image;
    this.#docker = options.docker ?? new Dockerode();
    this.#user = options.sandboxUser;
    const [uid, gid] = options.sandboxUser.split(':').map((part) => Number.parseInt(part, 10));
    const u = Number.isInteger(uid) ? uid! : 1000;
    this.#owner = { uid: u, gid: Number.isInteger(gid) ? gid! : u };
    this.#logger = options.logger;
    this.#metrics = options.metrics;
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const started = performance.now();
    try {
      const attrs = { 'handoff.task.id': spec.taskId, 'handoff.sandbox.read_only': spec.readOnlyWorkspace };
      const sandbox = await withSpan('sandbox.create', attrs, () => this.#create(spec, signal));
      this.#metrics?.sandboxCreate.observe({ outcome: 'ok' }, Metrics.since(started));
      return sandbox;
    } catch (err) {
      this.#metrics?.sandboxCreate.observe({ outcome: 'error' }, Metrics.since(started));
      throw err;
    }
  }

  /** An idle warm-pool sandbox: the same `#create` as a run's, so exactly the same hardening. */
  async createIdle(spec: IdleSandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const hostDir = resolvePath(spec.hostDir);
    return await withSpan('sandbox.create_idle', {}, () =>
      this.#create(
        {
          taskId: '',
          label: spec.label,
          workspaceDir: hostDir,
          readOnlyWorkspace: false,
          limits: spec.limits,
          runnerId: spec.runnerId,
          ...(spec.readOnlyMounts ? { readOnlyMounts: spec.readOnlyMounts } : {}),
        },
        signal,
        hostDir,
      ),
    );
  }

  async claimIdle(id: string, taskId: string, label: string): Promise<void> {
    if (!/^[A-Za-z0-9_-]+$/.test(taskId))
      throw new HandoffError(
        ErrorCodes.sandboxFailed,
        `A pool sandbox cannot be named for task ${JSON.stringify(taskId)}`,
      );
    try {
      await this.#docker.getContainer(id).rename({ name: claimedName(taskId, label) });
    } catch (err) {
      throw toSandboxError(err, 'Could not claim the pool sandbox');
    }
  }

  async #create(spec: SandboxSpec, signal?: AbortSignal, poolDir?: string): Promise<Sandbox> {
    if (this.#closed) throw new HandoffError(ErrorCodes.sandboxUnavailable, 'The sandbox driver is closed');
    throwIfAborted(signal);
    await spec.workspaceReady;
    throwIfAborted(signal);
    // Bind sources must be absolute.
    const workspaceDir = resolvePath(spec.workspaceDir);
    await this.#prepareWorkspace(workspaceDir);
    throwIfAborted(signal);

    const egressDir = spec.egressSocketDir === undefined ? undefined : resolvePath(spec.egressSocketDir);
    if (egressDir !== undefined) await checkEgressDir(egressDir);
    const readOnlyBinds = await readOnlyMountsFor(spec.readOnlyMounts ?? []);
    throwIfAborted(signal);

    const { limits } = spec;
    const memoryBytes = Math.round(limits.memoryMb * 1024 * 1024);
    const mode = spec.readOnlyWorkspace ? 'ro' : 'rw';
    let container: Dockerode.Container;
    try {
      container = await this.#docker.createContainer({
        name: containerName(spec.label),
        Image: this.#image,
        User: this.#user,
        Cmd: egressDir === undefined ? ['sleep', 'infinity'] : ['sh', '-c', EGRESS_BRIDGE],
        WorkingDir: WORKSPACE,
        // Only these (and the proxy's address when there is egress): nothing from the runner's
        // environment (model keys, connector secrets) goes in.
        Env: ['HOME=/home/sandbox', 'LANG=C.UTF-8', ...(egressDir === undefined ? [] : EGRESS_ENV)],
        NetworkDisabled: true,
        Labels: {
          [TASK_LABEL]: spec.taskId,
          [SANDBOX_LABEL]: '1',
          ...(spec.runnerId ? { [RUNNER_LABEL]: spec.runnerId } : {}),
          ...(poolDir ? { [POOL_LABEL]: '1', [POOL_DIR_LABEL]: poolDir } : {}),
        },
        HostConfig: {
          NetworkMode: 'none',
          ReadonlyRootfs: true,
          CapDrop: ['ALL'],
          // Docker's default seccomp profile stays on because nothing here overrides it.
          SecurityOpt: ['no-new-privileges'],
          Privileged: false,
          IpcMode: 'private',
          PidsLimit: limits.pids,
          Memory: memoryBytes,
          // Equal to Memory: no swap, so a memory hog is OOM-killed instead of thrashing the host.
          MemorySwap: memoryBytes,
          NanoCpus: Math.round(limits.cpus * 1e9),
          Tmpfs: {
            '/tmp': `rw,nosuid,nodev,size=${Math.max(1, Math.round(limits.tmpfsMb))}m`,
            // A read-only sandbox (the planner) only looks: an empty, read-only /workspace/out.
            ...(mode === 'ro' ? { [OUTPUTS]: 'ro,nosuid,nodev,size=1m' } : {}),
          },
          Binds: [`${join(workspaceDir, 'in')}:${WORKSPACE}/in:ro`],
          ...mountsFor(
            egressDir,
            // /workspace/out is a memory-backed volume of its own, not a host directory: its size
            // is a hard cap on what a run writes, and it goes with the container. A volume (unlike
            // a --tmpfs mount) is visible to the archive API, which delivers and restores files.
            mode === 'ro'
              ? undefined
              : {
                  Type: 'volume' as const,
                  // No name: an anonymous volume, removed with the container.
                  Source: '',
                  Target: OUTPUTS,
                  VolumeOptions: {
                    NoCopy: true,
                    Labels: { [TASK_LABEL]: spec.taskId, [SANDBOX_LABEL]: '1' },
                    DriverConfig: {
                      Name: 'local',
                      Options: {
                        type: 'tmpfs',
                        device: 'tmpfs',
                        o: `size=${Math.max(1, Math.round(limits.outputMb))}m,uid=${this.#owner.uid},gid=${this.#owner.gid},mode=0755,nosuid,nodev`,
                      },
                    },
                  },
                },
            readOnlyBinds,
          ),
          AutoRemove: false,
          // docker-init as PID 1 reaps the zombies that agent commands leave behind.
          Init: true,
        },
      });
    } catch (err) {
      if (poolDir) await removePoolDir(poolDir);
      throw this.#createError(err);
    }

    // The container's labels (its image's merged in) name its exec helper: read while it starts.
    // Unreadable: the shell wrapper, which any image with sh and coreutils can run.
    const helper = container.inspect().then(
      (info) => execHelperOf(info.Config.Labels ?? {}),
      () => undefined,
    );
    const sandbox = new DockerSandbox(container, this.#owner, this.#logger, this.#metrics, poolDir, helper);
    try {
      throwIfAborted(signal);
      await container.start();
      throwIfAborted(signal);
      // The first command may well be a download: the bridge must be listening before it runs.
      if (egressDir !== undefined) await sandbox.waitForEgressBridge();
      throwIfAborted(signal);
    } catch (err) {
      await sandbox.destroy().catch(() => undefined);
      if (err instanceof HandoffError) throw err;
      throw this.#createError(err);
    }
    this.#logger?.debug?.({ containerId: sandbox.id.slice(0, 12) }, 'sandbox created');
    return sandbox;
  }

  async attach(id: string): Promise<Sandbox | undefined> {
    const container = this.#docker.getContainer(id);
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw toSandboxError(err, 'Could not inspect the sandbox container');
    }
    const labels = info.Config.Labels ?? {};
    if (labels[SANDBOX_LABEL] !== '1' || !info.State.Running) return undefined;
    if (info.State.Paused) {
      try {
        await container.unpause();
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw toSandboxError(err, 'Could not resume the kept sandbox');
      }
    }
    return new DockerSandbox(
      container,
      this.#owner,
      this.#logger,
      this.#metrics,
      labels[POOL_DIR_LABEL],
      execHelperOf(labels),
    );
  }

  async list(): Promise<SandboxInfo[]> {
    let listed: Dockerode.ContainerInfo[];
    try {
      listed = await this.#docker.listContainers({ all: true, filters: { label: [`${SANDBOX_LABEL}=1`] } });
    } catch (err) {
      throw toSandboxError(err, 'Could not list the sandbox containers');
    }
    return listed.map((c) => {
      const pool = poolState(c);
      return {
        id: c.Id,
        taskId: taskOf(c),
        ...(c.Labels?.[RUNNER_LABEL] ? { runnerId: c.Labels[RUNNER_LABEL] } : {}),
        state: c.State,
        createdAtMs: c.Created * 1000,
        ...(pool ? { pool } : {}),
      };
    });
  }

  async remove(id: string): Promise<void> {
    const container = this.#docker.getContainer(id);
    let poolDir: string | undefined;
    try {
      poolDir = (await container.inspect()).Config.Labels?.[POOL_DIR_LABEL];
      await container.remove({ force: true, v: true });
    } catch (err) {
      if (isGone(err)) return;
      throw toSandboxError(err, `Could not remove sandbox container ${id}`);
    }
    if (poolDir) await removePoolDir(poolDir);
  }

  async removeTaskSandboxes(taskId: string, keepId?: string, keepLabel?: string): Promise<number> {
    // A cold sandbox is named for its label when made; a pool container when claimed.
    const kept = new Set(keepLabel ? [`/${containerName(keepLabel)}`, `/${claimedName(taskId, keepLabel)}`] : []);
    let listed: Dockerode.ContainerInfo[];
    try {
      // Every sandbox, not only those labelled with the task: a claimed pool container names its task.
      listed = await this.#docker.listContainers({ all: true, filters: { label: [`${SANDBOX_LABEL}=1`] } });
    } catch (err) {
      throw toSandboxError(err, 'Could not list the task’s sandbox containers');
    }
    const stale = listed.filter(
      (c) =>
        taskOf(c) === taskId &&
        c.Id !== keepId &&
        !(keepId && c.Id.startsWith(keepId)) &&
        !c.Names.some((n) => kept.has(n)),
    );
    await Promise.all(
      stale.map(async (c) => {
        await this.#docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch(() => undefined);
        const poolDir = c.Labels?.[POOL_DIR_LABEL];
        if (poolDir) await removePoolDir(poolDir);
      }),
    );
    return stale.length;
  }

  async ping(): Promise<void> {
    try {
      await this.#docker.ping();
    } catch (err) {
      throw unreachable(err);
    }
  }

  async imagePresent(): Promise<boolean> {
    try {
      await this.#docker.getImage(this.#image).inspect();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw toSandboxError(err, 'Could not inspect the sandbox image');
    }
  }

  async close(): Promise<void> {
    // Sandboxes outlive the driver on purpose (attach after a restart); there is no connection to release.
    this.#closed = true;
  }

  async #prepareWorkspace(workspaceDir: string): Promise<void> {
    try {
      const dir = join(workspaceDir, 'in');
      const created = await mkdir(dir, { recursive: true });
      // A root runner would otherwise hand the sandbox user an in/ it cannot read.
      if (created !== undefined && process.getuid?.() === 0) await chown(dir, this.#owner.uid, this.#owner.gid);
    } catch (err) {
      throw new HandoffError(ErrorCodes.sandboxFailed, `Could not prepare the workspace ${workspaceDir}`, {
        cause: err,
      });
    }
  }

  #createError(err: unknown): HandoffError {
    if (err instanceof HandoffError) return err;
    const status = statusOf(err);
    const message = dockerMessage(err);
    if (status === 404 && /image/i.test(message)) {
      return new HandoffError(
        ErrorCodes.sandboxUnavailable,
        `The sandbox image ${this.#image} is missing; build it with \`npm run sandbox:build\``,
        { cause: err },
      );
    }
    if (status === 409) {
      return new HandoffError(ErrorCodes.sandboxFailed, `A sandbox with this name already exists: ${message}`, {
        cause: err,
      });
    }
    return toSandboxError(err, 'Could not start the sandbox');
  }
}

/** One hardened container. Exported through the driver only. */
class DockerSandbox implements Sandbox {
  readonly id: string;
  readonly #container: Dockerode.Container;
  readonly #logger: SandboxLogger | undefined;
  #destroying: Promise<void> | undefined;
  /** Set once destruction starts; the container may still exist for a moment. */
  #gone = false;
  #warnedNoOomCounter = false;
  /** The cgroup's oom_kill count when the last command ended: the fallback's "before". */
  #oomBaseline: number | undefined;
  readonly #owner: { uid: number; gid: number };
  readonly #metrics: Metrics | undefined;
  /** A warm-pool container's own host directory: removed with it. */
  readonly #poolDir: string | undefined;
  /** Fingerprint of /workspace/out the last command's wrapper reported (undefined: unknown). */
  #outputsNow: string | undefined;
  /** Absolute path of the container's exec helper; undefined: commands run under EXEC_WRAPPER. */
  readonly #execHelper: string | Promise<string | undefined> | undefined;
  /** The last `find` listing of /workspace/out and the fingerprint reported just before it. */
  #listed: { outputs: string; files: OutputFileInfo[] } | undefined;

  constructor(
    container: Dockerode.Container,
    owner: { uid: number; gid: number },
    logger: SandboxLogger | undefined,
    metrics?: Metrics,
    poolDir?: string,
    execHelper?: string | Promise<string | undefined>,
  ) {
    this.id = container.id;
    this.#execHelper = execHelper;
    this.#container = container;
    this.#owner = owner;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#poolDir = poolDir;
  }

  async suspend(): Promise<void> {
    try {
      await this.#container.pause();
    } catch (err) {
      throw toSandboxError(err, 'Could not suspend the sandbox');
    }
  }

  /** Waits until the egress bridge (socat) listens on the sandbox's loopback. */
  async waitForEgressBridge(): Promise<void> {
    const live: LiveExec = {};
    const timer = setTimeout(() => live.stream?.destroy(), 10_000);
    try {
      const run = await this.#run(['sh', '-c', EGRESS_READY_PROBE], { maxOutputBytes: 4096 }, live);
      if (run.exitCode !== 0) {
        throw new HandoffError(
          ErrorCodes.sandboxFailed,
          `The sandbox's egress bridge (socat on 127.0.0.1:${EGRESS_PORT}) did not start`,
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async listOutputs(): Promise<OutputFileInfo[]> {
    // Nothing under /workspace/out changed (same size, mtime and path of every entry) since the
    // last listing: the same answer, without an exec.
    const known = this.#outputsNow;
    if (known !== undefined && this.#listed?.outputs === known) return this.#listed.files.map((f) => ({ ...f }));
    const live: LiveExec = {};
    // NUL-separated, so no file name (newlines, tabs) can break the listing.
    const run = await this.#run(
      ['find', OUTPUTS, '-xdev', '-type', 'f', '-printf', '%s %T@ %P\\0'],
      { maxOutputBytes: 4 * 1024 * 1024 },
      live,
    );
    if (run.exitCode !== 0)
      throw new HandoffError(ErrorCodes.sandboxFailed, `Could not list ${OUTPUTS}: ${run.stderr.trim()}`);
    if (run.truncated) throw new HandoffError(ErrorCodes.outputLimit, `${OUTPUTS} holds too many files to keep`);
    const files: OutputFileInfo[] = [];
    for (const entry of run.stdout.split('\0')) {
      const m = /^(\d+) (\d+(?:\.\d+)?) (.+)$/s.exec(entry);
      if (!m) continue;
      files.push({ size: Number(m[1]), mtime: m[2]!, path: m[3]! });
      if (files.length > MAX_LISTED_OUTPUTS)
        throw new HandoffError(ErrorCodes.outputLimit, `${OUTPUTS} holds more than ${MAX_LISTED_OUTPUTS} files`);
    }
    // Taken after the fingerprint: a later change shows as a new fingerprint, so this errs toward listing again.
    this.#listed = known === undefined ? undefined : { outputs: known, files: files.map((f) => ({ ...f })) };
    return files;
  }

  async writeOutputs(files: readonly OutputFileWrite[]): Promise<void> {
    if (files.length === 0) return;
    this.#outputsNow = undefined;
    this.#listed = undefined;
    const tar = pack();
    const { uid, gid } = this.#owner;
    const upload = this.#container.putArchive(tar as unknown as NodeJS.ReadableStream, { path: OUTPUTS });
    const writing = (async () => {
      const dirs = new Set<string>();
      for (const file of files) {
        const parts = posix.normalize(file.path).split('/');
        if (parts.some((p) => p === '..' || p === '') || posix.isAbsolute(file.path))
          throw new HandoffError(ErrorCodes.invalidInput, `refusing to restore ${JSON.stringify(file.path)}`);
        // Parent directories first, owned by the sandbox user so the run can write in them.
        for (let i = 1; i < parts.length; i++) {
          const dir = parts.slice(0, i).join('/');
          if (dirs.has(dir)) continue;
          dirs.add(dir);
          await new Promise<void>((resolve, reject) =>
            tar.entry({ name: dir, type: 'directory', mode: 0o755, uid, gid }, (err) =>
              err ? reject(err) : resolve(),
            ),
          );
        }
        const source = await file.open();
        await new Promise<void>((resolve, reject) => {
          const entry = tar.entry(
            { name: file.path, size: file.size, mode: 0o644, uid, gid, ...(file.mtime ? { mtime: file.mtime } : {}) },
            (err) => (err ? reject(err) : resolve()),
          );
          source.on('error', reject);
          source.pipe(entry);
        });
      }
      tar.finalize();
    })();
    writing.catch((err: unknown) => tar.destroy(err as Error));
    try {
      await Promise.all([upload, writing]);
    } catch (err) {
      throw toSandboxError(err, `Could not restore ${OUTPUTS}`);
    }
  }

  async exec(argv: string[], options: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    try {
      const result = await traceSandboxExec(argv, () => this.#exec(argv, options));
      const outcome = result.timedOut ? 'timeout' : result.exitCode === 0 ? 'ok' : 'nonzero';
      this.#metrics?.sandboxExec.observe({ outcome }, Metrics.since(started));
      return result;
    } catch (err) {
      this.#metrics?.sandboxExec.observe({ outcome: 'error' }, Metrics.since(started));
      throw err;
    }
  }

  async #exec(argv: string[], options: ExecOptions): Promise<ExecResult> {
    if (argv.length === 0) throw new HandoffError(ErrorCodes.invalidInput, 'Cannot run an empty command');
    const { signal, timeoutMs } = options;
    const helper = await this.#execHelper;
    throwIfAborted(signal);
    const seconds = Math.max(0.001, timeoutMs / 1000);
    const limit = `${seconds.toFixed(3)}s`;
    const wrapped = helper ? [helper, limit, ...argv] : ['sh', '-c', EXEC_WRAPPER, 'sh', limit, ...argv];
    const live: LiveExec = {};

    return await new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      // Set once the host decides the outcome (abort, safety net): what the exec stream does after that is moot.
      let stopping = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(safetyNet);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const killThenReject = (error: HandoffError) => {
        if (settled || stopping) return;
        stopping = true;
        live.stream?.destroy();
        this.#kill()
          .catch((err: unknown) => this.#logger?.warn({ err, containerId: this.id }, 'Could not remove the sandbox'))
          .finally(() => settle(() => reject(error)));
      };
      const onAbort = () => killThenReject(cancellation(signal));
      const safetyNet = setTimeout(
        () =>
          killThenReject(
            new HandoffError(
              ErrorCodes.sandboxFailed,
              `The command did not end ${HOST_GRACE_MS / 1000}s after its ${timeoutMs} ms limit; the sandbox was destroyed`,
            ),
          ),
        timeoutMs + HOST_GRACE_MS,
      );
      signal?.addEventListener('abort', onAbort, { once: true });

      this.#execWithOomCheck(wrapped, options, live).then(
        (result) => {
          if (!stopping) settle(() => resolve(result));
        },
        (err) => {
          if (!stopping) settle(() => reject(toSandboxError(err, 'The command could not be run in the sandbox')));
        },
      );
    });
  }

  async readFileStream(path: string): Promise<{ stream: Readable; size: number }> {
    const absolute = posix.resolve(WORKSPACE, path);
    let archive: NodeJS.ReadableStream;
    try {
      // The engine resolves the path inside the container's own filesystem view, so a symlink
      // cannot reach the host; a symlink at the path itself arrives as a symlink entry (refused below).
      archive = await this.#container.getArchive({ path: absolute });
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new HandoffError(ErrorCodes.notFound, `No such file in the sandbox: ${absolute}`, { cause: err });
      }
      throw toSandboxError(err, `Could not read ${absolute} from the sandbox`);
    }

    return await new Promise((resolve, reject) => {
      const untar = extract();
      const out = new PassThrough();
      let first = true;
      const fail = (err: unknown) => {
        const error = toSandboxError(err, `Could not read ${absolute} from the sandbox`);
        if (first) reject(error);
        else out.destroy(error);
        untar.destroy();
        destroyStream(archive);
      };
      untar.on('entry', (header, entry, next) => {
        if (!first) {
          // The archive of one path holds one regular file; skip anything else without reading it.
          entry.resume();
          entry.on('end', () => next());
          return;
        }
        first = false;
        if (header.type !== 'file') {
          const what =
            header.type === 'symlink' ? 'a symbolic link' : header.type === 'directory' ? 'a directory' : header.type;
          reject(
            new HandoffError(
              ErrorCodes.invalidInput,
              `${absolute} is ${what}, not a regular file; refusing to read it`,
            ),
          );
          entry.resume();
          untar.destroy();
          destroyStream(archive);
          return;
        }
        resolve({ stream: out, size: header.size ?? 0 });
        // Forwarded by hand: tar-stream's entries are streamx streams, whose pipe() differs from Node's.
        entry.on('data', (chunk: unknown) => {
          if (!out.write(chunk)) {
            entry.pause();
            out.once('drain', () => entry.resume());
          }
        });
        entry.on('error', fail);
        entry.on('end', () => next());
      });
      untar.on('finish', () => {
        if (first) {
          first = false;
          reject(new HandoffError(ErrorCodes.notFound, `No such file in the sandbox: ${absolute}`));
        } else out.end();
      });
      untar.on('error', fail);
      archive.on('error', fail);
      // Stop pulling from the engine when the consumer gives up early.
      out.on('close', () => {
        if (!out.readableEnded) {
          untar.destroy();
          destroyStream(archive);
        }
      });
      archive.pipe(untar);
    });
  }

  destroy(): Promise<void> {
    return this.#teardown(false);
  }

  /** Abort and safety-net path: stop everything in the sandbox now, then remove it. */
  #kill(): Promise<void> {
    return this.#teardown(true);
  }

  #teardown(killFirst: boolean): Promise<void> {
    this.#gone = true;
    this.#destroying ??= (async () => {
      if (killFirst) {
        try {
          await this.#container.kill();
        } catch (err) {
          if (!isGone(err)) this.#logger?.warn({ err, containerId: this.id }, 'Could not kill the sandbox container');
        }
      }
      try {
        await this.#container.remove({ force: true, v: true });
      } catch (err) {
        if (!isGone(err)) {
          // Let a later destroy() try again (e.g. once the engine is back).
          this.#destroying = undefined;
          throw toSandboxError(err, `Could not remove sandbox container ${this.id}`);
        }
      }
      if (this.#poolDir) await removePoolDir(this.#poolDir);
    })();
    return this.#destroying;
  }

  async #execWithOomCheck(argv: string[], options: ExecOptions, live: LiveExec): Promise<ExecResult> {
    // The wrapper reports the counter before and after the command in the same exec (OomTrailer).
    const nonce = randomBytes(16).toString('hex');
    const trailer = new OomTrailer(nonce);
    // Unknown until this command's wrapper reports it (a failed exec may have changed outputs).
    this.#outputsNow = undefined;
    const stdin = Buffer.concat([Buffer.from(`${nonce}\n`), Buffer.from(options.stdin ?? '')]);
    const started = performance.now();
    const run = await this.#run(argv, { ...options, stdin }, live, trailer);
    const durationMs = Math.round(performance.now() - started);
    // What the wrapper saw of /workspace/out after the command; none (it was killed): list again.
    this.#outputsNow = trailer.reading?.outputs;
    let { before, after } = trailer.reading ?? { before: this.#oomBaseline, after: undefined };
    if (!trailer.reading) {
      // The wrapper itself was killed before it could report (by the kernel or by the command):
      // read the counter once more and compare with what the last report left.
      after = await this.#oomKills();
    } else if (after === undefined) this.#warnNoOomCounter();
    if (after !== undefined) this.#oomBaseline = after;
    const timedOut = (run.exitCode === 124 || run.exitCode === 137) && durationMs >= options.timeoutMs;
    return {
      ...run,
      timedOut,
      oomKilled: before !== undefined && after !== undefined && after > before,
      durationMs,
    };
  }

  #warnNoOomCounter(): void {
    if (this.#warnedNoOomCounter) return;
    this.#warnedNoOomCounter = true;
    this.#logger?.warn({ containerId: this.id }, 'No cgroup oom_kill counter in the sandbox; OOM kills go unreported');
  }

  /** The cgroup's `oom_kill` counter, or undefined when the kernel does not expose it. */
  async #oomKills(): Promise<number | undefined> {
    // After an abort the container is going away; there is nothing left to measure.
    if (this.#gone) return undefined;
    const live: LiveExec = {};
    const timer = setTimeout(() => live.stream?.destroy(), PROBE_TIMEOUT_MS);
    try {
      // `cat` prints whichever file exists; its exit code is ignored on purpose.
      const { stdout } = await this.#run(['cat', ...OOM_COUNTER_FILES], { maxOutputBytes: 4096 }, live);
      const match = /^oom_kill (\d+)$/m.exec(stdout);
      if (match) return Number(match[1]);
      this.#warnNoOomCounter();
      return undefined;
    } catch (err) {
      this.#logger?.warn({ err, containerId: this.id }, 'Could not read the sandbox OOM counter');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One `docker exec`: streams output, returns once the process has ended. */
  async #run(
    argv: string[],
    options: Pick<ExecOptions, 'stdin' | 'cwd' | 'onOutput' | 'maxOutputBytes'>,
    live: LiveExec,
    stderrTrailer?: OomTrailer,
  ): Promise<{ exitCode: number; stdout: string; stderr: string; truncated: boolean }> {
    const hasStdin = options.stdin !== undefined;
    const exec = await this.#container.exec({
      Cmd: argv,
      AttachStdin: hasStdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      WorkingDir: options.cwd ?? WORKSPACE,
    });
    const stream = (await exec.start(hasStdin ? { hijack: true, stdin: true } : {})) as Duplex;
    live.stream = stream;

    const maxBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const stdout = new HeadTailBuffer(maxBytes);
    const stderr = new HeadTailBuffer(maxBytes);
    const ended = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.on('error', reject);
    });
    const outCollector = collector(stdout, options.onOutput, this.#logger);
    const errCollector = collector(stderr, options.onOutput, this.#logger, stderrTrailer);
    this.#container.modem.demuxStream(stream, outCollector.writable, errCollector.writable);
    if (hasStdin) {
      // Ending our half of the hijacked connection is what delivers EOF to the command's stdin.
      stream.end(options.stdin);
    }
    await ended;
    if (stream.destroyed && !stream.readableEnded) {
      // Destroyed by us (abort, safety net): the caller has already decided the outcome.
      throw new HandoffError(ErrorCodes.sandboxFailed, 'The exec stream was closed before the command ended');
    }
    outCollector.flush();
    errCollector.flush();

    return {
      // The wrapper's reading carries the status it exits with; the engine is asked only without one.
      exitCode: stderrTrailer?.reading?.exitCode ?? (await exitCodeOf(exec)),
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: stdout.truncated || stderr.truncated,
    };
  }
}

interface LiveExec {
  stream?: Duplex;
}

/**
 * Keeps the first and last `maxBytes / 2` bytes of a stream: the head shows what the command
 * started doing, the tail how it ended, and the middle of a flood is dropped.
 */
class HeadTailBuffer {
  readonly #headLimit: number;
  readonly #tailLimit: number;
  #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  #total = 0;

  constructor(maxBytes: number) {
    this.#headLimit = Math.ceil(Math.max(0, maxBytes) / 2);
    this.#tailLimit = Math.floor(Math.max(0, maxBytes) / 2);
  }

  get truncated(): boolean {
    return this.#total > this.#headBytes + this.#tailBytes;
  }

  push(chunk: Buffer): void {
    this.#total += chunk.length;
    const room = this.#headLimit - this.#headBytes;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.#head.push(part);
      this.#headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (chunk.length === 0 || this.#tailLimit === 0) return;
    this.#tail.push(chunk);
    this.#tailBytes += chunk.length;
    while (this.#tailBytes > this.#tailLimit) {
      const first = this.#tail[0]!;
      const excess = this.#tailBytes - this.#tailLimit;
      if (first.length <= excess) {
        this.#tail.shift();
        this.#tailBytes -= first.length;
      } else {
        this.#tail[0] = first.subarray(excess);
        this.#tailBytes -= excess;
      }
    }
  }

  text(): string {
    const head = Buffer.concat(this.#head).toString('utf8');
    const tail = Buffer.concat(this.#tail).toString('utf8');
    if (!this.truncated) return head + tail;
    const omitted = this.#total - this.#headBytes - this.#tailBytes;
    return `${head}\n…[${omitted} bytes omitted]…\n${tail}`;
  }
}

interface Collector {
  writable: Writable;
  /** Emits a multi-byte character left incomplete at the end of the stream. */
  flush(): void;
}

function collector(
  buffer: HeadTailBuffer,
  onOutput: ExecOptions['onOutput'],
  logger?: SandboxLogger,
  trailer?: OomTrailer,
): Collector {
  // One decoder per stream so a multi-byte character split across frames reaches onOutput whole.
  const decoder = new StringDecoder('utf8');
  const emit = (text: string) => {
    if (!onOutput || text === '') return;
    try {
      onOutput(text);
    } catch (err) {
      logger?.warn({ err }, 'onOutput callback threw; output is still collected');
    }
  };
  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const plain = trailer ? trailer.push(chunk) : chunk;
      buffer.push(plain);
      emit(decoder.write(plain));
      callback();
    },
  });
  return {
    writable,
    flush: () => {
      const rest = trailer?.end();
      if (rest && rest.length > 0) {
        buffer.push(rest);
        emit(decoder.write(rest));
      }
      emit(decoder.end());
    },
  };
}

/** The engine can report the stream's end a moment before the exec's exit code is recorded. */
async function exitCodeOf(exec: Dockerode.Exec): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new HandoffError(ErrorCodes.sandboxFailed, 'The command ended but the engine reported no exit code');
}

/**
 * Lists every hardening setting of a sandbox container that is not as DESIGN §7 requires.
 * Empty means the container is hardened. Pure: used by `handoff doctor` and by tests.
 */
export function containerHardeningProblems(inspect: Dockerode.ContainerInspectInfo): string[] {
  const problems: string[] = [];
  const host = inspect.HostConfig ?? {};
  const config = inspect.Config ?? ({} as Partial<Dockerode.ContainerInspectInfo['Config']>);

  if (!config.User || isRootUser(config.User)) problems.push(`runs as root (User "${config.User ?? ''}")`);
  if (host.Privileged) problems.push('is privileged');
  if (host.ReadonlyRootfs !== true) problems.push('root filesystem is writable (ReadonlyRootfs is not set)');

  const capDrop: string[] = host.CapDrop ?? [];
  if (!capDrop.some((cap) => cap.toUpperCase() === 'ALL'))
    problems.push('capabilities are not all dropped (CapDrop ALL)');
  const capAdd: string[] = host.CapAdd ?? [];
  if (capAdd.length > 0) problems.push(`capabilities are added: ${capAdd.join(', ')}`);

  const securityOpt: string[] = host.SecurityOpt ?? [];
  if (!securityOpt.some((opt) => /^no-new-privileges(?:[:=]true)?$/.test(opt))) {
    problems.push('no-new-privileges is not set');
  }
  if (securityOpt.some((opt) => /^seccomp[:=]unconfined$/.test(opt))) problems.push('seccomp is unconfined');
  if (securityOpt.some((opt) => /^apparmor[:=]unconfined$/.test(opt))) problems.push('AppArmor is unconfined');

  if (!(typeof host.PidsLimit === 'number' && host.PidsLimit > 0)) problems.push('no pids limit');
  if (!(typeof host.Memory === 'number' && host.Memory > 0)) problems.push('no memory limit');
  else if (host.MemorySwap !== host.Memory) problems.push('swap is allowed (MemorySwap differs from Memory)');
  if (!((host.NanoCpus ?? 0) > 0 || ((host.CpuQuota ?? 0) > 0 && (host.CpuPeriod ?? 0) > 0)))
    problems.push('no CPU limit');

  if (host.NetworkMode !== 'none') problems.push(`network is "${host.NetworkMode ?? 'default'}", not none`);
  for (const [name, value] of [
    ['IPC', host.IpcMode],
    ['PID', host.PidMode],
    ['UTS', host.UTSMode],
    ['user', host.UsernsMode],
  ] as const) {
    if (value === 'host') problems.push(`shares the host's ${name} namespace`);
  }
  if (host.Init !== true) problems.push('no init process to reap zombies (Init)');
  const devices: unknown[] = host.Devices ?? [];
  if (devices.length > 0) problems.push('host devices are mapped in');
  if (!host.Tmpfs || !('/tmp' in host.Tmpfs)) problems.push('/tmp is not a tmpfs');

  const mounts = inspect.Mounts ?? [];
  for (const mount of mounts) {
    if (/docker\.sock|containerd\.sock|podman\.sock/.test(`${mount.Source} ${mount.Destination}`)) {
      problems.push(`container engine socket is mounted (${mount.Source})`);
    } else if (mount.Type === 'bind' && skillTarget.test(mount.Destination)) {
      // A skill's folder: allowed under /skills, read-only only.
      if (mount.RW) problems.push(`${mount.Destination} (a skill folder) is writable`);
    } else if (mount.Type === 'bind' && mount.Destination !== `${WORKSPACE}/in` && mount.Destination !== EGRESS_DIR) {
      problems.push(`unexpected host directory mounted at ${mount.Destination}`);
    } else if (mount.Type === 'volume' && mount.Destination !== OUTPUTS) {
      problems.push(`unexpected volume mounted at ${mount.Destination}`);
    }
  }
  // The one optional extra: the directory of the run's egress proxy socket, read-only.
  const egress = mounts.find((mount) => mount.Destination === EGRESS_DIR);
  if (egress && egress.Type !== 'bind')
    problems.push(`${EGRESS_DIR} is not a bind mount of the proxy socket directory`);
  else if (egress?.RW) problems.push(`${EGRESS_DIR} (the egress proxy socket directory) is writable`);
  const input = mounts.find((mount) => mount.Destination === `${WORKSPACE}/in`);
  if (!input) problems.push(`${WORKSPACE}/in is not mounted`);
  else if (input.RW) problems.push(`${WORKSPACE}/in is writable`);
  const output = mounts.find((mount) => mount.Destination === OUTPUTS);
  const readOnlyOutput = /(^|,)ro(,|$)/.test(host.Tmpfs?.[OUTPUTS] ?? '');
  if (!output && !readOnlyOutput) problems.push(`${OUTPUTS} is not mounted`);
  else if (output && output.Type !== 'volume')
    problems.push(`${OUTPUTS} is a host directory, not a size-capped volume`);

  for (const entry of config.Env ?? []) {
    const name = entry.split('=', 1)[0] ?? '';
    if (/KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|DOCKER_HOST/i.test(name)) {
      problems.push(`environment variable ${name} looks like a secret`);
    }
  }
  return problems;
}

/**
 * The container's `Mounts`: the egress socket directory (read-only bind) when there is egress,
 * and the /workspace/out volume when the workspace is writable. A bind through `Mounts` (unlike
 * `Binds`) fails when its source is missing instead of creating it as root.
 */
function mountsFor(
  egressDir: string | undefined,
  output: Dockerode.MountSettings | undefined,
  readOnly: readonly Dockerode.MountSettings[] = [],
): { Mounts?: Dockerode.MountSettings[] } {
  const mounts: Dockerode.MountSettings[] = [];
  if (egressDir !== undefined) mounts.push({ Type: 'bind', Source: egressDir, Target: EGRESS_DIR, ReadOnly: true });
  if (output) mounts.push(output);
  mounts.push(...readOnly);
  return mounts.length > 0 ? { Mounts: mounts } : {};
}

/** Where read-only folders (a run's skills) may be mounted: one level under it, nowhere else. */
const SKILLS_DIR = '/skills';
const skillTarget = /^\/skills\/[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

/**
 * Read-only bind mounts of host folders under /skills. A target elsewhere, a relative or
 * missing source, or a source that is not a folder is refused before anything is created.
 */
async function readOnlyMountsFor(
  mounts: ReadonlyArray<{ hostPath: string; containerPath: string }>,
): Promise<Dockerode.MountSettings[]> {
  const seen = new Set<string>();
  const out: Dockerode.MountSettings[] = [];
  for (const m of mounts) {
    if (!skillTarget.test(m.containerPath) || seen.has(m.containerPath)) {
      throw new HandoffError(
        ErrorCodes.sandboxFailed,
        `A read-only mount may only go to one folder each under ${SKILLS_DIR}, not ${JSON.stringify(m.containerPath)}`,
      );
    }
    seen.add(m.containerPath);
    const source = resolvePath(m.hostPath);
    let isDirectory = false;
    try {
      isDirectory = (await stat(source)).isDirectory();
    } catch (err) {
      throw new HandoffError(
        ErrorCodes.sandboxFailed,
        `The folder ${source} to mount at ${m.containerPath} is missing`,
        { cause: err },
      );
    }
    if (!isDirectory) throw new HandoffError(ErrorCodes.sandboxFailed, `${source} is not a folder`);
    out.push({ Type: 'bind', Source: source, Target: m.containerPath, ReadOnly: true });
  }
  return out;
}

async function checkEgressDir(dir: string): Promise<void> {
  let isDirectory = false;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (err) {
    throw new HandoffError(ErrorCodes.sandboxFailed, `The egress socket directory ${dir} is missing`, { cause: err });
  }
  if (!isDirectory) {
    throw new HandoffError(ErrorCodes.sandboxFailed, `The egress socket directory ${dir} is not a directory`);
  }
}

/** `idle` or `claimed` for a warm-pool container, else undefined. */
function poolState(c: Dockerode.ContainerInfo): 'idle' | 'claimed' | undefined {
  if (c.Labels?.[POOL_LABEL] !== '1') return undefined;
  return c.Names.some((n) => CLAIMED_NAME.test(n)) ? 'claimed' : 'idle';
}

/** The task a sandbox works for: its label, or for a claimed pool container its name. */
function taskOf(c: Dockerode.ContainerInfo): string {
  if (c.Labels?.[POOL_LABEL] !== '1') return c.Labels?.[TASK_LABEL] ?? '';
  for (const n of c.Names) {
    const m = CLAIMED_NAME.exec(n);
    if (m) return m[1]!;
  }
  return '';
}

function claimedName(taskId: string, label: string): string {
  return `handoff-claimed.${taskId}.${label.replace(/[^a-zA-Z0-9_.-]+/g, '-').slice(0, 100)}`;
}

/**
 * Removes a pool container's host directory. The path comes from a label, so only a directory
 * the pool could have made (absolute, named pool-…) is touched.
 */
async function removePoolDir(dir: string): Promise<void> {
  if (!isAbsolute(dir) || !/^pool-[A-Za-z0-9_.-]+$/.test(basename(dir))) return;
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

function containerName(label: string): string {
  // Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; keep them short enough to read in `docker ps`.
  const safe = label.replace(/[^a-zA-Z0-9_.-]+/g, '-').slice(0, 100);
  return `handoff-${safe}`;
}

function isRootUser(user: string): boolean {
  const name = user.split(':', 1)[0]?.trim() ?? '';
  return name === '' || name === '0' || name === 'root';
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancellation(signal);
}

/** The exec helper a container's labels name, when it is a plain absolute path. */
function execHelperOf(labels: Record<string, string>): string | undefined {
  const path = labels[EXEC_HELPER_LABEL];
  return path && /^\/[A-Za-z0-9._/-]+$/.test(path) && !path.split('/').includes('..') ? path : undefined;
}

/** The abort reason when it is already a HandoffError (Cancel button, run timeout), else a plain cancellation. */
function cancellation(signal: AbortSignal | undefined): HandoffError {
  const reason: unknown = signal?.reason;
  if (reason instanceof HandoffError) return reason;
  return new HandoffError(ErrorCodes.cancelled, 'The command was cancelled and its sandbox destroyed', {
    cause: reason,
  });
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function isGone(err: unknown): boolean {
  const status = statusOf(err);
  return status === 404 || status === 409;
}

function dockerMessage(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (typeof json?.message === 'string') return json.message.trim();
  return err instanceof Error ? err.message : String(err);
}

function unreachable(err: unknown): HandoffError {
  return new HandoffError(ErrorCodes.sandboxUnavailable, `Docker is not reachable: ${dockerMessage(err)}`, {
    cause: err,
    retryable: true,
  });
}

function toSandboxError(err: unknown, what: string): HandoffError {
  if (err instanceof HandoffError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const status = statusOf(err);
  if ((typeof code === 'string' && UNREACHABLE_CODES.has(code)) || status === 502 || status === 503) {
    return unreachable(err);
  }
  if (status === 404 && /container/i.test(dockerMessage(err))) {
    return new HandoffError(ErrorCodes.sandboxFailed, `${what}: the sandbox container is gone`, { cause: err });
  }
  if (status === 409) {
    return new HandoffError(ErrorCodes.sandboxFailed, `${what}: the sandbox container is not running`, { cause: err });
  }
  return new HandoffError(ErrorCodes.sandboxFailed, `${what}: ${dockerMessage(err)}`, { cause: err });
}

function destroyStream(stream: NodeJS.ReadableStream): void {
  (stream as Partial<Readable>).destroy?.();
}
