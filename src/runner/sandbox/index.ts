export {
  containerHardeningProblems,
  DockerSandboxDriver,
  type DockerSandboxDriverOptions,
  type SandboxLogger,
} from './docker.ts';
export type {
  ExecOptions,
  ExecResult,
  IdleSandboxSpec,
  OutputFileInfo,
  OutputFileWrite,
  PoolingSandboxDriver,
  Sandbox,
  SandboxDriver,
  SandboxInfo,
  SandboxLimits,
  SandboxSpec,
} from './driver.ts';
export { poolMismatch, WarmPool, type WarmPoolOptions } from './warm-pool.ts';
