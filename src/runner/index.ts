export {
  channelsAllowing,
  connectorChecks,
  connectorExplain,
  connectorsList,
  connectorsTest,
  describeTarget,
  unknownConnectors,
} from './connectors-cli.ts';
export { buildPlan, processPlanJob, type RunnerDeps } from './plan-processor.ts';
export { type EgressNetwork, egressSocketDir, type RunEgress, startRunEgress } from './run-egress.ts';
export { processRunJob } from './run-processor.ts';
export { Runner, type RunnerOptions } from './runner.ts';
export {
  containerHardeningProblems,
  DockerSandboxDriver,
  type Sandbox,
  type SandboxDriver,
  type SandboxLimits,
  WarmPool,
} from './sandbox/index.ts';
export { type SkillsOutput, skillsCheck, skillsList } from './skills-cli.ts';
export { prepareWorkspace, sandboxUser } from './workspace.ts';
