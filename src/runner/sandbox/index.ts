export {
  containerHardeningProblems,
  DockerSandboxDriver,
  type DockerSandboxDriverOptions,
  type SandboxLogger,
} from './docker.ts';
export type {
  ExecOptions,
  ExecResult,
  OutputFileInfo,
  OutputFileWrite,
  Sandbox,
  SandboxDriver,
  SandboxInfo,
  SandboxLimits,
  SandboxSpec,
} from './driver.ts';
