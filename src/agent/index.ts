export {
  type ExtraTools,
  type ProgressUpdate,
  type QuestionOutcome,
  type RunLoopOptions,
  type RunOutcome,
  runAgentLoop,
  type ToolHost,
  type ToolResult,
} from './agent-loop.ts';
export * from './connectors/index.ts';
export { DemoProvider, demoUnsupportedMessage, matchSample } from './demo/demo-provider.ts';
export { AnthropicProvider } from './model/anthropic.ts';
export { BedrockProvider, bedrockModelProblem } from './model/bedrock.ts';
export { type CheckModelOptions, checkModel, type ModelCheck } from './model/check.ts';
export { MessagesProvider } from './model/messages-provider.ts';
export type {
  ContentBlock,
  MessageParam,
  ModelProvider,
  ModelRequest,
  ModelResponse,
  ServerTool,
  ToolDefinition,
} from './model/provider.ts';
export { VertexProvider, vertexModelProblem } from './model/vertex.ts';
export { draftPlan, type PlannerOptions, type PlannerResult } from './planner.ts';
export type { PlanReach, PlanRevision } from './prompts.ts';
export { applyRedactor, type Redactor } from './redactor.ts';
export {
  checkSkillDir,
  combineExtraTools,
  loadSkills,
  loadSkillToolName,
  type Skill,
  type SkillCatalog,
  type SkillLoadRecord,
  skillMounts,
  skillSources,
  skillsAllowed,
  skillTools,
} from './skills/index.ts';
export { abbreviateStrings, classifyToolCall, planTools, resolveSandboxPath, runTools, toolsForPlan } from './tools.ts';
