/**
 * A local fake of the OneDrive/SharePoint end of files in Teams personal chats:
 *
 * - a file a person sends the bot in a 1:1 chat arrives as a
 *   `application/vnd.microsoft.teams.file.download.info` attachment whose `downloadUrl` is
 *   pre-authenticated (no Authorization header); `addDownload` serves one at `/files/<token>`;
 * - a file the bot sends goes through a FileConsentCard: when the person accepts, Teams puts an
 *   `uploadInfo` into the fileConsent/invoke, whose `uploadUrl` is a OneDrive upload session.
 *   `newUploadSession` makes one; `PUT /upload/<token>` takes the bytes in one or more
 *   `Content-Range` fragments and answers 202 `{ nextExpectedRanges }`, then 201 with the
 *   driveItem once the last byte arrived.
 *
 * As OneDrive documents: an Authorization header on the upload URL is refused (401), a fragment
 * that does not start at the next expected byte answers 416, and fragments other than the last
 * must be multiples of 320 KiB (`strictFragmentSize: false` lifts that).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeHttpServer, type InjectedFailure, pollUntil, readBody, sendJson, takeFailure } from './teams-common.ts';
import { driveItemId, fileTypeOf, mimeTypeOf } from './teams-graph.ts';

/** What Teams puts into `value.uploadInfo` of a fileConsent/invoke accept. */
export interface UploadInfo {
  name: string;
  uploadUrl: string;
  contentUrl: string;
  uniqueId: string;
  fileType: string;
  etag?: string;
}

/** The attachment of a file a person sent in a 1:1 chat with the bot. */
export interface FileDownloadInfoAttachment {
  contentType: 'application/vnd.microsoft.teams.file.download.info';
  name: string;
  contentUrl: string;
  content: { downloadUrl: string; uniqueId: string; fileType: string; etag?: string };
}

export interface UploadRecord {
  name: string;
  uniqueId: string;
  /** Bytes received so far, in order. */
  bytes: Buffer;
  /** Declared total size, once a fragment said it. */
  size?: number;
  fragments: number;
  complete: boolean;
  cancelled: boolean;
}

export type FilesOperation = 'download' | 'upload' | 'uploadStatus' | 'cancelUpload' | 'unknown';

export interface FilesCall {
  method: string;
  path: string;
  operation: FilesOperation;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  status: number;
  error?: string;
  at: number;
}

export interface FakeTeamsFilesOptions {
  /** Refuse non-final fragments that are not multiples of 320 KiB, as OneDrive asks (default true). */
  strictFragmentSize?: boolean;
}

/** Builds the attachment Teams sends for a file in a personal chat. */
export function fileDownloadInfoAttachment(file: {
  name: string;
  downloadUrl: string;
  uniqueId?: string;
  contentUrl?: string;
}): FileDownloadInfoAttachment {
  const uniqueId = file.uniqueId ?? randomUUID().toUpperCase();
  return {
    contentType: 'application/vnd.microsoft.teams.file.download.info',
    name: file.name,
    contentUrl:
      file.contentUrl ??
      `https://contoso-my.sharepoint.com/personal/user_contoso_com/Documents/Microsoft%20Teams%20Chat%20Files/${encodeURIComponent(file.name)}`,
    content: { downloadUrl: file.downloadUrl, uniqueId, fileType: fileTypeOf(file.name), etag: `"{${uniqueId}},1"` },
  };
}

const fragmentQuantum = 320 * 1024;

interface FilesFailure extends InjectedFailure {
  remaining: number;
  only?: FilesOperation;
}

class FilesError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class FakeTeamsFiles extends FakeHttpServer {
  readonly calls: FilesCall[] = [];
  /** Upload sessions by `uniqueId`. */
  readonly uploads = new Map<string, UploadRecord>();
  /** Downloads served, by token. */
  readonly downloads = new Map<string, number>();
  readonly #options: FakeTeamsFilesOptions;
  readonly #files = new Map<string, { name: string; bytes: Buffer }>();
  readonly #sessions = new Map<string, string>();
  readonly #failures: FilesFailure[] = [];

