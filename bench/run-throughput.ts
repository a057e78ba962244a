// Throughput of runs: what one runner process carries. For each runner concurrency in
// BENCH_CONCURRENCY (default 1,2,4), on a fresh Redis: `handoff bot` and one `handoff runner`
// (HANDOFF_RUNNER_CONCURRENCY=N) as separate processes, the demo model (no model key), the
// real Docker sandbox. One task alone first (warms the runner; its time is printed), then
// BENCH_TASKS (default 50) demo tasks posted at once through the console API, each "summarise
// examples/sales.csv into a spreadsheet", each plan approved by a second person as soon as its
// card appears. Printed per concurrency:
//   - tasks/min, first post to last result card; p50/p95 time to deliverable (post → result
//     card seen, polled every 0.5 s); failures;
//   - the runner's CPU seconds per task (/proc/<pid>/stat utime+stime over the burst), the
//     bot's beside it;
//   - the sandboxes' CPU per task: cpuacct.usage of each sandbox container's cgroup
//     (cgroup v1; v2's cpu.stat), read every 0.2 s while it exists, so a container's last
//     < 0.2 s is not counted; and dockerd + containerd CPU over the burst (/proc; shared with
//     anything else using Docker on the machine);
//   - memory: the runner's peak RSS (VmHWM) and its growth over its idle RSS, the peak number
//     of sandboxes at once and their peak memory use, against the sandbox memory limit.
// Baseline at the same concurrency: the same number of bare `docker run`s of the sandbox image
// with the sandbox's hardening flags, each running the demo's own script
// (src/agent/demo/scripts/sales_to_xlsx.py) on the same CSV and writing the workbook to
// stdout, all "submitted" at once as the tasks are (time to workbook counts from the burst's
// start); ratios Handoff / bare follow.
//
// BENCH_PROFILE=1 starts the runner with --cpu-prof and prints the top 10 self-time functions
// of the burst alone, start-up left out (bench/lib/cpu-profile.ts); the profiler's sampling
// adds to the runner's CPU, so take CPU per task from a run without it. BENCH_TIMEOUT_MIN (default 30) bounds each burst.
// Everything started here stops at the end, on an error and on SIGINT/SIGTERM: the processes,
// Redis, and the containers (by label).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { loadConfig } from '../src/config/index.ts';
import { type EmbeddedRedis, startRedisServer } from '../src/storage/index.ts';
import { freePort, SessionClient, sleep } from '../test/helpers/cluster.ts';
import { planButtons } from '../test/helpers/console-client.ts';
import { formatCpuProfileSummary, readCpuProfiles, summariseCpuProfiles } from './lib/cpu-profile.ts';
import { summary } from './stats.ts';

const tasks = Number(process.env.BENCH_TASKS ?? 50);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? '1,2,4').split(',').map(Number);
const profiling = process.env.BENCH_PROFILE === '1';
const timeoutMs = Number(process.env.BENCH_TIMEOUT_MIN ?? 30) * 60_000;
const cli = new URL('../bin/handoff.js', import.meta.url).pathname;
const csv = new URL('../examples/sales.csv', import.meta.url).pathname;
const demoScript = new URL('../src/agent/demo/scripts/sales_to_xlsx.py', import.meta.url).pathname;
const request = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';
const RUNNER_LABEL = 'org.handoff.runner';
const BASELINE_LABEL = 'org.handoff.bench.throughput';
const benchId = `tput-${process.pid}`;
const clockTicks = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux.

// The sandbox limits the runner uses (its defaults, or the HANDOFF_SANDBOX_* settings set here).
const config = loadConfig({ env: { ...(process.env as Record<string, string>) }, file: '/dev/null' });
const limits = {
  memoryMb: config.sandboxMemoryMb,
  cpus: config.sandboxCpus,
  pids: config.sandboxPids,
  tmpfsMb: config.sandboxTmpfsMb,
  outputMb: config.sandboxOutputMb,
};
const docker = new Dockerode();
// The demo model: no model key reaches the bot or the runner.
for (const key of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'HANDOFF_MODEL_PROVIDER']) delete process.env[key];

