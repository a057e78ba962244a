import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import { planJobId, Queues } from '../../src/queue/index.ts';
import { createRecordConnection, type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { until } from '../helpers/until.ts';

/**
 * Producers have a connection of their own, which reconnects on its own schedule after a
 * Redis restart: an enqueue made while it is still between attempts waits for it rather
 * than refusing work the records connection would already take.
 */
describe('enqueueing across a Redis restart', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function setUp(reconnectWaitMs?: number) {
    const dir = await mkdtemp(join(tmpdir(), 'handoff-queue-reconnect-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    let server: EmbeddedRedis | undefined = await startRedisServer({ dir });
    cleanups.push(async () => server?.stop());
    const port = Number(new URL(server.url).port);
    // One reconnect attempt a second: long enough to enqueue while the connection is between attempts.
    const connection: Redis = createRecordConnection(
      server.url,
      { enableAutoPipelining: false, retryStrategy: () => 1000 },
      () => undefined,
    );
    cleanups.push(async () => connection.disconnect());
    const queues = new Queues({
      connection,
      prefix: `qr${Date.now().toString(36)}`,
      ...(reconnectWaitMs === undefined ? {} : { reconnectWaitMs }),
    });
    cleanups.push(() => queues.close());
    await until('the connection', () => (connection.status === 'ready' ? true : undefined), 10_000);
    const stop = async () => {
      await server?.stop();
      server = undefined;
      await until('the connection to notice', () => (connection.status === 'reconnecting' ? true : undefined), 10_000);
    };
    const restart = async () => {
      server = await startRedisServer({ dir, port });
    };
    return { connection, queues, stop, restart };
  }

  const job = { taskId: 't-reconnect', version: 1 } as const;

  it('waits for a reconnecting connection and adds the job once', async () => {
    const { connection, queues, stop, restart } = await setUp();
    await queues.enqueuePlan(job);
    await stop();
    await restart();
    // Redis is back, but this connection has not tried again yet.
    expect(connection.status).toBe('reconnecting');
    await queues.enqueuePlan({ ...job, version: 2 });
    expect(connection.status).toBe('ready');
    const ids = (await queues.plan.getJobs(['waiting', 'delayed', 'prioritized'])).map((j) => j.id).sort();
    expect(ids).toEqual([planJobId(job.taskId, 1), planJobId(job.taskId, 2)].sort());
  });

  it('still refuses, as unavailable, when Redis does not come back in time', async () => {
    const { queues, stop } = await setUp(300);
    await stop();
    const refused = await queues.enqueuePlan(job).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(HandoffError);
    expect((refused as HandoffError).code).toBe(ErrorCodes.queueUnavailable);
  });
});
