/**
 * A local fake of the S3 REST API that speaks the real wire format (path-style URLs,
 * SigV4, XML bodies and errors), so the real AWS SDK can talk to it through `endpoint`.
 *
 * Why not an npm server: s3rver 3.x (unmaintained since 2021) and its maintained fork
 * have no AbortMultipartUpload or ListMultipartUploads, so "the upload was aborted"
 * cannot be observed through them, and the fork needs Node 24.
 *
 * Covered: CreateBucket, PutObject, CopyObject (onto itself to replace metadata),
 * CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
 * ListMultipartUploads, GetObject (with `response-content-*` overrides), HeadObject,
 * DeleteObject. Anything else answers 501 NotImplemented.
 *
 * Like S3 it verifies SigV4 signatures (header and presigned query), refuses expired
 * presigned URLs and checks `x-amz-content-sha256` against the bytes that arrived.
 * Like several S3-compatible stores it does not decode `aws-chunked` bodies: it refuses
 * them with 501, loudly, rather than storing the framing. `x-amz-checksum-*` headers are
 * recorded but neither validated nor echoed.
 *
 * Bodies stream to files under `dir`, so a 1 GiB object costs the fake no memory.
 * Run as a script (`node --import tsx test/fakes/s3-server.ts DIR`) it prints its URL
 * as one JSON line and serves until SIGTERM: the upload bench runs it in a child process.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

export interface RecordedS3Request {
  method: string;
  /** Decoded path, `/bucket/key`. */
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The S3 operation the fake took the request for, e.g. `UploadPart`. */
  operation: string;
  status?: number;
}

export interface FakeS3ServerOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Buckets that exist from the start. */
  buckets?: string[];
  /** Where object bodies are written; a fresh temp dir (removed by `close()`) when unset. */
  dir?: string;
}

interface StoredObject {
  file: string;
  size: number;
  etag: string;
  contentType: string;
  metadata: Record<string, string>;
  lastModified: Date;
}

interface PendingUpload {
  uploadId: string;
  bucket: string;
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  initiated: Date;
  parts: Map<number, { file: string; size: number; md5: Buffer }>;
}

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const minPartBytes = 5 * 1024 * 1024;
const maxPresignSeconds = 604_800;
const maxClockSkewMs = 15 * 60 * 1000;

export class FakeS3Server {
  readonly requests: RecordedS3Request[] = [];
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly #buckets = new Set<string>();
  readonly #objects = new Map<string, StoredObject>();
  readonly #uploads = new Map<string, PendingUpload>();
  readonly #options: FakeS3ServerOptions;
  #dir: string | undefined;
  #ownsDir = false;
  #server: Server | undefined;
  #url: string | undefined;
  #seq = 0;

  constructor(options: FakeS3ServerOptions = {}) {
    this.#options = options;
    this.accessKeyId = options.accessKeyId ?? 'AKIAFAKES3TEST000001';
    this.secretAccessKey = options.secretAccessKey ?? 'fake-s3-secret-key-for-tests-only';
    for (const b of options.buckets ?? []) this.#buckets.add(b);
  }

