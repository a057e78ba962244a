import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One queue's depth at scrape time (read from BullMQ by src/queue/queue-depth.ts). */
export interface QueueDepth {
  /** Short queue name: plan, run, notify, schedule, workstream. */
  queue: string;
  waiting: number;
  active: number;
  delayed: number;
  /** Seconds the oldest waiting job has been ready to run; 0 when none waits. */
  oldestWaitingAgeSeconds: number;
}

/** Slack and Teams calls: `ok`, `rate_limited` (HTTP 429) or `error` (anything else that failed). */
export type ChatApiOutcome = 'ok' | 'rate_limited' | 'error';

/** States in which a task has a run going (or parked for a person), and the states a run ends in. */
const runStates = new Set(['running', 'waiting_for_approval', 'waiting_for_answer']);
const runOutcomes = new Set(['succeeded', 'failed', 'cancelled']);

/** Token kinds, as the model API bills them. */
export const tokenTypes = ['input', 'output', 'cache_read', 'cache_write'] as const;

// Seconds: from a quick tool call to a long run (default buckets stop at 10 s).
const shortBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const longBuckets = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400];
const waitBuckets = [5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 43_200, 86_400];

/**
 * Prometheus metrics of one process (bot, runner, or both under `handoff dev`), served
 * at /metrics. One object per process, made in main.ts and passed down through the
 * dependency objects (Runner deps, Gateway deps, the stores' options) rather than a
 * module-level registry: tests run several Handoffs in one process, and each must
 * count only its own work.
 *
 * Label values are bounded: states, surfaces, outcomes, action kinds, API method
 * names and channel ids; never a task id, a person or a secret.
 */
export class Metrics {
  readonly registry = new Registry();
  private queueSource: (() => Promise<QueueDepth[]>) | undefined;
  // Both queue gauges are filled from one read per scrape (prom-client collects them in parallel).
  private queueRead: { at: number; done: Promise<QueueDepth[] | undefined> } | undefined;
  private readonly on = { registers: [this.registry] };

