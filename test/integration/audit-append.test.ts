import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, HandoffError } from '../../src/core/index.ts';
import {
  AuditLog,
  type AuditRecord,
  closeConnection,
  createRecordConnection,
  type EmbeddedRedis,
  hashRecord,
  parseAuditEntries,
  startRedisServer,
  verifyAudit,
  verifyAuditInRedis,
  waitForReady,
} from '../../src/storage/index.ts';

const key = 'hf:audit';
const genesis = '0'.repeat(64);
const appender = fileURLToPath(new URL('../helpers/audit-appender.ts', import.meta.url));

let dir: string;
let server: EmbeddedRedis;
let redis: Redis;
let log: AuditLog;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-audit-append-'));
  server = await startRedisServer({ dir: join(dir, 'redis') });
  redis = createRecordConnection(server.url);
  await waitForReady(redis);
  log = new AuditLog(redis);
});
afterAll(async () => {
  if (redis) await closeConnection(redis);
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await redis.flushall();
});

/** What each stored record is, and that the whole list verifies. */
async function storedChain(connection: Redis = redis) {
  const raw = await connection.lrange(key, 0, -1);
  return { raw, records: parseAuditEntries(raw) as AuditRecord[], verified: await verifyAuditInRedis(connection) };
}

/** How records were written before appends ran as one script: read the head, hash here, compare-and-set. */
async function appendTheOldWay(
  connection: Redis,
  entry: { type: string; taskId?: string; actor?: string; data?: Record<string, unknown> },
): Promise<AuditRecord> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [prevHash, seq] = (await connection.eval(
      `local last = redis.call('LINDEX', KEYS[1], -1)
       local prev = ARGV[2]
       local seq = 1
       if last then
         local rec = cjson.decode(last)
         prev = rec.hash
         seq = rec.seq + 1
       end
       return {prev, seq}`,
      1,
      key,
      '',
      genesis,
    )) as [string, number];
    const body = {
      seq,
      at: new Date().toISOString(),
      type: entry.type,
      ...(entry.taskId ? { taskId: entry.taskId } : {}),
      ...(entry.actor ? { actor: entry.actor } : {}),
      data: entry.data ?? {},
      prevHash,
    };
    const record: AuditRecord = { ...body, hash: hashRecord(body) };
    const ok = await connection.eval(
      `local last = redis.call('LINDEX', KEYS[1], -1)
       local prev = ARGV[2]
       if last then prev = cjson.decode(last).hash end
       if prev ~= ARGV[1] then return 0 end
       redis.call('RPUSH', KEYS[1], ARGV[3])
       return 1`,
      1,
      key,
      prevHash,
      genesis,
      JSON.stringify(record),
    );
    if (ok === 1) return record;
  }
  throw new Error('old-style append gave up');
}

function readLines(child: ChildProcess): AsyncIterator<string> {
  return createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}

describe('audit append under concurrency', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('writes exactly one record per append when 4 processes append 300 records each at once', async () => {
    const workers = 4;
    const perWorker = 300;
    const lines: AsyncIterator<string>[] = [];
    const exits: Promise<number | null>[] = [];
    for (let w = 0; w < workers; w++) {
      const child = spawn(process.execPath, ['--import', 'tsx', appender, server.url, String(w), String(perWorker)], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      children.push(child);
      exits.push(new Promise((resolve) => child.once('exit', resolve)));
      lines.push(readLines(child));
    }
    // Start every burst at the same moment, once every process is connected.
    for (const out of lines) expect((await out.next()).value).toBe('ready');
    for (const child of children) child.stdin!.write('go\n');
    const returned = await Promise.all(
      lines.map(
        async (out) => JSON.parse((await out.next()).value as string) as { seq: number; hash: string; i: number }[],
      ),
    );
    expect(await Promise.all(exits)).toEqual(Array(workers).fill(0));

    const { raw, records, verified } = await storedChain();
    const total = workers * perWorker;
    expect(raw).toHaveLength(total);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(verified).toMatchObject({ ok: true, count: total, head: { seq: total } });
    // Every append got its own seq, and the record at that seq is the one it wrote.
    expect(new Set(returned.flat().map((r) => r.seq)).size).toBe(total);
    returned.forEach((mine, worker) => {
      expect(mine.map((r) => r.i)).toEqual(Array.from({ length: perWorker }, (_, i) => i));
      for (const r of mine) {
        const stored = records[r.seq - 1]!;
        expect(stored.hash).toBe(r.hash);
        expect(stored.data).toMatchObject({ worker, i: r.i });
      }
    });
  }, 120_000);
});

