import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { ErrorCodes, HandoffError } from '../core/index.ts';
import type { ArtifactStore } from './artifacts/artifact-store.ts';
import { type AuditLog, type AuditRecord, auditGenesis, auditListKey, hashRecord } from './audit-log.ts';

/** Redis key of the anchor: the last record removed by {@link pruneAudit}. */
export const auditAnchorKey = 'hf:audit:anchor';
/** Redis key of the export high-water mark: every record up to this one has been exported. */
export const auditExportedKey = 'hf:audit:exported';

/** Where a chain starts: the genesis (seq 0, all-zero hash) or the last pruned record. */
export interface AuditAnchor {
  seq: number;
  hash: string;
  /** When the anchored record was written. */
  at?: string;
}

export type AuditProblemKind = 'edited' | 'inserted' | 'deleted' | 'reordered';

export interface AuditProblem {
  kind: AuditProblemKind;
  /** The seq of the first bad record (for `deleted`, the seq that is missing). */
  seq: number;
  /** 0-based position in the list where the problem shows. */
  index: number;
  /** Plain words, e.g. `record seq 7 was edited: its contents no longer match its hash`. */
  message: string;
}

export type AuditVerifyResult =
  | { ok: true; count: number; first?: AuditAnchor; head: AuditAnchor }
  | { ok: false; count: number; problem: AuditProblem };

const genesisAnchor: AuditAnchor = { seq: 0, hash: auditGenesis };

/**
 * Checks an audit chain and names the first bad record and what happened to it:
 * - **edited**: its contents no longer match its hash, or its hash was recomputed so
 *   the next record no longer points at it;
 * - **inserted**: a record that the records around it do not chain through (a forged
 *   record, or a copy of a real one);
 * - **deleted**: a seq is missing and the chain skips over it;
 * - **reordered**: the expected record is present, but later in the list.
 *
 * `anchor` is where the remaining chain starts after a prune; the genesis otherwise.
 * Entries that are not records at all (garbage in the list) count as inserted or edited.
 */
