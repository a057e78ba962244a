import { z } from 'zod';
import { StepStatusSchema } from './run.ts';
import { UsageSchema } from './usage.ts';
import { WorkstreamProgressSchema } from './workstream.ts';

/**
 * Typed events the runner emits for the bot to render. They cross processes as jobs
 * on the notifications queue, so the bot validates them on arrival.
 */
export const RunnerEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('plan.ready'), taskId: z.string(), version: z.number().int().positive() }),
  z.object({
    type: z.literal('plan.failed'),
    taskId: z.string(),
    code: z.string(),
    message: z.string(),
  }),
  z.object({
    type: z.literal('progress'),
    taskId: z.string(),
    runId: z.string(),
    steps: z.array(z.object({ title: z.string(), status: StepStatusSchema })),
    activity: z.string().max(500).optional(),
    outputTail: z.string().max(4000).optional(),
    elapsedMs: z.number().nonnegative(),
    usage: UsageSchema,
    /** Monotonic per run, so a late job never overwrites a newer view. */
    seq: z.number().int().nonnegative(),
    /** A plan with workstreams: where each one is. */
    workstreams: z.array(WorkstreamProgressSchema).max(8).optional(),
  }),
  z.object({
    type: z.literal('question'),
    taskId: z.string(),
    runId: z.string(),
    question: z.string().max(4000),
    /** The question the first reply after it answers. */
    questionId: z.string().optional(),
    /** Until when the question stays open. */
    expiresAt: z.string().optional(),
  }),
  z.object({ type: z.literal('result'), taskId: z.string(), runId: z.string() }),
  z.object({ type: z.literal('approval.needed'), taskId: z.string(), runId: z.string(), approvalId: z.string() }),
  /** A per-user connector the task could use, but its requester has not connected it (docs/connectors.md). */
  z.object({
    type: z.literal('connection.needed'),
    taskId: z.string(),
    connector: z.string().max(30),
    title: z.string().max(80),
  }),
]);
export type RunnerEvent = z.infer<typeof RunnerEventSchema>;
export type ProgressEvent = Extract<RunnerEvent, { type: 'progress' }>;
