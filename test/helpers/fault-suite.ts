/**
 * The fault suite: several bot and runner processes on one real Redis (AOF on), the demo
 * model and real Docker; tasks submitted and approved through the console API while
 * processes are killed with SIGKILL and Redis is restarted (quick restarts and outages of
 * 20–30 s). It then checks what a company running Handoff on several machines relies on,
 * and reports the counts. `npm test` runs a short version, `npm run bench` the full one.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { type EmbeddedRedis, startRedisServer, verifyAuditInRedis } from '../../src/storage/index.ts';
import { Cluster, type ClusterProc, freePort, sleep } from './cluster.ts';
import { planButtons } from './console-client.ts';

const salesCsv = new URL('../../examples/sales.csv', import.meta.url).pathname;
const request = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';

export interface FaultSuiteOptions {
  tasks: number;
  /** SIGKILLs of a random bot or runner, each restarted. */
  kills: number;
  /** Quick Redis restarts (a second or two down). */
  redisRestarts: number;
  /** Redis outages of 20–30 s (counted in `redisRestarts` too). */
  longOutages: number;
  bots?: number;
  runners?: number;
  /** Pause between kills, ms (random in this range). */
  killEveryMs?: [number, number];
  log?: (line: string) => void;
}

export interface FaultSuiteReport {
  tasks: number;
  succeeded: number;
  failedWithReason: number;
  /** Tasks that never reached an end state, or failed without saying why. */
  lost: number;
  /** Tasks whose approval started more than one run. */
  duplicatedRuns: number;
  /** Tasks whose result was posted more than once, or that hold a deliverable twice. */
  duplicatedDeliveries: number;
  /** Approvals accepted more than once (each was sent three times, through different bots). */
  duplicatedApprovals: number;
  kills: number;
  redisRestarts: number;
  redisDownMs: number;
  auditVerified: boolean;
  auditRecords: number;
  orphanContainers: number;
  orphanWorkspaces: number;
  p95DeliverableMs: number;
  medianDeliverableMs: number;
  /** Kill of the runner holding a run → the run resumed on another runner (Redis up throughout). */
  failoverMs: number[];
  /** The same when a Redis outage fell between the kill and the resume. */
  failoverDuringOutageMs: number[];
  p95FailoverMs: number;
  failures: string[];
  wallMs: number;
}

interface Submitted {
  thread: string;
  taskId?: string;
  submittedAt: number;
  approvals: number[];
}