export function verifyAudit(
  records: readonly (AuditRecord | undefined)[],
  options: { anchor?: AuditAnchor } = {},
): AuditVerifyResult {
  const anchor = options.anchor ?? genesisAnchor;
  let expectedPrev = anchor.hash;
  let expectedSeq = anchor.seq + 1;
  const seen = new Set<number>();
  const fail = (kind: AuditProblemKind, index: number, seq: number, message: string): AuditVerifyResult => ({
    ok: false,
    count: records.length,
    problem: { kind, seq, index, message },
  });
  const label = (r: AuditRecord | undefined, index: number) =>
    r && Number.isInteger(r.seq) ? `record seq ${r.seq} (position ${index + 1})` : `the entry at position ${index + 1}`;

  for (let index = 0; index < records.length; index++) {
    const record = wellFormed(records[index]);
    const next = wellFormed(records[index + 1]);
    const inPlace = record !== undefined && record.prevHash === expectedPrev && record.seq === expectedSeq;
    const selfValid = record !== undefined && selfHashOk(record);

    if (inPlace && selfValid) {
      // A record whose hash was recomputed after an edit looks fine on its own; the next
      // record, which still points at the original hash, gives it away.
      if (next && next.seq === expectedSeq + 1 && next.prevHash !== record.hash && selfHashOk(next)) {
        const pointsAtKnown = records.some((r) => wellFormed(r)?.hash === next.prevHash);
        if (!pointsAtKnown) {
          return fail(
            'edited',
            index,
            record.seq,
            `${label(record, index)} was edited: its hash was recomputed, but record seq ${next.seq} still points at the original`,
          );
        }
      }
      seen.add(record.seq);
      expectedPrev = record.hash;
      expectedSeq += 1;
      continue;
    }

    // Something is wrong at `index`. Work out what, most specific explanation first.
    const nextChainsHere = next !== undefined && next.prevHash === expectedPrev && next.seq === expectedSeq;
    if (record === undefined) {
      return nextChainsHere
        ? fail('inserted', index, expectedSeq, `${label(record, index)} was inserted: it is not an audit record`)
        : fail('edited', index, expectedSeq, `${label(record, index)} is not a valid audit record: it was edited`);
    }
    if (inPlace) {
      return nextChainsHere
        ? fail(
            'inserted',
            index,
            record.seq,
            `${label(record, index)} was inserted: a forged copy of seq ${record.seq}`,
          )
        : fail(
            'edited',
            index,
            record.seq,
            `${label(record, index)} was edited: its contents no longer match its hash`,
          );
    }
    if (nextChainsHere) {
      // The record does not belong here. If the record it points at comes later, it was moved.
      const belongsLater = records.some((r, j) => j > index && wellFormed(r)?.hash === record.prevHash);
      return belongsLater
        ? fail(
            'reordered',
            index,
            record.seq,
            `${label(record, index)} is out of order: record seq ${expectedSeq} was expected here and comes after it`,
          )
        : fail(
            'inserted',
            index,
            record.seq,
            `${label(record, index)} was inserted: the records before and after it chain directly to each other`,
          );
    }
    const before = wellFormed(records[index - 1]);
    if (before && record.seq === before.seq && record.prevHash === before.prevHash) {
      // Two records claim the same place; the genuine one is the one the next record chains to.
      const genuineIsThis = next !== undefined && next.prevHash === record.hash;
      const [bad, at] = genuineIsThis ? [before, index - 1] : [record, index];
      return fail(
        'inserted',
        at,
        bad.seq,
        `${label(bad, at)} was inserted: two records claim seq ${record.seq} and the chain continues from the other`,
      );
    }
    if (seen.has(record.seq)) {
      return fail(
        'inserted',
        index,
        record.seq,
        `${label(record, index)} was inserted: seq ${record.seq} appears twice`,
      );
    }
    const laterExpected = records.findIndex(
      (r, j) => j > index && (wellFormed(r)?.seq === expectedSeq || wellFormed(r)?.prevHash === expectedPrev),
    );
    if (laterExpected >= 0) {
      return fail(
        'reordered',
        index,
        record.seq,
        `${label(record, index)} is out of order: record seq ${expectedSeq} was expected here and is at position ${laterExpected + 1}`,
      );
    }
    if (record.seq > expectedSeq) {
      const missing =
        record.seq - expectedSeq === 1 ? `seq ${expectedSeq} is` : `seq ${expectedSeq}–${record.seq - 1} are`;
      return fail(
        'deleted',
        index,
        expectedSeq,
        `record ${missing} missing: deleted before ${label(record, index)}${index === 0 && anchor.seq > 0 ? ` (the anchor is seq ${anchor.seq})` : ''}`,
      );
    }
    if (!selfValid) {
      return fail(
        'edited',
        index,
        record.seq,
        `${label(record, index)} was edited: its contents no longer match its hash`,
      );
    }
    if (record.seq === expectedSeq) {
      return fail(
        'edited',
        index,
        record.seq,
        `${label(record, index)} does not follow ${index === 0 ? (anchor.seq > 0 ? `the anchor (seq ${anchor.seq} in ${auditAnchorKey})` : 'the start of the log') : `record seq ${expectedSeq - 1}`}: it or the record before it was edited`,
      );
    }
    return fail(
      'inserted',
      index,
      record.seq,
      `${label(record, index)} was inserted: seq ${record.seq} is behind seq ${expectedSeq - 1}`,
    );
  }
  const firstRecord = wellFormed(records[0]);
  return {
    ok: true,
    count: records.length,
    ...(firstRecord ? { first: { seq: firstRecord.seq, hash: firstRecord.hash, at: firstRecord.at } } : {}),
    head: { seq: expectedSeq - 1, hash: expectedPrev },
  };
}

/** Parses raw list entries; anything that is not a JSON object becomes undefined. */
export function parseAuditEntries(raw: readonly string[]): (AuditRecord | undefined)[] {
  return raw.map((line) => {
    try {
      return wellFormed(JSON.parse(line) as AuditRecord);
    } catch {
      return undefined;
    }
  });
}

