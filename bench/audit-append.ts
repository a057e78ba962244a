// Audit append (one script in Redis: link, SHA-256, RPUSH) against a plain RPUSH of a
// string of the same size, on the same real redis-server.
// BENCH_APPENDS (default 2000) appends per run; each run starts them all at once, then
// again with BENCH_CONCURRENCY (default 16) in flight.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  AuditLog,
  closeConnection,
  createRecordConnection,
  startRedisServer,
  waitForReady,
} from '../src/storage/index.ts';

const appends = Number(process.env.BENCH_APPENDS ?? 2000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-'));
const redisServer = await startRedisServer({ dir });
const redis = createRecordConnection(redisServer.url);
await waitForReady(redis);
const log = new AuditLog(redis);

interface Run {
  perSecond: number;
  p50: number;
  p99: number;
}

/** Runs `op` `n` times with at most `inFlight` at once; latency per call in ms. */
async function measure(n: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<Run> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(n, inFlight) }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await op(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!;
  return { perSecond: n / seconds, p50: at(0.5), p99: at(0.99) };
}

const kinds = {
  typical: {
    type: 'tool.call',
    taskId: 't_01J9ZQ8K3M',
    actor: 'runner',
    data: {
      tool: 'run_command',
      action: 'sandbox_exec',
      trust: 'watched',
      decision: 'allowed',
      input: 'x'.repeat(200),
    },
  },
  large: { type: 'tool.result', taskId: 't_01J9ZQ8K3M', data: { tool: 'read_file', output: 'é line\n'.repeat(250) } },
};

const row = (label: string, r: Run) =>
  `${label.padEnd(44)} ${r.perSecond.toFixed(0).padStart(7)} /s  p50=${r.p50.toFixed(2)} ms  p99=${r.p99.toFixed(2)} ms`;

try {
  // Load the script and warm the connection before measuring.
  await measure(200, 20, () => log.append(kinds.typical));
  for (const [kind, entry] of Object.entries(kinds)) {
    const size = Buffer.byteLength(JSON.stringify(await log.append(entry)));
    const payload = 'r'.repeat(size);
    for (const inFlight of [appends, concurrency]) {
      const baseline = await measure(appends, inFlight, () => redis.rpush('bench:baseline', payload));
      const audit = await measure(appends, inFlight, () => log.append(entry));
      const what = `${kind} record (${size} B), ${inFlight === appends ? `all ${appends} at once` : `${inFlight} in flight`}`;
      console.log(row(`audit append, ${what}`, audit));
      console.log(row(`plain RPUSH, ${what}`, baseline));
      console.log(
        `  ratio: ${(baseline.perSecond / audit.perSecond).toFixed(1)}× fewer appends/s than RPUSH, p50 ${(audit.p50 / baseline.p50).toFixed(1)}×, p99 ${(audit.p99 / baseline.p99).toFixed(1)}×`,
      );
      await redis.del('bench:baseline');
    }
  }
} finally {
  await closeConnection(redis);
  await redisServer.stop();
  await rm(dir, { recursive: true, force: true });
}
