// Slack surface figures:
//  1. ack latency of 1,000 signed app_mention posts at concurrency 50 (bot role, loopback);
//  2. edits per second of one progress message during a chatty run (dev role, Docker).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { startHandoff } from '../src/main.ts';
import { createLogger } from '../src/observability/index.ts';
import { startRedisServer } from '../src/storage/index.ts';
import { startFakeAnthropic } from '../test/fakes/anthropic-server.ts';
import { FakeSlack, SlackSender } from '../test/fakes/slack-server.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { print } from './stats.ts';

const posts = Number(process.env.BENCH_POSTS ?? 1000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 50);
const botToken = `xoxb-bench-${randomBytes(8).toString('hex')}`;
const signingSecret = randomBytes(16).toString('hex');

async function ackLatency(): Promise<void> {
  const fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' } } });
  await fake.start();
  const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-slack-'));
  const redis = await startRedisServer({ dir: join(dir, 'redis') });
  const config = loadConfig({
    env: {
      REDIS_URL: redis.url,
      HANDOFF_PORT: '0',
      HANDOFF_DATA_DIR: dir,
      HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      LOG_LEVEL: 'silent',
    },
    file: '/dev/null',
  });
  const bot = await startHandoff({ config, mode: 'bot', logger: createLogger('silent') });
  const sender = new SlackSender(bot.url!, signingSecret);
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= posts) return;
      const ts = `${1_700_000_000 + i}.000100`;
      const r = await sender.event({
        type: 'app_mention',
        user: 'UANA',
        channel: 'C1',
        ts,
        text: `<@UBOT> bench request ${i}`,
      });
      if (r.status !== 200) failures += 1;
      latencies.push(r.ms);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  print(`slack ack (${posts} signed mentions, concurrency ${concurrency})`, 'ms', latencies);
  const sorted = [...latencies].sort((a, b) => a - b);
  console.log(
    `  p99=${sorted[Math.ceil(0.99 * sorted.length) - 1]!.toFixed(1)} ms, non-200: ${failures}, ${(posts / seconds).toFixed(0)} req/s`,
  );
  await bot.close();
  await redis.stop();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
}

async function progressEdits(native: boolean): Promise<void> {
  const fake = new FakeSlack({ botToken, users: { UANA: { name: 'Ana' }, UBEN: { name: 'Ben' } } });
  await fake.start();
  // Without native streaming the surface falls back to one progress message edited in place.
  if (!native) fake.disableStreaming('method_not_supported_for_channel_type');
  const model = await startFakeAnthropic();
  model.enqueue(
    {
      content: [
        {
          type: 'tool_use',
          name: 'submit_plan',
          input: {
            summary: 'Print a lot, then write a note.',
            steps: [{ title: 'Chatty command', actions: ['run_commands', 'create_files'] }],
            deliverables: [{ name: 'note.md', type: 'md' }],
          },
        },
      ],
    },
    // 15 s of output, a line every 20 ms.
    {
      content: [
        {
          type: 'tool_use',
          name: 'run_command',
          input: {
            command: 'for i in $(seq 750); do echo line $i; sleep 0.02; done; echo done > /workspace/out/note.md',
            step: 1,
          },
        },
      ],
    },
    { content: [{ type: 'tool_use', name: 'deliver_artifact', input: { path: '/workspace/out/note.md' } }] },
    { content: [{ type: 'text', text: 'Done.' }] },
  );
  const handoff = await startDevHandoff({
    env: {
      SLACK_BOT_TOKEN: botToken,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_API_URL: fake.apiUrl,
      ANTHROPIC_API_KEY: 'sk-ant-bench',
      ANTHROPIC_BASE_URL: model.url,
      HANDOFF_ALLOW_SELF_APPROVAL: '1',
    },
  });
  const sender = new SlackSender(handoff.url, signingSecret);
  const rootTs = '1700000000.000200';
  await sender.event({ type: 'app_mention', user: 'UANA', channel: 'C1', ts: rootTs, text: '<@UBOT> print a lot' });
  const card = await fake.waitFor('plan card', () =>
    fake.thread('C1', rootTs).find((m) => JSON.stringify(m.blocks).includes('handoff_approve')),
  );
  const button = findButton(card.blocks, /^handoff_approve$/);
  if (!button) throw new Error('no Approve button on the plan card');
  await sender.click({ id: 'UANA', name: 'Ana' }, 'C1', { ts: card.ts, thread_ts: rootTs }, button);
  await fake.waitFor('result', () => fake.thread('C1', rootTs).find((m) => m.text.includes('Done')), 120_000);
  // Calls that change the progress display: stream appends (native) or message edits (fallback).
  const methods = native ? ['chat.startStream', 'chat.appendStream', 'chat.stopStream'] : ['chat.update'];
  const updates = fake.calls.filter((c) => methods.includes(c.method) && String(c.args.ts ?? '') !== card.ts);
  const byMessage = new Map<string, number[]>();
  for (const u of updates) {
    const key = native ? 'stream' : String(u.args.ts);
    byMessage.set(key, [...(byMessage.get(key) ?? []), u.at]);
  }
  const [, times] = [...byMessage.entries()].sort((a, b) => b[1].length - a[1].length)[0] ?? ['', []];
  const span = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  console.log(
    `slack progress (${native ? 'native stream' : 'edited message'}): ${times.length} calls over ${span.toFixed(1)} s = ${(times.length / Math.max(span, 1)).toFixed(2)} per second; smallest gap ${gaps.length ? Math.min(...gaps) : 0} ms`,
  );
  await handoff.close();
  await model.close();
  await fake.close();
}

function findButton(node: unknown, id: RegExp): { action_id: string; value: string } | undefined {
  if (Array.isArray(node)) {
    for (const n of node) {
      const found = findButton(n, id);
      if (found) return found;
    }
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.action_id === 'string' && id.test(o.action_id) && typeof o.value === 'string') {
      return { action_id: o.action_id, value: o.value };
    }
    for (const v of Object.values(o)) {
      const found = findButton(v, id);
      if (found) return found;
    }
  }
  return undefined;
}

await ackLatency();
await progressEdits(true);
await progressEdits(false);
