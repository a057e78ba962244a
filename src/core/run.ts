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
});
export type PendingAction = z.infer<typeof PendingActionSchema>;

export const ActionDecisionSchema = z.object({
  approvalId: z.string(),
  outcome: z.enum(['approved', 'denied']),
  by: z.object({ id: z.string(), name: z.string() }),
  at: z.string(),
});
export type ActionDecision = z.infer<typeof ActionDecisionSchema>;

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
  /** How many of each kind of sensitive text were redacted before reaching the model. */
  redactions: z.record(z.string(), z.number().int().nonnegative()).default({}),
  /** The container kept while the run waits, re-attached on resume. */
  sandboxId: z.string().optional(),
  startedAt: z.string(),
  /** Wall time already spent before the latest resume. */
  elapsedMs: z.number().nonnegative(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;
