import type { Readable } from 'node:stream';

/** Resource limits of one sandbox container. */
export interface SandboxLimits {
  memoryMb: number;
  /** CPU cores (fractions allowed). */
  cpus: number;
  pids: number;
  tmpfsMb: number;
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
  /** Stops and removes the container. Idempotent. */
  destroy(): Promise<void>;
}

/** Creates sandboxes. The runner knows only this interface; main.ts picks the implementation. */
export interface SandboxDriver {
  readonly name: string;
  create(spec: SandboxSpec, signal?: AbortSignal): Promise<Sandbox>;
  /** Re-attaches to a sandbox that survived a runner restart, if it still runs. */
  attach(id: string): Promise<Sandbox | undefined>;
  /**
   * Removes a task's sandboxes except `keepId`: those left behind by a runner that died.
   * Returns how many were removed.
   */
  removeTaskSandboxes(taskId: string, keepId?: string): Promise<number>;
  /** Throws a HandoffError (retryable) when the engine cannot be reached. */
  ping(): Promise<void>;
  imagePresent(): Promise<boolean>;
  close(): Promise<void>;
}
