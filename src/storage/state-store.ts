import type { Redis } from 'ioredis';
import {
  type ActionDecision,
  ActionDecisionSchema,
  type Checkpoint,
  CheckpointSchema,
  ErrorCodes,
  HandoffError,
  type Plan,
  PlanSchema,
  type Task,
  TaskSchema,
} from '../core/index.ts';

const prefix = 'hf:';
const k = {
  task: (id: string) => `${prefix}task:${id}`,
  plan: (taskId: string, version: number) => `${prefix}plan:${taskId}:${version}`,
  checkpoint: (runId: string) => `${prefix}checkpoint:${runId}`,
  answers: (taskId: string) => `${prefix}answers:${taskId}`,
  byRequester: (surface: string, userId: string) => `${prefix}tasks:by:${surface}:${userId}`,
  awaiting: `${prefix}tasks:awaiting`,
  cancel: (taskId: string) => `${prefix}cancel:${taskId}`,
  messages: (taskId: string) => `${prefix}msgs:${taskId}`,
  actionDecision: (runId: string, approvalId: string) => `${prefix}action:${runId}:${approvalId}`,
  thread: (surface: string, channel: string, thread: string) => `${prefix}thread:${surface}:${channel}:${thread}`,
  cost: (surface: string, channel: string, month: string) => `${prefix}cost:${surface}:${channel}:${month}`,
};