  constructor(options: FakeTeamsFilesOptions = {}) {
    super('FakeTeamsFiles');
    this.#options = options;
  }

  get url(): string {
    return this.origin;
  }

  /**
   * Serves `bytes` at a pre-authenticated URL; answers that URL and the attachment Teams would
   * put into the person's message.
   */
  addDownload(
    name: string,
    bytes: Buffer | string,
  ): { downloadUrl: string; uniqueId: string; fileType: string; attachment: FileDownloadInfoAttachment } {
    const token = randomBytes(18).toString('base64url');
    this.#files.set(token, { name, bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes) });
    const downloadUrl = `${this.url}/files/${token}`;
    const attachment = fileDownloadInfoAttachment({ name, downloadUrl });
    return { downloadUrl, uniqueId: attachment.content.uniqueId, fileType: attachment.content.fileType, attachment };
  }

  /** An upload session for `name`: the `uploadInfo` of a fileConsent/invoke accept. */
  newUploadSession(name: string): UploadInfo {
    const token = randomBytes(18).toString('base64url');
    const uniqueId = randomUUID().toUpperCase();
    this.#sessions.set(token, uniqueId);
    this.uploads.set(uniqueId, {
      name,
      uniqueId,
      bytes: Buffer.alloc(0),
      fragments: 0,
      complete: false,
      cancelled: false,
    });
    return {
      name,
      uploadUrl: `${this.url}/upload/${token}`,
      contentUrl: `${this.url}/personal/user/Documents/Applications/Handoff/${encodeURIComponent(name)}`,
      uniqueId,
      fileType: fileTypeOf(name),
      etag: `"{${uniqueId}},1"`,
    };
  }

  /** The bytes of a finished upload, by `uniqueId` (undefined until the last fragment arrived). */
  uploaded(uniqueId: string): Buffer | undefined {
    const u = this.uploads.get(uniqueId);
    return u?.complete ? u.bytes : undefined;
  }

  /** Finished uploads, by file name. */
  uploadedByName(name: string): Buffer | undefined {
    const u = [...this.uploads.values()].find((x) => x.name === name && x.complete);
    return u?.bytes;
  }

  /** The next `n` requests (optionally of one operation) answer `status`. */
  failNext(n: number, status: number, options: Omit<InjectedFailure, 'status'> & { only?: FilesOperation } = {}): void {
    this.#failures.push({ status, ...options, remaining: n });
  }

  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
    return pollUntil(predicate, timeoutMs, what, () =>
      this.calls
        .map((c) => `${c.method} ${c.operation} ${c.bytes} bytes → ${c.status}${c.error ? ` ${c.error}` : ''}`)
        .join('\n'),
    );
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const call: FilesCall = {
      method,
      path: url.pathname,
      operation: 'unknown',
      headers: { ...req.headers },
      bytes: 0,
      status: 0,
      at: Date.now(),
    };
    this.calls.push(call);
    try {
      const raw = await readBody(req, 60 * 1024 * 1024);
      if (raw === undefined) throw new FilesError(413, 'requestTooLarge', 'A fragment may not exceed 60 MiB.');
      call.bytes = raw.length;
      const download = /^\/files\/([^/]+)$/.exec(url.pathname);
      const upload = /^\/upload\/([^/]+)$/.exec(url.pathname);
      if (download && method === 'GET') call.operation = 'download';
      else if (upload && method === 'PUT') call.operation = 'upload';
      else if (upload && method === 'GET') call.operation = 'uploadStatus';
      else if (upload && method === 'DELETE') call.operation = 'cancelUpload';
      else if (url.pathname.startsWith('/personal/')) {
        throw new FilesError(401, 'unauthenticated', 'Sign in to view this file.');
      } else throw new FilesError(404, 'itemNotFound', 'The resource could not be found.');

      const failure = takeFailure(this.#failures, (f) => f.only === undefined || f.only === call.operation);
      if (failure) {
        throw new FilesError(
          failure.status,
          failure.code ?? (failure.status === 429 ? 'activityLimitReached' : 'serviceNotAvailable'),
          failure.message ?? 'Injected failure.',
        );
      }

      if (call.operation === 'download') {
        const token = download![1]!;
        const file = this.#files.get(token);
        if (!file) throw new FilesError(404, 'itemNotFound', 'The resource could not be found.');
        this.downloads.set(token, (this.downloads.get(token) ?? 0) + 1);
        call.status = 200;
        res.writeHead(200, {
          'content-type': mimeTypeOf(file.name),
          'content-length': file.bytes.length,
          'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`,
        });
        res.end(file.bytes);
        return;
      }

      const uniqueId = this.#sessions.get(upload![1]!);
      const record = uniqueId === undefined ? undefined : this.uploads.get(uniqueId);
      if (!record || record.cancelled) throw new FilesError(404, 'itemNotFound', 'The upload session was not found.');
      if (call.operation === 'uploadStatus') {
        call.status = 200;
        sendJson(res, 200, this.#status(record));
        return;
      }
      if (call.operation === 'cancelUpload') {
        record.cancelled = true;
        call.status = 204;
        res.writeHead(204).end();
        return;
      }
      this.#fragment(req, raw, record, res, call);
    } catch (err) {
      const e = err instanceof FilesError ? err : new FilesError(500, 'generalException', String(err));
      call.status = e.status;
      call.error = e.code;
      sendJson(res, e.status, { error: { code: e.code, message: e.message, ...e.extra } });
    }
  }

  #status(record: UploadRecord): Record<string, unknown> {
    return {
      expirationDateTime: new Date(Date.now() + 15 * 60_000).toISOString(),
      nextExpectedRanges: [`${record.bytes.length}-${record.size === undefined ? '' : record.size - 1}`],
    };
  }

