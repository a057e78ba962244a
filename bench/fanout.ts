// Fan-out speed-up and per-workstream overhead, with the bundled 4-region sample
// ("one sheet per region") on the demo model.
//
// 1. Wall time of the whole fan-out (the parent's `workstreams.started` audit record to
//    `workstreams.merged`) with 1 vs 4 workstreams of the task running at once
//    (HANDOFF_MAX_PARALLEL_WORKSTREAMS), and their ratio.
// 2. Per-workstream overhead: a workstream's time from `workstream.started` to
//    `workstream.finished` minus the time its tool calls ran (the demo model decides in
//    no time), i.e. sandbox create/remove, workspace layout, storing its files and the
//    bookkeeping; plus the flow's own hand-offs (fan-out → a child picked up, last child
//    done → parent awake). Beside it, the baseline: a bare `docker run --rm` of the same
//    image running `true`.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { ConsoleClient, planButtons } from '../test/helpers/console-client.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { print, summary } from './stats.ts';

const run = promisify(execFile);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const image = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
const csv = new URL('../examples/sales.csv', import.meta.url).pathname;
const request = '@handoff build a workbook from the attached sales CSV with one sheet per region';

type Rec = { type: string; at: string; taskId?: string; data: Record<string, unknown> };

interface Sample {
  fanOutMs: number;
  overheadMs: number[];
  pickupMs: number[];
  wakeMs: number;
}

async function measure(parallel: number): Promise<Sample[]> {
  const handoff = await startDevHandoff({ env: { HANDOFF_MAX_PARALLEL_WORKSTREAMS: String(parallel) } });
  const client = new ConsoleClient(handoff.url);
  const redis = new Redis(handoff.redisUrl);
  const out: Sample[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const posted = await client.post(request, [{ name: 'sales.csv', path: csv }]);
      const thread = posted.body.message!.id;
      const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
      const buttons = planButtons(card.html!);
      await client.action({ action: 'approve', ...buttons });
      const result = await client.waitForCard(thread, (h) => h.includes('card result'), 300_000);
      if (!result.html!.includes('Done')) throw new Error(`the fan-out did not succeed: ${result.html}`);
      const records = (await redis.lrange('hf:audit', 0, -1))
        .map((r) => JSON.parse(r) as Rec)
        .filter((r) => r.taskId === buttons.taskId);
      const t = (r: Rec | undefined) => (r ? Date.parse(r.at) : Number.NaN);
      const started = t(records.find((r) => r.type === 'workstreams.started'));
      const merged = t(records.find((r) => r.type === 'workstreams.merged'));
      const childStarts = records.filter((r) => r.type === 'workstream.started');
      const childEnds = records.filter((r) => r.type === 'workstream.finished');
      const overheadMs: number[] = [];
      for (const s of childStarts) {
        const id = s.data.workstream;
        const end = childEnds.find((e) => e.data.workstream === id);
        const toolMs = records
          .filter((r) => r.type === 'tool.call' && r.data.workstream === id)
          .reduce((sum, r) => sum + Number(r.data.durationMs ?? 0), 0);
        overheadMs.push(t(end) - t(s) - toolMs);
      }
      out.push({
        fanOutMs: merged - started,
        overheadMs,
        pickupMs: childStarts.map((s) => t(s) - started),
        wakeMs: merged - Math.max(...childEnds.map(t)),
      });
    }
  } finally {
    redis.disconnect();
    await handoff.close();
  }
  return out;
}

async function bareDockerRun(n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await run('docker', ['run', '--rm', '--network', 'none', image, 'true']);
    samples.push(performance.now() - start);
  }
  return samples;
}

const one = await measure(1);
const four = await measure(4);
const bare = await bareDockerRun(Math.max(5, runs * 4));

print(
  'fan-out wall time, 4 regions, 1 at a time',
  'ms',
  one.map((s) => s.fanOutMs),
);
print(
  'fan-out wall time, 4 regions, 4 at once',
  'ms',
  four.map((s) => s.fanOutMs),
);
const speedUp = summary(one.map((s) => s.fanOutMs)).median / summary(four.map((s) => s.fanOutMs)).median;
console.log(`speed-up (median 1 at a time / median 4 at once): ${speedUp.toFixed(2)}×`);
const all = [...one, ...four];
const overhead = all.flatMap((s) => s.overheadMs);
print('per-workstream overhead (sandbox + workspace + files + bookkeeping)', 'ms', overhead);
print('baseline: bare docker run --rm of the same image', 'ms', bare);
console.log(
  `per-workstream overhead / bare docker run (medians): ${(summary(overhead).median / summary(bare).median).toFixed(2)}×`,
);
print(
  'flow: fan-out → workstream picked up (4 at once)',
  'ms',
  four.flatMap((s) => s.pickupMs),
);
print(
  'flow: last workstream done → parent merging',
  'ms',
  all.map((s) => s.wakeMs),
);
