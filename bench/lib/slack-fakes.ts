// The fake Slack Web API for bench/slack-ingress.ts, run as a process of its own, as the real
// one is remote: answering the bot's calls (auth.test, users.info, chat.postMessage) is not
// counted against the process being measured.
//
//   SLACK_BOT_TOKEN=… node --import tsx bench/lib/slack-fakes.ts
//
// Prints one JSON line on stdout (`{ apiUrl, pid }`) once it listens, then serves until its
// parent goes away (stdin closed) or it gets SIGTERM/SIGINT.
import { FakeSlack } from '../../test/fakes/slack-server.ts';

const botToken = process.env.SLACK_BOT_TOKEN;
if (!botToken) {
  console.error('slack-fakes: SLACK_BOT_TOKEN is required');
  process.exit(2);
}
const people = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`UP${i}`, { name: `Person ${i}` }]));
const fake = new FakeSlack({ botToken, users: people });
await fake.start();

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3_000).unref();
  void fake.close().finally(() => process.exit(0));
};
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, stop);
process.stdin.on('end', stop).on('close', stop).resume();
process.stdout.write(`${JSON.stringify({ apiUrl: fake.apiUrl, pid: process.pid })}\n`);