const compareAndSet = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0`;

/** Pub/sub channel on which a Cancel click reaches every runner at once. */
export const cancelChannel = `${prefix}cancel`;

/**
 * Task, plan and checkpoint records in Redis. Updates are atomic (WATCH/MULTI), so two
 * bots handling two clicks on the same card can never both win.
 */
export class StateStore {
  constructor(private readonly redis: Redis) {}

  async createTask(task: Task): Promise<void> {
    const ok = await this.redis
      .multi()
      .set(k.task(task.id), JSON.stringify(task), 'NX')
      .zadd(k.byRequester(task.conversation.surface, task.requester.id), Date.parse(task.createdAt), task.id)
      .exec();
    if (ok?.[0]?.[1] !== 'OK') throw new HandoffError(ErrorCodes.invalidInput, `task ${task.id} already exists`);
  }

  async getTask(id: string): Promise<Task | undefined> {
    const raw = await this.redis.get(k.task(id));
    return raw ? TaskSchema.parse(JSON.parse(raw)) : undefined;
  }

  async requireTask(id: string): Promise<Task> {
    const task = await this.getTask(id);
    if (!task) throw new HandoffError(ErrorCodes.notFound, `no task ${id}`);
    return task;
  }

  /**
   * Applies `change` atomically: it sees the current task and returns the next one
   * (or throws to refuse). Compare-and-set in Lua, retried when another writer got
   * there first; safe on a connection shared by concurrent callers (WATCH is not).
   */
  async updateTask(id: string, change: (task: Task) => Task): Promise<{ before: Task; after: Task }> {
    const key = k.task(id);
    for (let attempt = 0; attempt < 50; attempt++) {
      const raw = await this.redis.get(key);
      if (!raw) throw new HandoffError(ErrorCodes.notFound, `no task ${id}`);
      const before = TaskSchema.parse(JSON.parse(raw));
      const after = change(before);
      const swapped = await this.redis.eval(compareAndSet, 1, key, raw, JSON.stringify(after));
      if (swapped === 1) {
        // The index of plans waiting for a decision follows the state (App Home reads it).
        if (after.state === 'awaiting_approval' && before.state !== 'awaiting_approval') {
          await this.redis.zadd(k.awaiting, Date.parse(after.updatedAt), id);
        } else if (before.state === 'awaiting_approval' && after.state !== 'awaiting_approval') {
          await this.redis.zrem(k.awaiting, id);
        }
        return { before, after };
      }
    }
    throw new HandoffError(ErrorCodes.queueUnavailable, `task ${id} is being changed by too many writers; try again`, {
      retryable: true,
    });
  }

  /** A person's own tasks on a surface, newest first. */
  async taskIdsOf(surface: string, userId: string, limit: number): Promise<string[]> {
    return this.redis.zrevrange(k.byRequester(surface, userId), 0, limit - 1);
  }

  /** Tasks whose plan waits for approval, oldest first (the longest waiting on top). */
  async awaitingApprovalIds(limit: number): Promise<string[]> {
    return this.redis.zrange(k.awaiting, 0, limit - 1);
  }

  async savePlan(plan: Plan): Promise<void> {
    await this.redis.set(k.plan(plan.taskId, plan.version), JSON.stringify(PlanSchema.parse(plan)));
  }

  async getPlan(taskId: string, version: number): Promise<Plan | undefined> {
    const raw = await this.redis.get(k.plan(taskId, version));
    return raw ? PlanSchema.parse(JSON.parse(raw)) : undefined;
  }

  async saveCheckpoint(checkpoint: Checkpoint): Promise<void> {
    await this.redis.set(k.checkpoint(checkpoint.runId), JSON.stringify(checkpoint));
  }

  async getCheckpoint(runId: string): Promise<Checkpoint | undefined> {
    const raw = await this.redis.get(k.checkpoint(runId));
    return raw ? CheckpointSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** A thread reply that answers the agent's question, kept until the run reads it. */
  async pushAnswer(taskId: string, answer: { by: string; text: string }): Promise<void> {
    await this.redis.rpush(k.answers(taskId), JSON.stringify(answer));
  }

  async takeAnswer(taskId: string): Promise<{ by: string; text: string } | undefined> {
    const raw = await this.redis.lpop(k.answers(taskId));
    return raw ? (JSON.parse(raw) as { by: string; text: string }) : undefined;
  }

  /** Marks a task cancelled for runners that missed the pub/sub message. */
  async requestCancel(taskId: string): Promise<void> {
    await this.redis.multi().set(k.cancel(taskId), '1', 'EX', 86_400).publish(cancelChannel, taskId).exec();
  }

  async cancelRequested(taskId: string): Promise<boolean> {
    return (await this.redis.exists(k.cancel(taskId))) === 1;
  }

  /** Records a person's decision on a paused call; only the first decision counts. */
  async recordActionDecision(runId: string, decision: ActionDecision): Promise<boolean> {
    const ok = await this.redis.set(k.actionDecision(runId, decision.approvalId), JSON.stringify(decision), 'NX');
    return ok === 'OK';
  }

  async getActionDecision(runId: string, approvalId: string): Promise<ActionDecision | undefined> {
    const raw = await this.redis.get(k.actionDecision(runId, approvalId));
    return raw ? ActionDecisionSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** Adds a run's estimated cost to its channel's month (UTC), for the monthly cap. */
  async addChannelCost(conversation: { surface: string; channel: string }, usd: number, at: Date): Promise<void> {
    const key = k.cost(conversation.surface, conversation.channel, at.toISOString().slice(0, 7));
    await this.redis
      .multi()
      .incrbyfloat(key, usd)
      .expire(key, 100 * 86_400)
      .exec();
  }

  /** Estimated cost of the channel's runs this month (UTC), in USD. */
  async channelCost(conversation: { surface: string; channel: string }, at: Date): Promise<number> {
    return Number(
      (await this.redis.get(k.cost(conversation.surface, conversation.channel, at.toISOString().slice(0, 7)))) ?? 0,
    );
  }

  /** Remembers which chat message shows which part of a task (plan card, progress), to edit it in place. */
  async setMessageRef(taskId: string, slot: string, ref: string): Promise<void> {
    await this.redis.hset(k.messages(taskId), slot, ref);
  }

  async getMessageRef(taskId: string, slot: string): Promise<string | undefined> {
    return (await this.redis.hget(k.messages(taskId), slot)) ?? undefined;
  }

  /** Progress events may arrive out of order; only a newer one is shown. Returns true when `seq` is newer. */
  async advanceProgressSeq(taskId: string, seq: number): Promise<boolean> {
    const r = await this.redis.eval(
      `local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1') if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'seq', ARGV[1]) return 1 end return 0`,
      1,
      k.messages(taskId),
      String(seq),
    );
    return r === 1;
  }

  async linkThread(surface: string, channel: string, thread: string, taskId: string): Promise<void> {
    await this.redis.set(k.thread(surface, channel, thread), taskId);
  }

  async taskForThread(surface: string, channel: string, thread: string): Promise<string | undefined> {
    return (await this.redis.get(k.thread(surface, channel, thread))) ?? undefined;
  }
}
