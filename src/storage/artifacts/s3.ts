import { pipeline, Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import type { ArtifactStore, DownloadLink, PutResult } from './artifact-store.ts';
import { formatBytes } from './format-bytes.ts';
import { assertValidKey } from './local.ts';
import { meteredStream } from './meter.ts';

/** Stable code for a store failure that is not the caller's fault; `retryable` says whether to try again. */
export const artifactStoreFailed = 'handoff_artifact_store_failed';

/** SigV4 presigned URLs live at most 7 days. */
const maxPresignSeconds = 7 * 24 * 60 * 60;
const minPartBytes = 5 * 1024 * 1024;
/** CopyObject refuses sources over 5 GiB; larger objects keep their sha256 only in the PutResult. */
const maxCopyBytes = 5 * 1024 ** 3;

export interface S3ArtifactStoreOptions {
  /** Bucket the artifacts live in; it MUST exist. */
  bucket: string;
  /** Key prefix, e.g. `handoff/prod`; joined to keys with one `/`. Default: none. */
  prefix?: string;
  /** Default: the SDK's chain (`AWS_REGION`, profile); `us-east-1` when only `endpoint` is set. */
  region?: string;
  /**
   * An S3-compatible endpoint (MinIO, Ceph, R2, a local fake). When the endpoint comes from
   * `AWS_ENDPOINT_URL_S3`, the caller SHOULD pass it here too, so path-style addressing and
   * the checksum settings below apply.
   */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`). Default: true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** A ready client; when given, `region`, `endpoint` and `forcePathStyle` are ignored. */
  client?: S3Client;
  /** Multipart part size in bytes, at least 5 MiB. Default: 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded at once. Memory held by one `put` is about `partSizeBytes × (queueSize + 1)`. Default: 4. */
  queueSize?: number;
}

/**
 * Artifacts in an S3 bucket: streaming multipart upload with bounded memory, presigned GET
 * links. Each object carries its sha256 as `x-amz-meta-sha256` (set by a server-side self-copy
 * after a multipart upload; objects over 5 GiB, CopyObject's limit, go without it).
 * Credentials come from the standard AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
 * profiles, instance and container roles).
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly name = 's3';
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #partSizeBytes: number;
  readonly #queueSize: number;

  constructor(options: S3ArtifactStoreOptions) {
    if (options.bucket === '') throw new HandoffError(ErrorCodes.config, 'the S3 bucket name is empty');
    this.#bucket = options.bucket;
    this.#prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (this.#prefix !== '') assertValidKey(this.#prefix);
    this.#partSizeBytes = options.partSizeBytes ?? 8 * 1024 * 1024;
    if (this.#partSizeBytes < minPartBytes) {
      throw new HandoffError(ErrorCodes.config, `S3 part size must be at least ${formatBytes(minPartBytes)}`);
    }
    this.#queueSize = Math.max(1, options.queueSize ?? 4);
    this.#client = options.client ?? new S3Client(clientConfig(options));
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    return this.#prefix === '' ? key : `${this.#prefix}/${key}`;
  }

  async put(key: string, body: Readable, options: { mediaType: string; maxBytes?: number }): Promise<PutResult> {
    const Key = this.#objectKey(key);
    const metered = meteredStream(options.maxBytes);
    const meter = metered.stream;
    // An error on either side destroys both, so the producer stops when the limit is hit;
    // the error itself surfaces through the reads below.
    pipeline(body, meter, () => undefined);
    const chunks = meter[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      // Read up to one part first. The sha256 is known only at the end of the stream, and a
      // small file can then go in one PUT that carries it as metadata.
      const head: Buffer[] = [];
      let headBytes = 0;
      while (headBytes <= this.#partSizeBytes) {
        const next = await chunks.next();
        if (next.done) {
          const sha256 = metered.sha256();
          await this.#client.send(
            new PutObjectCommand({
              Bucket: this.#bucket,
              Key,
              Body: Buffer.concat(head),
              ContentLength: headBytes,
              ContentType: options.mediaType,
              Metadata: { sha256 },
            }),
          );
          return { size: metered.size(), sha256 };
        }
        head.push(next.value);
        headBytes += next.value.length;
      }
      await this.#putMultipart(Key, Readable.from(concatChunks(head, chunks)), options.mediaType);
    } catch (err) {
      meter.destroy();
      throw mapError(err, `could not store artifact ${key}`);
    }
    const sha256 = metered.sha256();
    // CreateMultipartUpload, which carries the metadata, went out before the digest was known:
    // set it with a server-side copy onto itself, which moves no bytes through us.
    if (metered.size() <= maxCopyBytes) {
      try {
        await this.#client.send(
          new CopyObjectCommand({
            Bucket: this.#bucket,
            Key,
            CopySource: `${this.#bucket}/${Key.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'REPLACE',
            ContentType: options.mediaType,
            Metadata: { sha256 },
          }),
        );
      } catch (err) {
        // All or nothing: an artifact without its recorded digest is not kept.
        await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key })).catch(() => undefined);
        throw mapError(err, `could not record the digest of artifact ${key}`);
      }
    }
    return { size: metered.size(), sha256 };
  }

  async #putMultipart(Key: string, body: Readable, mediaType: string): Promise<void> {
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key, Body: body, ContentType: mediaType },
      partSize: this.#partSizeBytes,
      queueSize: this.#queueSize,
      // Abort the multipart upload on any failure so no parts are left behind (and billed).
      leavePartsOnError: false,
    });
    // A stream error (e.g. the size limit) reaches lib-storage's part reader; `done()`
    // rejects only after the multipart upload has been aborted.
    await upload.done();
  }

  async get(key: string): Promise<Readable> {
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }));
      // In Node the SDK body is an IncomingMessage, i.e. a Readable.
      return out.Body as Readable;
    } catch (err) {
      throw mapError(err, `no artifact ${key}`, key);
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }));
      return true;
    } catch (err) {
      const mapped = mapError(err, `could not check artifact ${key}`, key);
      // S3 answers 403, not 404, for a missing key when the caller lacks s3:ListBucket:
      // the bot's policy MUST grant it for this to say false.
      if (mapped.code === ErrorCodes.notFound) return false;
      throw mapped;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }));
    } catch (err) {
      const mapped = mapError(err, `could not delete artifact ${key}`, key);
      // S3 answers 204 for a missing key; some compatible stores answer 404.
      if (mapped.code !== ErrorCodes.notFound) throw mapped;
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (!prefix.endsWith('/')) throw new HandoffError(ErrorCodes.invalidInput, 'a prefix must end with /');
    assertValidKey(prefix.slice(0, -1));
    const full = `${this.#objectKey(prefix.slice(0, -1))}/`;
    let removed = 0;
    let token: string | undefined;
    do {
      let page: { Contents?: Array<{ Key?: string }>; IsTruncated?: boolean; NextContinuationToken?: string };
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: full,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
      } catch (err) {
        throw mapError(err, `could not list artifacts under ${prefix}`, prefix);
      }
      // One at a time keeps this compatible with stores that lack DeleteObjects; it runs in the background.
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        try {
          await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: object.Key }));
          removed++;
        } catch (err) {
          const mapped = mapError(err, `could not delete artifact ${object.Key}`, object.Key);
          if (mapped.code !== ErrorCodes.notFound) throw mapped;
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return removed;
  }

  async downloadUrl(
    key: string,
    options: { fileName: string; mediaType: string; expiresInMs: number },
  ): Promise<DownloadLink> {
    // Links signed with temporary credentials (roles, SSO) stop working when those expire,
    // whichever comes first; long-lived links need an IAM user's keys.
    const expiresIn = Math.min(maxPresignSeconds, Math.max(1, Math.ceil(options.expiresInMs / 1000)));
    const signedAt = Date.now();
    const command = new GetObjectCommand({
      Bucket: this.#bucket,
      Key: this.#objectKey(key),
      ResponseContentDisposition: attachment(options.fileName),
      ResponseContentType: options.mediaType,
    });
    const url = await getSignedUrl(this.#client, command, { expiresIn, signingDate: new Date(signedAt) });
    // X-Amz-Date has whole seconds; expiry counts from there.
    const expiresAtMs = Math.floor(signedAt / 1000) * 1000 + expiresIn * 1000;
    return { url, expiresAt: new Date(expiresAtMs).toISOString() };
  }
}

function clientConfig(options: S3ArtifactStoreOptions): S3ClientConfig {
  const config: S3ClientConfig = {};
  const region = options.region ?? (options.endpoint === undefined ? undefined : 'us-east-1');
  if (region !== undefined) config.region = region;
  if (options.endpoint !== undefined) {
    config.endpoint = options.endpoint;
    config.forcePathStyle = options.forcePathStyle ?? true;
    // Since 3.729 the SDK adds CRC32 checksums to every upload by default, sent as
    // `x-amz-checksum-*` headers or, for streamed bodies, as a trailer inside an
    // `aws-chunked` body. Several S3-compatible stores reject those or store the chunk
    // framing as if it were content. Send checksums only where the API demands them, so
    // the store keeps exactly the bytes sent; integrity is still covered by SigV4's
    // payload hash on plain HTTP and by TLS otherwise, and by the sha256 we record.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  } else if (options.forcePathStyle !== undefined) {
    config.forcePathStyle = options.forcePathStyle;
  }
  return config;
}

/** RFC 6266 attachment with an ASCII fallback name and the exact name in `filename*`. */
function attachment(fileName: string): string {
  const fallback = fileName.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const exact = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${exact}`;
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** NoSuchKey/404 on a key → notFound; network, throttling and 5xx → retryable; anything else → terminal. */
function mapError(err: unknown, message: string, key?: string): HandoffError {
  if (err instanceof HandoffError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const missing = e.name === 'NoSuchKey' || e.name === 'NotFound' || (status === 404 && e.name !== 'NoSuchBucket');
  if (key !== undefined && missing) {
    return new HandoffError(ErrorCodes.notFound, `no artifact ${key}`, { cause: err });
  }
  const detail = err instanceof Error ? `: ${e.name ?? 'Error'} ${err.message}` : '';
  const retryable =
    (status !== undefined && (status >= 500 || status === 429)) ||
    e.$retryable !== undefined ||
    e.name === 'TimeoutError' ||
    e.name === 'RequestTimeout' ||
    (e.code !== undefined && networkCodes.has(e.code)) ||
    // Sent through the SDK but no HTTP answer came back: the network failed.
    (e.$metadata !== undefined && status === undefined);
  return new HandoffError(artifactStoreFailed, `${message}${detail}`, { cause: err, retryable });
}
/** The chunks already read, then the rest of the stream. */
async function* concatChunks(head: Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  // Shifted out, not iterated, so each part-sized head chunk is freed once lib-storage has it.
  for (let chunk = head.shift(); chunk !== undefined; chunk = head.shift()) yield chunk;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}
