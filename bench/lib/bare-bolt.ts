// The baselines of bench/slack-ingress.ts: a bare Bolt app that only acks. Bolt's own HTTP
// receiver verifies the signature, parses the body and acks the event; the listener does
// nothing. Listens on 127.0.0.1 only.
//
// With BARE_WORK_REDIS_URL set it also does, after the ack, the least any bot must do to turn
// a mention into a queued request: answer in the thread (one `chat.postMessage` through
// Bolt's client) and queue one job (BullMQ `Queue.add` on that Redis, queue `bare-plan`).
// Nothing is recorded, checked or audited: it is a floor for the work, not a bot.
//
//   SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… SLACK_API_URL=… [BARE_WORK_REDIS_URL=…] node --import tsx bench/lib/bare-bolt.ts
//
// Prints one JSON line on stdout (`{ url }`) once it listens; stops on SIGTERM/SIGINT or when
// its parent closes stdin.
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) {
    console.error(`bare-bolt: ${name} is required`);
    process.exit(2);
  }
  return v;
};
const app = new App({
  token: env('SLACK_BOT_TOKEN'),
  signingSecret: env('SLACK_SIGNING_SECRET'),
  clientOptions: { slackApiUrl: env('SLACK_API_URL') },
  logLevel: LogLevel.ERROR,
});
const workRedis = process.env.BARE_WORK_REDIS_URL;
const connection = workRedis ? new Redis(workRedis, { maxRetriesPerRequest: null }) : undefined;
const queue = connection ? new Queue('bare-plan', { connection }) : undefined;
if (queue) {
  app.event('app_mention', async ({ event, client }) => {
    await client.chat.postMessage({ channel: event.channel, thread_ts: event.ts, text: 'Got it' });
    await queue.add('plan', { channel: event.channel, ts: event.ts, user: event.user, text: event.text });
  });
} else {
  app.event('app_mention', async () => undefined);
}
const server = await app.start({ port: 0, host: '127.0.0.1' });

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3_000).unref();
  server.closeAllConnections?.();
  void app
    .stop()
    .then(() => queue?.close())
    .then(() => connection?.disconnect())
    .finally(() => process.exit(0));
};
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, stop);
process.stdin.on('end', stop).on('close', stop).resume();
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