const between = ([a, b]: [number, number]) => a + Math.random() * (b - a);

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runFaultSuite(options: FaultSuiteOptions): Promise<FaultSuiteReport> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'handoff-faults-'));
  const dataDir = join(dir, 'data');
  const redisDir = join(dir, 'redis');
  const redisPort = await freePort();
  let redis: EmbeddedRedis | undefined = await startRedisServer({ dir: redisDir, port: redisPort });
  const redisUrl = redis.url;
  let cluster: Cluster | undefined;
  const start = (p: ClusterProc) => cluster!.start(p);
  const kill = (p: ClusterProc) => cluster!.kill(p);

  const report: FaultSuiteReport = {
    tasks: options.tasks,
    succeeded: 0,
    failedWithReason: 0,
    lost: 0,
    duplicatedRuns: 0,
    duplicatedDeliveries: 0,
    duplicatedApprovals: 0,
    kills: 0,
    redisRestarts: 0,
    redisDownMs: 0,
    auditVerified: false,
    auditRecords: 0,
    orphanContainers: 0,
    orphanWorkspaces: 0,
    p95DeliverableMs: 0,
    medianDeliverableMs: 0,
    failoverMs: [],
    failoverDuringOutageMs: [],
    p95FailoverMs: 0,
    failures: [],
    wallMs: 0,
  };
  const runnerKills: Array<{ runner: string; at: number }> = [];
  const outages: Array<{ from: number; to: number }> = [];
  const submitted: Submitted[] = [];
  let redisBusy = false;

  try {
    cluster = await Cluster.start({
      bots: options.bots ?? 2,
      runners: options.runners ?? 3,
      redisUrl,
      dataDir,
      env: { HANDOFF_RUNNER_CONCURRENCY: '2' },
      log,
      supervise: () => between([300, 1500]),
    });
    const procs = cluster.procs;
    const bots = cluster.bots;

    // Two people: Ana asks, Bo approves (under `handoff bot` nobody approves their own plan).
    const anaCookie = await cluster.signIn('Ana');
    const boCookie = await cluster.signIn('Bo');
    const client = (p: ClusterProc, cookie: string) => cluster!.client(p, cookie);
    /** Calls `fn` on a live bot, moving to the next while one is down or Redis is. */
    const onSomeBot = async <T>(fn: (p: ClusterProc) => Promise<T>, ok: (r: T) => boolean, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      let i = Math.floor(Math.random() * bots.length);
      for (;;) {
        const p = bots[i++ % bots.length]!;
        if (p.alive) {
          try {
            const r = await fn(p);
            if (ok(r)) return r;
          } catch {
            // that bot is down, or Redis is: try again
          }
        }
        if (Date.now() > deadline) throw new Error('no bot answered in time');
        await sleep(300);
      }
    };

    // The chaos: kills every few seconds, Redis restarts spread over the run.
    const chaos = (async () => {
      const total = options.kills;
      const restartAt = new Set<number>();
      for (let r = 0; r < options.redisRestarts; r++)
        restartAt.add(Math.floor(((r + 1) * total) / (options.redisRestarts + 1)));
      let longLeft = options.longOutages;
      for (let k = 0; k < total; k++) {
        await sleep(between(options.killEveryMs ?? [2000, 4000]));
        const alive = procs.filter((p) => p.alive);
        const victim = alive[Math.floor(Math.random() * alive.length)];
        if (!victim) {
          // Everything is restarting (after an outage, say): try again in a moment.
          k--;
          continue;
        }
        if (victim.role === 'runner') runnerKills.push({ runner: victim.name, at: Date.now() });
        // The cluster restarts it, as a process manager would.
        kill(victim);
        report.kills++;
        if (restartAt.has(k) && redis) {
          restartAt.delete(k);
          const long = longLeft > 0;
          if (long) longLeft--;
          const down = long ? between([20_000, 30_000]) : between([500, 2000]);
          redisBusy = true;
          const t0 = Date.now();
          outages.push({ from: t0, to: Number.POSITIVE_INFINITY });
          await redis.stop();
          await sleep(down);
          redis = await startRedisServer({ dir: redisDir, port: redisPort });
          outages.at(-1)!.to = Date.now();
          report.redisDownMs += Date.now() - t0;
          report.redisRestarts++;
          redisBusy = false;
          log(`redis restarted after ${Math.round((Date.now() - t0) / 1000)} s down`);
        }
      }
    })();

    // The work: tasks submitted over the chaos, each approved three times through different bots.
    const spacing = ((options.kills * 3000) / Math.max(1, options.tasks)) * 0.8;
    const work = Array.from({ length: options.tasks }, (_, n) =>
      (async () => {
        await sleep(n * spacing);
        const entry: Submitted = { thread: '', submittedAt: Date.now(), approvals: [] };
        submitted.push(entry);
        const posted = await onSomeBot(
          (p) => client(p, anaCookie).post(request, [{ name: 'sales.csv', path: salesCsv }]),
          (r) => r.status === 201,
        );
        entry.thread = posted.body.message!.id;
        entry.taskId = posted.body.taskId;
        const card = await onSomeBot(
          (p) => client(p, anaCookie).waitForCard(entry.thread, (h) => h.includes('card plan'), 5_000),
          () => true,
          300_000,
        );
        const buttons = planButtons(card.html!);
        for (let a = 0; a < 3; a++) {
          const status = await onSomeBot(
            async (p) => {
              // Through bot 0, bot 1, bot 0… when they are up.
              const target = bots[a % bots.length]!.alive ? bots[a % bots.length]! : p;
              return (await client(target, boCookie).action({ action: 'approve', ...buttons })).status;
            },
            (s) => s === 200 || s === 409,
          ).catch(() => 0);
          entry.approvals.push(status);
        }
      })().catch((err: unknown) => report.failures.push(`task ${n}: ${(err as Error).message}`)),
    );
    await Promise.all(work);
    await chaos;
    while (redisBusy) await sleep(200);
    log('chaos over; waiting for every task to end');
    await sleep(2000);

    // Every task must end.
    const r = new Redis(redisUrl);
    const deadline = Date.now() + 600_000;
    const tasks = new Map<
      string,
      {
        state: string;
        failure?: { message: string };
        artifacts: Array<{ name: string }>;
        createdAt: string;
        finishedAt?: string;
      }
    >();
    while (Date.now() < deadline) {
      let open = 0;
      for (const s of submitted) {
        if (!s.taskId) continue;
        const raw = await r.get(`hf:task:${s.taskId}`).catch(() => null);
        if (!raw) continue;
        const t = JSON.parse(raw);
        tasks.set(s.taskId, t);
        if (!['succeeded', 'failed', 'cancelled', 'denied', 'expired'].includes(t.state)) open++;
      }
      if (open === 0) break;
      await sleep(1000);
    }

    // What the audit trail says happened.
    const audit = (await r.lrange('hf:audit', 0, -1)).map((x) => JSON.parse(x));
    report.auditRecords = audit.length;
    report.auditVerified = (await verifyAuditInRedis(r)).ok;
    const byTask = new Map<string, Array<{ type: string; at: string; data: Record<string, unknown> }>>();
    for (const rec of audit) if (rec.taskId) byTask.set(rec.taskId, [...(byTask.get(rec.taskId) ?? []), rec]);

    const deliverMs: number[] = [];
    for (const s of submitted) {
      const t = s.taskId ? tasks.get(s.taskId) : undefined;
      const recs = (s.taskId && byTask.get(s.taskId)) || [];
      if (!t || !['succeeded', 'failed', 'cancelled', 'denied', 'expired'].includes(t.state)) {
        report.lost++;
        report.failures.push(`task ${s.taskId ?? '(not created)'} did not end (${t?.state ?? 'missing'})`);
        continue;
      }
      if (t.state === 'succeeded') {
        if (t.artifacts.some((a) => a.name === 'sales-summary.xlsx')) report.succeeded++;
        else {
          report.lost++;
          report.failures.push(`task ${s.taskId} succeeded without its deliverable`);
        }
        deliverMs.push(Date.parse(t.finishedAt!) - s.submittedAt);
      } else if (t.failure?.message) {
        report.failedWithReason++;
        report.failures.push(`task ${s.taskId} failed: ${t.failure.message.slice(0, 160)}`);
      } else {
        report.lost++;
        report.failures.push(`task ${s.taskId} ended ${t.state} without a reason`);
      }
      if (recs.filter((x) => x.type === 'run.started').length > 1) report.duplicatedRuns++;
      if (recs.filter((x) => x.type === 'plan.approved').length > 1 || s.approvals.filter((a) => a === 200).length > 1)
        report.duplicatedApprovals++;
      const names = t.artifacts.map((a) => a.name);
      if (new Set(names).size !== names.length) report.duplicatedDeliveries++;
    }
    // Result cards: one per thread (an edited card, never a second post).
    const consoleIds = await r.lrange('hf:console:general:ids', 0, -1);
    const messages = (await r.mget(consoleIds.map((id) => `hf:console:msg:${id}`)))
      .filter((m): m is string => m !== null)
      .map((m) => JSON.parse(m) as { threadId: string; html?: string });
    for (const s of submitted) {
      const cards = messages.filter((m) => m.threadId === s.thread && m.html?.includes('card result'));
      if (cards.length > 1) report.duplicatedDeliveries++;
    }

    // Failover: a runner killed while holding a run → that run resumed elsewhere.
    for (const kill of runnerKills) {
      for (const recs of byTask.values()) {
        const holders = recs.filter((x) =>
          ['run.started', 'run.resumed', 'run.resumed_after_decision'].includes(x.type),
        );
        const before = holders.filter((x) => Date.parse(x.at) <= kill.at).at(-1);
        const ended = recs.find(
          (x) => /^run\.(succeeded|failed|cancelled)$/.test(x.type) && Date.parse(x.at) <= kill.at,
        );
        if (!before || before.data.runner !== kill.runner || ended) continue;
        const next = holders.find((x) => Date.parse(x.at) > kill.at);
        if (!next) continue;
        // Kills while Redis was down (or just before it went) wait for Redis too: counted apart.
        const resumed = Date.parse(next.at);
        const hitByOutage = outages.some((o) => o.from < resumed && o.to > kill.at);
        (hitByOutage ? report.failoverDuringOutageMs : report.failoverMs).push(resumed - kill.at);
      }
    }
    report.p95FailoverMs = percentile(report.failoverMs, 95);
    report.p95DeliverableMs = percentile(deliverMs, 95);
    report.medianDeliverableMs = percentile(deliverMs, 50);

    // Stop everything; a runner started afresh removes what the killed ones left.
    await cluster.stopAll();
    const sweeper = cluster.runners[0]!;
    await start(sweeper);
    await sleep(6000);
    await cluster.stop(sweeper);
    const docker = new Dockerode();
    const ours = new Set(submitted.map((s) => s.taskId).filter(Boolean));
    const containers = await docker.listContainers({ all: true, filters: { label: ['org.handoff.sandbox=1'] } });
    report.orphanContainers = containers.filter((c) => ours.has(c.Labels['org.handoff.task'] ?? '')).length;
    report.orphanWorkspaces = (await readdir(join(dataDir, 'workspaces')).catch(() => [])).length;
    r.disconnect();
  } finally {
    cluster?.killAll();
    await redis?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    report.wallMs = Date.now() - started;
  }
  return report;
}

