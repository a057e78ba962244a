import { z } from 'zod';
import { ActionKindSchema, TrustLevelSchema } from './trust.ts';
import { UsageSchema } from './usage.ts';

export const StepStatusSchema = z.enum(['pending', 'running', 'done', 'failed', 'skipped']);
export type StepStatus = z.infer<typeof StepStatusSchema>;

/** One tool call as the run records it: what it was, how policy decided, a digest of the result. */
export const ToolCallRecordSchema = z.object({
  id: z.string(),
  tool: z.string(),
  action: ActionKindSchema,
  trust: TrustLevelSchema,
  decision: z.enum(['ran', 'refused', 'paused']),
  isError: z.boolean(),
  resultSha256: z.string(),
  at: z.string(),
  durationMs: z.number().nonnegative(),
  /** What redaction removed from this call's result before the model saw it, by kind. */
  redactions: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
export type ToolCallRecord = z.infer<typeof ToolCallRecordSchema>;

/** A call the policy gate paused: it runs only once a person approves it in the thread. */
export const PendingActionSchema = z.object({
  /** Approval id shown on the card; a click must name it. */
  id: z.string(),
  toolUseId: z.string(),
  tool: z.string(),
  input: z.record(z.string(), z.unknown()),
  action: ActionKindSchema,
  trust: TrustLevelSchema,
  /** Why it needs a person, in plain words ("overwrites the input sales.csv"). */
  reason: z.string(),
  requestedAt: z.string(),
  expiresAt: z.string(),
  /**
   * Set when the call already ran but reached web domains outside the envelope (the proxy
   * held them): approving lets the run reach them from now on; the call is not run again.
   */
  egress: z
    .object({ domains: z.array(z.string().max(253)).min(1).max(20), result: z.string(), isError: z.boolean() })
    .optional(),
  /** The exact patterns a standing grant for this call would cover (src/core/grant.ts); none: no grant buttons. */
  grantPatterns: z.array(z.string().max(400)).max(20).optional(),
});
export type PendingAction = z.infer<typeof PendingActionSchema>;

export const ActionDecisionSchema = z.object({
  approvalId: z.string(),
  outcome: z.enum(['approved', 'denied']),
  by: z.object({ id: z.string(), name: z.string() }),
  at: z.string(),
  /** Set when the approval also granted the call's patterns: for the rest of the run, or in the channel. */
  grant: z.enum(['run', 'channel']).optional(),
});
export type ActionDecision = z.infer<typeof ActionDecisionSchema>;

/** A question the agent asked in the thread; the run is parked until it is answered or expires. */
export const PendingQuestionSchema = z.object({
  id: z.string(),
  toolUseId: z.string(),
  question: z.string().max(4000),
  askedAt: z.string(),
  expiresAt: z.string(),
});
export type PendingQuestion = z.infer<typeof PendingQuestionSchema>;

/** The reply bound to a question: the first one posted in the thread after it was asked. */
export const QuestionAnswerSchema = z.object({
  questionId: z.string(),
  by: z.object({ id: z.string(), name: z.string() }),
  text: z.string().max(4000),
  at: z.string(),
});
export type QuestionAnswer = z.infer<typeof QuestionAnswerSchema>;

/** A message a person posted in the task's thread while the run works (a steering message). */
export const ThreadMessageSchema = z.object({
  by: z.object({ id: z.string(), name: z.string() }),
  text: z.string().max(4000),
  at: z.string(),
});
export type ThreadMessage = z.infer<typeof ThreadMessageSchema>;

const StoredObjectSchema = z.object({
  key: z.string().min(1).max(1024),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
});

/** One file under /workspace/out as last saved to the artifact store. */
export const OutputFileSchema = StoredObjectSchema.extend({
  /** Path relative to /workspace/out. */
  path: z.string().min(1).max(1024),
  /** Modification time inside the sandbox when it was saved (with the size, how changes are noticed). */
  mtime: z.string(),
});
export type OutputFile = z.infer<typeof OutputFileSchema>;

/**
 * The durable state of a run's workspace, kept in the artifact store so a run resumes on
 * any runner: the inputs as the run sees them (approved changes included) and the outputs
 * as of the last checkpoint.
 */
export const WorkspaceManifestSchema = z.object({
  inputs: z.array(StoredObjectSchema.extend({ name: z.string().min(1).max(255), mediaType: z.string() })),
  outputs: z.array(OutputFileSchema),
  /** Bytes delivered to the thread so far (capped per run). */
  deliveredBytes: z.number().int().nonnegative().default(0),
});
export type WorkspaceManifest = z.infer<typeof WorkspaceManifestSchema>;

const ToolResultSchema = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.string(),
  is_error: z.boolean().optional(),
});

/**
 * Everything needed to resume a run after the runner dies: the transcript so far and
 * the bookkeeping around it. Saved after every model turn and every batch of tool results.
 */
export const CheckpointSchema = z.object({
  runId: z.string(),
  taskId: z.string(),
  planVersion: z.number().int().positive(),
  turn: z.number().int().nonnegative(),
  /** Messages API transcript (user/assistant turns with content blocks). */
  messages: z.array(z.unknown()),
  usage: UsageSchema,
  stepStatus: z.array(z.enum(['pending', 'running', 'done', 'failed', 'skipped'])),
  toolCalls: z.array(ToolCallRecordSchema),
  delivered: z.array(z.string()),
  /** Results of the current turn's calls so far; they become the next user message. */
  partialResults: z.array(ToolResultSchema).default([]),
  /** The call being executed right now; after a crash its effect is unknown, so it is not rerun. */
  inFlight: z.string().optional(),
  /** The call waiting for a person's approval. */
  pendingAction: PendingActionSchema.optional(),
  /** The question waiting for a person's answer. */
  pendingQuestion: PendingQuestionSchema.optional(),
  /** Notes from Handoff for the model, added to the next message it is sent (e.g. its sandbox was replaced). */
  notes: z.array(z.string()).default([]),
  /** Model replies in a row that stopped at max_tokens or pause_turn and were continued. */
  continuations: z.number().int().nonnegative().default(0),
  /** A larger max_tokens for the next call, after a tool call was cut off. */
  retryMaxTokens: z.number().int().positive().optional(),
  /** The workspace's durable state in the artifact store. */
  workspace: WorkspaceManifestSchema.optional(),
  /** How many of each kind of sensitive text were redacted before reaching the model. */
  redactions: z.record(z.string(), z.number().int().nonnegative()).default({}),
  /** The container kept while the run waits, re-attached on resume. */
  sandboxId: z.string().optional(),
  /** Web domains a person approved for this run on top of the envelope's. */
  egressGranted: z.array(z.string().max(253)).max(100).optional(),
  startedAt: z.string(),
  /** Wall time already spent before the latest resume. */
  elapsedMs: z.number().nonnegative(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;