describe('audit append hashing', () => {
  const tricky: { name: string; entry: Parameters<AuditLog['append']>[0] }[] = [
    { name: 'task and actor', entry: { type: 'tool.call', taskId: 't_abc', actor: 'runner', data: { cmd: 'ls -la' } } },
    { name: 'no task, no actor', entry: { type: 'policy.loaded', data: { rules: 3 } } },
    { name: 'actor only', entry: { type: 'decision', actor: 'U0123', data: { outcome: 'approved' } } },
    { name: 'task only', entry: { type: 'run.started', taskId: 't_x', data: { step: 1 } } },
    { name: 'empty strings count as absent', entry: { type: 'x', taskId: '', actor: '', data: { a: '' } } },
    { name: 'empty data', entry: { type: 'empty', data: {} } },
    { name: 'no data at all', entry: { type: 'no.data' } },
    {
      name: 'non-ASCII and emoji',
      entry: {
        type: 'chat.mention ✓',
        taskId: 't_ünï',
        actor: 'Zoë 🧑‍💻',
        data: { text: 'Grüße, 東京, مرحبا, e\u0301, 😀👍🏽🇫🇷', ключ: 'значение', '😀': 1 },
      },
    },
    {
      name: 'escapes',
      entry: {
        type: 'quote"and\\backslash',
        actor: 'tab\there',
        data: {
          controls: '\u0000\u0001\u0008\t\n\f\r\u001f\u007f',
          separators: 'line\u2028para\u2029',
          lone: 'a\ud800b\udc00c',
          html: "</script><!-- & '",
          'key "with" \\ quotes\n': true,
        },
      },
    },
    {
      name: 'nested data and key order',
      entry: {
        type: 'plan.created',
        taskId: 't_n',
        data: {
          z: { y: { x: [{ b: 2, a: 1 }, [], {}, [[[]]]] } },
          a: [1, 'two', null, false, { d: { c: { b: { a: 'deep' } } } }],
          B: 'upper sorts first',
          aa: 1,
          a_: 2,
          'a\u0000': 3,
          prevHash: 'not the real one',
          seq: -1,
          hash: 'fake',
        },
      },
    },
    {
      name: 'numbers',
      entry: {
        type: 'run.cost',
        data: {
          zero: 0,
          negZero: -0,
          int: 42,
          neg: -17,
          frac: 0.1 + 0.2,
          tiny: 1.5e-7,
          huge: 1e21,
          big: 2 ** 53 + 2,
          max: Number.MAX_VALUE,
          min: Number.MIN_VALUE,
          nan: Number.NaN,
          inf: Number.POSITIVE_INFINITY,
          list: [1e-7, -1e300, 123456789.12345679, 1 / 3],
        },
      },
    },
    {
      name: 'a JSON-parsed __proto__ key',
      entry: { type: 'odd', data: JSON.parse('{"__proto__":{"x":1},"ok":true}') },
    },
    { name: 'a long record', entry: { type: 'tool.result', data: { output: 'line of output é\n'.repeat(400) } } },
  ];

  it.each(tricky)('hashes in Redis exactly as hashRecord does: $name', async ({ entry }) => {
    // Twice, so the second record links to the first.
    for (let n = 1; n <= 2; n++) {
      const record = await log.append(entry);
      const stored = (await redis.lindex(key, -1))!;
      // Stored exactly as before: JSON of the returned record, in its usual key order.
      expect(stored).toBe(JSON.stringify(record));
      const { hash, ...body } = JSON.parse(stored) as AuditRecord;
      expect(hash).toBe(createHash('sha256').update(canonicalJson(body)).digest('hex'));
      expect(hash).toBe(hashRecord(body));
      expect(body.seq).toBe(n);
    }
    expect((await storedChain()).verified).toMatchObject({ ok: true, count: 2 });
  });

  it('hashes every message length across the SHA-256 block and padding boundaries', async () => {
    const bodyLengths = new Set<number>();
    for (let n = 0; n < 140; n++) {
      const record = await log.append({ type: 't', data: { p: 'x'.repeat(n) } });
      const { hash, ...body } = record;
      bodyLengths.add(Buffer.byteLength(canonicalJson(body)) % 64);
      expect(hash).toBe(hashRecord(body));
    }
    // Every remainder mod 64 was hashed, including 55 and 56 where padding spills into a new block.
    expect(bodyLengths.size).toBe(64);
    expect((await storedChain()).verified).toMatchObject({ ok: true, count: 140 });
  });

  it('still scrubs secrets before hashing', async () => {
    const record = await log.append({ type: 't', data: { env: 'ANTHROPIC_API_KEY=sk-ant-abcdefghijklmnopqrstuvwx' } });
    expect(JSON.stringify(record)).not.toContain('sk-ant-abcdefghijklmnopqrstuvwx');
    expect((await redis.lrange(key, 0, -1)).join('\n')).not.toContain('sk-ant-abcdefghijklmnopqrstuvwx');
    expect((await storedChain()).verified.ok).toBe(true);
  });
});

