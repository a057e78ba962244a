import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AuditLog,
  type AuditRecord,
  auditAnchorKey,
  auditExport,
  auditPrune,
  auditVerify,
  closeConnection,
  createRecordConnection,
  type EmbeddedRedis,
  exportAudit,
  hashRecord,
  LocalArtifactStore,
  pruneAudit,
  startRedisServer,
  verifyAudit,
  verifyAuditInRedis,
  waitForReady,
} from '../../src/storage/index.ts';

const key = 'hf:audit';
let dir: string;
let server: EmbeddedRedis;
let redis: Redis;
let log: AuditLog;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-audit-'));
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

async function appendMany(n: number): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await log.append({ type: 'tool.call', taskId: 't_abc', actor: 'runner', data: { i, cmd: `step ${i}` } }));
  }
  return out;
}

function recorder() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, log: (l: string) => out.push(l), error: (l: string) => err.push(l) };
}

async function verifyNow() {
  const result = await verifyAuditInRedis(redis);
  if (result.ok) throw new Error('expected the audit log to fail verification');
  return result.problem;
}

describe('audit verify', () => {
  it('passes an intact log and says so', async () => {
    const records = await appendMany(5);
    const io = recorder();
    expect(await auditVerify(server.url, io)).toBe(0);
    expect(io.out).toEqual([`ok: 5 records (seq 1–5), head ${records[4]!.hash}`]);
  });

  it('names an edited record (LSET with changed contents)', async () => {
    await appendMany(6);
    const third = JSON.parse((await redis.lindex(key, 2))!) as AuditRecord;
    await redis.lset(key, 2, JSON.stringify({ ...third, data: { i: 2, cmd: 'rm -rf /workspace/in' } }));
    expect(await verifyNow()).toMatchObject({ kind: 'edited', seq: 3, index: 2 });

    const io = recorder();
    expect(await auditVerify(server.url, io)).toBe(1);
    expect(io.err).toEqual([
      'audit log: edited — record seq 3 (position 3) was edited: its contents no longer match its hash',
    ]);
  });

  it('names an edited record whose hash was recomputed', async () => {
    await appendMany(6);
    const third = JSON.parse((await redis.lindex(key, 2))!) as AuditRecord;
    const { hash: _old, ...body } = { ...third, data: { i: 2, cmd: 'nothing to see' } };
    await redis.lset(key, 2, JSON.stringify({ ...body, hash: hashRecord(body) }));
    expect(await verifyNow()).toMatchObject({ kind: 'edited', seq: 3 });
  });

  it('names an inserted record (LINSERT), forged well or badly', async () => {
    const records = await appendMany(6);
    // A careful forgery: right seq, right prevHash, valid hash of its own.
    const body = {
      seq: 4,
      at: new Date().toISOString(),
      type: 'decision',
      actor: 'mallory',
      data: { outcome: 'approved' },
      prevHash: records[2]!.hash,
    };
    await redis.linsert(key, 'BEFORE', JSON.stringify(records[3]), JSON.stringify({ ...body, hash: hashRecord(body) }));
    const problem = await verifyNow();
    expect(problem).toMatchObject({ kind: 'inserted', seq: 4, index: 3 });
    expect(problem.message).toContain('record seq 4 (position 4) was inserted');

    // A crude one: some JSON pushed into the middle.
    await redis.flushall();
    await appendMany(6);
    await redis.linsert(key, 'AFTER', (await redis.lindex(key, 1))!, '{"seq":99,"hash":"x","prevHash":"y"}');
    expect(await verifyNow()).toMatchObject({ kind: 'inserted', seq: 99, index: 2 });
  });

  it('names a deleted record (LREM)', async () => {
    const records = await appendMany(6);
    await redis.lrem(key, 1, JSON.stringify(records[3]));
    const problem = await verifyNow();
    expect(problem).toMatchObject({ kind: 'deleted', seq: 4, index: 3 });
    expect(problem.message).toBe('record seq 4 is missing: deleted before record seq 5 (position 4)');
  });

  it('names reordered records (two swapped), adjacent or not', async () => {
    const records = await appendMany(6);
    await redis.lset(key, 1, JSON.stringify(records[2]));
    await redis.lset(key, 2, JSON.stringify(records[1]));
    const problem = await verifyNow();
    expect(problem).toMatchObject({ kind: 'reordered', seq: 3, index: 1 });
    expect(problem.message).toContain('record seq 3 (position 2) is out of order');

    await redis.flushall();
    const again = await appendMany(6);
    await redis.lset(key, 1, JSON.stringify(again[4]));
    await redis.lset(key, 4, JSON.stringify(again[1]));
    expect(await verifyNow()).toMatchObject({ kind: 'reordered', seq: 5, index: 1 });
  });

  it('detects records deleted from the end once they were exported', async () => {
    await appendMany(4);
    await exportAudit(log, { to: join(dir, 'tail-export') });
    // The export appended seq 5 (audit.exported); remove it and seq 4 from the end.
    await redis.rpop(key, 2);
    expect(await verifyNow()).toMatchObject({ kind: 'deleted', seq: 4 });
  });

  it('says so when Redis cannot be reached', async () => {
    const io = recorder();
    expect(await auditVerify('redis://127.0.0.1:1', io)).toBe(2);
    expect(io.err[0]).toContain('cannot reach Redis at redis://127.0.0.1:1');
  });
});