  readonly tasksCreated = new Counter({
    name: 'handoff_tasks_created_total',
    help: 'Tasks created, by the surface they came from',
    labelNames: ['surface'] as const,
    ...this.on,
  });
  /**
   * Every state change of a task (from → to). A counter rather than a gauge: with several
   * bots and runners no process knows every task, but each counts the changes it made,
   * and `sum by (to) (rate(...))` is what a dashboard plots.
   */
  readonly taskTransitions = new Counter({
    name: 'handoff_task_transitions_total',
    help: 'Task state changes, by surface, previous state and new state',
    labelNames: ['surface', 'from', 'to'] as const,
    ...this.on,
  });
  readonly planDuration = new Histogram({
    name: 'handoff_plan_duration_seconds',
    help: 'Time a runner took to draft a plan (sandbox, model calls, saving), for plans that became ready',
    buckets: longBuckets,
    ...this.on,
  });
  readonly approvalWait = new Histogram({
    name: 'handoff_approval_wait_seconds',
    help: 'Time from a plan or paused action being put to approvers to the deciding click',
    labelNames: ['kind', 'outcome'] as const,
    buckets: waitBuckets,
    ...this.on,
  });
  readonly runsStarted = new Counter({
    name: 'handoff_runs_started_total',
    help: 'Runs started (an approved plan taken off the run queue for the first time)',
    labelNames: ['surface'] as const,
    ...this.on,
  });
  readonly runsFinished = new Counter({
    name: 'handoff_runs_finished_total',
    help: 'Runs that ended, by outcome (succeeded, failed, cancelled)',
    labelNames: ['surface', 'outcome'] as const,
    ...this.on,
  });
  readonly runDuration = new Histogram({
    name: 'handoff_run_duration_seconds',
    help: 'Working time of a run that ended (across runners; time waiting for a person not counted)',
    labelNames: ['outcome'] as const,
    buckets: longBuckets,
    ...this.on,
  });
  readonly toolCalls = new Counter({
    name: 'handoff_tool_calls_total',
    help: 'Tool calls of the agent, by action kind, trust level and decision (ran, refused, paused)',
    labelNames: ['kind', 'trust_level', 'decision'] as const,
    ...this.on,
  });
  readonly sandboxCreate = new Histogram({
    name: 'handoff_sandbox_create_seconds',
    help: 'Time to create and start a sandbox container, by outcome (ok, error)',
    labelNames: ['outcome'] as const,
    buckets: shortBuckets,
    ...this.on,
  });
  readonly sandboxExec = new Histogram({
    name: 'handoff_sandbox_exec_seconds',
    help: 'Time of one command in a sandbox, by outcome (ok, nonzero exit, timeout, error)',
    labelNames: ['outcome'] as const,
    buckets: shortBuckets,
    ...this.on,
  });
  readonly sandboxPoolClaims = new Counter({
    name: 'handoff_sandbox_pool_claims_total',
    help: 'Sandboxes asked of the warm pool, by outcome (hit, empty, unservable)',
    labelNames: ['outcome'] as const,
    ...this.on,
  });
  readonly sandboxPoolIdle = new Gauge({
    name: 'handoff_sandbox_pool_idle',
    help: 'Idle containers in this runner’s warm pool',
    ...this.on,
  });
  readonly queueJobs = new Gauge({
    name: 'handoff_queue_jobs',
    help: 'Jobs in a BullMQ queue by state (waiting, active, delayed), read at scrape time',
    labelNames: ['queue', 'state'] as const,
    collect: async () => {
      const depths = await this.readQueues();
      this.queueJobs.reset();
      for (const d of depths ?? []) {
        this.queueJobs.set({ queue: d.queue, state: 'waiting' }, d.waiting);
        this.queueJobs.set({ queue: d.queue, state: 'active' }, d.active);
        this.queueJobs.set({ queue: d.queue, state: 'delayed' }, d.delayed);
      }
    },
    ...this.on,
  });
  readonly queueOldestWaitingAge = new Gauge({
    name: 'handoff_queue_oldest_waiting_age_seconds',
    help: 'Seconds the oldest waiting job of a queue has been ready to run (0 when none waits), read at scrape time',
    labelNames: ['queue'] as const,
    collect: async () => {
      const depths = await this.readQueues();
      this.queueOldestWaitingAge.reset();
      for (const d of depths ?? []) this.queueOldestWaitingAge.set({ queue: d.queue }, d.oldestWaitingAgeSeconds);
    },
    ...this.on,
  });
  readonly modelRequest = new Histogram({
    name: 'handoff_model_request_seconds',
    help: 'Time of one model request (planning and runs), from sending it to having the whole reply, by outcome (ok, error)',
    labelNames: ['outcome'] as const,
    buckets: shortBuckets,
    ...this.on,
  });
  readonly modelTokens = new Counter({
    name: 'handoff_model_tokens_total',
    help: 'Model tokens used by planning and runs, by type (input, output, cache_read, cache_write) and channel',
    labelNames: ['type', 'surface', 'channel'] as const,
    ...this.on,
  });
  readonly modelCost = new Counter({
    name: 'handoff_model_cost_usd_total',
    help: 'Estimated model cost in US dollars (configured prices), by channel',
    labelNames: ['surface', 'channel'] as const,
    ...this.on,
  });
  readonly chatApiCalls = new Counter({
    name: 'handoff_chat_api_calls_total',
    help: 'Calls to the Slack Web API and the Teams Bot Connector, by surface, method and outcome (ok, rate_limited, error)',
    labelNames: ['surface', 'method', 'outcome'] as const,
    ...this.on,
  });
  readonly chatApiRateLimited = new Counter({
    name: 'handoff_chat_api_rate_limited_total',
    help: 'Slack and Teams answers with HTTP 429 (rate limited), by surface and method',
    labelNames: ['surface', 'method'] as const,
    ...this.on,
  });
  readonly auditAppend = new Histogram({
    name: 'handoff_audit_append_seconds',
    help: 'Time to append one audit record (hash chain in Redis), by outcome (ok, error)',
    labelNames: ['outcome'] as const,
    buckets: shortBuckets,
    ...this.on,
  });
  readonly runnerReady = new Gauge({
    name: 'handoff_runner_ready',
    help: '1 when the runner’s workers are connected and Docker answers (last /readyz check), else 0',
    ...this.on,
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Where the queue gauges are read from at scrape time (main.ts wires the BullMQ reader). */
  observeQueues(source: () => Promise<QueueDepth[]>): void {
    this.queueSource = source;
  }

  /**
   * One read shared by the scrape's collectors. A read that fails (Redis away) leaves
   * the queue series out of this scrape rather than failing /metrics.
   */
  private readQueues(): Promise<QueueDepth[] | undefined> {
    const source = this.queueSource;
    if (!source) return Promise.resolve(undefined);
    const now = Date.now();
    if (this.queueRead && now - this.queueRead.at < 500) return this.queueRead.done;
    const done = source().catch(() => undefined);
    this.queueRead = { at: now, done };
    return done;
  }

  /**
   * A state change of a task (StateStore.updateTask, whichever process made it). Runs are
   * counted here too, so every way a run ends (its runner, a Cancel click on a parked run,
   * an expired approval, a lost runner) is counted once: a run starts at `queued → running`
   * and ends when a running or waiting task reaches an end state.
   */
  taskChanged(surface: string, from: string, to: string): void {
    if (from === to) return;
    this.taskTransitions.inc({ surface, from, to });
    if (from === 'queued' && to === 'running') this.runsStarted.inc({ surface });
    if (runStates.has(from) && runOutcomes.has(to)) this.runsFinished.inc({ surface, outcome: to });
  }

  /** Tokens and estimated cost of one planning or one run, charged to its channel. */
  modelUsage(
    conversation: { surface: string; channel: string },
    usage: { inputTokens: number; outputTokens: number; cacheReadTokens: number; cacheWriteTokens: number },
    costUsd: number,
  ): void {
    const where = { surface: conversation.surface, channel: conversation.channel };
    const by: Record<(typeof tokenTypes)[number], number> = {
      input: usage.inputTokens,
      output: usage.outputTokens,
      cache_read: usage.cacheReadTokens,
      cache_write: usage.cacheWriteTokens,
    };
    for (const type of tokenTypes) if (by[type] > 0) this.modelTokens.inc({ type, ...where }, by[type]);
    if (costUsd > 0) this.modelCost.inc(where, costUsd);
  }

  /** One Slack or Teams API call and how it ended. */
  chatApiCall(surface: 'slack' | 'teams', method: string, outcome: ChatApiOutcome): void {
    this.chatApiCalls.inc({ surface, method, outcome });
    if (outcome === 'rate_limited') this.chatApiRateLimited.inc({ surface, method });
  }

  /** Seconds since `startMs` (a `performance.now()` reading). */
  static since(startMs: number): number {
    return (performance.now() - startMs) / 1000;
  }
}