describe('audit append next to records written the old way', () => {
  it('chains onto old records and old writers chain onto new ones, in turn and at the same time', async () => {
    for (let i = 0; i < 10; i++) {
      const entry = { type: 'mixed', taskId: `t_${i}`, data: { i, text: 'ü😀"\\' } };
      if (i % 2 === 0) await appendTheOldWay(redis, entry);
      else await log.append(entry);
    }
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        i % 3 === 0
          ? appendTheOldWay(redis, { type: 'old', actor: 'legacy', data: { i } })
          : log.append({ type: 'new', actor: 'current', data: { i } }),
      ),
    );
    const { records, verified } = await storedChain();
    expect(verified).toMatchObject({ ok: true, count: 70, head: { seq: 70 } });
    expect(records.filter((r) => r.type === 'old')).toHaveLength(20);
    expect(records.filter((r) => r.type === 'new')).toHaveLength(40);
  });

  it('chains onto a last record stored with its keys in another order', async () => {
    const first = await log.append({ type: 'a', data: {} });
    // The same kind of record, but stored as canonical JSON (hash not last).
    const body = { seq: 2, at: new Date().toISOString(), type: 'b', data: { k: 'v' }, prevHash: first.hash };
    await redis.rpush(key, canonicalJson({ ...body, hash: hashRecord(body) }));
    const third = await log.append({ type: 'c', data: {} });
    expect(third).toMatchObject({ seq: 3, prevHash: hashRecord(body) });
    expect((await storedChain()).verified).toMatchObject({ ok: true, count: 3 });
  });

  it('refuses, loudly and without writing, to chain onto a last entry that is not a record', async () => {
    await log.append({ type: 'a', data: {} });
    await redis.rpush(key, 'not json at all');
    const err = await log.append({ type: 'b', data: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandoffError);
    expect(err).toMatchObject({ code: 'handoff_audit_unavailable', retryable: false });
    expect((err as Error).message).toContain('is not an audit record');
    expect(await redis.llen(key)).toBe(2);
  });
});

describe('audit append while Redis is down', () => {
  let ownDir: string;
  let own: EmbeddedRedis | undefined;
  let connection: Redis | undefined;

  beforeEach(async () => {
    ownDir = await mkdtemp(join(tmpdir(), 'handoff-audit-down-'));
    own = await startRedisServer({ dir: ownDir });
    connection = createRecordConnection(own.url);
    await waitForReady(connection);
  });
  afterEach(async () => {
    if (connection) await closeConnection(connection);
    await own?.stop();
    await rm(ownDir, { recursive: true, force: true });
  });

  async function restart(): Promise<void> {
    const port = Number(new URL(own!.url).port);
    own = await startRedisServer({ dir: ownDir, port });
  }

  it('waits for Redis to come back within the bound, then writes the record', async () => {
    const audit = new AuditLog(connection!);
    await audit.append({ type: 'before', data: { n: 1 } });
    await audit.append({ type: 'before', data: { n: 2 } });
    await own!.stop();

    const pending = audit.append({ type: 'during', taskId: 't_down', data: { n: 3 } });
    await new Promise((r) => setTimeout(r, 1500));
    await restart();
    const record = await pending;

    expect(record).toMatchObject({ seq: 3, type: 'during' });
    const { records, verified } = await storedChain(connection!);
    expect(records.map((r) => r.type)).toEqual(['before', 'before', 'during']);
    expect(verified).toMatchObject({ ok: true, count: 3, head: { seq: 3, hash: record.hash } });
  }, 60_000);

  it('fails with a retryable error once the bound has passed, and writes nothing', async () => {
    const audit = new AuditLog(connection!, { unavailableRetryMs: 1500 });
    await audit.append({ type: 'before', data: {} });
    await own!.stop();

    const started = Date.now();
    const err = await audit.append({ type: 'lost?', data: {} }).catch((e: unknown) => e);
    const waited = Date.now() - started;
    expect(err).toBeInstanceOf(HandoffError);
    expect(err).toMatchObject({ code: 'handoff_audit_unavailable', retryable: true });
    expect((err as Error).message).toMatch(/^the audit record could not be written: Redis was unavailable for 1500 ms/);
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(5000);

    // Nothing was written behind the caller's back once Redis is back.
    await restart();
    await waitForReady(connection!, 15_000);
    expect((await storedChain(connection!)).records.map((r) => r.type)).toEqual(['before']);
  }, 60_000);
});

describe('verifyAudit', () => {
  it('verifies a chain written partly the old way and partly by the script, offline too', async () => {
    await appendTheOldWay(redis, { type: 'old', data: { a: 1 } });
    await log.append({ type: 'new', data: { b: 2 } });
    await appendTheOldWay(redis, { type: 'old', data: { c: 3 } });
    const raw = await redis.lrange(key, 0, -1);
    expect(verifyAudit(parseAuditEntries(raw))).toMatchObject({ ok: true, count: 3 });
  });
});
