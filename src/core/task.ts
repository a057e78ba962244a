import { z } from 'zod';
import { ArtifactSchema, StoredFileSchema } from './artifact.ts';
import { ErrorCodes, HandoffError } from './errors.ts';
import { ConversationRefSchema, IdentitySchema } from './identity.ts';
import { BriefTickSchema, ScheduleDraftSchema } from './schedule.ts';
import { ThreadContextSchema } from './thread-context.ts';
import { TraceContextSchema } from './trace-context.ts';
import { UsageSchema, zeroUsage } from './usage.ts';

export const TaskStateSchema = z.enum([
  'requested',
  'planning',
  'awaiting_approval',
  'denied',
  'expired',
  'queued',
  'running',
  'waiting_for_approval',
  'waiting_for_answer',
  'succeeded',
  'failed',
  'cancelled',
]);
export type TaskState = z.infer<typeof TaskStateSchema>;

export const DecisionSchema = z.object({
  by: IdentitySchema,
  at: z.string(),
  outcome: z.enum(['approved', 'denied']),
  planVersion: z.number().int().positive(),
  planHash: z.string(),
});
export type Decision = z.infer<typeof DecisionSchema>;

/** One approver's vote on one plan version; a quorum of distinct approvers approves it. */
export const VoteSchema = z.object({
  by: IdentitySchema,
  at: z.string(),
  planVersion: z.number().int().positive(),
  planHash: z.string(),
});
export type Vote = z.infer<typeof VoteSchema>;

/** A "Request changes" on a plan card: what the next plan version must revise. */
export const ChangeRequestSchema = z.object({
  /** The plan version it revises (the next version answers it). */
  version: z.number().int().positive(),
  by: IdentitySchema,
  text: z.string().min(1).max(2000),
  at: z.string(),
});
export type ChangeRequest = z.infer<typeof ChangeRequestSchema>;

/** The change requests plan version `version` answers: those asked on version - 1. */
export function changeRequestsFor(task: Pick<Task, 'changeRequests'>, version: number): ChangeRequest[] {
  return (task.changeRequests ?? []).filter((c) => c.version === version - 1);
}

/**
 * A reply in the thread after the task delivered: the task is planned again from what it
 * delivered. The next plan version answers it (as a change request of `fromVersion`).
 */
export const FollowUpSchema = z.object({
  /** The plan version that ran and delivered; the follow-up plan starts from its deliverables. */
  fromVersion: z.number().int().positive(),
  by: IdentitySchema,
  text: z.string().min(1).max(2000),
  at: z.string(),
});
export type FollowUp = z.infer<typeof FollowUpSchema>;

/** The follow-up plan version `version` belongs to, if it is one (the latest follow-up before it). */
export function followUpFor(task: Pick<Task, 'followUps'>, version: number): FollowUp | undefined {
  return (task.followUps ?? []).filter((f) => f.fromVersion < version).at(-1);
}

export const FailureSchema = z.object({ code: z.string(), message: z.string() });
export type Failure = z.infer<typeof FailureSchema>;

