// Managed Redis services (ElastiCache, Memorystore, Azure Cache) disable CONFIG: the
// start-up check and `handoff doctor` read INFO instead, and only warn when neither says.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { doctor } from '../../src/doctor.ts';
import { type EmbeddedRedis, redisHealth, redisHealthProblems, startRedisServer } from '../../src/storage/index.ts';

const noConfig = ['--rename-command', 'CONFIG', ''];
let dir: string;
/** CONFIG disabled; settings a deployment must fix: allkeys-lru, AOF off. */
let bad: EmbeddedRedis;
/** CONFIG disabled; the settings Handoff wants. */
let good: EmbeddedRedis;
/** A user on `bad` that may run neither CONFIG nor INFO. */
let limitedUrl: string;
const clients: Redis[] = [];

function client(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  clients.push(redis);
  return redis;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-managed-redis-'));
  bad = await startRedisServer({
    dir: join(dir, 'bad'),
    appendOnly: false,
    extraArgs: [...noConfig, '--maxmemory-policy', 'allkeys-lru'],
  });
  good = await startRedisServer({ dir: join(dir, 'good'), extraArgs: noConfig });
  await client(bad.url).acl('SETUSER', 'limited', 'on', '>limited-secret', '~*', '&*', '+@all', '-config', '-info');
  const url = new URL(bad.url);
  url.username = 'limited';
  url.password = 'limited-secret';
  limitedUrl = url.toString();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await bad?.stop();
  await good?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('redisHealth with CONFIG disabled', () => {
  it('reads the eviction policy and AOF from INFO', async () => {
    const redis = client(bad.url);
    await expect(redis.config('GET', 'maxmemory-policy')).rejects.toThrow(/unknown command/);
    const health = await redisHealth(redis);
    expect(health).toMatchObject({ evictionPolicy: 'allkeys-lru', aof: false, configAvailable: false });
    expect(health.version).toMatch(/^\d+\.\d+/);
    // Confirmed bad: the same messages as when CONFIG answers.
    expect(redisHealthProblems(health)).toEqual([
      {
        level: 'error',
        message:
          'Redis maxmemory-policy is not noeviction: queued jobs and records can be evicted. Set `maxmemory-policy noeviction`.',
        details: { policy: 'allkeys-lru' },
      },
      {
        level: 'warn',
        message: 'Redis AOF is off: a Redis restart loses recent tasks and queued jobs. Set `appendonly yes`.',
        details: {},
      },
    ]);

    const fine = await redisHealth(client(good.url));
    expect(fine).toMatchObject({ evictionPolicy: 'noeviction', aof: true, configAvailable: false });
    expect(redisHealthProblems(fine)).toEqual([]);
  });

  it('warns that the settings cannot be confirmed when neither CONFIG nor INFO may be run', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const health = await redisHealth(client(limitedUrl));
      expect(health).toMatchObject({ evictionPolicy: undefined, aof: undefined, configAvailable: false });
      const problems = redisHealthProblems(health);
      expect(problems.map((p) => p.level)).toEqual(['warn', 'warn']);
      expect(problems[0]?.message).toMatch(/^Redis maxmemory-policy could not be confirmed .*`noeviction`/);
      expect(problems[1]?.message).toMatch(/^Redis AOF could not be confirmed .*`appendonly yes`/);
    } finally {
      warn.mockRestore();
    }
  });
});

async function runDoctor(redisUrl: string): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '));
  });
  // ioredis says on stderr that it skips its ready check when INFO is refused.
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  try {
    const code = await doctor(loadConfig({ env: { HANDOFF_PORT: '0', REDIS_URL: redisUrl }, file: '/dev/null' }));
    return { code, out: lines.join('\n') };
  } finally {
    log.mockRestore();
    warn.mockRestore();
  }
}

describe('handoff doctor with CONFIG disabled', () => {
  it('reads the settings from INFO and names the confirmed problems', async () => {
    const { code, out } = await runDoctor(bad.url);
    expect(code).toBe(1);
    expect(out).toMatch(/ok {4}Redis: reachable, version \S+ \(CONFIG is disabled: settings read from INFO\)/);
    expect(out).toMatch(
      /FAIL {2}Redis eviction policy: allkeys-lru\n\s+fix: set maxmemory-policy noeviction in the service's configuration/,
    );
    expect(out).toMatch(/FAIL {2}Redis AOF: off\n\s+fix: turn on persistence \(appendonly yes\)/);
  });

  it('passes the Redis checks when INFO shows the right settings', async () => {
    const { out } = await runDoctor(good.url);
    expect(out).toMatch(/ok {4}Redis eviction policy: noeviction/);
    expect(out).toMatch(/ok {4}Redis AOF: on/);
  });

  it('says the settings cannot be confirmed, and what to check, when neither CONFIG nor INFO answers', async () => {
    const { out } = await runDoctor(limitedUrl);
    expect(out).toMatch(/ok {4}Redis: reachable/);
    expect(out).toMatch(
      /warn {2}Redis eviction policy: could not be confirmed \(CONFIG GET and INFO are not available to this connection\)\n\s+check: that maxmemory-policy is noeviction/,
    );
    expect(out).toMatch(/warn {2}Redis AOF: could not be confirmed .*\n\s+check: that persistence is on/);
    expect(out).not.toMatch(/FAIL {2}Redis/);
  });
});
