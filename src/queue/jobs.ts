import { z } from 'zod';
import { RunnerEventSchema, TraceContextSchema } from '../core/index.ts';

export const queueNames = {
  plan: 'handoff-plan',
  run: 'handoff-run',
  notify: 'handoff-notify',
  schedule: 'handoff-schedule',
} as const;

/**
 * Redis streams of chat deliveries a bot acknowledged and any bot works on (src/bot/inbox.ts),
 * by surface. Not BullMQ queues: one entry each, taken by a consumer group of the bots.
 */
export const inboxStreams = {
  slack: 'hf:inbox:slack',
  teams: 'hf:inbox:teams',
} as const;
/** The consumer group every bot reads an inbox stream in. */
export const inboxGroup = 'bots';

export const PlanJobSchema = z.object({
  taskId: z.string(),
  version: z.number().int().positive(),
  /** The task's trace, continued by the runner (absent when tracing is off). */
  trace: TraceContextSchema.optional(),
});
export type PlanJob = z.infer<typeof PlanJobSchema>;

export const RunJobSchema = z.object({
  taskId: z.string(),
  planVersion: z.number().int().positive(),
  runId: z.string(),
  /** The trace of the approval that queued the run, continued by the runner. */
  trace: TraceContextSchema.optional(),
});
export type RunJob = z.infer<typeof RunJobSchema>;

/**
 * A tick of a schedule. Ticks of the clock carry only the schedule id (the time is the
 * job scheduler's); catch-up and "Run now" ticks carry their own time.
 */
export const TickJobSchema = z.object({
  scheduleId: z.string().min(1).max(100),
  scheduledAtMs: z.number().int().nonnegative().optional(),
  manual: z.boolean().optional(),
  by: z.object({ id: z.string(), name: z.string() }).optional(),
});
export type TickJob = z.infer<typeof TickJobSchema>;

export const NotifyJobSchema = RunnerEventSchema;
export type NotifyJob = z.infer<typeof NotifyJobSchema>;

/** BullMQ job ids may not contain ':'. One plan job per task version. */
export function planJobId(taskId: string, version: number): string {
  return `plan-${taskId}-v${version}`;
}

/** Derived from task + plan version, so a double Approve can only ever start one run. */
export function runJobId(taskId: string, planVersion: number): string {
  return `run-${taskId}-v${planVersion}`;
}

export function runIdFor(taskId: string, planVersion: number): string {
  return `r_${taskId.replace(/^t_/, '')}v${planVersion}`;
}

/**
 * An event's place in its task's order, stamped by `Queues.emit` and checked by the notify
 * worker, which renders a task's events strictly one after the other.
 */
export const NotifyOrderSchema = z.object({
  /** When the task's counter was (re)created: job ids never repeat after the counter expired. */
  gen: z.string().regex(/^[0-9a-z]{1,32}$/),
  /** 1, 2, 3… per task, in emit order. */
  n: z.number().int().positive(),
});
export type NotifyOrder = z.infer<typeof NotifyOrderSchema>;

/**
 * A notify job's data: the event itself (so it still parses as a `RunnerEvent`) plus its
 * place in the task's order, which jobs queued before ordering existed do not have.
 */
export type OrderedNotifyJob = NotifyJob & { order?: NotifyOrder };

/** The task's ordering record (a hash: `n` last issued, `gen`, `done` last rendered), under the queue prefix. */
export function notifyOrderKey(prefix: string, taskId: string): string {
  return `${prefix}:notify-order:${taskId}`;
}

/** Kept this long after a task's last event or render; a waiting job of an expired record renders unordered. */
export const notifyOrderTtlMs = 7 * 24 * 60 * 60_000;

/** Derived from the order, so the worker can find an event's predecessor. BullMQ job ids may not contain ':'. */
export function notifyJobId(taskId: string, order: NotifyOrder): string {
  return `notify-${taskId.replaceAll(':', '_')}-${order.gen}-${order.n}`;
}