  /** Endpoint for the SDK, e.g. `http://127.0.0.1:40123`. */
  get url(): string {
    if (this.#url === undefined) throw new Error('FakeS3Server: call start() first');
    return this.#url;
  }

  /** Keys stored in `bucket`. */
  keys(bucket: string): string[] {
    return [...this.#objects.keys()].filter((k) => k.startsWith(`${bucket}/`)).map((k) => k.slice(bucket.length + 1));
  }

  /** Multipart uploads neither completed nor aborted. */
  get pendingUploads(): number {
    return this.#uploads.size;
  }

  /** The user metadata (`x-amz-meta-*`) stored with an object. */
  metadata(bucket: string, key: string): Record<string, string> | undefined {
    return this.#objects.get(`${bucket}/${key}`)?.metadata;
  }

  async start(): Promise<this> {
    if (this.#server !== undefined) return this;
    this.#ownsDir = this.#options.dir === undefined;
    this.#dir = this.#options.dir ?? (await mkdtemp(join(tmpdir(), 'fake-s3-')));
    await mkdir(this.#dir, { recursive: true });
    const server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops listening and removes the temp dir it made (a `dir` given to it is left to its owner). Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (this.#dir !== undefined && this.#ownsDir) await rm(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const query = Object.fromEntries(url.searchParams);
    const [bucket = '', ...keyParts] = rawPath.slice(1).split('/').map(decodeURIComponent);
    const key = keyParts.join('/');
    const record: RecordedS3Request = {
      method: req.method ?? 'GET',
      path: `/${[bucket, ...keyParts].join('/')}`,
      query,
      headers: req.headers,
      operation: operationOf(req.method ?? 'GET', bucket, key, query, req.headers),
    };
    this.requests.push(record);
    try {
      this.#authenticate(req, rawPath, record);
      await this.#route(record, bucket, key, req, res);
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error(500, 'InternalError', String(err));
      req.resume();
      if (!res.headersSent) {
        const body =
          record.method === 'HEAD'
            ? ''
            : xml(
                'Error',
                `<Code>${e.code}</Code><Message>${esc(e.message)}</Message><Resource>${esc(record.path)}</Resource><RequestId>${this.#requestId()}</RequestId>`,
              );
        res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        res.destroy();
      }
    }
    record.status = res.statusCode;
  }

  async #route(
    r: RecordedS3Request,
    bucket: string,
    key: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    if (r.operation === 'CreateBucket') {
      req.resume();
      this.#buckets.add(bucket);
      res.writeHead(200, { location: `/${bucket}` }).end();
      return;
    }
    if (!this.#buckets.has(bucket)) throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    switch (r.operation) {
      case 'ListObjectsV2': {
        req.resume();
        // Pages of max-keys (default 1000), continued by a token that is the last key sent.
        const prefix = r.query.prefix ?? '';
        const max = Math.min(1000, Number(r.query['max-keys'] ?? 1000));
        const after = r.query['continuation-token'] ?? '';
        const all = this.keys(bucket)
          .filter((k) => k.startsWith(prefix) && k > after)
          .sort();
        const page = all.slice(0, max);
        const truncated = all.length > page.length;
        const contents = page
          .map((k) => {
            const o = this.#objects.get(`${bucket}/${k}`)!;
            return `<Contents><Key>${esc(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${esc(o.etag)}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
          })
          .join('');
        const body = xml(
          'ListBucketResult',
          `<Name>${esc(bucket)}</Name><Prefix>${esc(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${esc(page.at(-1)!)}</NextContinuationToken>` : ''}${contents}`,
        );
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      case 'PutObject': {
        const file = await this.#receive(req);
        this.#objects.set(`${bucket}/${key}`, {
          file: file.path,
          size: file.size,
          etag: `"${file.md5.toString('hex')}"`,
          contentType: req.headers['content-type'] ?? 'binary/octet-stream',
          metadata: userMetadata(req.headers),
          lastModified: new Date(),
        });
        res.writeHead(200, { etag: `"${file.md5.toString('hex')}"` }).end();
        return;
      }
      case 'CopyObject': {
        req.resume();
        const source = decodeURIComponent(String(req.headers['x-amz-copy-source'])).replace(/^\//, '');
        const from = this.#objects.get(source);
        if (from === undefined) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        const replace = req.headers['x-amz-metadata-directive'] === 'REPLACE';
        if (source === `${bucket}/${key}` && !replace) {
          throw new S3Error(
            400,
            'InvalidRequest',
            'This copy request is illegal because it is trying to copy an object to itself without changing the metadata.',
          );
        }
        const copy: StoredObject = {
          ...from,
          contentType: replace ? (req.headers['content-type'] ?? 'binary/octet-stream') : from.contentType,
          metadata: replace ? userMetadata(req.headers) : from.metadata,
          lastModified: new Date(),
        };
        this.#objects.set(`${bucket}/${key}`, copy);
        const body = xml(
          'CopyObjectResult',
          `<LastModified>${copy.lastModified.toISOString()}</LastModified><ETag>${esc(copy.etag)}</ETag>`,
        );
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      case 'CreateMultipartUpload': {
        req.resume();
        const uploadId = randomBytes(24).toString('base64url');
        this.#uploads.set(uploadId, {
          uploadId,
          bucket,
          key,
          contentType: req.headers['content-type'] ?? 'binary/octet-stream',
          metadata: userMetadata(req.headers),
          initiated: new Date(),
          parts: new Map(),
        });
        const body = xml(
          'InitiateMultipartUploadResult',
          `<Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><UploadId>${uploadId}</UploadId>`,
        );
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      case 'UploadPart': {
        const upload = this.#upload(r.query.uploadId, bucket, key);
        const partNumber = Number(r.query.partNumber);
        if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
          throw new S3Error(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
        }
        const file = await this.#receive(req);
        const previous = upload.parts.get(partNumber);
        if (previous !== undefined) await rm(previous.file, { force: true });
        upload.parts.set(partNumber, { file: file.path, size: file.size, md5: file.md5 });
        res.writeHead(200, { etag: `"${file.md5.toString('hex')}"` }).end();
        return;
      }
      case 'CompleteMultipartUpload': {
        const upload = this.#upload(r.query.uploadId, bucket, key);
        const text = (await readSmall(req)).toString('utf8');
        const listed = [...text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
          partNumber: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(m[1] ?? '')?.[1]),
          etag: (/<ETag>([\s\S]*?)<\/ETag>/.exec(m[1] ?? '')?.[1] ?? '').replace(/&quot;|&#34;/g, '"'),
        }));
        if (listed.length === 0) throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed');
        const parts = listed.map((p, i) => {
          const part = upload.parts.get(p.partNumber);
          if (part === undefined || `"${part.md5.toString('hex')}"` !== p.etag) {
            throw new S3Error(400, 'InvalidPart', 'One or more of the specified parts could not be found.');
          }
          if (i > 0 && p.partNumber <= (listed[i - 1]?.partNumber ?? 0)) {
            throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
          }
          if (i < listed.length - 1 && part.size < minPartBytes) {
            throw new S3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size');
          }
          return part;
        });
        const path = this.#newFile();
        await pipeline(async function* () {
          for (const part of parts) yield* createReadStream(part.file);
        }, createWriteStream(path));
        const etag = `"${createHash('md5')
          .update(Buffer.concat(parts.map((p) => p.md5)))
          .digest('hex')}-${parts.length}"`;
        this.#objects.set(`${bucket}/${key}`, {
          file: path,
          size: parts.reduce((n, p) => n + p.size, 0),
          etag,
          contentType: upload.contentType,
          metadata: upload.metadata,
          lastModified: new Date(),
        });
        await this.#dropUpload(upload);
        const body = xml(
          'CompleteMultipartUploadResult',
          `<Location>${esc(`${this.url}/${bucket}/${key}`)}</Location><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><ETag>${esc(etag)}</ETag>`,
        );
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      case 'AbortMultipartUpload': {
        req.resume();
        await this.#dropUpload(this.#upload(r.query.uploadId, bucket, key));
        res.writeHead(204).end();
        return;
      }
      case 'ListMultipartUploads': {
        req.resume();
        const uploads = [...this.#uploads.values()]
          .filter((u) => u.bucket === bucket)
          .map(
            (u) =>
              `<Upload><Key>${esc(u.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
          )
          .join('');
        const body = xml(
          'ListMultipartUploadsResult',
          `<Bucket>${esc(bucket)}</Bucket><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads}`,
        );
        res.writeHead(200, { 'content-type': 'application/xml' }).end(body);
        return;
      }
      case 'GetObject':
      case 'HeadObject': {
        req.resume();
        const object = this.#objects.get(`${bucket}/${key}`);
        if (object === undefined) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
        const headers: Record<string, string | number> = {
          'content-length': object.size,
          'content-type': r.query['response-content-type'] ?? object.contentType,
          etag: object.etag,
          'last-modified': object.lastModified.toUTCString(),
          'accept-ranges': 'bytes',
        };
        if (r.query['response-content-disposition'] !== undefined) {
          headers['content-disposition'] = r.query['response-content-disposition'];
        }
        for (const [k, v] of Object.entries(object.metadata)) headers[`x-amz-meta-${k}`] = v;
        res.writeHead(200, headers);
        if (r.operation === 'HeadObject') {
          res.end();
          return;
        }
        await pipeline(createReadStream(object.file), res);
        return;
      }
      case 'DeleteObject': {
        req.resume();
        const object = this.#objects.get(`${bucket}/${key}`);
        this.#objects.delete(`${bucket}/${key}`);
        // Copies share a body file; remove it only when no object points at it any more.
        if (object !== undefined && ![...this.#objects.values()].some((o) => o.file === object.file)) {
          await rm(object.file, { force: true });
        }
        res.writeHead(204).end();
        return;
      }
      default:
        throw new S3Error(501, 'NotImplemented', `${r.method} ${r.path} is not implemented by this fake`);
    }
  }

  #upload(uploadId: string | undefined, bucket: string, key: string): PendingUpload {
    const upload = uploadId === undefined ? undefined : this.#uploads.get(uploadId);
    if (upload === undefined || upload.bucket !== bucket || upload.key !== key) {
      throw new S3Error(
        404,
        'NoSuchUpload',
        'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
      );
    }
    return upload;
  }

  async #dropUpload(upload: PendingUpload): Promise<void> {
    this.#uploads.delete(upload.uploadId);
    await Promise.all([...upload.parts.values()].map((p) => rm(p.file, { force: true })));
  }

  #newFile(): string {
    if (this.#dir === undefined) throw new Error('FakeS3Server: not started');
    this.#seq += 1;
    return join(this.#dir, `${Date.now()}-${this.#seq}.body`);
  }

  /** Streams a request body to a file, checking it against `x-amz-content-sha256` as S3 does. */
  async #receive(req: IncomingMessage): Promise<{ path: string; size: number; md5: Buffer }> {
    const declared = String(req.headers['x-amz-content-sha256'] ?? '');
    if (declared.startsWith('STREAMING-') || String(req.headers['content-encoding'] ?? '').includes('aws-chunked')) {
      throw new S3Error(501, 'NotImplemented', 'aws-chunked request bodies are not supported by this store');
    }
    const path = this.#newFile();
    const md5 = createHash('md5');
    const sha256 = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        md5.update(chunk);
        sha256.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(req, meter, createWriteStream(path));
    const expectedLength = req.headers['content-length'];
    if (expectedLength !== undefined && Number(expectedLength) !== size) {
      await rm(path, { force: true });
      throw new S3Error(
        400,
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length',
      );
    }
    if (/^[0-9a-f]{64}$/i.test(declared) && sha256.digest('hex') !== declared.toLowerCase()) {
      await rm(path, { force: true });
      throw new S3Error(
        400,
        'XAmzContentSHA256Mismatch',
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
      );
    }
    return { path, size, md5: md5.digest() };
  }

  /** SigV4, header or presigned query; throws the error S3 would answer with. */
  #authenticate(req: IncomingMessage, rawPath: string, r: RecordedS3Request): void {
    const rawQuery = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1) : '';
    const authorization = req.headers.authorization;
    let credential: string;
    let signedHeaders: string;
    let signature: string;
    let amzDate: string;
    let payloadHash: string;
    let excludeFromQuery: string | undefined;
    if (authorization !== undefined) {
      const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
        authorization,
      );
      if (m === null) throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed');
      [, credential = '', signedHeaders = '', signature = ''] = m;
      amzDate = String(req.headers['x-amz-date'] ?? '');
      const declared = req.headers['x-amz-content-sha256'];
      if (declared === undefined) {
        throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
      }
      payloadHash = String(declared);
      if (Math.abs(Date.now() - parseAmzDate(amzDate)) > maxClockSkewMs) {
        throw new S3Error(
          403,
          'RequestTimeTooSkewed',
          'The difference between the request time and the current time is too large.',
        );
      }
    } else if (r.query['X-Amz-Algorithm'] !== undefined) {
      if (r.query['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256') {
        throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
      }
      credential = r.query['X-Amz-Credential'] ?? '';
      signedHeaders = r.query['X-Amz-SignedHeaders'] ?? '';
      signature = r.query['X-Amz-Signature'] ?? '';
      amzDate = r.query['X-Amz-Date'] ?? '';
      payloadHash = r.query['X-Amz-Content-Sha256'] ?? 'UNSIGNED-PAYLOAD';
      excludeFromQuery = 'X-Amz-Signature';
      const expires = Number(r.query['X-Amz-Expires']);
      if (!Number.isInteger(expires) || expires < 1 || expires > maxPresignSeconds) {
        throw new S3Error(
          400,
          'AuthorizationQueryParametersError',
          'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
        );
      }
      if (Date.now() > parseAmzDate(amzDate) + expires * 1000) {
        throw new S3Error(403, 'AccessDenied', 'Request has expired');
      }
    } else {
      throw new S3Error(403, 'AccessDenied', 'Anonymous access is not allowed');
    }
    const [accessKeyId, date, region, service, terminator] = credential.split('/');
    if (accessKeyId !== this.accessKeyId) {
      throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
    }
    if (service !== 's3' || terminator !== 'aws4_request' || date !== amzDate.slice(0, 8)) {
      throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The credential scope is malformed');
    }
    const names = signedHeaders.split(';');
    if (!names.includes('host')) throw new S3Error(400, 'InvalidRequest', 'SignedHeaders must include host');
    const canonicalHeaders = names
      .map(
        (n) =>
          `${n}:${String(req.headers[n] ?? '')
            .trim()
            .replace(/\s+/g, ' ')}\n`,
      )
      .join('');
    const canonicalRequest = [
      req.method,
      rawPath,
      canonicalQuery(rawQuery, excludeFromQuery),
      canonicalHeaders,
      signedHeaders,
      payloadHash,
    ].join('\n');
    const scope = `${date}/${region}/s3/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
    let k = hmac(`AWS4${this.secretAccessKey}`, date ?? '');
    for (const part of [region ?? '', 's3', 'aws4_request']) k = hmac(k, part);
    const expected = Buffer.from(createHmac('sha256', k).update(stringToSign).digest('hex'));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw new S3Error(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      );
    }
  }

  #requestId(): string {
    return randomBytes(8).toString('hex').toUpperCase();
  }
}

function operationOf(
  method: string,
  bucket: string,
  key: string,
  query: Record<string, string>,
  headers: IncomingHttpHeaders,
): string {
  // The SDK tags requests with `x-id=PutObject` and the like; S3 ignores it.
  const { 'x-id': _operationHint, ...rest } = query;
  query = rest;
  if (key === '') {
    if (method === 'PUT' && Object.keys(query).length === 0) return 'CreateBucket';
    if (method === 'GET' && 'uploads' in query) return 'ListMultipartUploads';
    if (method === 'GET' && query['list-type'] === '2') return 'ListObjectsV2';
    return `Unsupported bucket ${method}`;
  }
  if (bucket === '') return 'Unsupported';
  if (method === 'PUT' && 'partNumber' in query && 'uploadId' in query) return 'UploadPart';
  if (method === 'PUT' && !('uploadId' in query) && Object.keys(query).length === 0) {
    return headers['x-amz-copy-source'] === undefined ? 'PutObject' : 'CopyObject';
  }
  if (method === 'POST' && 'uploads' in query) return 'CreateMultipartUpload';
  if (method === 'POST' && 'uploadId' in query) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && 'uploadId' in query) return 'AbortMultipartUpload';
  if (method === 'DELETE' && Object.keys(query).length === 0) return 'DeleteObject';
  const signedOnly = Object.keys(query).every((k) => k.startsWith('X-Amz-') || k.startsWith('response-'));
  if (method === 'GET' && signedOnly) return 'GetObject';
  if (method === 'HEAD' && signedOnly) return 'HeadObject';
  return `Unsupported object ${method}`;
}

function userMetadata(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('x-amz-meta-') && v !== undefined) out[k.slice('x-amz-meta-'.length)] = String(v);
  }
  return out;
}

/** SigV4 canonical query: RFC 3986 encoded names and values, sorted. */
function canonicalQuery(rawQuery: string, exclude: string | undefined): string {
  if (rawQuery === '') return '';
  return rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      const name = decodeURIComponent(i === -1 ? p : p.slice(0, i));
      const value = i === -1 ? '' : decodeURIComponent(p.slice(i + 1));
      return [rfc3986(name), rfc3986(value)] as const;
    })
    .filter(([name]) => name !== exclude)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (m === null) throw new S3Error(403, 'AccessDenied', 'X-Amz-Date must be in the ISO8601 Long Format');
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

async function readSmall(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1024 * 1024) throw new S3Error(400, 'MaxMessageLengthExceeded', 'Your request was too big.');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function xml(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</${root}>`;
}

const entities: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' };

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => entities[c] ?? c);
}

export async function startFakeS3(options: FakeS3ServerOptions = {}): Promise<FakeS3Server> {
  return new FakeS3Server(options).start();
}

// As a script: serve until SIGTERM, bodies under the directory given (or a temp dir).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2];
  if (dir !== undefined) await stat(dir);
  const server = await startFakeS3({ buckets: ['bench'], ...(dir === undefined ? {} : { dir }) });
  console.log(
    JSON.stringify({ url: server.url, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }),
  );
  process.on('SIGTERM', () => {
    void server.close().then(() => process.exit(0));
  });
}
