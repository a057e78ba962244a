export {
  containerHardeningProblems,
  DockerSandboxDriver,
  type DockerSandboxDriverOptions,
  type SandboxLogger,
} from './docker.ts';
export type { ExecOptions, ExecResult, Sandbox, SandboxDriver, SandboxLimits, SandboxSpec } from './driver.ts';
