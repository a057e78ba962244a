// Slack ingress figures, `handoff bot` beside a bare Bolt app that only acks, each in a process
// of its own, alternated A B A B so both see the same machine load. A second baseline, the
// same bare app doing the least work any bot must do for a mention (answer in the thread and
// queue one job: bench/lib/bare-bolt.ts with BARE_WORK_REDIS_URL), shows how much of the gap
// is the work itself and how much is Handoff's:
//
//  1. ack latency (p50/p95/p99) of signed `app_mention` events POSTed to /slack/events at a
//     fixed rate (open loop, from a separate process: bench/lib/open-loop.ts);
//  2. the most each takes: answers per second with 50 requests in flight (closed loop);
//  3. CPU per mention: the process's user + system time over the phase divided by the
//     mentions sent. For Handoff the phase lasts until every mention has become a task (its
//     `task.requested` audit record is written), so work done after the ack counts too;
//  4. dropped: mentions answered 2xx whose task never appeared, and non-2xx answers.
//
// Every mention is a new request in a channel, so each one makes Handoff create a task, write
// its audit record, queue its planning and post "Got it" in the thread (to the fake Slack Web
// API, which runs in a process of its own: bench/lib/slack-fakes.ts). No runner runs, so the
// plans wait in the queue.
//
// BENCH_PROFILE=1 also records a CPU profile of the bot over one extra phase at the first rate
// and prints its top self-time functions (bench/lib/cpu-profile.ts).
//
//   BENCH_SLACK_RATES=200 BENCH_SLACK_ROUNDS=3 BENCH_SLACK_SECONDS=5 BENCH_SLACK_WARMUP=2
//   BENCH_SLACK_CONCURRENCY=50 BENCH_SLACK_CLOSED=3000 BENCH_PROFILE=0
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { auditListKey } from '../src/storage/audit-log.ts';
import { startRedisServer } from '../src/storage/index.ts';
import type { LoadPlan, LoadResult } from './lib/open-loop.ts';

const rates = (process.env.BENCH_SLACK_RATES ?? '200').split(',').map(Number);
const rounds = Number(process.env.BENCH_SLACK_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_SLACK_SECONDS ?? 5);
const warmupSec = Number(process.env.BENCH_SLACK_WARMUP ?? 2);
const concurrency = Number(process.env.BENCH_SLACK_CONCURRENCY ?? 50);
const closedRequests = Number(process.env.BENCH_SLACK_CLOSED ?? 3000);
const profile = process.env.BENCH_PROFILE === '1';
const targets = { p99: 1.5, throughput: 0.5, cpu: 2 };

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const loadScript = fileURLToPath(new URL('./lib/open-loop.ts', import.meta.url));
const fakesScript = fileURLToPath(new URL('./lib/slack-fakes.ts', import.meta.url));
const bareScript = fileURLToPath(new URL('./lib/bare-bolt.ts', import.meta.url));
const profiledScript = fileURLToPath(new URL('./lib/profiled.ts', import.meta.url));
const cli = fileURLToPath(new URL('../bin/handoff.js', import.meta.url));

const botToken = `xoxb-bench-${randomBytes(8).toString('hex')}`;
const signingSecret = randomBytes(16).toString('hex');

// ---------------------------------------------------------------------------------------------
// Stopping everything, whatever happens.

