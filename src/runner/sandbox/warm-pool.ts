import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, rm, symlink } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { asHandoffError } from '../../core/index.ts';
import type { Metrics } from '../../observability/index.ts';
import type { SandboxLogger } from './docker.ts';
import type {
  PoolingSandboxDriver,
  Sandbox,
  SandboxDriver,
  SandboxInfo,
  SandboxLimits,
  SandboxSpec,
} from './driver.ts';

export interface WarmPoolOptions {
  /** Idle containers kept ready. 0 keeps none (then every sandbox is created cold). */
  size: number;
  /** The limits of the runs it serves: a spec with other limits gets a cold sandbox. */
  limits: SandboxLimits;
  /** The runner that owns the pool: set on every pool container, so the janitor knows whose it is. */
  runnerId: string;
  /**
   * Skill folders every pool container mounts under /skills: the set a run in a channel that
   * does not narrow its skills gets. A run with any other set gets a cold sandbox.
   */
  readOnlyMounts?: ReadonlyArray<{ hostPath: string; containerPath: string }>;
  /** Where each pool container's own host directory (its in/) is made. */
  dir: string;
  logger?: SandboxLogger & { info?(obj: object, msg: string): void };
  metrics?: Metrics;
  /** Wait after a failed creation before trying again. Default 5 s. */
  retryMs?: number;
  /**
   * Wait after a claim before making its replacement, so that creating a container does not
   * compete for CPU with the run's first commands. Default 1 s.
   */
  refillDelayMs?: number;
}

/** Why a spec cannot be served from the pool (it gets a cold sandbox), or undefined when it can. */
export function poolMismatch(
  spec: SandboxSpec,
  options: Pick<WarmPoolOptions, 'limits' | 'runnerId' | 'readOnlyMounts'>,
): string | undefined {
  if (spec.readOnlyWorkspace) return 'read-only workspace (planning)';
  if (spec.egressSocketDir !== undefined) return 'web egress';
  if (mountKey(spec.readOnlyMounts) !== mountKey(options.readOnlyMounts)) return 'other skill folders';
  if (spec.runnerId !== options.runnerId) return 'another owner';
  if (!/^[A-Za-z0-9_-]+$/.test(spec.taskId)) return 'task id';
  const a = spec.limits;
  const b = options.limits;
  if (
    a.memoryMb !== b.memoryMb ||
    a.cpus !== b.cpus ||
    a.pids !== b.pids ||
    a.tmpfsMb !== b.tmpfsMb ||
    a.outputMb !== b.outputMb
  )
    return 'other limits';
  return undefined;
}

/**
 * A sandbox driver that keeps `size` idle, started, hardened containers ready and hands one to
 * a run instead of creating one (docs/operations.md, "Warm pool"). Each is made by the inner
 * driver's `createIdle`, the same code path as a cold sandbox, with a host directory of its own
 * for `in/`. A claimed container is the run's for good: it is never given back or to another
 * task, and goes with the run like any sandbox. The pool refills in the background. A spec it
 * cannot serve (see `poolMismatch`) gets a cold sandbox from the inner driver.
 */
export class WarmPool implements SandboxDriver {
  readonly name: string;
  readonly #inner: PoolingSandboxDriver;
  readonly #options: WarmPoolOptions;
  readonly #dir: string;
  readonly #ready: Sandbox[] = [];
  #creating: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  readonly #stop = new AbortController();
  #started = false;
  #closing: Promise<void> | undefined;

  constructor(inner: PoolingSandboxDriver, options: WarmPoolOptions) {
    this.name = inner.name;
    this.#inner = inner;
    this.#options = options;
    this.#dir = resolvePath(options.dir);
  }

  /** Idle containers ready now. */
  get idle(): number {
    return this.#ready.length;
  }

