import type { Redis } from 'ioredis';
import { asHandoffError } from '../core/index.ts';
import type { AuditCliOutput } from './audit-cli.ts';
import { AuditLog } from './audit-log.ts';
import { GrantStore } from './grant-store.ts';
import { closeConnection, createRecordConnection, waitForReady } from './redis.ts';

const usage = 'usage: handoff grants list [--channel SURFACE:CHANNEL] | revoke ID [--by NAME]';

/**
 * `handoff grants list [--channel slack:C0123]`: every live standing grant (or one
 * channel's), one line each. `handoff grants revoke ID [--by NAME]`: revokes one, audited
 * as `grant.revoked` with the admin's name (the CLI is for whoever holds REDIS_URL).
 * Exit 0 on success, 1 when the grant is unknown or already revoked, 2 on usage or Redis errors.
 */
export async function grantsCli(
  redisUrl: string,
  args: { command: string | undefined; id?: string; channel?: string; by?: string },
  retentionMs: number,
  out: AuditCliOutput = console,
): Promise<number> {
  if (args.command === 'list') {
    const channel = args.channel === undefined ? undefined : /^(slack|teams|web):(.{1,200})$/.exec(args.channel);
    if (args.channel !== undefined && !channel) {
      out.error(`--channel ${JSON.stringify(args.channel)}: write SURFACE:CHANNEL, as in slack:C0123 or web:general`);
      return 2;
    }
    return withRedis(redisUrl, out, async (redis) => {
      const all = await new GrantStore(redis, retentionMs).all();
      const shown = all.filter((g) => !channel || (g.surface === channel[1] && g.channel === channel[2]));
      if (shown.length === 0) out.log('no standing grants');
      for (const g of shown)
        out.log(
          `${g.id}  ${g.scope === 'run' ? `run ${g.runId}` : `${g.surface}:${g.channel}`}  ${g.pattern}  by ${g.createdBy.name} (${g.createdBy.id}) at ${g.createdAt}  until ${g.expiresAt}`,
        );
      return 0;
    });
  }
  if (args.command === 'revoke' && args.id) {
    const id = args.id;
    const name = (args.by ?? 'admin').trim().slice(0, 100) || 'admin';
    return withRedis(redisUrl, out, async (redis) => {
      try {
        const grant = await new GrantStore(redis, retentionMs).revoke(id, { id: `cli:${name}`, name });
        await new AuditLog(redis).append({
          type: 'grant.revoked',
          taskId: grant.taskId,
          actor: `cli:${name}`,
          data: {
            grantId: grant.id,
            pattern: grant.pattern,
            scope: grant.scope,
            channel: `${grant.surface}:${grant.channel}`,
            via: 'cli',
          },
        });
        out.log(`revoked ${grant.id} (${grant.pattern}); it stops applying at the next call`);
        return 0;
      } catch (err) {
        out.error(asHandoffError(err).message);
        return 1;
      }
    });
  }
  out.error(usage);
  return 2;
}

async function withRedis(url: string, out: AuditCliOutput, fn: (redis: Redis) => Promise<number>): Promise<number> {
  const redis = createRecordConnection(url, { lazyConnect: true, retryStrategy: () => null });
  redis.on('error', () => {
    // Reported below through waitForReady/command failures.
  });
  try {
    await redis.connect();
    await waitForReady(redis, 5000);
  } catch (err) {
    out.error(`cannot reach Redis at ${url.replace(/\/\/[^@/]*@/, '//***@')}: ${(err as Error).message}`);
    redis.disconnect();
    return 2;
  }
  try {
    return await fn(redis);
  } finally {
    await closeConnection(redis);
  }
}
