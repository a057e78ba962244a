// Scheduled briefs, each figure beside a bare-BullMQ baseline measured in the same script
// (the ratio is the figure; absolute times drift on a shared machine):
//   1. tick accuracy: `handoff dev` in-process (demo model, real Docker sandbox, its own
//      redis-server) runs the demo's sales-brief schedule every 20 s; scheduled time → the
//      brief's top-level console message, and → the brief finished. Baseline: a bare job
//      scheduler with the same pattern and a worker that records its lateness, at the same time.
//   2. 1,000 schedules: Redis used_memory of the records and clocks, and the bot process's
//      RSS / heap and time for a Gateway's reconcile over them. Baseline: 1,000 bare job
//      schedulers with the same patterns (no records), listed by a bare Queue.
//   3. 100 schedules ticking on the same minute, two bots' schedule workers, a recording
//      surface and no runner: lateness of each tick's top-level post. Baseline: 100 bare job
//      schedulers on one minute, two bare workers at the same concurrency doing nothing.
// BENCH_PARTS (default 1,2,3) picks parts; BENCH_TICKS (20), BENCH_SCHEDULES (1000) and
// BENCH_SAME_MINUTE (100) scale them. Ctrl-C stops everything the bench started.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Job, Queue, Worker } from 'bullmq';
import Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { defaultPlanPolicy, planHash } from '../src/approvals/index.ts';
import { type ChatSurface, ConsoleStore, Gateway, startScheduleWorker, type View } from '../src/bot/index.ts';
import {
  type ChannelRef,
  type ConversationRef,
  type Identity,
  isTerminal,
  type Plan,
  type Schedule,
  tickTaskId,
} from '../src/core/index.ts';
import { Metrics } from '../src/observability/index.ts';
import { Queues, queueNames } from '../src/queue/index.ts';
import {
  AuditLog,
  closeConnection,
  createQueueConnection,
  createRecordConnection,
  type EmbeddedRedis,
  LocalArtifactStore,
  ScheduleStore,
  StateStore,
  startRedisServer,
  waitForReady,
} from '../src/storage/index.ts';
import { testPlan } from '../test/helpers/fixtures.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { print, summary } from './stats.ts';

const tickCount = Number(process.env.BENCH_TICKS ?? 20);
const scheduleCount = Number(process.env.BENCH_SCHEDULES ?? 1000);
const sameMinuteCount = Number(process.env.BENCH_SAME_MINUTE ?? 100);
const parts = new Set((process.env.BENCH_PARTS ?? '1,2,3').split(',').map((p) => p.trim()));
const everyTwentySeconds = '*/20 * * * * *';
const logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' });
const owner: Identity = { id: 'u-bench', name: 'Bench' };
const approver: Identity = { id: 'u-bench-approver', name: 'Bench Approver' };
const retentionMs = 86_400_000;
/** Tick jobs as Handoff's clock makes them (see Queues.upsertScheduleClock). */
const tickTemplate = (scheduleId: string) => ({
  name: 'tick',
  data: { scheduleId },
  opts: { attempts: 5, backoff: { type: 'exponential' as const, delay: 2000 } },
});

// ---------------------------------------------------------------------------
// Stopping: every part registers what it started; Ctrl-C makes the waits throw, so the
// parts' own `finally` blocks stop it, and a second Ctrl-C (or a stuck cleanup) forces it.

const interrupted = new AbortController();
const openScopes = new Set<Scope>();

/** What one part started, stopped newest first; every step runs even if one fails. */
class Scope {
  private steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
  constructor() {
    openScopes.add(this);
  }
  add(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }
  async close(): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    for (const step of steps) {
      try {
        await withTimeout(step.run(), 60_000, `stopping ${step.name}`);
      } catch (err) {
        console.error(`cleanup: could not stop ${step.name}: ${(err as Error).message}`);
      }
    }
    openScopes.delete(this);
  }
}

async function closeAllScopes(): Promise<void> {
  for (const scope of [...openScopes].reverse()) await scope.close();
}

