import type { Redis } from 'ioredis';
import {
  type ActionDecision,
  ActionDecisionSchema,
  type Checkpoint,
  CheckpointSchema,
  ErrorCodes,
  HandoffError,
  isTerminal,
  type Plan,
  PlanSchema,
  type QuestionAnswer,
  QuestionAnswerSchema,
  type Task,
  TaskSchema,
  type ThreadMessage,
  ThreadMessageSchema,
  type WorkstreamState,
} from '../core/index.ts';
import type { Metrics } from '../observability/index.ts';
import { WorkstreamStore } from './workstream-store.ts';

const prefix = 'hf:';
const k = {
  task: (id: string) => `${prefix}task:${id}`,
  plan: (taskId: string, version: number) => `${prefix}plan:${taskId}:${version}`,
  checkpoint: (runId: string) => `${prefix}checkpoint:${runId}`,
  checkpointMessages: (runId: string) => `${prefix}checkpoint:${runId}:msgs`,
  runOwner: (runId: string) => `${prefix}run:${runId}:owner`,
  question: (taskId: string) => `${prefix}question:${taskId}`,
  answers: (runId: string) => `${prefix}answers:${runId}`,
  threadMessages: (taskId: string) => `${prefix}said:${taskId}`,
  byRequester: (surface: string, userId: string) => `${prefix}tasks:by:${surface}:${userId}`,
  awaiting: `${prefix}tasks:awaiting`,
  active: `${prefix}tasks:active`,
  cancel: (taskId: string) => `${prefix}cancel:${taskId}`,
  messages: (taskId: string) => `${prefix}msgs:${taskId}`,
  actionDecisions: (runId: string) => `${prefix}actions:${runId}`,
  thread: (surface: string, channel: string, thread: string) => `${prefix}thread:${surface}:${channel}:${thread}`,
  cost: (surface: string, channel: string, month: string) => `${prefix}cost:${surface}:${channel}:${month}`,
  keptSandboxes: `${prefix}sandboxes:kept`,
  sandboxOwners: `${prefix}sandboxes:owner`,
  lock: (name: string) => `${prefix}lock:${name}`,
  runner: (id: string) => `${prefix}runner:${id}`,
  artifactRetention: `${prefix}retention:artifacts`,
  threadEnded: (surface: string, channel: string, thread: string) =>
    `${prefix}thread-ended:${surface}:${channel}:${thread}`,
  notice: (key: string) => `${prefix}notice:${key}`,
};

/** Pub/sub channel on which a Cancel click reaches every runner at once. */
export const cancelChannel = `${prefix}cancel`;

const day = 86_400_000;
/** How long task records live after the task ends, unless configured. */
export const defaultRetentionMs = 30 * day;
/**
 * Records of a task that has not ended live this much longer than the retention: long
 * enough for the longest approval or question wait, short enough that a task stranded by
 * a bug cannot keep its records forever.
 */
const liveGraceMs = 45 * day;
/** How much longer than a task's records its thread's tombstone (the task id alone) is kept. */
export const tombstoneMs = 90 * day;

/**
 * Compare-and-set of a task record with its time to live, in one step. KEYS[1] task;
 * ARGV: expected JSON, next JSON, ttl ms.
 */
const compareAndSet = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`;

/**
 * Saves a checkpoint incrementally, fenced by the run's owner. KEYS: head, messages list,
 * owner. ARGV: owner ('' skips the check), head JSON, ttl ms, index of the first message
 * sent, then the messages from that index. Messages before the index are already stored
 * and unchanged; the list is cut back to the index first (a changed last message).
 * Returns -1 when another runner owns the run, -2 when the list is shorter than the index.
 */
const saveCheckpointScript = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local from = tonumber(ARGV[4])
local len = redis.call('LLEN', KEYS[2])
if from > len then return -2 end
if from < len then
  if from == 0 then redis.call('DEL', KEYS[2]) else redis.call('LTRIM', KEYS[2], 0, from - 1) end
end
for i = 5, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`;

