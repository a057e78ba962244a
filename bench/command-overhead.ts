// What Handoff adds around one `run_command` (policy gate, audit, checkpoint, progress, the
// model round trip to a local fake): a run whose model issues BENCH_COMMANDS (default 20)
// run_commands of `date +%s%N` one after another; the per-command time is the gap between
// consecutive in-container stamps. Baseline: the same number of bare `docker exec`s of the same
// command, one after another, into a running container with the same hardening; the same gaps.
// Alternated A B A B, BENCH_PAIRS (default 5) pairs; medians; target ≤ 1.3×. The model round trip
// is not part of what the target counts (policy gate, audit, checkpoint, progress): the runner
// times every model request (handoff_model_request_seconds, read from the bot's /metrics), and
// the second figure takes each run's mean model request time out of its gaps.
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleClient, planButtons } from '../test/helpers/console-client.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { BareDocker } from './lib/bare-docker.ts';
import { startStampModel } from './lib/model-fakes.ts';
import { print, summary } from './stats.ts';

const pairs = Math.max(3, Number(process.env.BENCH_PAIRS ?? 5));
const commands = Math.max(3, Number(process.env.BENCH_COMMANDS ?? 20));
const image = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';

const scratch = await mkdtemp(join(tmpdir(), 'handoff-bench-cmd-'));
const inDir = join(scratch, 'in');
await mkdir(inDir);
if (process.getuid?.() === 0) await chown(inDir, 1000, 1000);
const bare = new BareDocker(image, inDir);
// The fake model runs in a process of its own, as the real API is remote.
const model = await startStampModel();
const handoff = await startDevHandoff({ env: { ANTHROPIC_API_KEY: 'sk-ant-bench', ANTHROPIC_BASE_URL: model.url } });
const client = new ConsoleClient(handoff.url);
const box = await bare.startIdle(`handoff-bench-cmd-${process.pid}`);

const gaps = (stamps: number[]) => stamps.slice(1).map((s, i) => s - stamps[i]!);

/** Sum and count of the model request histogram, from /metrics. */
async function modelRequests(): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${handoff.url}/metrics`)).text();
  const value = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}\\{[^}]*\\} ([0-9.e+-]+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  return { sum: value('handoff_model_request_seconds_sum'), count: value('handoff_model_request_seconds_count') };
}

/** Mean model request time of each Handoff run, in ms. */
const modelMeans: number[] = [];

/** One run of `commands` stamping commands; the gaps between consecutive stamps. */
async function handoffRun(): Promise<number[]> {
  await model.next(commands);
  const posted = await client.post('@handoff stamp the clock many times');
  const thread = posted.body.message?.id;
  if (!thread) throw new Error(`the console did not take the request: ${JSON.stringify(posted.body)}`);
  const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
  // The run's requests only, not the plan's.
  const before = await modelRequests();
  await client.action({ action: 'approve', ...planButtons(card.html!) });
  await client.waitForCard(thread, (h) => h.includes('card result'), 300_000);
  const stamps = await model.stamps();
  if (stamps.length !== commands) throw new Error(`expected ${commands} stamps, got ${stamps.length}`);
  const after = await modelRequests();
  if (after.count <= before.count) throw new Error('the runner timed no model request');
  modelMeans.push(((after.sum - before.sum) / (after.count - before.count)) * 1000);
  return gaps(stamps);
}

async function bareRun(): Promise<number[]> {
  const stamps: number[] = [];
  for (let i = 0; i < commands; i++) stamps.push((await bare.exec(box)).stamp);
  return gaps(stamps);
}

const handoffGaps: number[] = [];
const bareGaps: number[] = [];
const handoffMedians: number[] = [];
const bareMedians: number[] = [];
const withoutModelMedians: number[] = [];
try {
  await bareRun();
  for (let i = 0; i < pairs; i++) {
    const a = await handoffRun();
    const b = await bareRun();
    handoffGaps.push(...a);
    bareGaps.push(...b);
    handoffMedians.push(summary(a).median);
    bareMedians.push(summary(b).median);
    withoutModelMedians.push(summary(a).median - modelMeans.at(-1)!);
  }
} finally {
  await box.remove({ force: true, v: true }).catch(() => undefined);
  await handoff.close();
  await model.close();
  await rm(scratch, { recursive: true, force: true });
}
print(`run_command → next run_command in a run (${commands} per run, in-container stamps)`, 'ms', handoffGaps);
print('bare docker exec → next bare docker exec (in-container stamps)', 'ms', bareGaps);
const perPair = handoffMedians.map((v, i) => v / bareMedians[i]!);
console.log(
  `per-command ratio: ratio of medians ${(summary(handoffGaps).median / summary(bareGaps).median).toFixed(2)}x, median of per-pair ratios ${summary(perPair).median.toFixed(2)}x`,
);
console.log(
  `model request (runner's own timing, mean per run): median ${summary(modelMeans).median.toFixed(1)} ms; per-command ratio without it: median of per-pair ratios ${summary(withoutModelMedians.map((v, i) => v / bareMedians[i]!)).median.toFixed(2)}x`,
);