export const TaskSchema = z.object({
  id: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  conversation: ConversationRefSchema,
  requester: IdentitySchema,
  request: z.string(),
  inputs: z.array(StoredFileSchema),
  state: TaskStateSchema,
  /** Latest plan version (0 until the first plan exists). */
  planVersion: z.number().int().nonnegative(),
  decision: DecisionSchema.optional(),
  /** Approvals so far for the current plan version (quorum not reached yet). */
  votes: z.array(VoteSchema).default([]),
  /** Changes people asked for, oldest first; plan version v+1 answers those with version v. */
  changeRequests: z.array(ChangeRequestSchema).default([]),
  /** When the current plan's approval request expires. */
  approvalExpiresAt: z.string().optional(),
  runId: z.string().optional(),
  artifacts: z.array(ArtifactSchema),
  usage: UsageSchema,
  costUsd: z.number().nonnegative(),
  failure: FailureSchema.optional(),
  /** The agent's closing words for the thread, on success. */
  resultSummary: z.string().max(20_000).optional(),
  /** True when the demo model (not a real one) is handling this task. */
  demo: z.boolean(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  cancelRequestedBy: IdentitySchema.optional(),
  /** Set when the task proposes a schedule: its approved plan becomes the standing plan. */
  schedule: ScheduleDraftSchema.optional(),
  /** Set when the task is one tick of a schedule. */
  brief: BriefTickSchema.optional(),
  /** Follow-ups asked in the thread after a delivery, oldest first. */
  followUps: z.array(FollowUpSchema).optional(),
  /** The earlier messages of the conversation the request was made in (untrusted data). */
  context: ThreadContextSchema.optional(),
  /** The trace the request started (ids only), so approval, run and delivery join it. */
  trace: TraceContextSchema.optional(),
});
export type Task = z.infer<typeof TaskSchema>;

/** Legal moves of the task state machine (DESIGN §5). */
const transitions: Record<TaskState, readonly TaskState[]> = {
  requested: ['planning', 'failed', 'cancelled'],
  planning: ['awaiting_approval', 'failed', 'cancelled'],
  awaiting_approval: ['queued', 'succeeded', 'denied', 'expired', 'planning', 'cancelled'],
  denied: [],
  expired: [],
  queued: ['running', 'failed', 'cancelled'],
  running: ['waiting_for_approval', 'waiting_for_answer', 'succeeded', 'failed', 'cancelled'],
  waiting_for_approval: ['running', 'failed', 'cancelled'],
  waiting_for_answer: ['running', 'failed', 'cancelled'],
  // A follow-up in the thread after the delivery plans the task again (src/bot/follow-up.ts).
  succeeded: ['planning'],
  failed: [],
  cancelled: [],
};

export const terminalStates: readonly TaskState[] = ['denied', 'expired', 'succeeded', 'failed', 'cancelled'];

export function isTerminal(state: TaskState): boolean {
  return terminalStates.includes(state);
}

/** A run that is parked: it holds no worker slot while a person approves a call or answers a question. */
export const parkedStates: readonly TaskState[] = ['waiting_for_approval', 'waiting_for_answer'];

/** Queued, running or parked: an approved run that has not ended. */
export function runIsLive(state: TaskState): boolean {
  return state === 'queued' || state === 'running' || parkedStates.includes(state);
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return transitions[from].includes(to);
}

/**
 * Moves a task to a new state, or throws when the move is illegal. Pure: returns a new
 * task; the caller persists it (atomically) and audits the move.
 */
export function transition(task: Task, to: TaskState, at: Date, patch: Partial<Task> = {}): Task {
  // Approving a schedule's standing plan ends its task: there is no run to queue.
  const scheduleApproved = task.state === 'awaiting_approval' && to === 'succeeded';
  if (!canTransition(task.state, to) || (scheduleApproved && !task.schedule)) {
    throw new HandoffError(
      ErrorCodes.illegalTransition,
      `a task that is ${task.state.replace(/_/g, ' ')} cannot become ${to.replace(/_/g, ' ')}`,
    );
  }
  const iso = at.toISOString();
  const next: Task = { ...task, ...patch, state: to, updatedAt: iso };
  if (to === 'running' && !task.startedAt) next.startedAt = iso;
  if (isTerminal(to)) next.finishedAt = iso;
  // Planned again after it ended (a follow-up): the next run starts and finishes anew.
  else if (isTerminal(task.state)) {
    delete next.finishedAt;
    delete next.startedAt;
  }
  return next;
}

export interface NewTask {
  id: string;
  conversation: Task['conversation'];
  requester: Task['requester'];
  request: string;
  inputs: Task['inputs'];
  demo: boolean;
}

export function newTask(input: NewTask, at: Date): Task {
  const iso = at.toISOString();
  return {
    ...input,
    createdAt: iso,
    updatedAt: iso,
    state: 'requested',
    planVersion: 0,
    artifacts: [],
    votes: [],
    changeRequests: [],
    usage: zeroUsage,
    costUsd: 0,
  };
}
