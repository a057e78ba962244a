import { z } from 'zod';
import { RunnerEventSchema } from '../core/index.ts';

export const queueNames = { plan: 'handoff-plan', run: 'handoff-run', notify: 'handoff-notify' } as const;

export const PlanJobSchema = z.object({ taskId: z.string(), version: z.number().int().positive() });
export type PlanJob = z.infer<typeof PlanJobSchema>;

export const RunJobSchema = z.object({
  taskId: z.string(),
  planVersion: z.number().int().positive(),
  runId: z.string(),
});
export type RunJob = z.infer<typeof RunJobSchema>;

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