// ---- cleanup: everything started registers how to stop it --------------------------------

const cleanups: Array<() => Promise<void>> = [];
/** Stops what was started, newest first, down to the first `keep` entries. */
async function cleanUp(keep = 0): Promise<void> {
  while (cleanups.length > keep) await cleanups.pop()!().catch((err) => console.error(`cleanup: ${err}`));
}
async function removeContainers(label: string): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(
    found.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined),
    ),
  );
  return found.length;
}
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${sig}: stopping what the benchmark started…`);
    void cleanUp().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

// ---- /proc and cgroup readers -------------------------------------------------------------

/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the name start at field 3 (state): utime is field 14, stime 15.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

async function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
}

/** Pids of the Docker daemons (dockerd, containerd), whose CPU container starts cost. */
async function daemonPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === 'dockerd' || comm === 'containerd') pids.push(Number(entry));
  }
  return pids;
}

async function sumCpu(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await cpuSeconds(pid).catch(() => 0);
  return total;
}

/** Per-container CPU and memory from its cgroup (v1 cpuacct/memory, or v2), if readable. */
async function containerCgroup(id: string): Promise<{ cpuS: number; memPeakMb: number } | undefined> {
  const v1 = await Promise.all([
    readFile(`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, 'utf8').catch(() => undefined),
    readFile(`/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`, 'utf8').catch(() => undefined),
  ]);
  if (v1[0] !== undefined)
    return { cpuS: Number(v1[0]) / 1e9, memPeakMb: v1[1] !== undefined ? Number(v1[1]) / 2 ** 20 : Number.NaN };
  for (const dir of [`/sys/fs/cgroup/system.slice/docker-${id}.scope`, `/sys/fs/cgroup/docker/${id}`]) {
    const stat = await readFile(`${dir}/cpu.stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    const peak = await readFile(`${dir}/memory.peak`, 'utf8').catch(() => undefined);
    return {
      cpuS: Number(/^usage_usec (\d+)/m.exec(stat)?.[1] ?? 0) / 1e6,
      memPeakMb: peak !== undefined ? Number(peak) / 2 ** 20 : Number.NaN,
    };
  }
  return undefined;
}

/**
 * Watches the containers carrying `label` every 0.2 s: the last CPU and peak memory each showed,
 * how many existed at once, and (given a pid) that process's RSS.
 */
class Sampler {
  readonly containers = new Map<string, { cpuS: number; memPeakMb: number }>();
  peakAtOnce = 0;
  peakRssMb = 0;
  cgroupsReadable = false;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly label: string,
    private readonly pid?: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), 200);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.busy) await sleep(20);
    await this.tick();
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const listed = await docker.listContainers({ filters: { label: [this.label] } });
      this.peakAtOnce = Math.max(this.peakAtOnce, listed.length);
      for (const c of listed) {
        const seen = await containerCgroup(c.Id);
        if (!seen) continue;
        this.cgroupsReadable = true;
        const before = this.containers.get(c.Id);
        this.containers.set(c.Id, {
          cpuS: Math.max(before?.cpuS ?? 0, seen.cpuS),
          memPeakMb: Math.max(before?.memPeakMb ?? 0, seen.memPeakMb),
        });
      }
      if (this.pid) this.peakRssMb = Math.max(this.peakRssMb, (await statusKb(this.pid, 'VmRSS')) / 1024);
    } catch {
      // A container that went between the listing and the read: counted at its last reading.
    } finally {
      this.busy = false;
    }
  }

  cpuTotalS(): number {
    return [...this.containers.values()].reduce((a, c) => a + c.cpuS, 0);
  }

  memPeakMb(): number {
    return Math.max(0, ...[...this.containers.values()].map((c) => c.memPeakMb).filter(Number.isFinite));
  }
}

// ---- Handoff: bot + one runner ------------------------------------------------------------

interface Burst {
  durationsMs: number[];
  failed: string[];
  wallMs: number;
}

/** Posts `count` tasks at once, approves each plan as it appears, waits for every result card. */
async function burst(ana: SessionClient, bo: SessionClient, count: number, channel: string): Promise<Burst> {
  const t0 = performance.now();
  const posted = await Promise.all(
    Array.from({ length: count }, () =>
      ana.post(request, [{ name: 'sales.csv', path: csv }], undefined, { channel }).then((r) => {
        if (r.status !== 201) throw new Error(`post answered ${r.status}: ${r.body.error}`);
        return { thread: r.body.message!.id, at: performance.now() };
      }),
    ),
  );
  const postedAt = new Map(posted.map((p) => [p.thread, p.at]));
  const lastCard = new Map<string, string>();
  const approved = new Set<string>();
  const done = new Map<string, { at: number; ok: boolean }>();
  const deadline = Date.now() + timeoutMs;
  while (done.size < count) {
    if (Date.now() > deadline) {
      const stuck = [...postedAt.keys()].filter((t) => !done.has(t));
      throw new Error(
        `${stuck.length} of ${count} tasks got no result card within ${timeoutMs / 60_000} min:\n${stuck
          .map((t) => `  thread ${t}: last card ${lastCard.get(t) ?? '(none)'}`)
          .join('\n')}`,
      );
    }
    const messages = await bo.messages(channel).catch(() => []);
    for (const m of messages) {
      if (!m.author.bot || !m.html || !postedAt.has(m.threadId) || done.has(m.threadId)) continue;
      const card = /class="card ([^"]+)"/.exec(m.html)?.[1] ?? '?';
      const task = /data-task="([^"]+)"/.exec(m.html)?.[1];
      lastCard.set(m.threadId, `${card}${task ? ` (task ${task})` : ''}`);
      if (card.startsWith('result')) {
        const ok = card.includes('status-done') && m.html.includes('sales-summary.xlsx');
        done.set(m.threadId, { at: performance.now(), ok });
      } else if (card.includes('status-failed')) {
        done.set(m.threadId, { at: performance.now(), ok: false });
      } else if (card.startsWith('plan') && m.html.includes('data-action="approve"') && !approved.has(m.threadId)) {
        approved.add(m.threadId);
        const r = await bo.action({ action: 'approve', ...planButtons(m.html) });
        if (r.status !== 200) throw new Error(`approve answered ${r.status}: ${r.body.error ?? r.body.message}`);
      }
    }
    await sleep(500);
  }
  const ends = [...done.entries()];
  return {
    durationsMs: ends.map(([thread, e]) => e.at - postedAt.get(thread)!),
    failed: ends.filter(([, e]) => !e.ok).map(([thread]) => `${thread}: ${lastCard.get(thread)}`),
    wallMs: Math.max(...ends.map(([, e]) => e.at)) - t0,
  };
}

interface HandoffOutcome extends Burst {
  aloneMs: number;
  runnerCpuS: number;
  botCpuS: number;
  daemonCpuS: number;
  sandboxCpuS: number;
  sandboxes: number;
  cgroupsReadable: boolean;
  sandboxesAtOnce: number;
  sandboxMemPeakMb: number;
  runnerIdleRssMb: number;
  runnerPeakRssMb: number;
  profile?: string;
}

/**
 * Starts `handoff <args>` in a process group of its own and registers its stop (SIGTERM to the
 * group, SIGKILL after 15 s) at once, so a Ctrl-C at any moment stops it.
 */
function spawnHandoff(name: string, nodeArgs: string[], args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, cli, ...args], {
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => {
    const line = d.toString().trim();
    if (/"level":(50|60)/.test(line)) console.error(`[${name}] ${line.slice(0, 300)}`);
  });
  const exited = new Promise((r) => child.once('exit', r));
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      return;
    }
    await Promise.race([exited, sleep(15_000)]);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // exited
    }
  });
  return child;
}

/** Adds a console user with `handoff console add-user` and signs them in, as a browser would. */
async function signIn(url: string, env: Record<string, string>, name: string): Promise<SessionClient> {
  const out = await new Promise<string>((resolve, reject) => {
    let text = '';
    const c = spawn(process.execPath, [cli, 'console', 'add-user', name], { env: { ...env, HANDOFF_PUBLIC_URL: url } });
    cleanups.push(async () => void (c.exitCode === null && c.signalCode === null && c.kill('SIGTERM')));
    c.stdout.on('data', (d) => {
      text += d;
    });
    c.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`add-user ${name} failed`))));
  });
  const link = /(http:\/\/\S+\?token=\S+)/.exec(out)?.[1];
  if (!link) throw new Error(`no sign-in link for ${name}: ${out}`);
  const res = await fetch(link, { redirect: 'manual' });
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0]!)
    .find((c) => c.startsWith('handoff_session='));
  if (!cookie) throw new Error(`signing ${name} in gave no session`);
  return new SessionClient(url, cookie);
}

async function measureHandoff(concurrency: number, dir: string): Promise<HandoffOutcome> {
  const keep = cleanups.length;
  const redis: EmbeddedRedis = await startRedisServer({ dir: join(dir, 'redis') });
  cleanups.push(() => redis.stop());
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    REDIS_URL: redis.url,
    HANDOFF_DATA_DIR: join(dir, 'data'),
    HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
    HANDOFF_CONSOLE_SIGNIN: 'tokens',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
  };
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const bot = spawnHandoff('bot', [], ['bot'], { ...env, HANDOFF_PORT: String(port) });
  const runnerId = `${benchId}-c${concurrency}`;
  const label = `${RUNNER_LABEL}=${runnerId}`;
  cleanups.push(async () => void (await removeContainers(label)));
  const profileDir = join(dir, 'profile');
  const runner = spawnHandoff('runner', profiling ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [], ['runner'], {
    ...env,
    HANDOFF_RUNNER_ID: runnerId,
    HANDOFF_RUNNER_CONCURRENCY: String(concurrency),
  });
  const runnerPid = runner.pid!;
  const botPid = bot.pid!;
  const deadline = Date.now() + 120_000;
  while (
    !(await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (bot.exitCode !== null) throw new Error(`the bot exited with ${bot.exitCode} while starting`);
    if (Date.now() > deadline) throw new Error('the bot did not answer /healthz within 2 min');
    await sleep(200);
  }

  const ana = await signIn(url, env, 'Ana');
  const bo = await signIn(url, env, 'Bo');
  const alone = await burst(ana, bo, 1, 'warmup');
  if (alone.failed.length > 0) throw new Error(`the warm-up task failed: ${alone.failed[0]}`);
  await sleep(2000); // let the warm-up's sandbox go and the runner settle
  const runnerIdleRssMb = (await statusKb(runnerPid, 'VmRSS')) / 1024;

  const daemons = await daemonPids();
  const sampler = new Sampler(label, runnerPid);
  const before = { runner: await cpuSeconds(runnerPid), bot: await cpuSeconds(botPid), daemon: await sumCpu(daemons) };
  sampler.start();
  const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
  const window = { fromUs: monotonicUs(), toUs: Number.POSITIVE_INFINITY };
  let load: Burst;
  try {
    load = await burst(ana, bo, tasks, `throughput-c${concurrency}`);
  } finally {
    await sampler.stop();
  }
  window.toUs = monotonicUs();
  const after = { runner: await cpuSeconds(runnerPid), bot: await cpuSeconds(botPid), daemon: await sumCpu(daemons) };
  const runnerPeakRssMb = Math.max(sampler.peakRssMb, (await statusKb(runnerPid, 'VmHWM')) / 1024);

  // Stop the runner first so its profile is written, then the rest.
  await cleanUp(keep);
  let profile: string | undefined;
  if (profiling) {
    // Only the burst: the runner's start (compiling the TypeScript) is not what a run costs.
    profile = formatCpuProfileSummary(summariseCpuProfiles(await readCpuProfiles([profileDir]), window), 10);
  }
  return {
    ...load,
    aloneMs: alone.durationsMs[0]!,
    runnerCpuS: after.runner - before.runner,
    botCpuS: after.bot - before.bot,
    daemonCpuS: after.daemon - before.daemon,
    sandboxCpuS: sampler.cpuTotalS(),
    sandboxes: sampler.containers.size,
    cgroupsReadable: sampler.cgroupsReadable,
    sandboxesAtOnce: sampler.peakAtOnce,
    sandboxMemPeakMb: sampler.memPeakMb(),
    runnerIdleRssMb,
    runnerPeakRssMb,
    ...(profile ? { profile } : {}),
  };
}

// ---- baseline: bare docker run of the same work -------------------------------------------

interface BaselineOutcome {
  /** Burst start → this run's workbook out (all runs "submitted" at once, as the tasks are). */
  durationsMs: number[];
  /** One run alone: `docker run` → workbook out. */
  aloneMs: number;
  failed: number;
  wallMs: number;
  containerCpuS: number;
  daemonCpuS: number;
  memPeakMb: number;
}

/** One bare hardened `docker run` doing what the demo run does; resolves with the workbook's size. */
function bareRun(inputDir: string, label: string): Promise<number> {
  const mb = limits.memoryMb;
  const args = [
    'run',
    '--rm',
    '--label',
    label,
    '--user',
    '1000:1000',
    '--network',
    'none',
    '--read-only',
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--ipc',
    'private',
    '--init',
    '--pids-limit',
    String(limits.pids),
    '--memory',
    `${mb}m`,
    '--memory-swap',
    `${mb}m`,
    '--cpus',
    String(limits.cpus),
    '--tmpfs',
    `/tmp:rw,nosuid,nodev,size=${limits.tmpfsMb}m`,
    '--tmpfs',
    `/workspace/out:rw,nosuid,nodev,size=${limits.outputMb}m,uid=1000,gid=1000,mode=0755`,
    '-e',
    'HOME=/home/sandbox',
    '-e',
    'LANG=C.UTF-8',
    '-w',
    '/workspace',
    '-v',
    `${inputDir}:/workspace/in:ro`,
    config.sandboxImage,
    'sh',
    '-c',
    'python3 /workspace/in/sales_to_xlsx.py /workspace/in/sales.csv /workspace/out/sales-summary.xlsx >/dev/null && cat /workspace/out/sales-summary.xlsx',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 && bytes > 0 ? resolve(bytes) : reject(new Error(`docker run exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

async function measureBaseline(concurrency: number, dir: string): Promise<BaselineOutcome> {
  const inputDir = join(dir, 'in');
  await mkdir(inputDir, { recursive: true });
  await copyFile(csv, join(inputDir, 'sales.csv'));
  await copyFile(demoScript, join(inputDir, 'sales_to_xlsx.py'));
  const keep = cleanups.length;
  const label = `${BASELINE_LABEL}=${benchId}-c${concurrency}`;
  cleanups.push(async () => void (await removeContainers(label)));
  const warm = performance.now();
  await bareRun(inputDir, label); // warm-up, as the Handoff side has one task alone
  const aloneMs = performance.now() - warm;
  const daemons = await daemonPids();
  const sampler = new Sampler(label);
  const daemonBefore = await sumCpu(daemons);
  sampler.start();
  const durationsMs: number[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < tasks) {
          next++;
          await bareRun(inputDir, label).then(
            () => durationsMs.push(performance.now() - t0),
            (err) => {
              failed++;
              console.error(String(err));
            },
          );
        }
      }),
    );
  } finally {
    await sampler.stop();
  }
  const wallMs = performance.now() - t0;
  const daemonCpuS = (await sumCpu(daemons)) - daemonBefore;
  await cleanUp(keep);
  return {
    durationsMs,
    aloneMs,
    failed,
    wallMs,
    containerCpuS: sampler.cpuTotalS(),
    daemonCpuS,
    memPeakMb: sampler.memPeakMb(),
  };
}

