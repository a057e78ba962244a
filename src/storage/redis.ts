import { Redis, type RedisOptions } from 'ioredis';
import { throttledLog } from '../observability/index.ts';

/**
 * A connection for records: commands fail fast when Redis is down, so a person is told
 * at once instead of waiting on a hung request. Commands issued in the same tick (many
 * requests at once) go out in one write (ioredis auto-pipelining) rather than one each.
 */
export function createRecordConnection(url: string, options: RedisOptions = {}, onError?: (err: Error) => void): Redis {
  return watchErrors(
    new Redis(url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      lazyConnect: false,
      enableAutoPipelining: true,
      ...options,
    }),
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
  /** `maxmemory-policy`; undefined when neither CONFIG GET nor INFO shows it. */
  evictionPolicy: string | undefined;
  /** Whether AOF is on; undefined when neither CONFIG GET nor INFO shows it. */
  aof: boolean | undefined;
  version: string;
  /**
   * Whether CONFIG GET answered. Managed services (ElastiCache, Memorystore, Azure Cache)
   * disable it; then the settings come from INFO, and are changed in the service's own
   * configuration rather than with CONFIG SET.
   */
  configAvailable: boolean;
}

/**
 * A command the server or this user may not run (renamed, disabled, ACL) gives undefined;
 * anything else (connection lost, authentication) is thrown.
 */
async function unlessRefused<T>(run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (err) {
    const e = err as Error;
    if (e.name === 'ReplyError' && !/^(NOAUTH|WRONGPASS)/.test(e.message)) return undefined;
    throw err;
  }
}

async function configGet(redis: Redis, name: string): Promise<string | undefined> {
  const reply = await unlessRefused(() => redis.config('GET', name) as Promise<string[]>);
  return Array.isArray(reply) ? reply[1] : undefined;
}

/**
 * Reads what the bot and runner check at start: noeviction, and whether AOF is on.
 * CONFIG GET first; where it is disabled, `maxmemory_policy` (INFO memory) and
 * `aof_enabled` (INFO persistence). What neither shows is left undefined: never throws
 * for a refused command.
 */
export async function redisHealth(redis: Redis): Promise<RedisHealth> {
  const policy = await configGet(redis, 'maxmemory-policy');
  const appendonly = await configGet(redis, 'appendonly');
  // The default INFO sections include server, memory and persistence.
  const info = (await unlessRefused(() => redis.info())) ?? '';
  const field = (name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
  const aofEnabled = field('aof_enabled');
  return {
    evictionPolicy: policy || field('maxmemory_policy'),
    aof: appendonly ? appendonly === 'yes' : aofEnabled === undefined ? undefined : aofEnabled === '1',
    version: field('redis_version') ?? 'unknown',
    configAvailable: policy !== undefined || appendonly !== undefined,
  };
}

export interface RedisHealthProblem {
  level: 'error' | 'warn';
  message: string;
  details: Record<string, unknown>;
}

/** What the bot and runner log at start about a Redis health reading. */
export function redisHealthProblems(health: RedisHealth): RedisHealthProblem[] {
  const problems: RedisHealthProblem[] = [];
  if (health.evictionPolicy === undefined)
    problems.push({
      level: 'warn',
      message:
        'Redis maxmemory-policy could not be confirmed (CONFIG GET and INFO do not show it to this connection). Check that it is `noeviction` in the Redis configuration (on a managed service: its parameter group or settings), or queued jobs and records can be evicted.',
      details: {},
    });
  else if (health.evictionPolicy !== 'noeviction')
    problems.push({
      level: 'error',
      message:
        'Redis maxmemory-policy is not noeviction: queued jobs and records can be evicted. Set `maxmemory-policy noeviction`.',
      details: { policy: health.evictionPolicy },
    });
  if (health.aof === undefined)
    problems.push({
      level: 'warn',
      message:
        "Redis AOF could not be confirmed (CONFIG GET and INFO do not show it to this connection). Check that persistence is on (`appendonly yes`, or the managed service's persistence setting), or a Redis restart loses recent tasks and queued jobs.",
      details: {},
    });
  else if (!health.aof)
    problems.push({
      level: 'warn',
      message: 'Redis AOF is off: a Redis restart loses recent tasks and queued jobs. Set `appendonly yes`.',
      details: {},
    });
  return problems;
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
