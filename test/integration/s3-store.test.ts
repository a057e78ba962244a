import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, HandoffError } from '../../src/core/index.ts';
import { S3ArtifactStore } from '../../src/storage/index.ts';
import { type FakeS3Server, startFakeS3 } from '../fakes/s3-server.ts';

const bucket = 'handoff-artifacts';
const prefix = 'tests/run';
const MiB = 1024 * 1024;

let fake: FakeS3Server;
let store: S3ArtifactStore;
const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  fake = await startFakeS3({ buckets: [bucket] });
  // The store uses the standard credential chain, as in production.
  process.env.AWS_ACCESS_KEY_ID = fake.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = fake.secretAccessKey;
  store = new S3ArtifactStore({ bucket, prefix, endpoint: fake.url, partSizeBytes: 5 * MiB, queueSize: 2 });
});

afterAll(async () => {
  await fake?.close();
  for (const [name, value] of [
    ['AWS_ACCESS_KEY_ID', savedEnv.id],
    ['AWS_SECRET_ACCESS_KEY', savedEnv.secret],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `total` pseudo-random bytes in uneven chunks, produced as they are read. */
function generated(total: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  let counter = 0;
  const stream = new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(total - sent, 64 * 1024 + (counter % 7) * 4099);
      const block = randomBytes(size);
      counter += 1;
      sent += size;
      hash.update(block);
      this.push(block);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

function uploadsOf(operation: string) {
  return fake.requests.filter((r) => r.operation === operation);
}

describe('S3ArtifactStore against a local S3-compatible server', () => {
  it('stores a small file byte for byte, with its sha256 as object metadata', async () => {
    const bytes = Buffer.concat([Buffer.from('region,total\nnorth,12\n'), randomBytes(3000)]);
    const before = fake.requests.length;
    const result = await store.put('task-1/report.csv', Readable.from([bytes]), { mediaType: 'text/csv' });

    expect(result).toEqual({ size: bytes.length, sha256: sha256(bytes) });
    const readBack = await readAll(await store.get('task-1/report.csv'));
    // Byte-exact: any checksum trailer or chunk framing stored as content would change these.
    expect(readBack.length).toBe(bytes.length);
    expect(sha256(readBack)).toBe(result.sha256);
    expect(readBack.equals(bytes)).toBe(true);
    expect(fake.keys(bucket)).toContain(`${prefix}/task-1/report.csv`);
    expect(fake.metadata(bucket, `${prefix}/task-1/report.csv`)).toEqual({ sha256: result.sha256 });
    expect(await store.exists('task-1/report.csv')).toBe(true);

    // What went over the wire: one plain PUT, no checksum headers, no aws-chunked body.
    const sent = fake.requests.slice(before).filter((r) => r.operation === 'PutObject');
    expect(sent).toHaveLength(1);
    const headers = sent[0]?.headers ?? {};
    expect(Object.keys(headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-trailer')).toEqual([]);
    expect(headers['content-encoding'] ?? '').not.toContain('aws-chunked');
    expect(headers['x-amz-content-sha256']).toBe(sha256(bytes));
  });

  it('streams a 40 MB file in 5 MiB parts and reads it back intact', async () => {
    const total = 40 * 1000 * 1000;
    const source = generated(total);
    const partsBefore = uploadsOf('UploadPart').length;

    const result = await store.put('task-2/big.bin', source.stream, { mediaType: 'application/octet-stream' });

    expect(result.size).toBe(total);
    expect(result.sha256).toBe(source.digest());
    const parts = uploadsOf('UploadPart').slice(partsBefore);
    expect(parts.length).toBe(Math.ceil(total / (5 * MiB)));
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const part of parts) {
      expect(Object.keys(part.headers).filter((h) => h.startsWith('x-amz-checksum'))).toEqual([]);
    }
    expect(uploadsOf('CompleteMultipartUpload').at(-1)?.status).toBe(200);

    const readBack = createHash('sha256');
    let size = 0;
    for await (const chunk of await store.get('task-2/big.bin')) {
      readBack.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    expect(size).toBe(total);
    expect(readBack.digest('hex')).toBe(result.sha256);
    // The digest is set after the upload (a self-copy), since CreateMultipartUpload precedes it.
    expect(fake.metadata(bucket, `${prefix}/task-2/big.bin`)).toEqual({ sha256: result.sha256 });
  });

  it('refuses a file over maxBytes, aborts the multipart upload and leaves nothing behind', async () => {
    const source = generated(30 * MiB);
    const abortsBefore = uploadsOf('AbortMultipartUpload').length;

    const err = await store
      .put('task-3/huge.bin', source.stream, { mediaType: 'application/octet-stream', maxBytes: 12 * MiB })
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).code).toBe(ErrorCodes.invalidInput);
    expect((err as HandoffError).message).toBe('the file is larger than the limit of 12.0 MB');
    expect(source.stream.destroyed).toBe(true);
    expect(await store.exists('task-3/huge.bin')).toBe(false);
    const aborts = uploadsOf('AbortMultipartUpload').slice(abortsBefore);
    expect(aborts).toHaveLength(1);
    expect(aborts[0]?.status).toBe(204);
    // Asked through the real API, as an operator would.
    const client = new S3Client({ region: 'us-east-1', endpoint: fake.url, forcePathStyle: true });
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(listed.Uploads ?? []).toEqual([]);
    client.destroy();
  });

  it('refuses a small file over maxBytes before sending anything', async () => {
    const before = fake.requests.length;
    const err = await store
      .put('task-3/small.txt', Readable.from([Buffer.alloc(2048)]), { mediaType: 'text/plain', maxBytes: 1024 })
      .catch((e: unknown) => e);
    expect((err as HandoffError).code).toBe(ErrorCodes.invalidInput);
    expect(fake.requests.length).toBe(before);
  });

  it('gives a presigned link that plain fetch can download, as an attachment with its name', async () => {
    const bytes = Buffer.from('quarterly summary\n');
    await store.put('task-4/summary.md', Readable.from([bytes]), { mediaType: 'text/markdown' });
    const link = await store.downloadUrl('task-4/summary.md', {
      fileName: 'Q3 summary “final”.md',
      mediaType: 'text/markdown; charset=utf-8',
      expiresInMs: 10 * 60 * 1000,
    });

    const expiresInMs = Date.parse(link.expiresAt) - Date.now();
    expect(expiresInMs).toBeGreaterThan(9 * 60 * 1000);
    expect(expiresInMs).toBeLessThanOrEqual(10 * 60 * 1000);
    const res = await fetch(link.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/markdown; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="Q3 summary _final_.md"; filename*=UTF-8''Q3%20summary%20%E2%80%9Cfinal%E2%80%9D.md`,
    );
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);

    // The signature covers the response overrides: changing the file name breaks the link.
    const tampered = new URL(link.url);
    tampered.searchParams.set('response-content-disposition', 'attachment; filename="evil.exe"');
    expect((await fetch(tampered)).status).toBe(403);
  });

  it('caps presigned links at 7 days, the SigV4 maximum', async () => {
    const link = await store.downloadUrl('task-4/summary.md', {
      fileName: 'summary.md',
      mediaType: 'text/markdown',
      expiresInMs: 30 * 24 * 60 * 60 * 1000,
    });
    expect(new URL(link.url).searchParams.get('X-Amz-Expires')).toBe('604800');
    expect(Date.parse(link.expiresAt) - Date.now()).toBeLessThanOrEqual(7 * 24 * 60 * 60 * 1000);
    expect((await fetch(link.url)).status).toBe(200);
  });

  it('has the server refuse a presigned link once it has expired', async () => {
    const link = await store.downloadUrl('task-4/summary.md', {
      fileName: 'summary.md',
      mediaType: 'text/markdown',
      expiresInMs: 1000,
    });
    expect(new URL(link.url).searchParams.get('X-Amz-Expires')).toBe('1');
    // X-Amz-Date has whole seconds, so wait past expiresAt rather than a fixed second.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(link.expiresAt) - Date.now()) + 1100));
    const res = await fetch(link.url);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('<Message>Request has expired</Message>');
  });

  it('answers notFound for a missing key, false from exists, and deletes quietly', async () => {
    const err = await store.get('task-5/missing.txt').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).code).toBe(ErrorCodes.notFound);
    expect(await store.exists('task-5/missing.txt')).toBe(false);
    await expect(store.delete('task-5/missing.txt')).resolves.toBeUndefined();

    await store.put('task-5/gone.txt', Readable.from([Buffer.from('x')]), { mediaType: 'text/plain' });
    await store.delete('task-5/gone.txt');
    expect(await store.exists('task-5/gone.txt')).toBe(false);
  });

  it('removes every object under a task prefix (retention), across pages, and nothing else', async () => {
    // More than one page of a listing (1,000 keys).
    for (let batch = 0; batch < 1003; batch += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, 1003 - batch) }, (_, i) =>
          store.put(`tasks/t_gone/out/${batch + i}.txt`, Readable.from([Buffer.from('x')]), {
            mediaType: 'text/plain',
          }),
        ),
      );
    }
    await store.put('tasks/t_gone2/in/1-b.csv', Readable.from([Buffer.from('b')]), { mediaType: 'text/csv' });
    const removed = await store.deletePrefix('tasks/t_gone/');
    expect(removed).toBe(1003);
    expect(uploadsOf('ListObjectsV2').length).toBeGreaterThanOrEqual(2);
    expect(fake.keys(bucket).filter((k) => k.includes('/tasks/t_gone/'))).toEqual([]);
    expect(await store.exists('tasks/t_gone2/in/1-b.csv')).toBe(true);
    await expect(store.deletePrefix('tasks/t_gone')).rejects.toMatchObject({ code: ErrorCodes.invalidInput });
  });

  it('refuses keys that could climb out of the prefix', async () => {
    for (const key of ['../other/secret', 'a/../../b', '/abs', 'a//b']) {
      const err = await store.get(key).catch((e: unknown) => e);
      expect((err as HandoffError).code).toBe(ErrorCodes.invalidInput);
    }
  });

  it('reports an unreachable store as retryable', async () => {
    const closed = await startFakeS3({ buckets: [bucket] });
    const url = closed.url;
    await closed.close();
    const offline = new S3ArtifactStore({ bucket, endpoint: url });
    const err = await offline.exists('task-6/x.txt').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).retryable).toBe(true);
  });
});
