import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canonicalJson, redact } from '../core/index.ts';

export interface AuditRecord {
  seq: number;
  at: string;
  type: string;
  taskId?: string;
  actor?: string;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** Redis list holding the audit records, oldest first. */
export const auditListKey = 'hf:audit';
/** The prevHash of the very first record. */
export const auditGenesis = '0'.repeat(64);
const listKey = auditListKey;
const genesis = auditGenesis;

// Append in one script so concurrent writers (several bots and runners) never fork the chain.
const appendScript = `
local last = redis.call('LINDEX', KEYS[1], -1)
local prev = ARGV[2]
local seq = 1
if last then
  local rec = cjson.decode(last)
  prev = rec.hash
  seq = rec.seq + 1
end
return {prev, seq}
`;

/**
 * Append-only audit records in Redis, each carrying the hash of the one before
 * (DESIGN §10). Verification and export live beside it.
 */
export class AuditLog {
  constructor(private readonly redis: Redis) {}

  /** The Redis connection the log writes to (verification, export and pruning read it). */
  get connection(): Redis {
    return this.redis;
  }

  async append(entry: {
    type: string;
    taskId?: string;
    actor?: string;
    data?: Record<string, unknown>;
  }): Promise<AuditRecord> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const [prevHash, seq] = (await this.redis.eval(appendScript, 1, listKey, '', genesis)) as [string, number];
      const body = {
        seq,
        at: new Date().toISOString(),
        type: entry.type,
        ...(entry.taskId ? { taskId: entry.taskId } : {}),
        ...(entry.actor ? { actor: entry.actor } : {}),
        data: scrubSecrets(entry.data ?? {}) as Record<string, unknown>,
        prevHash,
      };
      const record: AuditRecord = { ...body, hash: hashRecord(body) };
      // Only appended if the chain did not move since we read it.
      const ok = await this.redis.eval(
        `local last = redis.call('LINDEX', KEYS[1], -1)
         local prev = ARGV[2]
         if last then prev = cjson.decode(last).hash end
         if prev ~= ARGV[1] then return 0 end
         redis.call('RPUSH', KEYS[1], ARGV[3])
         return 1`,
        1,
        listKey,
        prevHash,
        genesis,
        JSON.stringify(record),
      );
      if (ok === 1) return record;
    }
    throw new Error('audit log is too busy to append; try again');
  }

  async records(start = 0, stop = -1): Promise<AuditRecord[]> {
    const raw = await this.redis.lrange(listKey, start, stop);
    return raw.map((r) => JSON.parse(r) as AuditRecord);
  }
}

export function hashRecord(body: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/**
 * Audit records outlive everything else and are exported: any string that looks like a
 * key, token or private key is replaced before it is written, wherever it sits.
 */
export function scrubSecrets(value: unknown): unknown {
  if (typeof value === 'string') return redact(value, ['secret']).text;
  if (Array.isArray(value)) return value.map(scrubSecrets);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, scrubSecrets(v)]));
  }
  return value;
}
