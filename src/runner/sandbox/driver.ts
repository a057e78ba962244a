import type { Readable } from 'node:stream';

/** Resource limits of one sandbox container. */
export interface SandboxLimits {
  memoryMb: number;
  /** CPU cores (fractions allowed). */
  cpus: number;
  pids: number;
  tmpfsMb: number;
  /**
   * Size of /workspace/out, a memory-backed volume of its own: a run cannot write more
   * than this (writes fail with "No space left on device"). Counts toward `memoryMb`.
   */
  outputMb: number;
}

export interface SandboxSpec {
  taskId: string;
  /** Names the container; one sandbox per run (or per planning attempt). */
  label: string;
  /** Host directory holding `in/` and `out/`, mounted at /workspace. */
  workspaceDir: string;
  /** Mount the whole workspace read-only (the planner only looks). */
  readOnlyWorkspace: boolean;
  limits: SandboxLimits;
  /** The runner process that owns it; the janitor removes sandboxes whose runner is gone. */
  runnerId?: string;
  /**
   * Host directory holding the run's egress proxy socket (`proxy.sock`, see
   * `startEgressProxy`). When set, the directory is mounted read-only at /run/handoff-egress,
   * socat bridges the container's own 127.0.0.1:3128 to the socket, and every command gets
   * HTTP_PROXY / HTTPS_PROXY (and the lower-case forms) pointing there. The network stays
   * `none` either way: the proxy is the only way out. Unset: no egress at all.
   */
  egressSocketDir?: string;
  /**
   * Host folders mounted read-only, each at its own path under /skills (a run's Agent Skills,
   * docs/skills.md). Nothing else may be mounted this way: a target outside /skills is refused.
   */
  readOnlyMounts?: ReadonlyArray<{ hostPath: string; containerPath: string }>;
  /**
   * Settles once `workspaceDir` is laid out. When given, the driver may start on the sandbox
   * before that (the warm pool renames the container it claims meanwhile), and waits for it
   * before it mounts, links or reads the workspace; a rejection fails the create.
   */
  workspaceReady?: Promise<unknown>;
}

/** A file to place under /workspace/out. */
export interface OutputFileWrite {
  /** Path relative to /workspace/out. */
  path: string;
  size: number;
  /** Opened when the file's turn comes, so a large workspace is not opened all at once. */
  open: () => Promise<Readable>;
  /** Modification time to give it. */
  mtime?: Date;
}

/** A regular file under /workspace/out as the sandbox sees it. */
export interface OutputFileInfo {
  /** Path relative to /workspace/out. */
  path: string;
  size: number;
  /** Modification time, ISO 8601 with sub-second precision as the file system has it. */
  mtime: string;
}

/** A sandbox container as the engine lists it (for the janitor). */
export interface SandboxInfo {
  id: string;
  taskId: string;
  runnerId?: string;
  /** `running`, `paused`, `exited`, `created`… as the engine says. */
  state: string;
  createdAtMs: number;
  /**
   * A warm-pool container (docs/operations.md, "Warm pool"): `idle` while it waits in its
   * runner's pool (its `taskId` is empty), `claimed` once a run took it (its `taskId` is the run's).
   */
  pool?: 'idle' | 'claimed';
}

export interface ExecOptions {
  /** The command is killed inside the sandbox when it runs longer than this. */
  timeoutMs: number;
  /** Aborting kills the whole sandbox: Cancel and run timeouts share this path. */
  signal?: AbortSignal;
  stdin?: Buffer | string;
  cwd?: string;
  /** Called with output as it arrives, for live progress. */
  onOutput?: (chunk: string) => void;
  /** Output kept per stream; the middle of longer output is dropped. Default 64 KiB. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** The kernel killed a process of this command for exceeding the memory limit. */
  oomKilled: boolean;
  /** Some output was dropped to stay within maxOutputBytes. */
  truncated: boolean;
  durationMs: number;
}

/** One running sandbox container. */
export interface Sandbox {
  readonly id: string;
  exec(argv: string[], options: ExecOptions): Promise<ExecResult>;
  /** Streams one regular file out of the sandbox (path resolved inside the container). */
  readFileStream(path: string): Promise<{ stream: Readable; size: number }>;
  /** Stops and removes the container (and its /workspace/out). Idempotent. */
  destroy(): Promise<void>;
  /**
   * Freezes every process in it (the cgroup freezer): /tmp, /workspace/out and the
   * processes stay as they are, using no CPU, until `attach` thaws it.
   */
  suspend(): Promise<void>;
  /** Lists the regular files under /workspace/out. */
  listOutputs(): Promise<OutputFileInfo[]>;
  /** Writes files under /workspace/out, owned by the sandbox user (restoring a workspace). */
  writeOutputs(files: readonly OutputFileWrite[]): Promise<void>;
}

/** Creates sandboxes. The runner knows only this interface; main.ts picks the implementation. */
export interface SandboxDriver {
  readonly name: string;
  create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox>;
  /** Re-attaches to a sandbox that survived (thawing it when suspended), if it still runs. */
  attach(id: string): Promise<Sandbox | undefined>;
  /** Every sandbox container on this engine. */
  list(): Promise<SandboxInfo[]>;
  /** Removes one sandbox container by id (and its /workspace/out). Idempotent. */
  remove(id: string): Promise<void>;
  /**
   * Removes a task's sandboxes except `keepId`: those left behind by a runner that died.
   * The one made (or being made, or claimed from a pool) with `keepLabel` is spared too, so a
   * run's new sandbox can be made while the old ones go. Returns how many were removed.
   */
  removeTaskSandboxes(taskId: string, keepId?: string, keepLabel?: string): Promise<number>;
  /** Throws a HandoffError (retryable) when the engine cannot be reached. */
  ping(): Promise<void>;
  imagePresent(): Promise<boolean>;
  close(): Promise<void>;
}

/** A container made before its task is known, for the warm pool (see WarmPool). */
export interface IdleSandboxSpec {
  /** Names the container while it is idle. */
  label: string;
  /**
   * Host directory of its own: `in/` under it is mounted read-only at /workspace/in, and the
   * whole directory is removed with the container. The pool fills `in/` when a run claims it.
   */
  hostDir: string;
  limits: SandboxLimits;
  /** The runner whose pool holds it. */
  runnerId: string;
  /** Skill folders mounted read-only under /skills, as in SandboxSpec. */
  readOnlyMounts?: ReadonlyArray<{ hostPath: string; containerPath: string }>;
}

/** A driver that can make idle sandboxes with exactly the hardening of `create`, for the warm pool. */
export interface PoolingSandboxDriver extends SandboxDriver {
  createIdle(spec: IdleSandboxSpec, signal?: AbortSignal): Promise<Sandbox>;
  /**
   * Gives an idle sandbox to a task: from then on `list()` reports it as the task's
   * (`pool: 'claimed'`), so the janitor and `removeTaskSandboxes` treat it like any other.
   */
  claimIdle(id: string, taskId: string, label: string): Promise<void>;
}