export interface StateStoreOptions {
  /** How long a task's records are kept after it ends. Default 30 days. */
  retentionMs?: number;
  /** Counts every task created and every state change this store makes (/metrics). */
  metrics?: Metrics;
}

export interface OpenQuestion {
  runId: string;
  questionId: string;
  askedAt: string;
  expiresAt: string;
}

/**
 * Task, plan and checkpoint records in Redis. Updates are atomic (compare-and-set in
 * Lua), so two bots handling two clicks on the same card can never both win. Every
 * record has a time to live: a task's records expire `retentionMs` after it ends.
 */
export class StateStore {
  readonly retentionMs: number;
  private readonly metrics: Metrics | undefined;
  /** Per run: the message objects this process last stored, to send only what changed. */
  private readonly storedMessages = new Map<string, unknown[]>();

  constructor(
    private readonly redis: Redis,
    options: StateStoreOptions = {},
  ) {
    this.retentionMs = options.retentionMs ?? defaultRetentionMs;
    this.metrics = options.metrics;
  }

  /** Time to live of a record of a task that has not ended yet. */
  private get liveTtlMs(): number {
    return this.retentionMs + liveGraceMs;
  }

  async createTask(task: Task): Promise<void> {
    const now = Date.parse(task.createdAt);
    const index = k.byRequester(task.conversation.surface, task.requester.id);
    const ok = await this.redis
      .multi()
      .set(k.task(task.id), JSON.stringify(task), 'PX', this.liveTtlMs, 'NX')
      .zadd(index, now, task.id)
      // The person's index forgets tasks whose records have expired, and expires itself when idle.
      .zremrangebyscore(index, '-inf', now - this.liveTtlMs)
      .pexpire(index, this.liveTtlMs)
      .zadd(k.active, now, task.id)
      .exec();
    if (ok?.[0]?.[1] !== 'OK') throw new HandoffError(ErrorCodes.invalidInput, `task ${task.id} already exists`);
    this.metrics?.tasksCreated.inc({ surface: task.conversation.surface });
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
   * When the task ends, every record of it starts its retention countdown.
   */
  async updateTask(id: string, change: (task: Task) => Task): Promise<{ before: Task; after: Task }> {
    const key = k.task(id);
    for (let attempt = 0; attempt < 50; attempt++) {
      const raw = await this.redis.get(key);
      if (!raw) throw new HandoffError(ErrorCodes.notFound, `no task ${id}`);
      const before = TaskSchema.parse(JSON.parse(raw));
      const after = change(before);
      const ended = isTerminal(after.state);
      const ttl = ended ? this.retentionMs : this.liveTtlMs;
      const swapped = await this.redis.eval(compareAndSet, 1, key, raw, JSON.stringify(after), String(ttl));
      if (swapped === 1) {
        this.metrics?.taskChanged(after.conversation.surface, before.state, after.state);
        // The index of plans waiting for a decision follows the state (App Home reads it).
        if (after.state === 'awaiting_approval' && before.state !== 'awaiting_approval') {
          await this.redis.zadd(k.awaiting, Date.parse(after.updatedAt), id);
        } else if (before.state === 'awaiting_approval' && after.state !== 'awaiting_approval') {
          await this.redis.zrem(k.awaiting, id);
        }
        if (ended && !isTerminal(before.state)) await this.expireTaskRecords(after);
        return { before, after };
      }
    }
    throw new HandoffError(ErrorCodes.queueUnavailable, `task ${id} is being changed by too many writers; try again`, {
      retryable: true,
    });
  }

  /**
   * Every record of an ended task gets the retention as its time to live; its artifacts
   * are queued for removal at the same time. Idempotent.
   */
  async expireTaskRecords(task: Task): Promise<void> {
    const ttl = this.retentionMs;
    const m = this.redis.multi();
    m.pexpire(k.task(task.id), ttl);
    for (let v = 1; v <= task.planVersion; v++) m.pexpire(k.plan(task.id, v), ttl);
    if (task.runId) {
      for (const key of [
        k.checkpoint(task.runId),
        k.checkpointMessages(task.runId),
        k.runOwner(task.runId),
        k.answers(task.runId),
        k.actionDecisions(task.runId),
      ])
        m.pexpire(key, ttl);
    }
    for (const key of [k.question(task.id), k.threadMessages(task.id), k.messages(task.id), k.cancel(task.id)])
      m.pexpire(key, ttl);
    // Each plan version's fan-out records and the task's parallel slots (workstream-store.ts).
    for (let v = 1; v <= task.planVersion; v++) m.pexpire(`${prefix}workstreams:${task.id}:v${v}`, ttl);
    m.pexpire(`${prefix}workstreams:${task.id}:slots`, ttl);
    const c = task.conversation;
    m.pexpire(k.thread(c.surface, c.channel, c.thread), ttl);
    // Outlives the task's records, so a reply after they are gone is answered, not ignored.
    m.set(k.threadEnded(c.surface, c.channel, c.thread), task.id, 'PX', ttl + tombstoneMs);
    m.zrem(k.active, task.id);
    m.zrem(k.awaiting, task.id);
    m.zadd(k.artifactRetention, Date.now() + ttl, task.id);
    await m.exec();
    if (task.runId) this.storedMessages.delete(task.runId);
  }

  /** A person's own tasks on a surface, newest first. */
  async taskIdsOf(surface: string, userId: string, limit: number): Promise<string[]> {
    return this.redis.zrevrange(k.byRequester(surface, userId), 0, limit - 1);
  }

  /** Tasks whose plan waits for approval, oldest first (the longest waiting on top). */
  async awaitingApprovalIds(limit: number): Promise<string[]> {
    return this.redis.zrange(k.awaiting, 0, limit - 1);
  }

  /** Tasks that have not ended, oldest first (the reconciler walks them). */
  async activeTaskIds(limit: number): Promise<string[]> {
    return this.redis.zrange(k.active, 0, limit - 1);
  }

  /** Drops an id from the index of live tasks (its record is gone). */
  async forgetActive(taskId: string): Promise<void> {
    await this.redis.zrem(k.active, taskId);
  }

  /** Ended tasks whose artifacts are past their retention. */
  async artifactsDue(now: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(k.artifactRetention, '-inf', now, 'LIMIT', 0, limit);
  }

  async artifactsRemoved(taskId: string): Promise<void> {
    await this.redis.zrem(k.artifactRetention, taskId);
  }

  async savePlan(plan: Plan): Promise<void> {
    await this.redis.set(
      k.plan(plan.taskId, plan.version),
      JSON.stringify(PlanSchema.parse(plan)),
      'PX',
      this.liveTtlMs,
    );
  }

  async getPlan(taskId: string, version: number): Promise<Plan | undefined> {
    const raw = await this.redis.get(k.plan(taskId, version));
    return raw ? PlanSchema.parse(JSON.parse(raw)) : undefined;
  }

  /**
   * Makes `owner` the one process allowed to write a run's checkpoint. A runner that
   * picks a run up claims it; the runner it took over from finds out at its next save.
   */
  async claimRun(runId: string, owner: string): Promise<void> {
    await this.redis.set(k.runOwner(runId), owner, 'PX', this.liveTtlMs);
  }

  /**
   * Saves a checkpoint: the bookkeeping whole, the transcript incrementally (only the
   * messages that changed since this process last saved it). With `owner`, the save
   * is refused when another runner has claimed the run since.
   */
  async saveCheckpoint(checkpoint: Checkpoint, owner?: string): Promise<void> {
    const { messages, ...head } = CheckpointSchema.parse(checkpoint);
    const runId = checkpoint.runId;
    const stored = this.storedMessages.get(runId);
    let from = 0;
    if (stored) {
      // The loop replaces arrays but keeps message objects; the first one that differs is where to start.
      while (from < stored.length && from < checkpoint.messages.length && stored[from] === checkpoint.messages[from])
        from++;
    }
    const send = async (start: number) =>
      (await this.redis.eval(
        saveCheckpointScript,
        3,
        k.checkpoint(runId),
        k.checkpointMessages(runId),
        k.runOwner(runId),
        owner ?? '',
        JSON.stringify({ ...head, messageCount: messages.length }),
        String(this.liveTtlMs),
        String(start),
        ...checkpoint.messages.slice(start).map((m) => JSON.stringify(m)),
      )) as number;
    let result = await send(from);
    // Another process wrote less than this one thought (a restart): send the whole transcript.
    if (result === -2) result = await send(0);
    if (result === -1) {
      this.storedMessages.delete(runId);
      throw new HandoffError(ErrorCodes.runTakenOver, `another runner has taken over run ${runId}`);
    }
    this.storedMessages.set(runId, [...checkpoint.messages]);
  }

  /** The run's checkpoint; without `messages` only its bookkeeping is read (messages come back empty). */
  async getCheckpoint(runId: string, options: { messages?: boolean } = {}): Promise<Checkpoint | undefined> {
    const raw = await this.redis.get(k.checkpoint(runId));
    if (!raw) return undefined;
    const head = JSON.parse(raw) as Record<string, unknown>;
    // Checkpoints written before the transcript moved to its own list still carry it inline.
    if (Array.isArray(head.messages)) return CheckpointSchema.parse(head);
    const withMessages = options.messages ?? true;
    const count = typeof head.messageCount === 'number' ? head.messageCount : 0;
    const rawMessages = withMessages ? await this.redis.lrange(k.checkpointMessages(runId), 0, count - 1) : [];
    if (withMessages && rawMessages.length < count)
      throw new HandoffError(ErrorCodes.notFound, `the transcript of run ${runId} is incomplete`);
    const messages = rawMessages.map((m) => JSON.parse(m) as unknown);
    const checkpoint = CheckpointSchema.parse({ ...head, messages });
    if (withMessages) this.storedMessages.set(runId, [...checkpoint.messages]);
    return withMessages ? checkpoint : { ...checkpoint, messages: [] };
  }

  /** Opens the agent's question: the first reply posted in the thread after this is its answer. */
  async openQuestion(taskId: string, question: OpenQuestion): Promise<void> {
    await this.redis.set(k.question(taskId), JSON.stringify(question), 'PX', this.liveTtlMs);
  }

  async getOpenQuestion(taskId: string): Promise<OpenQuestion | undefined> {
    const raw = await this.redis.get(k.question(taskId));
    return raw ? (JSON.parse(raw) as OpenQuestion) : undefined;
  }

  /** Binds an answer to its question; only the first answer counts. Returns whether this one did. */
  async recordAnswer(runId: string, answer: QuestionAnswer): Promise<boolean> {
    const key = k.answers(runId);
    const [[, set]] = (await this.redis
      .multi()
      .hsetnx(key, answer.questionId, JSON.stringify(QuestionAnswerSchema.parse(answer)))
      .pexpire(key, this.liveTtlMs)
      .exec()) as [[Error | null, number]];
    return set === 1;
  }

  async getAnswer(runId: string, questionId: string): Promise<QuestionAnswer | undefined> {
    const raw = await this.redis.hget(k.answers(runId), questionId);
    return raw ? QuestionAnswerSchema.parse(JSON.parse(raw)) : undefined;
  }

  /** A message posted in the thread while the run works; the agent gets it at its next turn. */
  async pushThreadMessage(taskId: string, message: ThreadMessage): Promise<void> {
    const key = k.threadMessages(taskId);
    await this.redis
      .multi()
      .rpush(key, JSON.stringify(ThreadMessageSchema.parse(message)))
      // A thread that floods the agent keeps only its newest messages.
      .ltrim(key, -50, -1)
      .pexpire(key, this.liveTtlMs)
      .exec();
  }

  /** Thread messages the agent has not been given yet, oldest first. */
  async threadMessages(taskId: string): Promise<ThreadMessage[]> {
    const raw = await this.redis.lrange(k.threadMessages(taskId), 0, -1);
    return raw.map((r) => ThreadMessageSchema.parse(JSON.parse(r)));
  }

  /** Drops the first `count` thread messages (the agent has them in its checkpoint now). */
  async consumeThreadMessages(taskId: string, count: number): Promise<void> {
    if (count > 0) await this.redis.ltrim(k.threadMessages(taskId), count, -1);
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
    const key = k.actionDecisions(runId);
    const [[, set]] = (await this.redis
      .multi()
      .hsetnx(key, decision.approvalId, JSON.stringify(decision))
      .pexpire(key, this.liveTtlMs)
      .exec()) as [[Error | null, number]];
    return set === 1;
  }

  async getActionDecision(runId: string, approvalId: string): Promise<ActionDecision | undefined> {
    const raw = await this.redis.hget(k.actionDecisions(runId), approvalId);
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
    // Written after the task ended too (the result card): the retention set then is kept.
    await this.redis.eval(
      `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end return 1`,
      1,
      k.messages(taskId),
      slot,
      ref,
      String(this.liveTtlMs),
    );
  }

  async getMessageRef(taskId: string, slot: string): Promise<string | undefined> {
    return (await this.redis.hget(k.messages(taskId), slot)) ?? undefined;
  }

  /** Where each workstream of a plan version's fan-out ended, by id (workstream-store.ts); empty without one. */
  async workstreamStates(taskId: string, version: number): Promise<Map<string, WorkstreamState>> {
    const records = await new WorkstreamStore(this.redis).all({ taskId, version });
    return new Map([...records].map(([id, r]) => [id, r.state]));
  }

  /** Progress events may arrive out of order; only a newer one is shown. Returns true when `seq` is newer. */
  async advanceProgressSeq(taskId: string, seq: number): Promise<boolean> {
    const r = await this.redis.eval(
      `local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1') if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'seq', ARGV[1]) if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1 end return 0`,
      1,
      k.messages(taskId),
      String(seq),
      String(this.liveTtlMs),
    );
    return r === 1;
  }

  async linkThread(surface: string, channel: string, thread: string, taskId: string): Promise<void> {
    await this.redis.set(k.thread(surface, channel, thread), taskId, 'PX', this.liveTtlMs);
  }

  async taskForThread(surface: string, channel: string, thread: string): Promise<string | undefined> {
    return (await this.redis.get(k.thread(surface, channel, thread))) ?? undefined;
  }

  /**
   * The task a thread belonged to after its records expired: the thread's tombstone (an id
   * and nothing else), kept `tombstoneMs` longer than the task, so a late reply gets an answer.
   */
  async endedTaskForThread(surface: string, channel: string, thread: string): Promise<string | undefined> {
    return (await this.redis.get(k.threadEnded(surface, channel, thread))) ?? undefined;
  }

  /**
   * A follow-up plans an ended task again: its records live as a live task's do once more,
   * it leaves the artifact retention queue, and what belonged to the last run (progress
   * and result messages, the cancel flag, thread messages, the open question) is cleared
   * so the next run starts clean. `task` is the task as it is now (not ended).
   */
  async reviveTaskRecords(task: Task): Promise<void> {
    const ttl = this.liveTtlMs;
    const m = this.redis.multi();
    for (let v = 1; v <= task.planVersion; v++) m.pexpire(k.plan(task.id, v), ttl);
    const c = task.conversation;
    m.pexpire(k.thread(c.surface, c.channel, c.thread), ttl);
    m.pexpire(k.messages(task.id), ttl);
    m.hdel(k.messages(task.id), 'seq', 'progress', 'result', 'approval:last');
    m.del(k.cancel(task.id), k.threadMessages(task.id), k.question(task.id));
    m.zrem(k.artifactRetention, task.id);
    m.zadd(k.active, Date.parse(task.updatedAt), task.id);
    await m.exec();
  }

  /**
   * True the first time `key` is seen within `ttlMs`: a notice (e.g. "this task has
   * ended") is posted once per person and task, not under every message of a thread.
   */
  async firstNotice(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(k.notice(key), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** A sandbox kept (paused) while its run waits, until `untilMs`; the janitor removes it after. */
  async keepSandbox(containerId: string, untilMs: number): Promise<void> {
    await this.redis.zadd(k.keptSandboxes, untilMs, containerId);
  }

  async releaseSandbox(containerId: string): Promise<void> {
    await this.redis.zrem(k.keptSandboxes, containerId);
  }

  /** Until when a kept sandbox may stay, or undefined when it is not kept. */
  async sandboxKeptUntil(containerId: string): Promise<number | undefined> {
    const score = await this.redis.zscore(k.keptSandboxes, containerId);
    return score === null ? undefined : Number(score);
  }

  /** Which runner uses a sandbox now (a kept one can be resumed by another runner on the same engine). */
  async setSandboxOwner(containerId: string, runnerId: string): Promise<void> {
    await this.redis.hset(k.sandboxOwners, containerId, runnerId);
  }

  async sandboxOwner(containerId: string): Promise<string | undefined> {
    return (await this.redis.hget(k.sandboxOwners, containerId)) ?? undefined;
  }

  async forgetSandbox(containerId: string): Promise<void> {
    await this.redis.multi().hdel(k.sandboxOwners, containerId).zrem(k.keptSandboxes, containerId).exec();
  }

  /** A lock held by one process at a time for `ttlMs` (the reconciler's turn). True when taken. */
  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(k.lock(name), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** A runner says it is alive; its sandboxes are orphans once this lapses. */
  async runnerHeartbeat(runnerId: string, ttlMs: number): Promise<void> {
    await this.redis.set(k.runner(runnerId), String(Date.now()), 'PX', ttlMs);
  }

  async runnerAlive(runnerId: string): Promise<boolean> {
    return (await this.redis.exists(k.runner(runnerId))) === 1;
  }

  async runnerGone(runnerId: string): Promise<void> {
    await this.redis.del(k.runner(runnerId));
  }

  /**
   * What task records cost in Redis, for `handoff doctor`: how many there are (a scan,
   * capped) and their average size over a sample, measured with MEMORY USAGE.
   */
  async taskMemoryReport(
    sample = 20,
  ): Promise<{ tasks: number; sampled: number; averageBytes: number; capped: boolean }> {
    const ids: string[] = [];
    let tasks = 0;
    let cursor = '0';
    const cap = 100_000;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${prefix}task:*`, 'COUNT', 1000);
      cursor = next;
      tasks += keys.length;
      for (const key of keys) if (ids.length < sample) ids.push(key.slice(`${prefix}task:`.length));
    } while (cursor !== '0' && tasks < cap);
    let total = 0;
    let sampled = 0;
    for (const id of ids) {
      const task = await this.getTask(id).catch(() => undefined);
      if (!task) continue;
      total += await this.taskMemoryBytes(task);
      sampled++;
    }
    return { tasks, sampled, averageBytes: sampled ? Math.round(total / sampled) : 0, capped: cursor !== '0' };
  }

  /**
   * Bytes Redis uses for a task's own records (task, plans, checkpoint and transcript,
   * message refs), measured with MEMORY USAGE; for `handoff doctor`.
   */
  async taskMemoryBytes(task: Task): Promise<number> {
    const keys = [k.task(task.id), k.messages(task.id), k.threadMessages(task.id), k.question(task.id)];
    for (let v = 1; v <= task.planVersion; v++) keys.push(k.plan(task.id, v));
    if (task.runId)
      keys.push(
        k.checkpoint(task.runId),
        k.checkpointMessages(task.runId),
        k.answers(task.runId),
        k.actionDecisions(task.runId),
      );
    let total = 0;
    for (const key of keys) total += Number((await this.redis.memory('USAGE', key)) ?? 0);
    return total;
  }
}
