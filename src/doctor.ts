import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import Dockerode from 'dockerode';
import { loadSkills, skillSources } from './agent/index.ts';
import { loadPolicy } from './approvals/index.ts';
import { teamsChecks } from './bot/index.ts';
import type { Config, ConnectorConfig } from './config/index.ts';
import { modelCheckFromConfig } from './model-provider.ts';
import { connectorChecks } from './runner/index.ts';
import { createRecordConnection, formatBytes, redisHealth, StateStore } from './storage/index.ts';

interface Check {
  name: string;
  ok: boolean;
  /** Not confirmed either way: printed as `warn`, does not fail the command. */
  warn?: boolean;
  detail: string;
  fix?: string;
}

/** `handoff doctor`: each dependency, whether it is usable, and the fix when it is not. */
export async function doctor(
  config: Config,
  connectors: readonly ConnectorConfig[] = [],
  skillPaths: readonly string[] = [],
  options: DoctorOptions = {},
): Promise<number> {
  const checks: Check[] = [];

  if (config.redisUrl) {
    const redis = createRecordConnection(config.redisUrl, { lazyConnect: true, retryStrategy: () => null });
    try {
      await redis.connect();
      const h = await redisHealth(redis);
      checks.push({
        name: 'Redis',
        ok: true,
        detail: `reachable, version ${h.version}${h.configAvailable ? '' : ' (CONFIG is disabled: settings read from INFO)'}`,
      });
      // Managed services disable CONFIG: their settings change in the service's configuration.
      const where = h.configAvailable ? 'in redis.conf' : "in the service's configuration or parameter group";
      const unconfirmed = h.configAvailable ? 'INFO does not show it' : 'CONFIG GET and INFO are not available';
      checks.push(
        h.evictionPolicy === undefined
          ? {
              name: 'Redis eviction policy',
              ok: true,
              warn: true,
              detail: `could not be confirmed (${unconfirmed} to this connection)`,
              fix: `that maxmemory-policy is noeviction ${where}`,
            }
          : {
              name: 'Redis eviction policy',
              ok: h.evictionPolicy === 'noeviction',
              detail: h.evictionPolicy,
              fix: h.configAvailable
                ? 'redis-cli CONFIG SET maxmemory-policy noeviction (and set it in redis.conf)'
                : `set maxmemory-policy noeviction ${where}`,
            },
      );
      checks.push(
        h.aof === undefined
          ? {
              name: 'Redis AOF',
              ok: true,
              warn: true,
              detail: `could not be confirmed (${unconfirmed} to this connection)`,
              fix: `that persistence is on (appendonly yes) ${where}`,
            }
          : {
              name: 'Redis AOF',
              ok: h.aof,
              detail: h.aof ? 'on' : 'off',
              fix: h.configAvailable
                ? 'redis-cli CONFIG SET appendonly yes (and set it in redis.conf)'
                : `turn on persistence (appendonly yes) ${where}`,
            },
      );
      checks.push(await memoryCheck(redis, config));
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

  // One tiny real request: the key or credentials, the model id and the region, each named when wrong.
  checks.push(await modelCheckFromConfig(config));

  if (connectors.length > 0) {
    try {
      checks.push(...(await connectorChecks(connectors, loadPolicy(config.policyFile))));
    } catch (err) {
      checks.push({ name: 'Connectors', ok: false, detail: (err as Error).message.slice(0, 500) });
    }
  }

  // Agent Skills: a broken SKILL.md is left out at start; here it fails the check, named.
  const skills = loadSkills(skillSources({ dataDir: resolve(config.dataDir), paths: skillPaths }));
  checks.push({
    name: 'Skills',
    ok: skills.problems.length === 0,
    detail: [
      `${skills.skills.length} loaded${skills.skills.length > 0 ? ` (${skills.skills.map((s) => s.name).join(', ')})` : ''}`,
      ...skills.shadowed.map((line) => `hidden: ${line}`),
      ...skills.problems,
    ]
      .join('; ')
      .slice(0, 2000),
    ...(skills.problems.length > 0
      ? { fix: 'the SKILL.md named (see docs/skills.md; `handoff skills check DIR`)' }
      : {}),
  });

  if (config.teamsAppId) {
    checks.push(
      ...(await teamsChecks({
        appId: config.teamsAppId,
        ...(config.teamsAppPassword ? { appPassword: config.teamsAppPassword } : {}),
        ...(config.teamsTenantId ? { tenantId: config.teamsTenantId } : {}),
        openIdMetadataUrl: config.teamsOpenidMetadataUrl,
        ...(config.teamsTokenEndpoint ? { tokenEndpoint: config.teamsTokenEndpoint } : {}),
        graphEnabled: config.teamsGraphEnabled,
      })),
    );
  }

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

  const report = doctorReport(checks);
  if (options.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    for (const c of report.checks) {
      const status = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' }[c.status];
      const fix = c.fix ? `\n      ${c.status === 'warn' ? 'check' : 'fix'}: ${c.fix}` : '';
      console.log(`${status}  ${c.name}: ${c.detail}${fix}`);
    }
  }
  return report.ok ? 0 : 1;
}

export interface DoctorOptions {
  /** Print one JSON document (`DoctorReport`) instead of one line per check. */
  json?: boolean;
}

/** What `handoff doctor --json` prints; `ok` is false when any check failed (exit 1). */
export interface DoctorReport {
  ok: boolean;
  checks: {
    name: string;
    /** `warn`: not confirmed either way; it does not fail the command. */
    status: 'ok' | 'warn' | 'fail';
    detail: string;
    /** What to do (`fail`) or what to check (`warn`); absent when the check passed. */
    fix?: string;
  }[];
}

function doctorReport(checks: readonly Check[]): DoctorReport {
  return {
    ok: checks.every((c) => c.ok),
    checks: checks.map((c) => {
      const status = c.ok ? (c.warn ? 'warn' : 'ok') : 'fail';
      return { name: c.name, status, detail: c.detail, ...(c.fix && status !== 'ok' ? { fix: c.fix } : {}) };
    }),
  };
}

/** Redis memory: what is used, what one task's records cost, and what retention keeps. */
async function memoryCheck(redis: ReturnType<typeof createRecordConnection>, config: Config): Promise<Check> {
  try {
    const info = await redis.info('memory');
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    const max = Number(/maxmemory:(\d+)/.exec(info)?.[1] ?? 0);
    const report = await new StateStore(redis).taskMemoryReport();
    const perTask = report.sampled
      ? `; ${report.tasks}${report.capped ? '+' : ''} task records, about ${formatBytes(report.averageBytes)} per task (task, plans, checkpoint and transcript, ${report.sampled} sampled)`
      : '; no task records yet';
    const full = max > 0 && used > max * 0.8;
    return {
      name: 'Redis memory',
      ok: !full,
      detail: `${formatBytes(used)} used${max > 0 ? ` of ${formatBytes(max)}` : ' (no maxmemory set)'}${perTask}; records are kept ${config.retentionDays} days after a task ends`,
      fix: 'raise maxmemory, or lower HANDOFF_RETENTION_DAYS',
    };
  } catch (err) {
    return {
      name: 'Redis memory',
      ok: true,
      warn: true,
      detail: `could not be measured: ${(err as Error).message}`,
      fix: 'that INFO and MEMORY USAGE are allowed to this connection',
    };
  }
}