  #fragment(req: IncomingMessage, raw: Buffer, record: UploadRecord, res: ServerResponse, call: FilesCall): void {
    if (req.headers.authorization !== undefined) {
      throw new FilesError(
        401,
        'unauthenticated',
        'The upload URL is pre-authenticated; do not send an Authorization header.',
      );
    }
    if (record.complete) throw new FilesError(409, 'nameAlreadyExists', 'The upload session has already completed.');
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
    if (!range)
      throw new FilesError(
        400,
        'invalidRequest',
        'A Content-Range header of the form "bytes start-end/total" is required.',
      );
    const start = Number(range[1]);
    const end = Number(range[2]);
    const total = Number(range[3]);
    if (req.headers['content-length'] === undefined)
      throw new FilesError(411, 'lengthRequired', 'Content-Length is required.');
    if (end < start || end >= total || raw.length !== end - start + 1) {
      throw new FilesError(400, 'invalidRequest', 'The Content-Range does not match the number of bytes sent.');
    }
    if (record.size !== undefined && record.size !== total) {
      throw new FilesError(400, 'invalidRequest', 'The declared file size changed between fragments.');
    }
    if (start !== record.bytes.length) {
      throw new FilesError(416, 'invalidRange', 'The fragment does not start at the next expected byte.', {
        nextExpectedRanges: [`${record.bytes.length}-`],
      });
    }
    const last = end === total - 1;
    if (!last && (this.#options.strictFragmentSize ?? true) && raw.length % fragmentQuantum !== 0) {
      throw new FilesError(
        400,
        'invalidRange',
        'Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).',
      );
    }
    record.size = total;
    record.bytes = Buffer.concat([record.bytes, raw]);
    record.fragments += 1;
    if (!last) {
      call.status = 202;
      sendJson(res, 202, this.#status(record));
      return;
    }
    record.complete = true;
    const now = new Date().toISOString();
    call.status = 201;
    sendJson(res, 201, {
      id: driveItemId(record.uniqueId),
      name: record.name,
      size: record.bytes.length,
      createdDateTime: now,
      lastModifiedDateTime: now,
      eTag: `"{${record.uniqueId}},1"`,
      cTag: `"c:{${record.uniqueId}},1"`,
      webUrl: `${this.url}/personal/user/Documents/Applications/Handoff/${encodeURIComponent(record.name)}`,
      file: { mimeType: mimeTypeOf(record.name) },
    });
  }
}