// ---- report -------------------------------------------------------------------------------

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const perMin = (n: number, wallMs: number) => (n / wallMs) * 60_000;

function report(n: number, h: HandoffOutcome, b: BaselineOutcome): void {
  const hs = summary(h.durationsMs);
  const bs = summary(b.durationsMs);
  const done = tasks - h.failed.length;
  const hRate = perMin(tasks, h.wallMs);
  const bRate = perMin(tasks, b.wallMs);
  const cpu = (x: number) => `${x.toFixed(2)} s`;
  console.log(`\n## runner concurrency ${n}`);
  console.log(
    `one task alone: handoff ${s(h.aloneMs)} post → result card, bare docker run ${s(b.aloneMs)}: ${(h.aloneMs / b.aloneMs).toFixed(2)}x`,
  );
  console.log(
    `handoff: ${hRate.toFixed(1)} tasks/min (${tasks} in ${s(h.wallMs)}); time to deliverable p50 ${s(hs.median)} p95 ${s(hs.p95)}; failed ${h.failed.length}`,
  );
  for (const f of h.failed) console.log(`  failed: ${f}`);
  console.log(
    `  CPU per task: runner ${cpu(h.runnerCpuS / tasks)}, sandboxes ${h.cgroupsReadable ? cpu(h.sandboxCpuS / tasks) : 'n/a (cgroups not readable)'} (${h.sandboxes} containers, cgroup cpuacct sampled every 0.2 s), dockerd+containerd ${cpu(h.daemonCpuS / tasks)}, bot ${cpu(h.botCpuS / tasks)}`,
  );
  console.log(`  runner busy: ${((h.runnerCpuS / (h.wallMs / 1000)) * 100).toFixed(0)} % of one core over the burst`);
  console.log(
    `  memory: runner RSS idle ${h.runnerIdleRssMb.toFixed(0)} MB, peak ${h.runnerPeakRssMb.toFixed(0)} MB (+${(h.runnerPeakRssMb - h.runnerIdleRssMb).toFixed(0)} MB); sandboxes at once ${h.sandboxesAtOnce} (limit ${limits.memoryMb} MB each, peak use of one ${h.sandboxMemPeakMb.toFixed(0)} MB); reserve ${limits.memoryMb} MB × ${h.sandboxesAtOnce} + runner ${h.runnerPeakRssMb.toFixed(0)} MB = ${(limits.memoryMb * h.sandboxesAtOnce + h.runnerPeakRssMb).toFixed(0)} MB`,
  );
  console.log(
    `bare docker run (same flags and script, ${n} at once): ${bRate.toFixed(1)} tasks/min (${tasks} in ${s(b.wallMs)}); time to workbook from the burst's start p50 ${s(bs.median)} p95 ${s(bs.p95)}; failed ${b.failed}; CPU per run: container ${cpu(b.containerCpuS / tasks)}, dockerd+containerd ${cpu(b.daemonCpuS / tasks)}; peak memory of one ${b.memPeakMb.toFixed(0)} MB`,
  );
  const hostH = (h.runnerCpuS + h.sandboxCpuS + h.daemonCpuS + h.botCpuS) / tasks;
  const hostB = (b.containerCpuS + b.daemonCpuS) / tasks;
  console.log(
    `ratio handoff / bare: throughput ${(hRate / bRate).toFixed(2)}x, time to deliverable p50 ${(hs.median / bs.median).toFixed(2)}x p95 ${(hs.p95 / bs.p95).toFixed(2)}x, CPU per task (runner+bot+sandboxes+daemons vs container+daemons) ${(hostH / hostB).toFixed(2)}x (${cpu(hostH)} vs ${cpu(hostB)}); ${done} of ${tasks} delivered`,
  );
  if (h.profile)
    console.log(
      `runner CPU profile over the burst (concurrency ${n}; the profiler's own sampling adds to the runner's CPU above, so take CPU per task from a run without BENCH_PROFILE):\n${h.profile}`,
    );
}

async function main(): Promise<void> {
  await docker.ping().catch((err) => {
    throw new Error(`cannot run: Docker is not reachable (${err.message})`);
  });
  console.log(
    `${tasks} demo tasks at once per runner concurrency ${concurrencies.join(', ')}; sandbox ${config.sandboxImage}, ${limits.memoryMb} MB, ${limits.cpus} CPU; host: ${(await import('node:os')).cpus().length} cores, load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}${profiling ? '; runner profiled (--cpu-prof)' : ''}`,
  );
  for (const n of concurrencies) {
    const dir = await mkdtemp(join(tmpdir(), `handoff-bench-${benchId}-c${n}-`));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    try {
      const h = await measureHandoff(n, dir);
      const b = await measureBaseline(n, dir);
      report(n, h, b);
    } finally {
      await cleanUp();
    }
  }
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
