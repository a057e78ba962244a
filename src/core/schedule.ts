import { z } from 'zod';
import { StoredFileSchema } from './artifact.ts';
import { IdentitySchema, SurfaceSchema } from './identity.ts';
import { PlanSchema } from './plan.ts';

export const CatchUpSchema = z.enum(['latest', 'none']);
export type CatchUp = z.infer<typeof CatchUpSchema>;

export const TimeZoneSourceSchema = z.enum(['given', 'channel', 'requester', 'default']);

/** Where a schedule posts: a channel, not a thread (each brief opens its own). */
export const ChannelRefSchema = z.object({
  surface: SurfaceSchema,
  workspace: z.string().max(200).optional(),
  channel: z.string().min(1).max(200),
});
export type ChannelRef = z.infer<typeof ChannelRefSchema>;

/** When a schedule runs: a 5-field cron pattern in an IANA time zone, with its words. */
export const ScheduleTimingSchema = z.object({
  pattern: z.string().min(9).max(200),
  tz: z.string().min(1).max(100),
  tzSource: TimeZoneSourceSchema,
  /** The rule in words, e.g. "every weekday (Mon–Fri) at 08:30". */
  words: z.string().max(300),
  /** What the person typed. */
  text: z.string().max(300),
  catchUp: CatchUpSchema,
  /** How late a missed tick may still be caught up. */
  catchUpWindowMs: z.number().int().nonnegative(),
});
export type ScheduleTiming = z.infer<typeof ScheduleTimingSchema>;

/**
 * A schedule being proposed: carried by the task whose plan becomes the standing plan.
 * `replaces` names the schedule an edit of request, envelope or target would replace.
 */
export const ScheduleDraftSchema = z.object({
  timing: ScheduleTimingSchema,
  target: ChannelRefSchema,
  /** The schedule that approving this draft replaces (an edit of what it does). */
  replaces: z.string().optional(),
  /** The schedule's id once the draft was approved. */
  scheduleId: z.string().optional(),
});
export type ScheduleDraft = z.infer<typeof ScheduleDraftSchema>;

export const ScheduleStatusSchema = z.enum(['active', 'paused', 'deleted']);
export type ScheduleStatus = z.infer<typeof ScheduleStatusSchema>;

export const TickOutcomeSchema = z.enum(['posted', 'nothing_new', 'failed', 'skipped', 'missed']);
export type TickOutcome = z.infer<typeof TickOutcomeSchema>;

/** A standing plan approved once; each tick runs it inside its envelope. */
export const ScheduleSchema = z.object({
  id: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Whose brief it is: runs act as them, failures reach them. */
  owner: IdentitySchema,
  target: ChannelRefSchema,
  request: z.string().min(1).max(20_000),
  inputs: z.array(StoredFileSchema),
  timing: ScheduleTimingSchema,
  /** The approved standing plan (taskId and version of the task it was approved on). */
  plan: PlanSchema,
  planHash: z.string(),
  approvedBy: z.array(IdentitySchema).min(1),
  approvedAt: z.string(),
  /** The task that proposed it (its thread has the approval). */
  sourceTaskId: z.string(),
  status: ScheduleStatusSchema,
  pausedReason: z.string().max(500).optional(),
  failuresInARow: z.number().int().nonnegative(),
  lastTick: z
    .object({
      at: z.string(),
      taskId: z.string(),
      outcome: TickOutcomeSchema,
      message: z.string().max(500).optional(),
    })
    .optional(),
  /** Digests of the last brief's deliverables: a brief with the same ones has nothing new. */
  lastDigests: z.array(z.string()).default([]),
  lastPostedAt: z.string().optional(),
  demo: z.boolean(),
});
export type Schedule = z.infer<typeof ScheduleSchema>;

/** What a task knows when it is one tick of a schedule. */
export const BriefTickSchema = z.object({
  scheduleId: z.string(),
  /** The tick's scheduled time (ISO). */
  scheduledAt: z.string(),
  /** When Handoff started it. */
  startedAt: z.string(),
  /** "Run now" rather than the clock. */
  manual: z.boolean(),
});
export type BriefTick = z.infer<typeof BriefTickSchema>;

/** Failures in a row after which a schedule pauses itself. */
export const maxFailuresInARow = 3;

/** One task per tick: the id derives from the schedule and the tick's time, so a tick runs once. */
export function tickTaskId(scheduleId: string, scheduledAtMs: number): string {
  return `${scheduleId}-${scheduledAtMs.toString(36)}`;
}

/** The job id of a tick put on the queue by Handoff itself (catch-up, Run now); BullMQ refuses ':' in custom ids. */
export function tickJobId(scheduleId: string, scheduledAtMs: number): string {
  return `tick-${tickTaskId(scheduleId, scheduledAtMs)}`;
}
