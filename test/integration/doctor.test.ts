import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { doctor } from '../../src/doctor.ts';
import { type EmbeddedRedis, startRedisServer } from '../../src/storage/index.ts';
import { startFakeAnthropic } from '../fakes/anthropic-server.ts';

let redis: EmbeddedRedis;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-doctor-'));
  redis = await startRedisServer({ dir, appendOnly: false });
  const client = new Redis(redis.url);
  // A Redis that would silently drop queued jobs under memory pressure.
  await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
  client.disconnect();
});
afterAll(async () => {
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function run(env: Record<string, string>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '));
  });
  try {
    const code = await doctor(loadConfig({ env: { HANDOFF_PORT: '0', ...env }, file: '/dev/null' }));
    return { code, out: lines.join('\n') };
  } finally {
    spy.mockRestore();
  }
}

it('names each Redis problem with its fix and exits non-zero', async () => {
  const { code, out } = await run({ REDIS_URL: redis.url });
  expect(code).toBe(1);
  expect(out).toMatch(/ok {4}Redis: reachable/);
  expect(out).toMatch(/FAIL {2}Redis eviction policy: allkeys-lru\n\s+fix: .*noeviction/);
  expect(out).toMatch(/FAIL {2}Redis AOF: off\n\s+fix: .*appendonly yes/);
  expect(out).toContain('Model: demo model');
});

it('says when Redis cannot be reached, and how to fix it', async () => {
  const { code, out } = await run({ REDIS_URL: 'redis://127.0.0.1:1' });
  expect(code).toBe(1);
  expect(out).toMatch(/FAIL {2}Redis: unreachable.*\n\s+fix: start Redis or correct REDIS_URL/);
});

it('reports the model in use without revealing the key', async () => {
  // The doctor asks the model once (test/integration/doctor-model.test.ts has the failures).
  const model = await startFakeAnthropic({ apiKey: 'sk-ant-doctor-secret' });
  model.enqueue({ content: [{ type: 'text', text: 'p' }], stop_reason: 'max_tokens' });
  try {
    const { out } = await run({
      REDIS_URL: redis.url,
      ANTHROPIC_API_KEY: 'sk-ant-doctor-secret',
      ANTHROPIC_BASE_URL: model.url,
      HANDOFF_MODEL: 'claude-sonnet-5-5',
    });
    expect(out).toMatch(/ok {4}Model: the Anthropic API, model claude-sonnet-5-5 answered in \d+ ms/);
    expect(out).not.toContain('sk-ant-doctor-secret');
  } finally {
    await model.close();
  }
});

it('reports Redis memory and what one task’s records cost', async () => {
  const client = new Redis(redis.url);
  const { StateStore } = await import('../../src/storage/index.ts');
  const { newTask } = await import('../../src/core/index.ts');
  const state = new StateStore(client);
  const task = newTask(
    {
      id: 't_doctor1',
      conversation: { surface: 'web', channel: 'general', thread: 'm_1' },
      requester: { id: 'web:ana', name: 'Ana' },
      request: 'x'.repeat(2000),
      inputs: [],
      demo: true,
    },
    new Date(),
  );
  await state.createTask(task);
  client.disconnect();
  const { out } = await run({ REDIS_URL: redis.url, HANDOFF_RETENTION_DAYS: '7' });
  expect(out).toMatch(
    /ok {4}Redis memory: [\d.]+ [KMG]?i?B used \(no maxmemory set\); 1 task records, about [\d.]+ KB per task/,
  );
  expect(out).toContain('records are kept 7 days after a task ends');
});

it('checks Teams: signing keys found, tokens obtained, and a wrong secret named without showing it', async () => {
  const { startTeamsFakes } = await import('../fakes/teams-server.ts');
  const fakes = await startTeamsFakes();
  try {
    const env = { REDIS_URL: redis.url, ...fakes.handoffEnv({ graph: true }) };
    const good = await run(env);
    expect(good.out).toMatch(
      /ok {4}Teams signing keys: 1 key\(s\) from 127\.0\.0\.1:\d+, issuer https:\/\/api\.botframework\.com/,
    );
    expect(good.out).toMatch(/ok {4}Teams token: the bot gets its tokens/);
    expect(good.out).toMatch(/ok {4}Microsoft Graph token: the bot gets its tokens/);
    const bad = await run({ ...env, TEAMS_APP_PASSWORD: 'not-the-secret-at-all' });
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(
      /FAIL {2}Teams token: .*refused the bot's credentials \(401 invalid_client\)\n\s+fix: check TEAMS_APP_ID/,
    );
    expect(bad.out).not.toContain('not-the-secret-at-all');
    const nowhere = await run({
      ...env,
      TEAMS_OPENID_METADATA_URL: 'http://127.0.0.1:1/v1/.well-known/openidconfiguration',
    });
    expect(nowhere.out).toMatch(/FAIL {2}Teams signing keys: cannot read .*\n\s+fix: check TEAMS_OPENID_METADATA_URL/);
  } finally {
    await fakes.close();
  }
});