function wellFormed(r: AuditRecord | undefined): AuditRecord | undefined {
  if (!r || typeof r !== 'object') return undefined;
  if (typeof r.seq !== 'number' || typeof r.hash !== 'string' || typeof r.prevHash !== 'string') return undefined;
  return r;
}

function selfHashOk(record: AuditRecord): boolean {
  const { hash, ...body } = record;
  return hashRecord(body) === hash;
}

/**
 * Reads the whole list and the anchor from Redis and verifies them. Also checks the
 * chain against the export mark: records that were exported cannot have vanished from
 * the end of the list or been rewritten, which the chain alone cannot show.
 */
export async function verifyAuditInRedis(redis: Redis): Promise<AuditVerifyResult> {
  const [raw, anchor, markRaw] = await Promise.all([
    redis.lrange(auditListKey, 0, -1),
    readAnchor(redis),
    redis.get(auditExportedKey),
  ]);
  const records = parseAuditEntries(raw);
  const result = verifyAudit(records, anchor ? { anchor } : {});
  if (!result.ok || !markRaw) return result;
  const mark = JSON.parse(markRaw) as AuditAnchor;
  if (mark.seq > result.head.seq) {
    return {
      ok: false,
      count: records.length,
      problem: {
        kind: 'deleted',
        seq: result.head.seq + 1,
        index: records.length,
        message: `records seq ${result.head.seq + 1}–${mark.seq} are missing: they were exported (${auditExportedKey}) but are no longer at the end of the log`,
      },
    };
  }
  const index = records.findIndex((r) => r?.seq === mark.seq);
  if (index >= 0 && records[index]!.hash !== mark.hash) {
    return {
      ok: false,
      count: records.length,
      problem: {
        kind: 'edited',
        seq: mark.seq,
        index,
        message: `record seq ${mark.seq} (position ${index + 1}) was edited: its hash differs from the one recorded when it was exported, so the chain was rewritten`,
      },
    };
  }
  return result;
}

export async function readAnchor(redis: Redis): Promise<AuditAnchor | undefined> {
  const raw = await redis.get(auditAnchorKey);
  return raw ? (JSON.parse(raw) as AuditAnchor) : undefined;
}

// ---------------------------------------------------------------------------------------
// Export

/** Where an export goes: a directory on disk, or an artifact store (keys under `audit/`). */
export type AuditExportTarget = string | ArtifactStore;

export interface AuditSegmentDigest {
  name: string;
  records: number;
  firstSeq: number;
  lastSeq: number;
  bytes: number;
  sha256: string;
}

/** `digest.json` beside the segments. */
export interface AuditExportDigest {
  format: 'handoff-audit-export/1';
  exportedAt: string;
  since?: string;
  /** The record just before the first exported one (what the first segment's first prevHash must equal). */
  startsAfter: AuditAnchor;
  /** The last exported record: the chain head this export vouches for. */
  head: AuditAnchor;
  records: number;
  segments: AuditSegmentDigest[];
}

export interface AuditExportResult {
  /** Directory or store prefix the export was written to. */
  location: string;
  digest: AuditExportDigest;
  /** sha256 of digest.json itself (also recorded in the audit log). */
  digestSha256: string;
}

/**
 * Writes records (all, or those written at or after `since`) as JSONL segments of
 * `segmentSize` records plus `digest.json` (sha256 of every segment, the chain head).
 * The chain is verified first: a broken log is not exported as if it were sound.
 * Marks the highest contiguously exported seq in `hf:audit:exported` (what
 * {@link pruneAudit} may remove) and appends an `audit.exported` record.
 */
