// The baseline of bench/slack-ingress.ts: a bare Bolt app that only acks. Bolt's own HTTP
// receiver verifies the signature, parses the body and acks the event; the listener does
// nothing. Listens on 127.0.0.1 only.
//
//   SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… SLACK_API_URL=… node --import tsx bench/lib/bare-bolt.ts
//
// Prints one JSON line on stdout (`{ url }`) once it listens; stops on SIGTERM/SIGINT or when
// its parent closes stdin.
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';

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
app.event('app_mention', async () => undefined);
const server = await app.start({ port: 0, host: '127.0.0.1' });

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3_000).unref();
  server.closeAllConnections?.();
  void app.stop().finally(() => process.exit(0));
};
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, stop);
process.stdin.on('end', stop).on('close', stop).resume();
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
