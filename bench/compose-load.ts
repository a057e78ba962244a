// The compose stack (docker-compose.yml, images from scripts/build-app-image.sh) under a
// burst: BENCH_TASKS demo tasks (default 50, the bundled sales sample) posted to the web
// console at once, each plan approved by a second person as soon as its card appears.
//
// With 1 runner and then with 2 (each HANDOFF_RUNNER_CONCURRENCY=2, the default), on a fresh
// stack each time:
//   - throughput: tasks delivered per minute, first post to last deliverable;
//   - time to deliverable per task (post → result card seen; includes the plan, the
//     approval click, which this script makes within ~0.5 s of the card, and the run):
//     median and p95, and the 1-runner / 2-runner ratio;
//   - how the queues drain: waiting and active jobs of the plan and run queues, every 5 s.
// Baseline beside them: one task alone on the same stack (its time to deliverable).
//
// BENCH_RUNNERS=1,2 picks the configurations; BENCH_TIMEOUT_MIN (default 40) bounds each.
import type { Redis } from 'ioredis';
import { QueueDepthReader } from '../src/queue/index.ts';
import { freePort } from '../test/helpers/bot.ts';
import { BearerClient, type ComposeStack, composeAvailability, prepareComposeStack } from '../test/helpers/compose.ts';
import { planButtons } from '../test/helpers/console-client.ts';
import { print, summary } from './stats.ts';

const tasks = Number(process.env.BENCH_TASKS ?? 50);
const runnerCounts = (process.env.BENCH_RUNNERS ?? '1,2').split(',').map(Number);
const timeoutMs = Number(process.env.BENCH_TIMEOUT_MIN ?? 40) * 60_000;
const csv = new URL('../examples/sales.csv', import.meta.url).pathname;
const request = '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  runners: number;
  single: number;
  durationsMs: number[];
  failed: number;
  wallMs: number;
  depth: Array<{ atS: number; plan: string; run: string }>;
}

/** Posts `count` tasks at once and drives them to their deliverables. */
async function burst(
  ana: BearerClient,
  bob: BearerClient,
  depthReader: QueueDepthReader,
  count: number,
  channel: string,
): Promise<Omit<Outcome, 'runners' | 'single'>> {
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
  const approved = new Set<string>();
  const done = new Map<string, { at: number; ok: boolean }>();
  const depth: Outcome['depth'] = [];
  let nextSample = 0;
  const deadline = Date.now() + timeoutMs;
  while (done.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${done.size} of ${count} tasks delivered in time`);
    const now = performance.now();
    if (now >= nextSample) {
      nextSample = now + 5000;
      const d = await depthReader.read();
      const fmt = (q: string) => {
        const x = d.find((e) => e.queue === q);
        return x ? `${x.waiting} waiting/${x.active} active` : '-';
      };
      depth.push({ atS: (now - t0) / 1000, plan: fmt('plan'), run: fmt('run') });
    }
    const messages = await bob.messages(channel).catch(() => []);
    for (const m of messages) {
      if (!m.author.bot || !m.html || !postedAt.has(m.threadId)) continue;
      if (m.html.includes('card result') && !done.has(m.threadId))
        done.set(m.threadId, { at: performance.now(), ok: m.html.includes('Done') });
      else if (m.html.includes('card plan') && m.html.includes('data-action="approve"') && !approved.has(m.threadId)) {
        approved.add(m.threadId);
        const r = await bob.action({ action: 'approve', ...planButtons(m.html) });
        if (r.status !== 200) throw new Error(`approve answered ${r.status}: ${r.body.error ?? r.body.message}`);
      }
    }
    await sleep(500);
  }
  const ends = [...done.entries()];
  return {
    durationsMs: ends.map(([thread, e]) => e.at - postedAt.get(thread)!),
    failed: ends.filter(([, e]) => !e.ok).length,
    wallMs: Math.max(...ends.map(([, e]) => e.at)) - t0,
    depth,
  };
}

async function measure(command: string[], runners: number): Promise<Outcome> {
  const stack: ComposeStack = await prepareComposeStack(command, [
    await freePort(),
    await freePort(),
    await freePort(),
  ]);
  const redis: Redis = stack.redis();
  const depthReader = new QueueDepthReader({ connection: redis });
  try {
    await stack.compose(['build', 'redis'], 600_000);
    const services = ['redis', 'bot-1', 'bot-2', ...Array.from({ length: runners }, (_, i) => `runner-${i + 1}`)];
    await stack.compose(['up', '-d', ...services]);
    await stack.waitReady();
    const ana = new BearerClient(stack.botUrls[0]!, await stack.addUser('Ana'), 'Ana');
    const bob = new BearerClient(stack.botUrls[1]!, await stack.addUser('Bob'), 'Bob');
    const alone = await burst(ana, bob, depthReader, 1, 'warmup');
    const load = await burst(ana, bob, depthReader, tasks, 'burst');
    return { runners, single: alone.durationsMs[0]!, ...load };
  } catch (err) {
    console.error((await stack.logs()).slice(-8000));
    throw err;
  } finally {
    redis.disconnect();
    await stack.down();
  }
}

async function main(): Promise<void> {
  const availability = await composeAvailability();
  if (!availability.ok) throw new Error(`cannot run: ${availability.reason}`);
  console.log(`${tasks} tasks at once; runners: ${runnerCounts.join(' vs ')}; ${availability.command.join(' ')}`);
  const outcomes: Outcome[] = [];
  for (const runners of runnerCounts) {
    const o = await measure(availability.command, runners);
    outcomes.push(o);
    console.log(`\n## ${runners} runner(s)`);
    console.log(`baseline: one task alone, time to deliverable ${(o.single / 1000).toFixed(1)} s`);
    print(
      `time to deliverable under the burst`,
      's',
      o.durationsMs.map((d) => d / 1000),
    );
    console.log(
      `throughput: ${((tasks / o.wallMs) * 60_000).toFixed(1)} tasks/min (${tasks} in ${(o.wallMs / 1000).toFixed(0)} s); failed: ${o.failed}`,
    );
    console.log('queue depth (t, plan, run):');
    for (const d of o.depth) console.log(`  ${d.atS.toFixed(0).padStart(5)} s  plan ${d.plan}  run ${d.run}`);
  }
  if (outcomes.length === 2) {
    const [a, b] = outcomes as [Outcome, Outcome];
    const p95 = summary(a.durationsMs).p95 / summary(b.durationsMs).p95;
    const tput = a.wallMs / b.wallMs;
    console.log(
      `\n${a.runners} vs ${b.runners} runners: p95 time to deliverable ${p95.toFixed(2)}x, throughput ${b.runners} / ${a.runners} = ${tput.toFixed(2)}x`,
    );
  }
}

await main();
