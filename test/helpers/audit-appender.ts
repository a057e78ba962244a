// One writer process of the multi-process audit test: connects, prints `ready`, waits for a
// line on stdin, appends COUNT records all at once, prints what each append returned as one
// JSON line, and exits.
// Usage: node --import tsx test/helpers/audit-appender.ts REDIS_URL WORKER COUNT
import { createInterface } from 'node:readline';
import { AuditLog, closeConnection, createRecordConnection, waitForReady } from '../../src/storage/index.ts';

const [url, workerArg, countArg] = process.argv.slice(2);
if (!url || !workerArg || !countArg) throw new Error('usage: audit-appender.ts REDIS_URL WORKER COUNT');
const worker = Number(workerArg);
const redis = createRecordConnection(url);
await waitForReady(redis);
const log = new AuditLog(redis);
const input = createInterface({ input: process.stdin });
// Stdin closing without a line means the test went away: stop rather than linger.
const go = new Promise<boolean>((resolve) => {
  input.once('line', () => resolve(true));
  input.once('close', () => resolve(false));
});
console.log('ready');
if (!(await go)) {
  await closeConnection(redis);
  process.exit(1);
}
input.close();
const records = await Promise.all(
  Array.from({ length: Number(countArg) }, (_, i) =>
    log.append({
      type: 'test.burst',
      // Every other record without a task or an actor, and sizes that vary.
      ...(i % 2 === 0 ? { taskId: `t_${worker}_${i}`, actor: `worker-${worker}` } : {}),
      data: { worker, i, note: 'é😀'.repeat(i % 9), nested: { b: [i, null, true], a: 'x'.repeat(i % 70) } },
    }),
  ),
);
console.log(JSON.stringify(records.map((r) => ({ seq: r.seq, hash: r.hash, i: r.data.i }))));
await closeConnection(redis);
