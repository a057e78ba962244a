import { Redis, type RedisOptions } from 'ioredis';
import { throttledLog } from '../observability/index.ts';

/**
 * A connection for records: commands fail fast when Redis is down, so a person is told
 * at once instead of waiting on a hung request.
 */
export function createRecordConnection(url: string, options: RedisOptions = {}, onError?: (err: Error) => void): Redis {
  return watchErrors(
    new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false, ...options }),
    onError,
  );
}

/** A connection for BullMQ workers, which MUST have maxRetriesPerRequest null. */
export function createQueueConnection(url: string, options: RedisOptions = {}, onError?: (err: Error) => void): Redis {
  return watchErrors(new Redis(url, { maxRetriesPerRequest: null, ...options }), onError);
}

/**
 * While Redis is down ioredis emits an error on every reconnect attempt, and prints each
 * one when nobody listens. Reported at most once every 30 s instead.
 */
export function watchErrors<T extends Redis>(redis: T, onError: ((err: Error) => void) | undefined): T {
  redis.on(
    'error',
    throttledLog((_skipped, err) => onError?.(err as Error)),
  );
  return redis;
}

export interface RedisHealth {
  evictionPolicy: string;
  aof: boolean;
  version: string;
}

/** Reads what the bot and runner check at start: noeviction, and whether AOF is on. */
export async function redisHealth(redis: Redis): Promise<RedisHealth> {
  const policy = (await redis.config('GET', 'maxmemory-policy')) as string[];
  const aof = (await redis.config('GET', 'appendonly')) as string[];
  const info = await redis.info('server');
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  return { evictionPolicy: policy[1] ?? 'unknown', aof: aof[1] === 'yes', version };
}

/** Waits until a connection is ready (or fails with the connection's error after `timeoutMs`). */
export async function waitForReady(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const onError = (err: Error) => {
      lastError = err;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(lastError ?? new Error(`not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

/** Closes a connection politely when it is up, at once when it is not. */
export async function closeConnection(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}
