import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canonicalJson, ErrorCodes, HandoffError, redact } from '../core/index.ts';
import { Metrics } from '../observability/index.ts';

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

export interface AuditLogOptions {
  /**
   * How long an append keeps retrying while Redis cannot be reached (down, restarting,
   * reconnecting, loading its data) before it throws a retryable `handoff_audit_unavailable`
   * error. Default 10 000 ms.
   */
  unavailableRetryMs?: number;
  /** Times every append (/metrics: handoff_audit_append_seconds). */
  metrics?: Metrics;
}

/** Redis list holding the audit records, oldest first. */
export const auditListKey = 'hf:audit';
/** The prevHash of the very first record. */
export const auditGenesis = '0'.repeat(64);
const listKey = auditListKey;
const genesis = auditGenesis;

/**
 * SHA-256 (FIPS 180-4) in Redis Lua, which only offers SHA-1. Words are 32-bit and go
 * through the `bit` library; sums are exact in doubles and brought back with `tobit`.
 */
const sha256Lua = String.raw`
local band, bxor, ror, rshift, tobit, tohex = bit.band, bit.bxor, bit.ror, bit.rshift, bit.tobit, bit.tohex
local byte, char, rep, floor = string.byte, string.char, string.rep, math.floor
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function sha256(msg)
  local len = #msg
  -- Padding: 0x80, zeros up to 56 mod 64, then the length in bits as 8 big-endian bytes.
  local bits, size = len * 8, {}
  for i = 7, 0, -1 do size[#size + 1] = char(floor(bits / 2 ^ (8 * i)) % 256) end
  msg = msg .. '\128' .. rep('\0', (55 - len) % 64) .. table.concat(size)
  local h0, h1, h2, h3 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
  local h4, h5, h6, h7 = 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  local w = {}
  for block = 1, #msg, 64 do
    for i = 1, 16 do
      local b1, b2, b3, b4 = byte(msg, block + 4 * i - 4, block + 4 * i - 1)
      w[i] = tobit(b1 * 16777216 + b2 * 65536 + b3 * 256 + b4)
    end
    for i = 17, 64 do
      local x, y = w[i - 15], w[i - 2]
      w[i] = tobit(w[i - 16] + bxor(ror(x, 7), ror(x, 18), rshift(x, 3)) + w[i - 7]
        + bxor(ror(y, 17), ror(y, 19), rshift(y, 10)))
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 1, 64 do
      local t1 = h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(g, band(e, bxor(f, g))) + K[i] + w[i]
      local t2 = bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(c, bxor(a, b)))
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return tohex(h0) .. tohex(h1) .. tohex(h2) .. tohex(h3) .. tohex(h4) .. tohex(h5) .. tohex(h6) .. tohex(h7)
end
`;

/**
 * The whole append, atomic in Redis: read the head, link, hash, RPUSH.
 * KEYS[1] the list. ARGV[1] the genesis hash. ARGV[2] the canonical body up to and
 * including `"prevHash":"`; ARGV[3] the canonical body after the seq's digits; ARGV[4]
 * the stored record between the seq's digits and the prevHash value.
 * Returns {seq, prevHash, hash}.
 */
const appendLua = `${sha256Lua}
local last = redis.call('LINDEX', KEYS[1], -1)
local prev, seq = ARGV[1], 1
if last then
  -- Every record AuditLog writes starts with its seq and ends with its hash; anything
  -- else that ended up at the tail is read as JSON.
  local s = string.match(last, '^{"seq":(%d+),')
  local h = string.match(string.sub(last, -74), '^"hash":"(%x+)"}$')
  if s and #s <= 15 and h and #h == 64 then
    prev, seq = h, tonumber(s) + 1
  else
    local ok, rec = pcall(cjson.decode, last)
    if not ok or type(rec) ~= 'table' or type(rec.seq) ~= 'number' or rec.seq % 1 ~= 0 or rec.seq < 0
      or rec.seq >= 2 ^ 53 or type(rec.hash) ~= 'string' or not string.find(rec.hash, '^%w+$') then
      return redis.error_reply('HANDOFF_AUDIT_HEAD the last entry of ' .. KEYS[1] .. ' is not an audit record')
    end
    prev, seq = rec.hash, rec.seq + 1
  end
end
local digits = string.format('%d', seq)
local hash = sha256(ARGV[2] .. prev .. '","seq":' .. digits .. ARGV[3])
redis.call('RPUSH', KEYS[1], '{"seq":' .. digits .. ARGV[4] .. prev .. '","hash":"' .. hash .. '"}')
return {seq, prev, hash}
`;