const children = new Set<ChildProcess>();
const cleanups: Array<() => unknown> = [];
let stopping: Promise<void> | undefined;
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    // Each cleanup stops what it started (one SIGTERM: a second one makes a bot exit at once),
    // then whatever is left (the load generator) is told to stop.
    for (const cleanup of cleanups.reverse()) {
      await Promise.resolve()
        .then(cleanup)
        .catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    }
    for (const child of children) child.kill('SIGTERM');
  })();
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the bot, the bare app, Redis, the fake and the load…`);
    setTimeout(() => process.exit(130), 20_000).unref();
    void stopAll().finally(() => process.exit(130));
  });
}

/** Starts a child that prints one JSON line when ready; it is stopped with SIGTERM (SIGKILL after 10 s). */
async function startChild<T>(
  args: string[],
  env: Record<string, string>,
  ready: (line: string) => T | undefined,
): Promise<{ child: ChildProcess; info: T; stop(): Promise<void> }> {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const info = await new Promise<T>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`${args.join(' ')} did not start within 60 s:\n${stderr}`)),
      60_000,
    );
    child.once('exit', (code, signal) =>
      reject(new Error(`${args.join(' ')} exited with ${signal ?? code} before it was ready:\n${stderr}`)),
    );
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        const got = ready(line);
        if (got !== undefined) {
          clearTimeout(timer);
          resolve(got);
          return;
        }
      }
    });
  });
  const stop = async () => {
    child.stdin?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    children.delete(child);
  };
  return { child, info, stop };
}

/** User + system CPU time of a process so far, in ms (Linux /proc). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux
}

// ---------------------------------------------------------------------------------------------
// The traffic: signed app_mention events, each a new request in one of four channels.

let seq = 0;
function mentions(count: number): Array<{ body: string; headers: Record<string, string> }> {
  const timestamp = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, () => {
    const i = seq++;
    const ts = `${1_700_000_000 + i}.${String(i % 1_000_000).padStart(6, '0')}`;
    const body = JSON.stringify({
      token: 'verification-token-unused',
      team_id: 'T1',
      api_app_id: 'A1',
      type: 'event_callback',
      event_id: `Ev${i.toString(36).toUpperCase().padStart(8, '0')}${randomBytes(3).toString('hex').toUpperCase()}`,
      event_time: timestamp,
      authorizations: [{ team_id: 'T1', user_id: 'UBOT', is_bot: true }],
      event: {
        type: 'app_mention',
        user: `UP${i % 12}`,
        channel: `C${i % 4}`,
        ts,
        event_ts: ts,
        text: `<@UBOT> summarise last week's sales for region ${i % 7} into a spreadsheet`,
      },
    });
    const signature = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
    return {
      body,
      headers: {
        'content-type': 'application/json',
        'x-slack-request-timestamp': String(timestamp),
        'x-slack-signature': signature,
      },
    };
  });
}