/** The report as the lines the bench and the test print. */
export function formatFaultReport(r: FaultSuiteReport): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return [
    `tasks ${r.tasks}: ${r.succeeded} delivered, ${r.failedWithReason} failed with a reason, ${r.lost} lost`,
    `kills ${r.kills} (SIGKILL of a bot or runner, each restarted); Redis restarts ${r.redisRestarts} (${s(r.redisDownMs)} down in all)`,
    `duplicated runs ${r.duplicatedRuns}, duplicated approvals ${r.duplicatedApprovals}, duplicated deliveries ${r.duplicatedDeliveries}`,
    `audit chain ${r.auditVerified ? 'verifies' : 'DOES NOT VERIFY'} (${r.auditRecords} records)`,
    `orphans: ${r.orphanContainers} containers, ${r.orphanWorkspaces} workspaces`,
    `time to deliverable: median ${s(r.medianDeliverableMs)}, p95 ${s(r.p95DeliverableMs)}`,
    `failover (runner killed → run resumed elsewhere): n=${r.failoverMs.length}, median ${s(percentile(r.failoverMs, 50))}, p95 ${s(r.p95FailoverMs)}, max ${s(Math.max(0, ...r.failoverMs))}`,
    `failover across a Redis outage: n=${r.failoverDuringOutageMs.length}, max ${s(Math.max(0, ...r.failoverDuringOutageMs))}`,
    `wall time ${s(r.wallMs)}`,
    ...r.failures.slice(0, 20).map((f) => `  - ${f}`),
  ].join('\n');
}
