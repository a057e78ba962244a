export {
  type Artifact,
  ArtifactSchema,
  type DeliverableType,
  DeliverableTypeSchema,
  fileNameProblem,
  mediaTypeFor,
  type StoredFile,
  StoredFileSchema,
} from './artifact.ts';
export { canonicalJson } from './canonical-json.ts';
export { abortCode, asHandoffError, ErrorCodes, HandoffError } from './errors.ts';
export { type ProgressEvent, type RunnerEvent, RunnerEventSchema } from './events.ts';
export {
  type ConversationRef,
  ConversationRefSchema,
  type Identity,
  IdentitySchema,
  type Surface,
  SurfaceSchema,
} from './identity.ts';
export { newId } from './ids.ts';
export {
  type Budget,
  BudgetSchema,
  type DeliverableSpec,
  DeliverableSpecSchema,
  type Envelope,
  EnvelopeSchema,
  type Plan,
  type PlanDraft,
  PlanDraftSchema,
  PlanSchema,
  type PlanStep,
  PlanStepSchema,
} from './plan.ts';
export { type RedactionKind, RedactionKindSchema, type RedactionResult, redact, redactionKinds } from './redaction.ts';
export {
  type ActionDecision,
  ActionDecisionSchema,
  type Checkpoint,
  CheckpointSchema,
  type OutputFile,
  type PendingAction,
  PendingActionSchema,
  type PendingQuestion,
  PendingQuestionSchema,
  type QuestionAnswer,
  QuestionAnswerSchema,
  type StepStatus,
  StepStatusSchema,
  type ThreadMessage,
  ThreadMessageSchema,
  type ToolCallRecord,
  ToolCallRecordSchema,
  type WorkspaceManifest,
  WorkspaceManifestSchema,
} from './run.ts';
export {
  type ChangeRequest,
  ChangeRequestSchema,
  canTransition,
  changeRequestsFor,
  type Decision,
  DecisionSchema,
  type Failure,
  isTerminal,
  type NewTask,
  newTask,
  parkedStates,
  runIsLive,
  type Task,
  TaskSchema,
  type TaskState,
  TaskStateSchema,
  terminalStates,
  transition,
  type Vote,
  VoteSchema,
} from './task.ts';
export { type ActionKind, ActionKindSchema, type TrustLevel, TrustLevelSchema } from './trust.ts';
export {
  addUsage,
  budgetTokens,
  costUsd,
  type Prices,
  totalTokens,
  type Usage,
  UsageSchema,
  zeroUsage,
} from './usage.ts';