const appendCommand = 'handoffAuditAppend';
type AppendCommand = {
  [appendCommand](
    key: string,
    genesis: string,
    canonicalHead: string,
    canonicalTail: string,
    storedMiddle: string,
  ): Promise<[number, string, string]>;
};

type RecordFields = Omit<AuditRecord, 'seq' | 'prevHash' | 'hash'>;

/**
 * Append-only audit records in Redis, each carrying the hash of the one before
 * (DESIGN §10). Verification and export live beside it.
 */
export class AuditLog {
  private readonly redis: Redis;
  private readonly unavailableRetryMs: number;
  private readonly metrics: Metrics | undefined;

  constructor(redis: Redis, options: AuditLogOptions = {}) {
    this.redis = redis;
    this.metrics = options.metrics;
    this.unavailableRetryMs = options.unavailableRetryMs ?? 10_000;
    // Defined once per connection; ioredis sends the script body once per socket, then EVALSHA.
    if (typeof (redis as Partial<AppendCommand>)[appendCommand] !== 'function') {
      redis.defineCommand(appendCommand, { numberOfKeys: 1, lua: appendLua });
    }
  }

  /** The Redis connection the log writes to (verification, export and pruning read it). */
  get connection(): Redis {
    return this.redis;
  }

  /**
   * Links the record to the chain head and writes it, in one script run by Redis, so
   * concurrent writers (several bots and runners) never fork the chain or wait on each
   * other. While Redis cannot be reached the append is retried for `unavailableRetryMs`;
   * then it throws a retryable `handoff_audit_unavailable` error: a record is never dropped
   * silently, and the caller MUST NOT carry on as if it had been written. A connection lost
   * after Redis ran the script but before its answer arrived can leave the record written
   * twice (two seqs, a chain that still verifies): for an audit trail, twice beats never.
   */
  async append(entry: {
    type: string;
    taskId?: string;
    actor?: string;
    data?: Record<string, unknown>;
  }): Promise<AuditRecord> {
    const started = performance.now();
    try {
      const record = await this.appendOnce(entry);
      this.metrics?.auditAppend.observe({ outcome: 'ok' }, Metrics.since(started));
      return record;
    } catch (err) {
      this.metrics?.auditAppend.observe({ outcome: 'error' }, Metrics.since(started));
      throw err;
    }
  }

  private async appendOnce(entry: {
    type: string;
    taskId?: string;
    actor?: string;
    data?: Record<string, unknown>;
  }): Promise<AuditRecord> {
    const data = scrubSecrets(entry.data ?? {}) as Record<string, unknown>;
    const deadline = Date.now() + this.unavailableRetryMs;
    for (let attempt = 0; ; attempt++) {
      const fields: RecordFields = {
        at: new Date().toISOString(),
        type: entry.type,
        ...(entry.taskId ? { taskId: entry.taskId } : {}),
        ...(entry.actor ? { actor: entry.actor } : {}),
        data,
      };
      const [head, tail, middle] = recordPieces(fields);
      let reply: [number, string, string];
      try {
        const run = (this.redis as Redis & AppendCommand)[appendCommand](listKey, genesis, head, tail, middle);
        reply = await settleBy(run, deadline);
      } catch (err) {
        if (!isUnavailable(err)) throw writeRefused(err);
        const left = deadline - Date.now();
        // A connection that has ended (closed, or no reconnect strategy) will not come back.
        if (left <= 0 || this.redis.status === 'end') throw unavailable(err, this.unavailableRetryMs);
        await this.waitForReady(Math.min(left, Math.min(1000, 50 * 2 ** attempt)));
        continue;
      }
      const [seq, prevHash, hash] = reply;
      const record: AuditRecord = { seq, ...fields, prevHash, hash };
      return record;
    }
  }