let signals = 0;
const onSignal = (signal: NodeJS.Signals) => {
  signals++;
  if (signals === 1) {
    console.error(`\n${signal}: stopping everything the bench started…`);
    interrupted.abort(new Error(`interrupted by ${signal}`));
    // The parts unwind through their `finally`; if that hangs, stop what is left and leave.
    setTimeout(() => void closeAllScopes().finally(() => process.exit(130)), 90_000).unref();
  } else {
    console.error(`${signal} again: stopping what is left now`);
    void closeAllScopes().finally(() => process.exit(130));
  }
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (interrupted.signal.aborted) return reject(interrupted.signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(interrupted.signal.reason);
    };
    const timer = setTimeout(() => {
      interrupted.signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    interrupted.signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function checkInterrupted(): void {
  if (interrupted.signal.aborted) throw interrupted.signal.reason;
}

// ---------------------------------------------------------------------------
// Shared pieces

/** A chat surface that remembers when each brief's top-level message was posted. */
class RecordingSurface implements ChatSurface {
  readonly name = 'web' as const;
  /** Top-level posts: when, and for which schedule (a brief view carries its id). */
  topLevel: Array<{ at: number; scheduleId?: string; ref: string }> = [];
  private seq = 0;
  async post(_c: ConversationRef, _view: View): Promise<string> {
    return `m${++this.seq}`;
  }
  async update(_c: ConversationRef, _ref: string, _view: View): Promise<void> {}
  async postToChannel(_target: ChannelRef, view: View): Promise<string> {
    const at = Date.now();
    const ref = `top${++this.seq}`;
    const scheduleId = (view as { scheduleId?: unknown }).scheduleId;
    this.topLevel.push({ at, ref, ...(typeof scheduleId === 'string' ? { scheduleId } : {}) });
    return ref;
  }
  async notifyPerson(_t: ChannelRef, _personId: string, _view: View): Promise<void> {}
  async person(_t: ChannelRef, _personId: string): Promise<undefined> {
    return undefined;
  }
}

/** One bot's worth of stores and a Gateway over a Redis (queue prefix `hfq`, as Handoff's default). */
function bot(redis: Redis, artifactsDir: string, surface: ChatSurface, publicUrl = 'http://127.0.0.1:1') {
  const queues = new Queues({ connection: redis, retentionMs });
  const state = new StateStore(redis, { retentionMs });
  const schedules = new ScheduleStore(redis, retentionMs);
  const store = new LocalArtifactStore({ root: artifactsDir, signingSecret: 'b'.repeat(32), publicUrl });
  const gateway = new Gateway({
    state,
    schedules,
    queues,
    audit: new AuditLog(redis),
    store,
    logger,
    metrics: new Metrics(),
    policy: defaultPlanPolicy(false),
    limits: { maxUploadBytes: 10 * 1024 * 1024, maxFilesPerRequest: 5, maxRequestChars: 4000, downloadTtlMs: 60_000 },
    demo: true,
    surfaces: [surface],
  });
  return { queues, state, schedules, store, gateway };
}

/** A standing plan shaped like the demo's sales brief. */
function salesBriefPlan(taskId: string): Plan {
  return testPlan({
    taskId,
    version: 1,
    summary:
      'Write a one-page sales brief from sales.csv: the date and a few bullet points with the total, the regions, the top region and its share, and the smallest region, as markdown and a PDF.',
    deliverables: [
      { name: 'sales-brief.md', type: 'md' },
      { name: 'sales-brief.pdf', type: 'pdf' },
    ],
    demo: true,
    model: 'demo',
  });
}

/** An active schedule as approval saves it (see Schedules.activate). */
function scheduleRecord(id: string, pattern: string, channel: string, approvedAt: string): Schedule {
  const plan = salesBriefPlan(`t_${id.slice(2)}`);
  return {
    id,
    createdAt: approvedAt,
    updatedAt: approvedAt,
    owner,
    target: { surface: 'web', channel },
    request: 'a sales brief from the attached CSV',
    inputs: [
      {
        name: 'sales.csv',
        key: `schedules/${id}/in/1-sales.csv`,
        mediaType: 'text/csv',
        size: 2_634,
        sha256: 'a'.repeat(64),
      },
    ],
    timing: {
      pattern,
      tz: 'UTC',
      tzSource: 'given',
      words: `cron ${pattern}`,
      text: `cron ${pattern}`,
      catchUp: 'latest',
      catchUpWindowMs: 6 * 3_600_000,
    },
    plan,
    planHash: planHash(plan),
    approvedBy: [approver],
    approvedAt,
    sourceTaskId: plan.taskId,
    status: 'active',
    failuresInARow: 0,
    lastDigests: [],
    demo: true,
  };
}

/** The scheduled time of a clock's job, as Schedules.tick reads it. */
function scheduledAt(job: Pick<Job, 'id' | 'opts'>): number {
  const prev = (job.opts as { prevMillis?: number }).prevMillis;
  if (typeof prev === 'number' && prev > 0) return prev;
  return Number(job.id?.split(':').at(-1));
}

/** A BullMQ connection (no retry limit) that the scope closes; BullMQ leaves given connections open. */
function queueConnection(scope: Scope, url: string, name: string): Redis {
  const connection = createQueueConnection(url);
  scope.add(`${name} connection`, () => closeConnection(connection));
  return connection;
}

async function freshRedis(scope: Scope, name: string): Promise<{ server: EmbeddedRedis; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), `handoff-bench-${name}-`));
  scope.add(`${name} temp dir`, () => rm(dir, { recursive: true, force: true }));
  const server = await startRedisServer({ dir: join(dir, 'redis'), appendOnly: false });
  scope.add(`${name} redis-server`, () => server.stop());
  return { server, dir };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
}

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
/** Full collections with a turn of the event loop between, so heap figures compare retained memory. */
async function gc(): Promise<void> {
  collect();
  await new Promise((r) => setImmediate(r));
  collect();
}

