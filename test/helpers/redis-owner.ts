// A process that owns an embedded redis-server for a data directory, as `handoff dev`
// does, until it is signalled. Run with `node --import tsx/esm`.
//   argv: <dir> [graceful]
// Prints one JSON line: { url, pid } of its redis-server, or { error, code }.
// `graceful`: on SIGTERM it does what Handoff's shutdown does: work that needs Redis
// first (a checkpoint written after a pause), prints "checkpointed", then stops Redis
// last and exits 0. Without it, SIGTERM ends the process at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../src/storage/index.ts';

const [dir, mode] = process.argv.slice(2);
if (!dir) throw new Error('usage: redis-owner.ts <dir> [graceful]');
try {
  const redis = await startRedisServer({ dir, stopTimeoutMs: 5000 });
  if (mode === 'graceful') {
    process.once('SIGTERM', async () => {
      await sleep(300);
      const client = new Redis(redis.url, { maxRetriesPerRequest: 0 });
      await client.set('shutdown-checkpoint', 'written during shutdown');
      await client.quit();
      console.log('checkpointed');
      await redis.stop();
      process.exit(0);
    });
  }
  console.log(JSON.stringify({ url: redis.url, pid: redis.pid }));
  // The server does not keep this process alive; this does.
  setInterval(() => {}, 60_000);
} catch (err) {
  console.log(JSON.stringify({ error: (err as Error).message, code: (err as { code?: string }).code }));
  process.exit(1);
}