  async records(start = 0, stop = -1): Promise<AuditRecord[]> {
    const raw = await this.redis.lrange(listKey, start, stop);
    return raw.map((r) => JSON.parse(r) as AuditRecord);
  }

  /** Resolves when the connection is ready again or after `ms`, whichever comes first. */
  private waitForReady(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (this.redis.status !== 'ready') this.redis.once('ready', done);
    });
  }
}

export function hashRecord(body: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/**
 * The text of a record around its linked fields, for the append script to splice
 * `prevHash` and `seq` (and then `hash`) into:
 * - the canonical body (what is hashed) sorts its keys actor, at, data < prevHash < seq
 *   < taskId, type, so it is `{…data,"prevHash":"` + prevHash + `","seq":` + seq + `,…}`;
 * - the stored record keeps the key order it has always had (seq, at, type, taskId,
 *   actor, data, prevHash, hash), so `JSON.stringify` of the returned record equals it.
 */
function recordPieces(fields: RecordFields): [canonicalHead: string, canonicalTail: string, storedMiddle: string] {
  const before = canonicalJson({ actor: fields.actor, at: fields.at, data: fields.data });
  const after = canonicalJson({ taskId: fields.taskId, type: fields.type });
  const head = before === '{}' ? '{"prevHash":"' : `${before.slice(0, -1)},"prevHash":"`;
  const tail = after === '{}' ? '}' : `,${after.slice(1)}`;
  // `{"seq":0` … `"prevHash":""}` → the part between the seq's digits and the prevHash value.
  const stored = JSON.stringify({ seq: 0, ...fields, prevHash: '' });
  return [head, tail, stored.slice('{"seq":0'.length, -'"}'.length)];
}

/** Server replies that mean "not now" rather than "never". */
const transientReply = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|READONLY)\b/;

class AppendTimeout extends Error {
  override name = 'AppendTimeout';
}

/** A connection problem (or a Redis that is not serving yet), as opposed to a refusal or a bug. */
function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof AppendTimeout) return true;
  if (err.name === 'ReplyError') return transientReply.test(err.message);
  // ioredis: socket errors carry a code (ECONNREFUSED…); the rest say the connection is gone.
  return (
    typeof (err as { code?: unknown }).code === 'string' ||
    err.name === 'MaxRetriesPerRequestError' ||
    /connection is closed|stream isn't writeable|offline queue|connect/i.test(err.message)
  );
}

function unavailable(err: unknown, ms: number): HandoffError {
  const reason = err instanceof AppendTimeout ? 'no answer' : (err as Error).message;
  return new HandoffError(
    ErrorCodes.auditUnavailable,
    `the audit record could not be written: Redis was unavailable for ${ms} ms (${reason}); try again when Redis is back`,
    { cause: err, retryable: true },
  );
}

function writeRefused(err: unknown): HandoffError {
  const message = err instanceof Error ? err.message : String(err);
  if (message.startsWith('HANDOFF_AUDIT_HEAD ')) {
    return new HandoffError(
      ErrorCodes.auditUnavailable,
      `the audit record could not be written: ${message.slice('HANDOFF_AUDIT_HEAD '.length)}; run \`handoff audit verify\``,
      { cause: err },
    );
  }
  return new HandoffError(ErrorCodes.auditUnavailable, `the audit record could not be written: ${message}`, {
    cause: err,
    // Out of memory clears when someone makes room; anything else is a fault to fix.
    retryable: message.startsWith('OOM'),
  });
}

/**
 * Settles like `promise`, or rejects with AppendTimeout at `deadline`. A command that
 * times out may still run later: the record is then written once, after the caller was
 * told it failed, which is safe for an audit trail (nothing is lost).
 */
function settleBy<T>(promise: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AppendTimeout('no answer from Redis')), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
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
