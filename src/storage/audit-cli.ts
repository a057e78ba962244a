import type { Redis } from 'ioredis';
import { asHandoffError } from '../core/index.ts';
import { AuditLog } from './audit-log.ts';
import { type AuditExportTarget, exportAudit, pruneAudit, verifyAuditInRedis } from './audit-verify.ts';
import { closeConnection, createRecordConnection, waitForReady } from './redis.ts';

/** Where CLI functions print; console by default, a recorder in tests. */
export interface AuditCliOutput {
  log(line: string): void;
  error(line: string): void;
}

/**
 * `handoff audit verify`: 0 when the chain is intact; 1 naming the first bad record
 * and what happened to it; 2 when Redis cannot be reached.
 */
export async function auditVerify(redisUrl: string, out: AuditCliOutput = console): Promise<number> {
  return withRedis(redisUrl, out, async (redis) => {
    const result = await verifyAuditInRedis(redis);
    if (result.ok) {
      if (result.count === 0) out.log('ok: the audit log is empty');
      else {
        const from = result.first?.seq ?? result.head.seq;
        out.log(`ok: ${result.count} records (seq ${from}–${result.head.seq}), head ${result.head.hash}`);
      }
      return 0;
    }
    out.error(`audit log: ${result.problem.kind} — ${result.problem.message}`);
    return 1;
  });
}

/**
 * `handoff audit export [--since T] [--to DIR]`: JSONL segments plus digest.json under
 * `DIR/seq-<first>-<last>/`. `since` is an ISO date/time or a duration back from now (`30d`).
 */
export async function auditExport(
  redisUrl: string,
  options: { since?: string; to?: AuditExportTarget; segmentSize?: number },
  out: AuditCliOutput = console,
): Promise<number> {
  let since: Date | undefined;
  if (options.since !== undefined) {
    since = parseSince(options.since);
    if (!since) {
      out.error(`--since ${JSON.stringify(options.since)}: use a date (2025-01-31), a time (2025-01-31T12:00Z) or 30d`);
      return 2;
    }
  }
  return withRedis(redisUrl, out, async (redis) => {
    try {
      const result = await exportAudit(new AuditLog(redis), {
        to: options.to ?? 'audit-export',
        ...(since ? { since } : {}),
        ...(options.segmentSize ? { segmentSize: options.segmentSize } : {}),
      });
      const { digest } = result;
      const firstSeq = digest.segments[0]?.firstSeq ?? digest.head.seq;
      out.log(
        `exported ${digest.records} records (seq ${firstSeq}–${digest.head.seq}) in ${digest.segments.length} segment${digest.segments.length === 1 ? '' : 's'} to ${result.location}`,
      );
      out.log(`digest.json sha256 ${result.digestSha256}; chain head ${digest.head.hash}`);
      return 0;
    } catch (err) {
      out.error(`audit export: ${asHandoffError(err).message}`);
      return 1;
    }
  });
}

/** `handoff audit prune --older-than-days N`: removes exported records older than N days. */
export async function auditPrune(
  redisUrl: string,
  options: { olderThanDays: number },
  out: AuditCliOutput = console,
): Promise<number> {
  return withRedis(redisUrl, out, async (redis) => {
    try {
      const result = await pruneAudit(new AuditLog(redis), options);
      out.log(
        result.pruned > 0
          ? `pruned ${result.pruned} records; the log now starts after seq ${result.anchor?.seq} (anchor ${result.anchor?.hash})`
          : 'pruned nothing',
      );
      if (result.note) out.log(result.note);
      return 0;
    } catch (err) {
      out.error(`audit prune: ${asHandoffError(err).message}`);
      return 1;
    }
  });
}

/** An ISO date/time, or `30d` / `12h` back from `now`. */
export function parseSince(text: string, now = new Date()): Date | undefined {
  const relative = /^(\d+)([dhm])$/.exec(text);
  if (relative) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() - Number(relative[1]) * unit);
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : new Date(ms);
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