async function runLoad(dir: string, plan: LoadPlan): Promise<LoadResult> {
  const file = join(dir, `plan-${randomBytes(4).toString('hex')}.json`);
  await writeFile(file, JSON.stringify(plan));
  const load = spawn(process.execPath, ['--import', 'tsx', loadScript, file], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(load);
  let out = '';
  load.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((r) => load.once('exit', (c) => r(c)));
  children.delete(load);
  await rm(file, { force: true });
  if (code !== 0) throw new Error(`the load process exited with ${code}`);
  return JSON.parse(out) as LoadResult;
}

// ---------------------------------------------------------------------------------------------

interface Side {
  name: string;
  url: string;
  /** The process that answers the requests. */
  pid: number;
  /** Every process that works on them (the answering one included). */
  pids: number[];
  /** Waits until `count` more mentions have become tasks (Handoff); nothing for the bare app. */
  drained(count: number): Promise<{ missing: number }>;
}

interface Phase {
  p50: number;
  p95: number;
  p99: number;
  rate: number;
  non2xx: number;
  missing: number;
  /** CPU of the answering process per mention, ms. */
  cpuPerMention: number;
  /** CPU of every process that worked on the mentions, per mention, ms. */
  totalCpuPerMention: number;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

async function phase(dir: string, side: Side, plan: Omit<LoadPlan, 'requests' | 'url'>, count: number): Promise<Phase> {
  const requests = mentions(count);
  const cpuOf = async () => Promise.all(side.pids.map(cpuMs));
  const cpuBefore = await cpuOf();
  const result = await runLoad(dir, { ...plan, url: `${side.url}/slack/events`, requests });
  const { missing } = await side.drained(count);
  const cpuAfter = await cpuOf();
  const used = cpuAfter.map((v, i) => v - cpuBefore[i]!);
  const cpu = used[side.pids.indexOf(side.pid)]!;
  const totalCpu = used.reduce((a, b) => a + b, 0);
  const sorted = [...result.latencies].sort((a, b) => a - b);
  const all = { ...result.warmupStatuses };
  for (const [k, v] of Object.entries(result.statuses)) all[k] = (all[k] ?? 0) + v;
  const non2xx = Object.entries(all)
    .filter(([status]) => !status.startsWith('2'))
    .reduce((n, [, v]) => n + v, 0);
  return {
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    rate: result.achievedRate,
    non2xx,
    missing,
    cpuPerMention: cpu / count,
    totalCpuPerMention: totalCpu / count,
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-slack-ingress-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redisServer = await startRedisServer({ dir: join(dir, 'redis') });
  cleanups.push(() => redisServer.stop());
  const redis = new Redis(redisServer.url);
  cleanups.push(() => redis.disconnect());

  const fakes = await startChild(['--import', 'tsx', fakesScript], { SLACK_BOT_TOKEN: botToken }, (line) => {
    try {
      return JSON.parse(line) as { apiUrl: string; pid: number };
    } catch {
      return undefined;
    }
  });
  cleanups.push(() => fakes.stop());
  const apiUrl = fakes.info.apiUrl;

  /** The bare Bolt app, acking only or (with `extra`) doing the least work too. */
  const startBare = async (extra: Record<string, string> = {}) => {
    const started = await startChild(
      ['--import', 'tsx', bareScript],
      { SLACK_BOT_TOKEN: botToken, SLACK_SIGNING_SECRET: signingSecret, SLACK_API_URL: apiUrl, ...extra },
      (line) => {
        try {
          return JSON.parse(line) as { url: string };
        } catch {
          return undefined;
        }
      },
    );
    cleanups.push(() => started.stop());
    return started;
  };
  const bare = await startBare();
  const bareWork = await startBare({ BARE_WORK_REDIS_URL: redisServer.url });

  /**
   * Waits until `count` more have arrived or nothing moved for 20 s. `take` says how many of
   * what arrived since its last call count, or undefined when nothing arrived.
   */
  const drainedBy =
    (take: () => Promise<number | undefined>) =>
    async (count: number): Promise<{ missing: number }> => {
      let found = 0;
      let lastProgress = Date.now();
      while (found < count && Date.now() - lastProgress < 20_000) {
        const got = await take();
        if (got === undefined) await new Promise((res) => setTimeout(res, 100));
        else {
          found += got;
          lastProgress = Date.now();
        }
      }
      return { missing: count - found };
    };
  /** New task.requested records in `r`. */
  const drainedIn = (r: Redis) => {
    let auditSeen = 0;
    return drainedBy(async () => {
      const fresh = await r.lrange(auditListKey, auditSeen, -1);
      if (fresh.length === 0) return undefined;
      auditSeen += fresh.length;
      return fresh.filter((rec) => (JSON.parse(rec) as { type: string }).type === 'task.requested').length;
    });
  };
  const drained = drainedIn(redis);
  // The split configuration has a Redis of its own: its bots share their inbox only with each other.
  const splitRedisServer = await startRedisServer({ dir: join(dir, 'redis-split') });
  cleanups.push(() => splitRedisServer.stop());
  const splitRedis = new Redis(splitRedisServer.url);
  cleanups.push(() => splitRedis.disconnect());
  const splitDrained = drainedIn(splitRedis);

  const botEnv = (port: string, redisUrl: string): Record<string, string> => ({
    REDIS_URL: redisUrl,
    HANDOFF_PORT: port,
    HANDOFF_DATA_DIR: join(dir, `data-${port}`),
    HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
    SLACK_BOT_TOKEN: botToken,
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: apiUrl,
    LOG_LEVEL: 'warn',
  });
  const startBot = async (profiled: boolean, redisUrl: string, inboundConcurrency?: number) => {
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const args = profiled ? ['--import', 'tsx', profiledScript, cli, 'bot'] : [cli, 'bot'];
    const started = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...botEnv(String(port), redisUrl),
        ...(profiled ? { BENCH_PROFILE_DIR: dir } : {}),
        ...(inboundConcurrency === undefined ? {} : { HANDOFF_INBOUND_CONCURRENCY: String(inboundConcurrency) }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.add(started);
    let stderr = '';
    started.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`handoff bot exited with ${started.exitCode}:\n${stderr}`);
      if (
        await fetch(`${url}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (Date.now() > deadline) throw new Error(`handoff bot was not ready within 60 s:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const exited = new Promise<void>((r) => started.once('exit', () => r()));
    const stop = async () => {
      if (started.exitCode === null && started.signalCode === null) started.kill('SIGTERM');
      const timer = setTimeout(() => started.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      children.delete(started);
      if (started.exitCode !== 0 && started.signalCode === null) {
        console.error(`handoff bot exited with ${started.exitCode}:\n${stderr}`);
      }
    };
    return { url, pid: started.pid!, child: started, stop };
  };
  const bot = await startBot(false, redisServer.url);
  cleanups.push(() => bot.stop());
  // The same work split over two bots: one only acknowledges and queues, the other works.
  const ingress = await startBot(false, splitRedisServer.url, 0);
  cleanups.push(() => ingress.stop());
  const worker = await startBot(false, splitRedisServer.url);
  cleanups.push(() => worker.stop());

  const handoff: Side = { name: 'handoff bot', url: bot.url, pid: bot.pid, pids: [bot.pid], drained };
  const split: Side = {
    name: 'handoff, ack-only bot + working bot',
    url: ingress.url,
    pid: ingress.pid,
    pids: [ingress.pid, worker.pid],
    drained: splitDrained,
  };
  const bolt: Side = {
    name: 'bare Bolt',
    url: bare.info.url,
    pid: bare.child.pid!,
    pids: [bare.child.pid!],
    drained: async () => ({ missing: 0 }),
  };
  let bareJobsSeen = 0;
  const boltWork: Side = {
    name: 'bare Bolt + the least work (post in the thread, queue a job)',
    url: bareWork.info.url,
    pid: bareWork.child.pid!,
    pids: [bareWork.child.pid!],
    // Its jobs, waiting in BullMQ's list (no worker takes them).
    drained: drainedBy(async () => {
      const jobs = await redis.llen('bull:bare-plan:wait');
      if (jobs === bareJobsSeen) return undefined;
      const got = jobs - bareJobsSeen;
      bareJobsSeen = jobs;
      return got;
    }),
  };
  const sides = [bolt, boltWork, handoff, split];

  // Warm every side up (JIT, connections, caches) before anything counts.
  for (const side of sides) await phase(dir, side, { rate: 100, warmupSec: 0, seconds: 2 }, 200);

  console.log(
    `slack ingress: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `  open loop ${seconds} s (+${warmupSec} s warm-up) per side and rate, ${rounds} rounds A B A B; closed loop ${closedRequests} requests at ${concurrency} in flight`,
  );
  let failed = false;
  const results: Record<string, Phase[][]> = {};
  for (const rate of rates) {
    const r = sides.map(() => [] as Phase[]);
    results[`open ${rate}`] = r;
    const count = Math.round(rate * (seconds + warmupSec));
    for (let round = 0; round < rounds; round++) {
      for (const [i, side] of sides.entries()) r[i]!.push(await phase(dir, side, { rate, warmupSec, seconds }, count));
    }
  }
  const closed = sides.map(() => [] as Phase[]);
  results.closed = closed;
  const warm = Math.round(closedRequests / 10);
  for (let round = 0; round < rounds; round++) {
    // In a closed loop `rate × warmupSec` is the number of requests left out as warm-up.
    for (const [i, side] of sides.entries()) {
      closed[i]!.push(await phase(dir, side, { rate: warm, warmupSec: 1, seconds: 0, concurrency }, closedRequests));
    }
  }

  const f = (v: number) => v.toFixed(1);
  const m = (side: Phase[], k: keyof Phase) => median(side.map((p) => p[k]));
  for (const [name, r] of Object.entries(results)) {
    console.log(`\n  ${name === 'closed' ? `closed loop, ${concurrency} in flight` : `${name.slice(5)} req/s`}`);
    const base = r[0]!;
    const floor = r[1]!;
    for (const [i, side] of sides.entries()) {
      const p = r[i]!;
      console.log(
        `    ${side.name}: p50 ${f(m(p, 'p50'))} ms  p95 ${f(m(p, 'p95'))} ms  p99 ${f(m(p, 'p99'))} ms  ${m(p, 'rate').toFixed(0)} req/s  CPU ${m(p, 'cpuPerMention').toFixed(2)} ms/mention answering${p === base ? '' : `, ${m(p, 'totalCpuPerMention').toFixed(2)} with the work`}  non-2xx ${p.reduce((n, x) => n + x.non2xx, 0)}  dropped ${p.reduce((n, x) => n + x.missing, 0)}`,
      );
      console.log(
        `      rounds: ${p.map((x) => `p99 ${f(x.p99)} ms, ${x.rate.toFixed(0)} req/s, ${x.cpuPerMention.toFixed(2)}/${x.totalCpuPerMention.toFixed(2)} ms CPU`).join(' | ')}`,
      );
      if (p.some((x) => x.non2xx > 0 || x.missing > 0)) failed = true;
      if (p === base) continue;
      const cpu = m(p, 'cpuPerMention') / m(base, 'cpuPerMention');
      const total = m(p, 'totalCpuPerMention') / m(base, 'cpuPerMention');
      if (p === floor) {
        // A baseline too: what the least work costs, beside the bare app; no target applies.
        console.log(
          `      ratio to bare Bolt: p99 ${(m(p, 'p99') / m(base, 'p99')).toFixed(2)}×  throughput ${(m(p, 'rate') / m(base, 'rate')).toFixed(2)}×  CPU/mention with the work ${total.toFixed(2)}×`,
        );
        continue;
      }
      // How much of the gap is Handoff's own, beyond the least work.
      const beyond = `ratio to the least work: p99 ${(m(p, 'p99') / m(floor, 'p99')).toFixed(2)}×  ${name === 'closed' ? `throughput ${(m(p, 'rate') / m(floor, 'rate')).toFixed(2)}×  ` : ''}CPU/mention with the work ${(m(p, 'totalCpuPerMention') / m(floor, 'totalCpuPerMention')).toFixed(2)}×`;
      if (name === 'closed') {
        const tp = m(p, 'rate') / m(base, 'rate');
        console.log(
          `      ratio to bare Bolt: throughput ${tp.toFixed(2)}× (target ≥ ${targets.throughput}×)  CPU/mention answering ${cpu.toFixed(2)}× (target ≤ ${targets.cpu}×), with the work ${total.toFixed(2)}×`,
        );
        if (tp < targets.throughput) failed = true;
      } else {
        const p99 = m(p, 'p99') / m(base, 'p99');
        console.log(
          `      ratio to bare Bolt: p50 ${(m(p, 'p50') / m(base, 'p50')).toFixed(2)}×  p95 ${(m(p, 'p95') / m(base, 'p95')).toFixed(2)}×  p99 ${p99.toFixed(2)}× (target ≤ ${targets.p99}×)  CPU/mention answering ${cpu.toFixed(2)}× (target ≤ ${targets.cpu}×), with the work ${total.toFixed(2)}×`,
        );
        if (p99 > targets.p99) failed = true;
      }
      console.log(`      ${beyond}`);
      if (cpu > targets.cpu) failed = true;
    }
  }

  if (profile) {
    await bot.stop();
    await ingress.stop();
    await worker.stop();
    const profiled = await startBot(true, redisServer.url);
    cleanups.push(() => profiled.stop());
    const rate = rates[0]!;
    const count = Math.round(rate * (seconds + warmupSec));
    const profiledSide = { ...handoff, url: profiled.url, pid: profiled.pid, pids: [profiled.pid] };
    await phase(dir, profiledSide, { rate, warmupSec, seconds }, count);
    profiled.child.kill('SIGUSR2');
    await phase(dir, profiledSide, { rate, warmupSec, seconds }, count);
    profiled.child.kill('SIGUSR2');
    const deadline = Date.now() + 20_000;
    let file: string | undefined;
    while (!file && Date.now() < deadline) {
      file = (await readdir(dir)).find((n) => n.endsWith('.cpuprofile'));
      if (!file) await new Promise((r) => setTimeout(r, 200));
    }
    if (!file) throw new Error('the profiled bot wrote no profile');
    const { formatCpuProfileSummary, summariseCpuProfiles } = await import('./lib/cpu-profile.ts');
    const kept = join(tmpdir(), `handoff-bot-${rate}rps-${Date.now()}.cpuprofile`);
    await writeFile(kept, await readFile(join(dir, file)));
    console.log(`\n  CPU profile of the bot at ${rate} req/s (${seconds + warmupSec} s), kept at ${kept}:`);
    console.log(formatCpuProfileSummary(summariseCpuProfiles([JSON.parse(await readFile(kept, 'utf8'))]), 10));
  }
  if (failed) console.log('\n  at least one target was missed (see above)');
}

try {
  await main();
} finally {
  await stopAll();
}