export async function exportAudit(
  log: AuditLog,
  options: { since?: Date; to: AuditExportTarget; segmentSize?: number; now?: () => Date },
): Promise<AuditExportResult> {
  const redis = log.connection;
  const segmentSize = options.segmentSize ?? 10_000;
  const now = options.now ?? (() => new Date());
  const [raw, anchor] = await Promise.all([redis.lrange(auditListKey, 0, -1), readAnchor(redis)]);
  const records = parseAuditEntries(raw);
  const verified = verifyAudit(records, anchor ? { anchor } : {});
  if (!verified.ok) {
    throw new HandoffError(
      ErrorCodes.invalidInput,
      `the audit log does not verify, so it was not exported: ${verified.problem.message}`,
    );
  }
  const all = records as AuditRecord[];
  const sinceMs = options.since?.getTime();
  const start = sinceMs === undefined ? 0 : all.findIndex((r) => Date.parse(r.at) >= sinceMs);
  const selected = start < 0 ? [] : all.slice(start);
  if (selected.length === 0) {
    throw new HandoffError(ErrorCodes.notFound, 'no audit records to export in that range');
  }
  const before = start > 0 ? all[start - 1]! : undefined;
  const startsAfter: AuditAnchor = before
    ? { seq: before.seq, hash: before.hash, at: before.at }
    : (anchor ?? genesisAnchor);
  const first = selected[0]!;
  const last = selected.at(-1)!;
  const name = `seq-${pad(first.seq)}-${pad(last.seq)}`;
  const writer = await openTarget(options.to, name);

  const segments: AuditSegmentDigest[] = [];
  for (let i = 0; i < selected.length; i += segmentSize) {
    const chunk = selected.slice(i, i + segmentSize);
    const body = Buffer.from(`${chunk.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const segName = `segment-${String(segments.length + 1).padStart(5, '0')}.jsonl`;
    await writer.write(segName, body, 'application/x-ndjson');
    segments.push({
      name: segName,
      records: chunk.length,
      firstSeq: chunk[0]!.seq,
      lastSeq: chunk.at(-1)!.seq,
      bytes: body.length,
      sha256: sha256(body),
    });
  }
  const digest: AuditExportDigest = {
    format: 'handoff-audit-export/1',
    exportedAt: now().toISOString(),
    ...(options.since ? { since: options.since.toISOString() } : {}),
    startsAfter,
    head: { seq: last.seq, hash: last.hash, at: last.at },
    records: selected.length,
    segments,
  };
  const digestBody = Buffer.from(`${JSON.stringify(digest, null, 2)}\n`);
  // The digest is written last: a digest on disk means every segment it names is there.
  await writer.write('digest.json', digestBody, 'application/json');
  const digestSha256 = sha256(digestBody);

  // Advance the exported mark only when this export joins up with what was exported before.
  const markRaw = await redis.get(auditExportedKey);
  const mark = markRaw ? (JSON.parse(markRaw) as AuditAnchor) : (anchor ?? genesisAnchor);
  if (first.seq <= mark.seq + 1 && last.seq > mark.seq) {
    await redis.set(auditExportedKey, JSON.stringify({ seq: last.seq, hash: last.hash, at: last.at }));
  }
  await log.append({
    type: 'audit.exported',
    data: {
      location: writer.location,
      firstSeq: first.seq,
      lastSeq: last.seq,
      headHash: last.hash,
      segments: segments.length,
      digestSha256,
    },
  });
  return { location: writer.location, digest, digestSha256 };
}

interface TargetWriter {
  location: string;
  write(name: string, body: Buffer, mediaType: string): Promise<void>;
}

async function openTarget(to: AuditExportTarget, name: string): Promise<TargetWriter> {
  if (typeof to === 'string') {
    const dir = join(to, name);
    await mkdir(dir, { recursive: true });
    return {
      location: dir,
      write: async (file, body) => {
        const target = join(dir, file);
        const partial = `${target}.partial`;
        await writeFile(partial, body, { mode: 0o600 });
        await rename(partial, target);
      },
    };
  }
  const prefix = `audit/${name}`;
  return {
    location: `${to.name}:${prefix}`,
    write: async (file, body, mediaType) => {
      await to.put(`${prefix}/${file}`, Readable.from([body]), { mediaType });
    },
  };
}

// ---------------------------------------------------------------------------------------
// Retention

export interface PruneResult {
  pruned: number;
  /** The new anchor (the last pruned record), or the old one when nothing was pruned. */
  anchor?: AuditAnchor;
  /** Why nothing (more) was pruned, when that is worth saying. */
  note?: string;
}

// Removes the first N entries and moves the anchor in one step, but only if the list
// still starts where we read it (another prune, or tampering, in between aborts).
const pruneScript = `
local boundary = redis.call('LINDEX', KEYS[1], tonumber(ARGV[1]) - 1)
if not boundary then return 0 end
if cjson.decode(boundary).hash ~= ARGV[2] then return 0 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
redis.call('SET', KEYS[2], ARGV[3])
return 1
`;

/**
 * Removes records older than `olderThanDays` that have been exported, oldest first,
 * always keeping the newest record (appending to an empty list would restart the chain).
 * The last removed record becomes the anchor (`hf:audit:anchor`) that verification of
 * the rest starts from. Refuses to prune a log that does not verify.
 */
export async function pruneAudit(
  log: AuditLog,
  options: { olderThanDays: number; now?: () => Date },
): Promise<PruneResult> {
  if (!(options.olderThanDays > 0)) {
    throw new HandoffError(ErrorCodes.invalidInput, 'olderThanDays must be a positive number of days');
  }
  const redis = log.connection;
  const now = options.now ?? (() => new Date());
  const cutoff = now().getTime() - options.olderThanDays * 86_400_000;
  const [raw, anchor, markRaw] = await Promise.all([
    redis.lrange(auditListKey, 0, -1),
    readAnchor(redis),
    redis.get(auditExportedKey),
  ]);
  const records = parseAuditEntries(raw);
  const verified = verifyAudit(records, anchor ? { anchor } : {});
  if (!verified.ok) {
    throw new HandoffError(
      ErrorCodes.invalidInput,
      `the audit log does not verify, so nothing was pruned: ${verified.problem.message}`,
    );
  }
  const exportedSeq = markRaw ? (JSON.parse(markRaw) as AuditAnchor).seq : 0;
  const all = records as AuditRecord[];
  let n = 0;
  while (n < all.length - 1 && Date.parse(all[n]!.at) < cutoff && all[n]!.seq <= exportedSeq) n++;
  const oldAnchor = anchor ? { anchor } : {};
  if (n === 0) {
    const oldest = all[0];
    const note = !oldest
      ? 'the audit log is empty'
      : Date.parse(oldest.at) >= cutoff
        ? `no record is older than ${options.olderThanDays} days`
        : oldest.seq > exportedSeq
          ? `records older than ${options.olderThanDays} days have not been exported yet: run \`handoff audit export\` first`
          : 'the newest record is always kept';
    return { pruned: 0, ...oldAnchor, note };
  }
  const last = all[n - 1]!;
  const newAnchor: AuditAnchor = { seq: last.seq, hash: last.hash, at: last.at };
  const ok = await redis.eval(pruneScript, 2, auditListKey, auditAnchorKey, n, last.hash, JSON.stringify(newAnchor));
  if (ok !== 1) {
    throw new HandoffError(ErrorCodes.invalidInput, 'the audit log changed while pruning; nothing was pruned', {
      retryable: true,
    });
  }
  await log.append({
    type: 'audit.pruned',
    data: {
      pruned: n,
      firstSeq: all[0]!.seq,
      lastSeq: last.seq,
      anchorHash: last.hash,
      olderThanDays: options.olderThanDays,
    },
  });
  const stopped =
    n < all.length - 1 && Date.parse(all[n]!.at) < cutoff && all[n]!.seq > exportedSeq
      ? `records from seq ${all[n]!.seq} on are older but not exported yet`
      : undefined;
  return { pruned: n, anchor: newAnchor, ...(stopped ? { note: stopped } : {}) };
}

function sha256(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex');
}

function pad(seq: number): string {
  return String(seq).padStart(9, '0');
}
