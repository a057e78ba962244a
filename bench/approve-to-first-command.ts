// Approve click → first command running in a fresh sandbox, over N cold runs (demo model).
// "First command" is the first tool call the audit log records for the run; each run gets
// a new container, so every sample includes container creation.
import { Redis } from 'ioredis';
import { ConsoleClient, planButtons } from '../test/helpers/console-client.ts';
import { startDevHandoff } from '../test/helpers/handoff.ts';
import { print } from './stats.ts';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const csv = new URL('../examples/sales.csv', import.meta.url).pathname;
const handoff = await startDevHandoff();
const client = new ConsoleClient(handoff.url);
const redis = new Redis(handoff.redisUrl);
const samples: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    const posted = await client.post(
      '@handoff summarise the attached sales CSV into a spreadsheet with a totals sheet and a chart',
      [{ name: 'sales.csv', path: csv }],
    );
    const thread = posted.body.message!.id;
    const card = await client.waitForCard(thread, (h) => h.includes('card plan'));
    const buttons = planButtons(card.html!);
    const clicked = Date.now();
    await client.action({ action: 'approve', ...buttons });
    let firstCall: number | undefined;
    while (firstCall === undefined) {
      const records = (await redis.lrange('hf:audit', 0, -1)).map((r) => JSON.parse(r));
      const call = records.find((r) => r.type === 'tool.call' && r.taskId === buttons.taskId);
      if (call) firstCall = Date.parse(call.data.at);
      else await new Promise((r) => setTimeout(r, 20));
    }
    samples.push(firstCall - clicked);
    await client.waitForCard(thread, (h) => h.includes('card result'), 180_000);
  }
  print('approve → first command in sandbox', 'ms', samples);
} finally {
  redis.disconnect();
  await handoff.close();
}
