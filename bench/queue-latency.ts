// Run queue: enqueue → active latency with a real redis-server and BullMQ worker.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { queueNames } from '../src/queue/index.ts';
import { startRedisServer } from '../src/storage/index.ts';
import { print } from './stats.ts';

const jobs = Number(process.env.BENCH_JOBS ?? 200);
const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-'));
const redisServer = await startRedisServer({ dir });
const connection = new Redis(redisServer.url, { maxRetriesPerRequest: null });
const prefix = `bench${Date.now()}`;
const queue = new Queue(queueNames.run, { connection, prefix });
const latencies: number[] = [];
let done!: () => void;
const finished = new Promise<void>((r) => {
  done = r;
});
const workerConnection = connection.duplicate();
const worker = new Worker(
  queueNames.run,
  async (job) => {
    latencies.push(Date.now() - (job.data as { sentAt: number }).sentAt);
    if (latencies.length === jobs) done();
  },
  { connection: workerConnection, prefix, concurrency: 1 },
);
await worker.waitUntilReady();
for (let i = 0; i < jobs; i++) {
  await queue.add('run', { sentAt: Date.now() }, { jobId: `run-bench-${i}` });
  await new Promise((r) => setTimeout(r, 5));
}
await finished;
print('run queue enqueue → active', 'ms', latencies);
await worker.close();
await queue.close();
connection.disconnect();
workerConnection.disconnect();
await redisServer.stop();
await rm(dir, { recursive: true, force: true });
