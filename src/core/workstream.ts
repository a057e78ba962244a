import { z } from 'zod';
import { UsageSchema } from './usage.ts';

/** Where a workstream (a child run) is: shown on the progress card on every surface. */
export const WorkstreamStateSchema = z.enum(['queued', 'running', 'done', 'failed', 'cancelled']);
export type WorkstreamState = z.infer<typeof WorkstreamStateSchema>;

/** A file a workstream handed back for the merge step, kept in the artifact store. */
export const WorkstreamOutputSchema = z.object({
  name: z.string().min(1).max(255),
  key: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
});
export type WorkstreamOutput = z.infer<typeof WorkstreamOutputSchema>;

/** A workstream's record (`hf:workstreams:{taskId}:v{n}`, one field per workstream). */
export const WorkstreamRecordSchema = z.object({
  id: z.string(),
  state: WorkstreamStateSchema,
  /** Attempts started so far (a `retry` rule allows two). */
  attempts: z.number().int().nonnegative(),
  outputs: z.array(WorkstreamOutputSchema),
  usage: UsageSchema,
  error: z.string().max(2000).optional(),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
});
export type WorkstreamRecord = z.infer<typeof WorkstreamRecordSchema>;

/** One line of the progress card's workstream list. */
export const WorkstreamProgressSchema = z.object({
  id: z.string().max(32),
  title: z.string().max(120),
  state: WorkstreamStateSchema,
});
export type WorkstreamProgress = z.infer<typeof WorkstreamProgressSchema>;