  /**
   * Removes idle pool containers an earlier process with this runner id left, then fills the
   * pool in the background. Idempotent.
   */
  async start(): Promise<void> {
    if (this.#started || this.#closing) return;
    this.#started = true;
    try {
      const leftovers = (await this.#inner.list()).filter(
        (box) => box.pool === 'idle' && box.runnerId === this.#options.runnerId,
      );
      await Promise.all(leftovers.map((box) => this.#inner.remove(box.id)));
    } catch (err) {
      this.#options.logger?.warn({ err: asHandoffError(err).message }, 'warm pool: could not remove leftovers');
    }
    this.#gauge();
    this.#fill();
  }

  async create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox> {
    const mismatch = this.#options.size > 0 ? poolMismatch(spec, this.#options) : 'pool off';
    if (mismatch === undefined) {
      // Taken synchronously: two runs can never be handed the same container.
      const box = this.#ready.shift();
      this.#gauge();
      this.#fillLater();
      if (box) {
        try {
          await this.#claim(box, spec);
          this.#options.metrics?.sandboxPoolClaims.inc({ outcome: 'hit' });
          return box;
        } catch (err) {
          await box.destroy().catch(() => undefined);
          // Inputs that could not be laid out fail the run's sandbox either way.
          const inputsFailed = await spec.workspaceReady?.then(
            () => false,
            () => true,
          );
          if (inputsFailed) throw err;
          this.#options.logger?.warn(
            { err: asHandoffError(err).message, containerId: box.id.slice(0, 12) },
            'warm pool: could not claim a container; creating one',
          );
        }
      }
    }
    this.#options.metrics?.sandboxPoolClaims.inc({ outcome: mismatch === undefined ? 'empty' : 'unservable' });
    return await this.#inner.create(spec, signal);
  }

  /**
   * Makes the container the spec's: its inputs are linked into the container's own `in/`, and
   * the run's `<workspaceDir>/in` becomes a link to that, so what the runner later writes there
   * (a changed input) is what the container sees, as with a cold sandbox's bind mount. Until the
   * last step the run's own `in/` is untouched, so a failed claim falls back to a cold sandbox
   * with every input in place.
   */
  async #claim(box: Sandbox, spec: SandboxSpec): Promise<void> {
    const target = join(this.#hostDir(box), 'in');
    const source = join(resolvePath(spec.workspaceDir), 'in');
    const aside = `${source}.claimed`;
    // The rename (an Engine API call) goes on while the run's inputs are laid out and linked,
    // and while whatever an earlier attempt set aside goes.
    const linked = (async () => {
      if (spec.workspaceReady) await spec.workspaceReady;
      else await mkdir(source, { recursive: true });
      await linkTree(source, target);
    })();
    const [renamed, links, cleared] = await Promise.allSettled([
      this.#inner.claimIdle(box.id, spec.taskId, spec.label),
      linked,
      rm(aside, { recursive: true, force: true }),
    ]);
    for (const step of [renamed, links, cleared]) if (step.status === 'rejected') throw step.reason;
    await rename(source, aside);
    try {
      await symlink(target, source);
    } catch (err) {
      await rename(aside, source);
      throw err;
    }
    // The laid-out copy is not needed any more; its removal need not hold the run up (the
    // workspace goes with the run in any case).
    void rm(aside, { recursive: true, force: true }).catch(() => undefined);
  }

  #hostDirs = new Map<string, string>();

  #hostDir(box: Sandbox): string {
    const dir = this.#hostDirs.get(box.id);
    if (!dir) throw new Error('not a pool container');
    this.#hostDirs.delete(box.id);
    return dir;
  }

  #fillLater(): void {
    if (this.#retry || this.#closing) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#fill();
    }, this.#options.refillDelayMs ?? 1_000);
    this.#retry.unref();
  }

  /** Creates containers one at a time until the pool is full; a failure waits `retryMs`. */
  #fill(): void {
    if (!this.#started || this.#closing || this.#creating || this.#retry) return;
    if (this.#ready.length >= this.#options.size) return;
    this.#creating = (async () => {
      const name = `pool-${randomBytes(6).toString('hex')}`;
      const hostDir = join(this.#dir, name);
      try {
        await mkdir(this.#dir, { recursive: true });
        const box = await this.#inner.createIdle(
          {
            label: `pool-${safe(this.#options.runnerId)}-${name.slice(5)}`,
            hostDir,
            limits: this.#options.limits,
            runnerId: this.#options.runnerId,
            ...(this.#options.readOnlyMounts ? { readOnlyMounts: this.#options.readOnlyMounts } : {}),
          },
          this.#stop.signal,
        );
        if (this.#closing) {
          await box.destroy().catch(() => undefined);
          return;
        }
        this.#hostDirs.set(box.id, hostDir);
        this.#ready.push(box);
        this.#gauge();
      } catch (err) {
        // Made before the container, or left by a creation that was stopped half-way.
        await rm(hostDir, { recursive: true, force: true }).catch(() => undefined);
        if (this.#closing) return;
        this.#options.logger?.warn({ err: asHandoffError(err).message }, 'warm pool: could not create a container');
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.#fill();
        }, this.#options.retryMs ?? 5_000);
        this.#retry.unref();
      }
    })().finally(() => {
      this.#creating = undefined;
      this.#fill();
    });
  }

  #gauge(): void {
    this.#options.metrics?.sandboxPoolIdle.set(this.#ready.length);
  }

  attach(id: string): Promise<Sandbox | undefined> {
    return this.#inner.attach(id);
  }

  list(): Promise<SandboxInfo[]> {
    return this.#inner.list();
  }

  remove(id: string): Promise<void> {
    return this.#inner.remove(id);
  }

  removeTaskSandboxes(taskId: string, keepId?: string, keepLabel?: string): Promise<number> {
    return this.#inner.removeTaskSandboxes(taskId, keepId, keepLabel);
  }

  ping(): Promise<void> {
    return this.#inner.ping();
  }

  imagePresent(): Promise<boolean> {
    return this.#inner.imagePresent();
  }

  /** Idempotent. Stops refilling, removes every idle container, then closes the inner driver. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#retry) clearTimeout(this.#retry);
      this.#stop.abort();
      await this.#creating?.catch(() => undefined);
      const idle = this.#ready.splice(0);
      this.#gauge();
      await Promise.allSettled(idle.map((box) => box.destroy()));
      await this.#inner.close();
    })();
    return this.#closing;
  }
}

/** The set of read-only mounts as one comparable string. */
function mountKey(mounts: ReadonlyArray<{ hostPath: string; containerPath: string }> | undefined): string {
  return (mounts ?? [])
    .map((m) => `${m.containerPath}=${resolvePath(m.hostPath)}`)
    .sort()
    .join('\n');
}

/** Hard-links every file under `from` into `to` (copies across file systems), making folders as it goes. */
async function linkTree(from: string, to: string): Promise<void> {
  const entries = await readdir(from, { withFileTypes: true });
  await Promise.all(
    entries.map(async (entry) => {
      const a = join(from, entry.name);
      const b = join(to, entry.name);
      if (entry.isDirectory()) {
        await mkdir(b, { recursive: true });
        await linkTree(a, b);
      } else if (entry.isFile()) {
        try {
          await link(a, b);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
          await copyFile(a, b);
        }
      }
    }),
  );
}

function safe(text: string): string {
  return text.replace(/[^a-zA-Z0-9_.-]+/g, '-').slice(0, 40);
}