function memory(): { rss: number; heap: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const mb = (bytes: number) => `${bytes < 0 ? '−' : '+'}${(Math.abs(bytes) / 1024 / 1024).toFixed(2)} MB`;
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const ms = (v: number) => `${v.toFixed(1)} ms`;
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a (baseline 0)');

/** The summary's lines by part, printed in part order whatever order the parts ran in. */
const summaryLines: Record<'1' | '2' | '3', string[]> = { '1': [], '2': [], '3': [] };
let failed = false;

// ---------------------------------------------------------------------------
// 1. Tick accuracy with real runs

interface TickRow {
  taskId: string;
  scheduledAtMs: number;
  postRef: string;
  postedAtMs?: number;
  finishedAtMs?: number;
  state?: string;
  settledAtMs?: number;
  outcome?: string;
  finalEditAtMs?: number;
}

async function tickAccuracy(): Promise<void> {
  const scope = new Scope();
  const runnerId = `bench-schedules-${process.pid}`;
  const docker = new Dockerode();
  try {
    console.log(`[1] starting handoff dev (demo model, Docker sandbox, runner ${runnerId})…`);
    const handoff = await startDevHandoff({ env: { HANDOFF_RUNNER_ID: runnerId } });
    scope.add('docker sandboxes', async () => {
      // Sandboxes outlive a runner on purpose (attach after a restart); the bench removes its own.
      const left = await docker.listContainers({ all: true, filters: { label: [`org.handoff.runner=${runnerId}`] } });
      for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
      if (left.length > 0) console.log(`[1] removed ${left.length} sandbox container(s) left by the runner`);
    });
    scope.add('handoff dev', () => handoff.close());
    checkInterrupted();
    const redis = createRecordConnection(handoff.redisUrl);
    scope.add('bench redis connection', () => closeConnection(redis));
    await waitForReady(redis);
    const b = bot(redis, join(handoff.dataDir, 'artifacts'), new RecordingSurface(), handoff.url);
    scope.add('bench queues', () => b.queues.close());
    const consoleStore = new ConsoleStore(redis);

    const csv = await readFile(new URL('../examples/sales.csv', import.meta.url));
    const proposed = await b.gateway.schedules.propose({
      conversation: { surface: 'web', channel: 'bench', thread: `bench-${Date.now().toString(36)}` },
      requester: owner,
      when: 'every day at 9',
      text: 'a sales brief from the attached CSV',
      files: [{ name: 'sales.csv', size: csv.length, body: csv }],
    });
    console.log(`[1] proposed ${proposed.id}; waiting for the runner's plan…`);
    const planDeadline = Date.now() + 180_000;
    let plan: Plan | undefined;
    for (;;) {
      const task = await b.state.requireTask(proposed.id);
      if (task.state === 'awaiting_approval') plan = await b.state.getPlan(proposed.id, 1);
      if (plan) break;
      if (isTerminal(task.state))
        throw new Error(`the proposal ended ${task.state} before a plan: ${task.failure?.message ?? ''}`);
      if (Date.now() > planDeadline) throw new Error(`no plan within 180 s (task is ${task.state})`);
      await sleep(200);
    }
    const said = await b.gateway.decide({
      taskId: proposed.id,
      planVersion: 1,
      planHash: planHash(plan),
      by: approver,
      outcome: 'approved',
    });
    const scheduleId = (await b.state.requireTask(proposed.id)).schedule?.scheduleId;
    if (!scheduleId) throw new Error(`approval did not save a schedule: ${said}`);
    const schedule = await b.schedules.require(scheduleId);
    console.log(`[1] ${said} (rule ${schedule.timing.pattern} ${schedule.timing.tz}); ticking every 20 s instead`);

    // The bare baseline: the same pattern on its own queue, a worker that records lateness.
    const bareConnection = queueConnection(scope, handoff.redisUrl, 'baseline queue');
    const bareWorkerConnection = queueConnection(scope, handoff.redisUrl, 'baseline worker');
    const barePrefix = `bench-bare-${process.pid}`;
    const bareQueue = new Queue('bench-bare-tick', { connection: bareConnection, prefix: barePrefix });
    scope.add('baseline queue', async () => {
      await bareQueue.removeJobScheduler('bare').catch(() => undefined);
      await bareQueue.obliterate({ force: true }).catch(() => undefined);
      await bareQueue.close();
    });
    const bareLateness: number[] = [];
    const bareWorker = new Worker(
      'bench-bare-tick',
      async (job) => {
        if (bareLateness.length < tickCount) bareLateness.push(Date.now() - scheduledAt(job));
      },
      { connection: bareWorkerConnection, prefix: barePrefix, concurrency: 1 },
    );
    scope.add('baseline worker', () => bareWorker.close());
    await bareWorker.waitUntilReady();

    // The rule parser refuses sub-minute rules: the record's timing and its clock are set directly.
    await b.schedules.update(scheduleId, (s) => ({ ...s, timing: { ...s.timing, pattern: everyTwentySeconds } }));
    const auditStart = await redis.llen('hf:audit');
    const clockSetAt = Date.now();
    await Promise.all([
      b.queues.upsertScheduleClock(scheduleId, everyTwentySeconds, schedule.timing.tz),
      bareQueue.upsertJobScheduler('bare', { pattern: everyTwentySeconds }, tickTemplate('bare')),
    ]);
    scope.add('schedule clock', () => b.queues.removeScheduleClock(scheduleId).catch(() => undefined));
    const clocks = await b.queues.scheduleClockIds();
    console.log(`[1] clocks now: ${JSON.stringify(clocks)}`);

    const rows = new Map<string, TickRow>();
    const other: string[] = [];
    let auditAt = auditStart;
    let clockStopped = false;
    let lastProgress = Date.now();
    const deadline = () => (rows.size === 0 ? clockSetAt + 75_000 : clockSetAt + (tickCount + 3) * 20_000 + 5 * 60_000);
    for (;;) {
      const records = (await redis.lrange('hf:audit', auditAt, -1)).map(
        (r) => JSON.parse(r) as { at: string; type: string; taskId?: string; data: Record<string, unknown> },
      );
      auditAt += records.length;
      for (const r of records) {
        if (r.data.scheduleId !== scheduleId) continue;
        if (r.type === 'schedule.tick' && r.taskId && rows.size < tickCount && !rows.has(r.taskId)) {
          const at = Date.parse(String(r.data.scheduledAt));
          if (r.taskId !== tickTaskId(scheduleId, at))
            other.push(`tick task id ${r.taskId} is not <scheduleId>-<scheduledAt base36>`);
          rows.set(r.taskId, { taskId: r.taskId, scheduledAtMs: at, postRef: String(r.data.postRef) });
          const late = Date.parse(String(r.data.startedAt)) - at;
          process.stdout.write(
            `[1] tick ${rows.size}/${tickCount} at ${new Date(at).toISOString()} opened ${late} ms late\n`,
          );
        } else if (r.type === 'schedule.tick_result' && r.taskId) {
          const row = rows.get(r.taskId);
          if (row) {
            row.settledAtMs = Date.parse(r.at);
            row.outcome = String(r.data.outcome);
          }
        } else if (r.type !== 'schedule.tick') {
          if (r.type === 'schedule.paused' || r.type === 'schedule.tick_missed')
            other.push(`${r.type}: ${JSON.stringify(r.data)}`);
        }
      }
      if (rows.size >= tickCount && !clockStopped) {
        await b.queues.removeScheduleClock(scheduleId);
        clockStopped = true;
        console.log(`[1] ${tickCount} ticks opened; clock stopped, waiting for the last briefs`);
      }
      let open = 0;
      for (const row of rows.values()) {
        if (row.postedAtMs === undefined) {
          const message = await consoleStore.get(row.postRef);
          if (message) row.postedAtMs = Date.parse(message.ts);
        }
        if (row.finishedAtMs === undefined) {
          const task = await b.state.getTask(row.taskId);
          if (task && isTerminal(task.state)) {
            row.finishedAtMs = Date.parse(task.finishedAt ?? '');
            row.state = task.state;
            process.stdout.write(
              `[1] brief ${row.taskId} ${task.state} ${row.finishedAtMs - row.scheduledAtMs} ms after its tick\n`,
            );
          }
        }
        if (row.settledAtMs !== undefined && row.finalEditAtMs === undefined) {
          const message = await consoleStore.get(row.postRef);
          const edited = message?.editedTs ? Date.parse(message.editedTs) : undefined;
          // The brief's final view is written right after its outcome is recorded.
          if (edited !== undefined && edited >= row.settledAtMs) row.finalEditAtMs = edited;
          else if (Date.now() - row.settledAtMs > 15_000) row.finalEditAtMs = Number.NaN;
        }
        if (row.finishedAtMs === undefined || row.finalEditAtMs === undefined) open++;
      }
      if (rows.size >= tickCount && open === 0) break;
      if (Date.now() > deadline()) {
        const counts = await b.queues.schedule.getJobCounts();
        const failedJobs = await b.queues.schedule.getJobs(['failed'], 0, 2);
        const reasons = failedJobs.map((j) => j.failedReason).join(' | ');
        throw new Error(
          `${rows.size} of ${tickCount} ticks opened, ${open} briefs unfinished by the deadline; schedule queue ${JSON.stringify(counts)}${reasons ? `; failed tick jobs: ${reasons}` : ''}`,
        );
      }
      if (Date.now() - lastProgress > 30_000 && rows.size === 0) {
        const counts = await b.queues.schedule.getJobCounts();
        console.log(`[1] waiting for the first tick; schedule queue ${JSON.stringify(counts)}`);
        lastProgress = Date.now();
      }
      await sleep(250);
    }

    const list = [...rows.values()].sort((x, y) => x.scheduledAtMs - y.scheduledAtMs);
    const toPost = list.filter((r) => r.postedAtMs !== undefined).map((r) => r.postedAtMs! - r.scheduledAtMs);
    const toDone = list.map((r) => r.finishedAtMs! - r.scheduledAtMs);
    const toEdit = list.filter((r) => Number.isFinite(r.finalEditAtMs)).map((r) => r.finalEditAtMs! - r.scheduledAtMs);
    const span = list.length > 1 ? (list.at(-1)!.scheduledAtMs - list[0]!.scheduledAtMs) / 20_000 + 1 : list.length;
    const outcomes = new Map<string, number>();
    for (const r of list) outcomes.set(`${r.state}/${r.outcome}`, (outcomes.get(`${r.state}/${r.outcome}`) ?? 0) + 1);
    console.log();
    print('[1] Handoff tick → top-level brief message posted (console message ts)', 'ms', toPost);
    print('[1] Handoff tick → brief task finished (finishedAt)', 'ms', toDone);
    print('[1] Handoff tick → brief message final edit (editedTs)', 'ms', toEdit);
    print('[1] bare BullMQ job scheduler lateness (processing start − scheduled)', 'ms', bareLateness);
    const post = summary(toPost);
    const bare = summary(bareLateness);
    const done = summary(toDone);
    console.log(
      `[1] ratio of medians (Handoff tick→post / bare lateness): ${ratio(post.median, bare.median)}; p95 ${ratio(post.p95, bare.p95)}`,
    );
    console.log(
      `[1] ticks: ${list.length} opened over ${span} 20-s slots; outcomes (task/brief): ${[...outcomes].map(([k, v]) => `${k} ×${v}`).join(', ')}; messages found for ${toPost.length}, final edits for ${toEdit.length}`,
    );
    for (const line of other) console.log(`[1] note: ${line}`);
    summaryLines['1'].push(
      `1. tick accuracy (${list.length} ticks, ${everyTwentySeconds}, demo model, Docker):`,
      `   tick → post      median ${ms(post.median)}  p95 ${ms(post.p95)}  (max ${ms(post.max)})`,
      `   tick → finished  median ${ms(done.median)}  p95 ${ms(done.p95)}  (max ${ms(done.max)})`,
      `   tick → final edit median ${ms(summary(toEdit).median)}  p95 ${ms(summary(toEdit).p95)}`,
      `   bare BullMQ lateness median ${ms(bare.median)}  p95 ${ms(bare.p95)}  (n=${bare.n})`,
      `   ratio tick→post / bare lateness: median ${ratio(post.median, bare.median)}  p95 ${ratio(post.p95, bare.p95)} (near-zero baseline: noisy)`,
    );
  } catch (err) {
    failed = true;
    console.error(`[1] failed: ${(err as Error).stack ?? String(err)}`);
    summaryLines['1'].push(`1. tick accuracy: FAILED: ${(err as Error).message}`);
  } finally {
    await scope.close();
  }
}

// ---------------------------------------------------------------------------
// 2. 1,000 schedules: memory and reconcile

async function manySchedules(): Promise<void> {
  const scope = new Scope();
  try {
    console.log(`[2] fresh redis-server; ${scheduleCount} schedules…`);
    const { server, dir } = await freshRedis(scope, 'many');
    const redis = createRecordConnection(server.url);
    scope.add('redis connection', () => closeConnection(redis));
    await waitForReady(redis);
    const pattern = (i: number) => `${i % 60} * * * *`;
    const ids = Array.from({ length: scheduleCount }, (_, i) => `s_bench${i.toString().padStart(5, '0')}`);

    // Baseline first: bare job schedulers, no records, on their own prefix.
    const bareConnection = queueConnection(scope, server.url, 'baseline');
    const bareQueue = new Queue(queueNames.schedule, { connection: bareConnection, prefix: 'bare' });
    scope.add('baseline queue', () => bareQueue.close());
    await bareQueue.waitUntilReady();
    const m0 = await usedMemory(redis);
    for (const [i, id] of ids.entries())
      await bareQueue.upsertJobScheduler(id, { pattern: pattern(i), tz: 'UTC' }, tickTemplate(id));
    const m1 = await usedMemory(redis);

    // Handoff: the records, then their clocks, as approval saves them.
    const writer = new Queues({ connection: redis, retentionMs });
    scope.add('writer queues', () => writer.close());
    const store = new ScheduleStore(redis, retentionMs);
    // Approved now: reconcile has nothing to catch up, so it measures the clock walk alone.
    const approvedAt = new Date().toISOString();
    for (const [i, id] of ids.entries())
      await store.create(scheduleRecord(id, pattern(i), `bench-${i % 50}`, approvedAt));
    const m2 = await usedMemory(redis);
    for (const [i, id] of ids.entries()) await writer.upsertScheduleClock(id, pattern(i), 'UTC');
    const m3 = await usedMemory(redis);
    const bareBytes = m1 - m0;
    const recordBytes = m2 - m1;
    const clockBytes = m3 - m2;
    console.log(
      `[2] Redis used_memory: bare schedulers ${mb(bareBytes)}; Handoff records ${mb(recordBytes)}, clocks ${mb(clockBytes)}, together ${mb(recordBytes + clockBytes)}`,
    );

    // The bot process: a bare Queue listing its schedulers, then a Gateway reconciling.
    await gc();
    const p0 = memory();
    let t = performance.now();
    const listing = new Queue(queueNames.schedule, {
      connection: queueConnection(scope, server.url, 'baseline listing'),
      prefix: 'bare',
    });
    scope.add('baseline listing queue', () => listing.close());
    let listed = 0;
    for (let start = 0; ; start += 500) {
      const page = await listing.getJobSchedulers(start, start + 499, true);
      listed += page.length;
      if (page.length < 500) break;
    }
    const bareMs = performance.now() - t;
    const p1 = memory();
    await gc();
    const p1gc = memory();

    const botRedis = createRecordConnection(server.url);
    scope.add('bot connection', () => closeConnection(botRedis));
    await waitForReady(botRedis);
    await gc();
    const p2 = memory();
    t = performance.now();
    const b = bot(botRedis, join(dir, 'artifacts'), new RecordingSurface());
    scope.add('bot queues', () => b.queues.close());
    let upserts = 0;
    const upsert = b.queues.upsertScheduleClock.bind(b.queues);
    b.queues.upsertScheduleClock = (id, p, tz) => {
      upserts++;
      return upsert(id, p, tz);
    };
    const result = await b.gateway.schedules.reconcile();
    const reconcileMs = performance.now() - t;
    const firstUpserts = upserts;
    const p3 = memory();
    await gc();
    const p3gc = memory();
    t = performance.now();
    const again = await b.gateway.schedules.reconcile();
    const secondMs = performance.now() - t;
    const secondUpserts = upserts - firstUpserts;
    // Clocks lost (Redis restored from an old snapshot): reconcile makes all of them again.
    for (const id of ids) await writer.removeScheduleClock(id);
    const upsertsBefore = upserts;
    t = performance.now();
    const rebuilt = await b.gateway.schedules.reconcile();
    const rebuildMs = performance.now() - t;
    const remade = upserts - upsertsBefore;
    // The bare equivalent: upserting the same number of schedulers again from a list.
    for (const id of ids) await bareQueue.removeJobScheduler(id);
    t = performance.now();
    for (const [i, id] of ids.entries())
      await bareQueue.upsertJobScheduler(id, { pattern: pattern(i), tz: 'UTC' }, tickTemplate(id));
    const bareRebuildMs = performance.now() - t;
    console.log(
      `[2] bare Queue listing ${listed} schedulers: ${ms(bareMs)}, RSS ${mb(p1.rss - p0.rss)}, heap ${mb(p1.heap - p0.heap)} (retained after GC ${mb(p1gc.heap - p0.heap)})`,
    );
    console.log(
      `[2] Gateway + reconcile ${JSON.stringify(result)}: ${ms(reconcileMs)} (again: ${ms(secondMs)}, ${JSON.stringify(again)}), clocks re-upserted ${firstUpserts} (again: ${secondUpserts}); RSS ${mb(p3.rss - p2.rss)}, heap ${mb(p3.heap - p2.heap)} (retained after GC ${mb(p3gc.heap - p2.heap)})`,
    );
    console.log(
      `[2] clocks lost: reconcile ${JSON.stringify(rebuilt)} re-made ${remade} clocks in ${ms(rebuildMs)}; bare upsert of ${ids.length} schedulers ${ms(bareRebuildMs)}; ratio ${ratio(rebuildMs, bareRebuildMs)}`,
    );
    const perSchedule = (recordBytes + clockBytes) / scheduleCount;
    console.log(
      `[2] ratio Redis memory (Handoff records + clocks / bare schedulers): ${ratio(recordBytes + clockBytes, bareBytes)} (${kb(perSchedule)} vs ${kb(bareBytes / scheduleCount)} per schedule); reconcile time / bare listing ${ratio(reconcileMs, bareMs)}; heap ${ratio(p3.heap - p2.heap, p1.heap - p0.heap)}`,
    );
    summaryLines['2'].push(
      `2. ${scheduleCount} schedules:`,
      `   Redis used_memory  Handoff ${mb(recordBytes + clockBytes)} (records ${mb(recordBytes)}, clocks ${mb(clockBytes)})  bare ${mb(bareBytes)}  ratio ${ratio(recordBytes + clockBytes, bareBytes)}`,
      `   reconcile (Gateway created + reconcile) ${ms(reconcileMs)}, second run ${ms(secondMs)}, re-upserted ${firstUpserts}+${secondUpserts}  bare listing ${ms(bareMs)}  ratio ${ratio(reconcileMs, bareMs)}`,
      `   reconcile with every clock lost ${ms(rebuildMs)} (re-made ${remade})  bare upserts ${ms(bareRebuildMs)}  ratio ${ratio(rebuildMs, bareRebuildMs)}`,
      `   process RSS ${mb(p3.rss - p2.rss)} heap ${mb(p3.heap - p2.heap)} (retained ${mb(p3gc.heap - p2.heap)})  bare RSS ${mb(p1.rss - p0.rss)} heap ${mb(p1.heap - p0.heap)} (retained ${mb(p1gc.heap - p0.heap)})  heap ratio ${ratio(p3.heap - p2.heap, p1.heap - p0.heap)}`,
    );
  } catch (err) {
    failed = true;
    console.error(`[2] failed: ${(err as Error).stack ?? String(err)}`);
    summaryLines['2'].push(`2. ${scheduleCount} schedules: FAILED: ${(err as Error).message}`);
  } finally {
    await scope.close();
  }
}

// ---------------------------------------------------------------------------
// 3. 100 ticks on the same minute

/** The next minute boundary at least `leadMs` away, and a daily pattern that fires on it (UTC). */
function nextMinute(leadMs: number): { at: number; pattern: string } {
  const at = Math.ceil((Date.now() + leadMs) / 60_000) * 60_000;
  const d = new Date(at);
  return { at, pattern: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *` };
}

async function sameMinute(): Promise<void> {
  const scope = new Scope();
  const workers = 2;
  const concurrency = 8;
  try {
    console.log(`[3] fresh redis-server; ${sameMinuteCount} schedules on one minute, ${workers} bots…`);
    const { server, dir } = await freshRedis(scope, 'minute');
    const surface = new RecordingSurface();
    const started = new Map<string, number>();
    const bots = [];
    for (let i = 0; i < workers; i++) {
      const redis = createRecordConnection(server.url);
      scope.add(`bot ${i} connection`, () => closeConnection(redis));
      await waitForReady(redis);
      const b = bot(redis, join(dir, 'artifacts'), surface);
      scope.add(`bot ${i} queues`, () => b.queues.close());
      // When a worker picked the tick up: the same moment the bare baseline records.
      const tick = b.gateway.schedules.tick.bind(b.gateway.schedules);
      b.gateway.schedules.tick = (job) => {
        if (!started.has(job.data.scheduleId)) started.set(job.data.scheduleId, Date.now() - scheduledAt(job));
        return tick(job);
      };
      const connection = queueConnection(scope, server.url, `bot ${i} worker`);
      const worker = startScheduleWorker(b.gateway.schedules, connection, logger, { concurrency });
      scope.add(`bot ${i} schedule worker`, () => worker.close());
      await worker.waitUntilReady();
      bots.push(b);
    }
    const first = bots[0]!;
    const slot = nextMinute(20_000);
    const approvedAt = new Date().toISOString();
    const ids = Array.from({ length: sameMinuteCount }, (_, i) => `s_minute${i.toString().padStart(4, '0')}`);
    for (const [i, id] of ids.entries()) {
      await first.schedules.create(scheduleRecord(id, slot.pattern, `bench-${i % 20}`, approvedAt));
      await first.queues.upsertScheduleClock(id, slot.pattern, 'UTC');
    }
    console.log(`[3] ${ids.length} schedules at ${slot.pattern} (UTC), firing ${new Date(slot.at).toISOString()}`);
    const deadline = slot.at + 180_000;
    while (surface.topLevel.length < ids.length && Date.now() < deadline) await sleep(200);
    const postLate = surface.topLevel.map((p) => p.at - slot.at);
    const startLate = [...started.values()];
    const runs = await first.queues.run.getJobCounts('waiting', 'delayed');
    const tasks = (await Promise.all(ids.map((id) => first.state.getTask(tickTaskId(id, slot.at))))).filter(Boolean);
    console.log(
      `[3] Handoff: ${surface.topLevel.length} posts, ${tasks.length} tick tasks, runs queued ${JSON.stringify(runs)}`,
    );
    for (const b of bots) await Promise.all(ids.map((id) => b.queues.removeScheduleClock(id).catch(() => undefined)));

    // Baseline on the next minute: two bare workers, same concurrency, doing nothing.
    const bareLate: number[] = [];
    const bareQueue = new Queue('bench-bare-minute', {
      connection: queueConnection(scope, server.url, 'baseline queue'),
      prefix: 'bare',
    });
    scope.add('baseline queue', () => bareQueue.close());
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(
        'bench-bare-minute',
        async (job) => {
          bareLate.push(Date.now() - scheduledAt(job));
        },
        { connection: queueConnection(scope, server.url, `baseline worker ${i}`), prefix: 'bare', concurrency },
      );
      scope.add(`baseline worker ${i}`, () => worker.close());
      await worker.waitUntilReady();
    }
    const bareSlot = nextMinute(20_000);
    for (const id of ids)
      await bareQueue.upsertJobScheduler(id, { pattern: bareSlot.pattern, tz: 'UTC' }, tickTemplate(id));
    console.log(`[3] baseline: ${ids.length} bare schedulers firing ${new Date(bareSlot.at).toISOString()}`);
    while (bareLate.length < ids.length && Date.now() < bareSlot.at + 180_000) await sleep(200);

    console.log();
    print('[3] Handoff tick → top-level post (post − scheduled)', 'ms', postLate);
    print('[3] Handoff tick picked up (worker start − scheduled)', 'ms', startLate);
    print('[3] bare BullMQ lateness (worker start − scheduled)', 'ms', bareLate);
    const h = summary(postLate);
    const s = summary(startLate);
    const bare = summary(bareLate);
    console.log(
      `[3] ratio Handoff post / bare lateness: median ${ratio(h.median, bare.median)}, p95 ${ratio(h.p95, bare.p95)}, max ${ratio(h.max, bare.max)}`,
    );
    summaryLines['3'].push(
      `3. ${ids.length} ticks on one minute (${workers} schedule workers × concurrency ${concurrency}, no runner):`,
      `   Handoff post lateness   median ${ms(h.median)}  p95 ${ms(h.p95)}  max ${ms(h.max)}  (n=${h.n})`,
      `   Handoff pick-up lateness median ${ms(s.median)}  p95 ${ms(s.p95)}  max ${ms(s.max)}  (n=${s.n})`,
      `   bare BullMQ lateness     median ${ms(bare.median)}  p95 ${ms(bare.p95)}  max ${ms(bare.max)}  (n=${bare.n})`,
      `   ratio post / bare: median ${ratio(h.median, bare.median)}  p95 ${ratio(h.p95, bare.p95)}  max ${ratio(h.max, bare.max)}`,
    );
    if (surface.topLevel.length < ids.length || bareLate.length < ids.length)
      throw new Error(`only ${surface.topLevel.length} posts and ${bareLate.length} bare ticks of ${ids.length}`);
  } catch (err) {
    failed = true;
    console.error(`[3] failed: ${(err as Error).stack ?? String(err)}`);
    summaryLines['3'].push(`3. same-minute ticks: FAILED: ${(err as Error).message}`);
  } finally {
    await scope.close();
  }
}

// Part 2 first: its process memory figures are cleanest in a process that has done nothing yet.
const began = performance.now();
try {
  if (parts.has('2')) await manySchedules();
  if (parts.has('3') && !interrupted.signal.aborted) await sameMinute();
  if (parts.has('1') && !interrupted.signal.aborted) await tickAccuracy();
} finally {
  await closeAllScopes();
}
console.log(`\n## scheduled briefs: summary (${((performance.now() - began) / 60_000).toFixed(1)} min)`);
for (const line of [...summaryLines['1'], ...summaryLines['2'], ...summaryLines['3']]) console.log(line);
// Everything is closed; a handle a library left open must not keep the process alive.
process.exit(interrupted.signal.aborted ? 130 : failed ? 1 : 0);
