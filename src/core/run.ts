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
  decision: z.enum(['ran', 'refused']),
  isError: z.boolean(),
  resultSha256: z.string(),
  at: z.string(),
  durationMs: z.number().nonnegative(),
});
export type ToolCallRecord = z.infer<typeof ToolCallRecordSchema>;

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
  /** Set while waiting for a person to answer the agent's question. */
  pendingQuestion: z.object({ toolUseId: z.string(), question: z.string(), askedAt: z.string() }).optional(),
  startedAt: z.string(),
  /** Wall time already spent before the latest resume. */
  elapsedMs: z.number().nonnegative(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;
