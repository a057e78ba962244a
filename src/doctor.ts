import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import Dockerode from 'dockerode';
import type { Config } from './config/index.ts';
import { createRecordConnection, redisHealth } from './storage/index.ts';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** `handoff doctor`: each dependency, whether it is usable, and the fix when it is not. */
export async function doctor(config: Config): Promise<number> {
  const checks: Check[] = [];

  if (config.redisUrl) {
    const redis = createRecordConnection(config.redisUrl, { lazyConnect: true, retryStrategy: () => null });
    try {
      await redis.connect();
      const h = await redisHealth(redis);
      checks.push({ name: 'Redis', ok: true, detail: `reachable, version ${h.version}` });
      checks.push({
        name: 'Redis eviction policy',
        ok: h.evictionPolicy === 'noeviction',
        detail: h.evictionPolicy,
        fix: 'redis-cli CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)',
      });
      checks.push({
        name: 'Redis AOF',
        ok: h.aof,
        detail: h.aof ? 'on' : 'off',
        fix: 'redis-cli CONFIG SET appendonly yes (and set it in redis.conf)',
      });
    } catch (err) {
      checks.push({
        name: 'Redis',
        ok: false,
        detail: `unreachable: ${(err as Error).message}`,
        fix: 'start Redis or correct REDIS_URL',
      });
    } finally {
      redis.disconnect();
    }
  } else {
    let found = false;
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
      found = true;
    } catch {
      found = false;
    }
    checks.push({
      name: 'Redis',
      ok: found,
      detail: found
        ? 'REDIS_URL unset: `handoff dev` starts redis-server (AOF on, noeviction)'
        : 'REDIS_URL unset and redis-server is not installed',
      fix: 'sudo apt-get install -y redis-server   (or set REDIS_URL)',
    });
  }

  const docker = new Dockerode();
  try {
    await docker.ping();
    checks.push({ name: 'Docker', ok: true, detail: 'reachable' });
    let present = true;
    try {
      await docker.getImage(config.sandboxImage).inspect();
    } catch {
      present = false;
    }
    checks.push({
      name: 'Sandbox image',
      ok: present,
      detail: present ? config.sandboxImage : `${config.sandboxImage} is missing`,
      fix: 'npm run sandbox:build',
    });
  } catch (err) {
    checks.push({
      name: 'Docker',
      ok: false,
      detail: `not reachable: ${(err as Error).message}`,
      fix: 'sudo apt-get install -y docker.io && sudo systemctl start docker   (or start dockerd; set DOCKER_HOST for a remote engine)',
    });
  }

  checks.push(
    config.anthropicApiKey
      ? {
          name: 'Model',
          ok: true,
          detail: `Anthropic API, model ${config.model}${config.anthropicBaseUrl ? ` via ${config.anthropicBaseUrl}` : ''}`,
        }
      : {
          name: 'Model',
          ok: true,
          detail: 'demo model (bundled sample tasks only); set ANTHROPIC_API_KEY to use Claude',
        },
  );

  const portFree = await new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(config.port, config.host, () => srv.close(() => resolve(true)));
  });
  checks.push({
    name: 'Port',
    ok: portFree,
    detail: `${config.host}:${config.port} ${portFree ? 'is free' : 'is in use'}`,
    fix: 'stop what uses it, or set HANDOFF_PORT',
  });

  for (const c of checks) {
    console.log(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}${!c.ok && c.fix ? `\n      fix: ${c.fix}` : ''}`);
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