describe('audit export and prune', () => {
  it('writes JSONL segments and a digest with each segment’s sha256 and the chain head', async () => {
    const records = await appendMany(25);
    const to = join(dir, 'export-1');
    const result = await exportAudit(log, { to, segmentSize: 10 });
    expect(result.location).toBe(join(to, 'seq-000000001-000000025'));
    const files = (await readdir(result.location)).sort();
    expect(files).toEqual(['digest.json', 'segment-00001.jsonl', 'segment-00002.jsonl', 'segment-00003.jsonl']);

    const digest = JSON.parse(await readFile(join(result.location, 'digest.json'), 'utf8'));
    expect(digest.head).toEqual({ seq: 25, hash: records[24]!.hash, at: records[24]!.at });
    expect(digest.startsAfter.seq).toBe(0);
    expect(digest.records).toBe(25);
    const exported: AuditRecord[] = [];
    for (const seg of digest.segments) {
      const body = await readFile(join(result.location, seg.name));
      expect(createHash('sha256').update(body).digest('hex')).toBe(seg.sha256);
      exported.push(
        ...body
          .toString()
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as AuditRecord),
      );
    }
    expect(digest.segments.map((s: { records: number }) => s.records)).toEqual([10, 10, 5]);
    // The exported records verify on their own, and end at the digest's head.
    expect(verifyAudit(exported)).toMatchObject({ ok: true, head: { seq: 25, hash: records[24]!.hash } });

    // The export itself is audited, with the digest's hash.
    const last = JSON.parse((await redis.lindex(key, -1))!) as AuditRecord;
    expect(last.type).toBe('audit.exported');
    expect(last.data).toMatchObject({ lastSeq: 25, digestSha256: result.digestSha256 });
  });

  it('exports to an artifact store under audit/', async () => {
    await appendMany(3);
    const store = new LocalArtifactStore({
      root: join(dir, 'artifacts'),
      signingSecret: 'x'.repeat(32),
      publicUrl: 'http://127.0.0.1:1',
    });
    const result = await exportAudit(log, { to: store });
    expect(result.location).toBe('local:audit/seq-000000001-000000003');
    expect(await store.exists('audit/seq-000000001-000000003/segment-00001.jsonl')).toBe(true);
    const chunks: Buffer[] = [];
    for await (const chunk of await store.get('audit/seq-000000001-000000003/digest.json'))
      chunks.push(chunk as Buffer);
    const digestBody = Buffer.concat(chunks);
    expect(createHash('sha256').update(digestBody).digest('hex')).toBe(result.digestSha256);
    expect(JSON.parse(digestBody.toString()).head.seq).toBe(3);
  });

  it('exports records since a time through the CLI function', async () => {
    await appendMany(3);
    const io = recorder();
    expect(await auditExport(server.url, { since: '2000-01-01', to: join(dir, 'export-cli') }, io)).toBe(0);
    expect(io.out[0]).toMatch(/^exported 3 records \(seq 1–3\) in 1 segment to /);
    expect(io.out[1]).toMatch(/^digest\.json sha256 [0-9a-f]{64}; chain head [0-9a-f]{64}$/);
    expect(await auditExport(server.url, { since: 'last tuesday' }, recorder())).toBe(2);
  });

  it('refuses to export a tampered log', async () => {
    const records = await appendMany(3);
    await redis.lrem(key, 1, JSON.stringify(records[1]));
    await expect(exportAudit(log, { to: join(dir, 'export-bad') })).rejects.toThrow(
      /does not verify.*seq 2 is missing/,
    );
  });

  it('prunes only exported records older than N days and keeps verification working', async () => {
    const records = await appendMany(10);
    const later = () => new Date(Date.now() + 40 * 86_400_000);

    // Nothing exported yet: nothing pruned.
    const before = await pruneAudit(log, { olderThanDays: 30, now: later });
    expect(before.pruned).toBe(0);
    expect(before.note).toContain('have not been exported yet');

    await exportAudit(log, { to: join(dir, 'export-prune') }); // appends seq 11 (audit.exported)
    const pruned = await pruneAudit(log, { olderThanDays: 30, now: later });
    // Seq 1–10 were exported and are old; seq 11 (the export record) is not exported and is kept.
    expect(pruned.pruned).toBe(10);
    expect(pruned.anchor).toEqual({ seq: 10, hash: records[9]!.hash, at: records[9]!.at });
    expect(JSON.parse((await redis.get(auditAnchorKey))!)).toEqual(pruned.anchor);

    const remaining = await log.records();
    expect(remaining.map((r) => r.seq)).toEqual([11, 12]); // 12: audit.pruned
    expect(remaining[1]!.type).toBe('audit.pruned');
    const io = recorder();
    expect(await auditVerify(server.url, io)).toBe(0);
    expect(io.out[0]).toMatch(/^ok: 2 records \(seq 11–12\)/);
    // Without the anchor the remainder would not verify: the anchor is what makes it work.
    expect(verifyAudit(remaining)).toMatchObject({ ok: false, problem: { kind: 'deleted', seq: 1 } });

    // New records chain on; tampering after a prune is still named.
    await appendMany(2);
    await redis.lrem(key, 1, (await redis.lindex(key, 0))!);
    expect(await verifyNow()).toMatchObject({ kind: 'deleted', seq: 11 });
  });

  it('prunes through the CLI function and explains when there is nothing to prune', async () => {
    await appendMany(2);
    const io = recorder();
    expect(await auditPrune(server.url, { olderThanDays: 180 }, io)).toBe(0);
    expect(io.out).toEqual(['pruned nothing', 'no record is older than 180 days']);
  });
});
