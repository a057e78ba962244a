// Failover: a runner holding a run is killed with SIGKILL; how long until the run resumes on
// the other runner (its `run.resumed` audit record)? Handoff's defaults
// (HANDOFF_LOCK_DURATION_MS 8 s, HANDOFF_STALLED_INTERVAL_MS 4 s) beside BullMQ's own defaults
// (30 s lock, 30 s stalled check — what Handoff used before), A B A B on one bot and two
// runner processes, one Redis, real Docker; the model is a local stand-in for the Messages API.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer } from '../src/storage/index.ts';
import { type MessagesRequestBody, startFakeAnthropic } from '../test/fakes/anthropic-server.ts';
import { Cluster, sleep } from '../test/helpers/cluster.ts';
import { planButtons } from '../test/helpers/console-client.ts';
import { doneMdPlan } from '../test/helpers/model-scripts.ts';
import { print } from './stats.ts';

const pairs = Number(process.env.BENCH_PAIRS ?? 3);

/** A model that plans one step, starts a long command, and finishes once told the command was cut short. */
function reply(body: MessagesRequestBody) {
  const tools = JSON.stringify(body.tools ?? []);
  if (tools.includes('submit_plan')) return doneMdPlan;
  const messages = body.messages as Array<{ role: string; content: unknown }>;
  const last = JSON.stringify(messages.at(-1)?.content ?? '');
  const use = (name: string, input: unknown) => ({ content: [{ type: 'tool_use', name, input }] });
  if (messages.length === 1) return use('run_command', { command: 'sleep 600', step: 1 });
  if (last.includes('may or may not have taken effect'))
    return use('run_command', { command: 'echo done > /workspace/out/done.md', step: 1 });
  if (last.includes('exit code 0')) return use('deliver_artifact', { path: '/workspace/out/done.md' });
  return { content: [{ type: 'text', text: 'Wrote done.md.' }] };
}

async function trial(settings: Record<string, string>): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'handoff-failover-'));
  const redisServer = await startRedisServer({ dir: join(dir, 'redis') });
  const model = await startFakeAnthropic({ apiKey: 'sk-ant-bench' });
  model.setHandler(reply);
  const cluster = await Cluster.start({
    bots: 1,
    runners: 2,
    redisUrl: redisServer.url,
    dataDir: join(dir, 'data'),
    env: { ANTHROPIC_API_KEY: 'sk-ant-bench', ANTHROPIC_BASE_URL: model.url, ...settings },
  });
  const redis = new Redis(redisServer.url);
  try {
    const ana = cluster.client(cluster.bots[0]!, await cluster.signIn('Ana'));
    const bo = cluster.client(cluster.bots[0]!, await cluster.signIn('Bo'));
    const posted = await ana.post('@handoff write done.md');
    const thread = posted.body.message!.id;
    const card = await ana.waitForCard(thread, (h) => h.includes('card plan'), 60_000);
    const { taskId } = planButtons(card.html!);
    await bo.action({ action: 'approve', ...planButtons(card.html!) });
    await ana.waitForCard(thread, (h) => h.includes('sleep 600'), 60_000);
    const audit = async () =>
      (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r)).filter((r) => r.taskId === taskId);
    const holder = (await audit()).find((r) => r.type === 'run.started')!.data.runner as string;
    const victim = cluster.runners.find((p) => p.name === holder)!;
    const killedAt = Date.now();
    cluster.kill(victim);
    for (;;) {
      const resumed = (await audit()).find((r) => r.type === 'run.resumed');
      if (resumed) return Date.parse(resumed.at) - killedAt;
      if (Date.now() - killedAt > 180_000) throw new Error('the run did not resume within 3 min');
      await sleep(100);
    }
  } finally {
    redis.disconnect();
    await cluster.stopAll();
    await model.close();
    await redisServer.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const handoff = { HANDOFF_LOCK_DURATION_MS: '8000', HANDOFF_STALLED_INTERVAL_MS: '4000' };
const bullmqDefaults = { HANDOFF_LOCK_DURATION_MS: '30000', HANDOFF_STALLED_INTERVAL_MS: '30000' };
const a: number[] = [];
const b: number[] = [];
for (let i = 0; i < pairs; i++) {
  a.push(await trial(bullmqDefaults));
  b.push(await trial(handoff));
}
print('failover with BullMQ defaults (30 s lock, 30 s stalled check)', 'ms', a);
print('failover with Handoff defaults (8 s lock, 4 s stalled check)', 'ms', b);
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
console.log(`ratio of medians (Handoff / BullMQ defaults): ${(median(b) / median(a)).toFixed(2)}`);
