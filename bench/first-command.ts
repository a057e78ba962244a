// Approve click (console API) → the run's first command *running in its container*: the
// command is `date +%s%N`, so the stamp is taken inside the sandbox (containers share the
// host's clock). Alternated A B A B with its baselines so all see the same machine load:
//  1. cold sandbox vs a bare `docker run --rm` of the same image with the same hardening
//     (CLI, and the same container made through the Engine API), each timed from just before
//     the run to the in-container stamp — target ≤ 1.2× at p50;
//  2. warm pool on (HANDOFF_SANDBOX_WARM_POOL) vs a bare `docker exec` of the same command into
//     an already running container of the same kind — target ≤ 1.5× at p50.
// BENCH_PAIRS (default 7) pairs each; BENCH_POOL=0 skips part 2. BENCH_MODEL_DELAY_MS holds the
// run's first model reply back that long, as a real model's first reply takes seconds: a new
// run's sandbox is made while it waits, so cold and warm then come out alike (the baselines
// have no model and are not comparable with it).
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleClient, planButtons } from '../test/helpers/console-client.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { BareDocker } from './lib/bare-docker.ts';
import { startStampModel } from './lib/model-fakes.ts';
import { nowMs } from './lib/stamp-model.ts';
import { print, summary } from './stats.ts';

const pairs = Math.max(3, Number(process.env.BENCH_PAIRS ?? 7));
const image = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
const csv = new URL('../examples/sales.csv', import.meta.url).pathname;

const scratch = await mkdtemp(join(tmpdir(), 'handoff-bench-first-'));
const inDir = join(scratch, 'in');
await mkdir(inDir);
if (process.getuid?.() === 0) await chown(inDir, 1000, 1000);
const bare = new BareDocker(image, inDir);
// The fake model runs in a process of its own, as the real API is remote.
const model = await startStampModel();

/** One task through the console: post, wait for the plan card, click Approve, wait for the result. */
async function handoffFirstCommand(client: ConsoleClient): Promise<number> {
  await model.next(1);
  const posted = await client.post('@handoff stamp the clock', [{ name: 'sales.csv', path: csv }]);
  const thread = posted.body.message?.id;
  if (!thread) throw new Error(`the console did not take the request: ${JSON.stringify(posted.body)}`);
  const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
  const buttons = planButtons(card.html!);
  const clicked = nowMs();
  const answer = await client.action({ action: 'approve', ...buttons });
  if (answer.status !== 200) throw new Error(`Approve answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
  const first = (await model.stamps())[0];
  if (first === undefined) throw new Error('the run reported no in-container stamp');
  return first - clicked;
}

function ratioLine(name: string, a: number[], b: number[]): void {
  const perPair = a.map((v, i) => v / b[i]!);
  console.log(
    `${name}: ratio of medians ${(summary(a).median / summary(b).median).toFixed(2)}x, median of per-pair ratios ${summary(perPair).median.toFixed(2)}x`,
  );
}

async function cold(): Promise<void> {
  const handoff = await startDevHandoff({
    env: { ANTHROPIC_API_KEY: 'sk-ant-bench', ANTHROPIC_BASE_URL: model.url, HANDOFF_SANDBOX_WARM_POOL: '0' },
  });
  const client = new ConsoleClient(handoff.url);
  const handoffMs: number[] = [];
  const cliMs: number[] = [];
  const apiMs: number[] = [];
  try {
    // Warm-up: image layers in the page cache, the first connection to each server.
    await handoffFirstCommand(client);
    await bare.cliRun();
    await bare.apiRun();
    for (let i = 0; i < pairs; i++) {
      handoffMs.push(await handoffFirstCommand(client));
      cliMs.push(await bare.cliRun());
      apiMs.push(await bare.apiRun());
    }
  } finally {
    await handoff.close();
  }
  print('click → first command in a cold sandbox (in-container stamp)', 'ms', handoffMs);
  print('bare `docker run --rm` (CLI) → stamp', 'ms', cliMs);
  print('bare Engine API create+attach+start → stamp', 'ms', apiMs);
  ratioLine('cold vs docker run (CLI)', handoffMs, cliMs);
  ratioLine('cold vs Engine API run', handoffMs, apiMs);
}

async function pooled(): Promise<void> {
  const handoff = await startDevHandoff({
    env: { ANTHROPIC_API_KEY: 'sk-ant-bench', ANTHROPIC_BASE_URL: model.url, HANDOFF_SANDBOX_WARM_POOL: '2' },
  });
  const client = new ConsoleClient(handoff.url);
  const box = await bare.startIdle(`handoff-bench-exec-${process.pid}`);
  const handoffMs: number[] = [];
  const execMs: number[] = [];
  try {
    await handoffFirstCommand(client);
    await bare.exec(box);
    for (let i = 0; i < pairs; i++) {
      await waitForIdlePool(2);
      handoffMs.push(await handoffFirstCommand(client));
      execMs.push((await bare.exec(box)).ms);
    }
  } finally {
    await box.remove({ force: true, v: true }).catch(() => undefined);
    await handoff.close();
  }
  print('click → first command with the warm pool (in-container stamp)', 'ms', handoffMs);
  print('bare `docker exec` into a running container → stamp', 'ms', execMs);
  ratioLine('warm pool vs docker exec', handoffMs, execMs);
}

/** Waits until the pool holds `n` idle containers again, so every sample is a pool hit. */
async function waitForIdlePool(n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const idle = await bare.docker.listContainers({ all: true, filters: { label: ['org.handoff.pool=1'] } });
    if (idle.filter((c) => c.Names.some((name) => name.startsWith('/handoff-pool-'))).length >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the warm pool did not refill to ${n} containers within 60 s`);
}

try {
  await cold();
  if (process.env.BENCH_POOL !== '0') await pooled();
} finally {
  await model.close();
  await rm(scratch, { recursive: true, force: true });
}
