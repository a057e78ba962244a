import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
// busboy parses multipart as a stream, part by part, with per-file size limits and
// backpressure. Hono's parseBody (and Request.formData) buffer the whole body in memory
// first, so one large or endless upload could take the process down.
import busboy from 'busboy';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';
import { formatBytes } from '../../../storage/index.ts';

export interface UploadLimits {
  /** Largest single file (HANDOFF_MAX_UPLOAD_BYTES). */
  maxFileBytes: number;
  /** Most files in one message (HANDOFF_MAX_FILES). */
  maxFiles: number;
  /** Largest text field (the message text and the small fields beside it). */
  maxFieldBytes: number;
}

/** An upload spooled to disk: its text fields and the files, each in its own temp file. */
export interface SpooledUpload {
  fields: Record<string, string>;
  files: Array<{ name: string; size: number; path: string }>;
  /** Removes the temp files; call it once the files were stored (or refused). Idempotent. */
  discard(): Promise<void>;
}

/** Fields and the multipart framing around them, on top of the files themselves. */
const framingAllowanceBytes = 64 * 1024;
const maxFields = 10;

/** The most a whole message body may be: every file at its limit, plus the fields and framing. */
export function maxUploadTotalBytes(limits: UploadLimits): number {
  return limits.maxFiles * limits.maxFileBytes + limits.maxFieldBytes + framingAllowanceBytes;
}

/** An upload refused for its size: the console answers 413 (the words match `fail` there). */
export function uploadTooLarge(message: string): HandoffError {
  return new HandoffError(ErrorCodes.invalidInput, message);
}

/**
 * Reads a multipart body as it arrives: files are written to a new directory under
 * `spoolRoot`, counted per file and in total, and nothing is held in memory but the text
 * fields. Past a limit it stops reading at once and throws; what was written is removed.
 * The caller MUST call `discard()` on the result when done with the files.
 */
export async function spoolUpload(
  body: ReadableStream<Uint8Array> | null,
  contentType: string,
  limits: UploadLimits,
  spoolRoot: string,
): Promise<SpooledUpload> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': contentType },
      // Names as sent (not cut to their last segment), so a name with a path is refused, not renamed.
      preservePath: true,
      defParamCharset: 'utf8',
      limits: {
        // busboy signals 'limit' on reaching the size, not on passing it: one more byte,
        // so a file of exactly the limit is accepted (as the gateway does).
        fileSize: limits.maxFileBytes + 1,
        files: limits.maxFiles,
        fields: maxFields,
        fieldSize: limits.maxFieldBytes,
        parts: limits.maxFiles + maxFields,
      },
    });
  } catch {
    throw new HandoffError(ErrorCodes.invalidInput, 'send the message as multipart/form-data');
  }
  await mkdir(spoolRoot, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(spoolRoot, 'upload-'));
  const discard = () => rm(dir, { recursive: true, force: true });
  const input = body ? Readable.fromWeb(body as NodeReadableStream<Uint8Array>) : Readable.from([]);
  const maxTotal = maxUploadTotalBytes(limits);

  try {
    return await new Promise<SpooledUpload>((resolve, reject) => {
      const fields: Record<string, string> = {};
      const files: SpooledUpload['files'] = [];
      /** Settles when each temp file is closed (written in full, or abandoned). */
      const writes: Array<Promise<void>> = [];
      let failed = false;
      let total = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          total += chunk.length;
          if (total > maxTotal) {
            fail(uploadTooLarge(`the upload is larger than the limit of ${formatBytes(maxTotal)}`));
            done();
            return;
          }
          done(null, chunk);
        },
      });
      const open = new Set<{ part: Readable; file: WriteStream }>();
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        // Stop reading without destroying the request: the 413 must still reach the client,
        // and its `connection: close` ends the socket and the rest of the body with it.
        input.unpipe(counter);
        input.pause();
        counter.unpipe(parser);
        // The parser is left to be collected (destroying it mid-chunk throws inside busboy);
        // the files being written are closed so their temp files can be removed. Both ends
        // are destroyed: a part destroyed alone (its size limit hit before the file opened)
        // does not always end the file it was piped to.
        for (const { part, file } of open) {
          part.unpipe(file);
          part.destroy();
          file.destroy();
        }
        void Promise.allSettled(writes).then(() => reject(err));
      };

      parser.on('file', (field, stream, info) => {
        if (failed || field !== 'files' || !info.filename) {
          stream.resume();
          return;
        }
        const name = info.filename;
        const index = files.length;
        const path = join(dir, String(index));
        const entry = { name, size: 0, path };
        files.push(entry);
        stream.on('data', (chunk: Buffer) => {
          entry.size += chunk.length;
        });
        stream.on('limit', () =>
          fail(uploadTooLarge(`${name} is over the upload limit of ${formatBytes(limits.maxFileBytes)}`)),
        );
        const file = createWriteStream(path, { flags: 'wx', mode: 0o600 });
        const entryStreams = { part: stream, file };
        open.add(entryStreams);
        writes.push(
          new Promise<void>((closed) => {
            file.once('close', () => {
              open.delete(entryStreams);
              closed();
            });
          }),
        );
        file.on('error', (err) => fail(err));
        stream.on('error', (err) =>
          fail(new HandoffError(ErrorCodes.invalidInput, 'the upload could not be read', { cause: err })),
        );
        stream.pipe(file);
      });
      parser.on('field', (name, value, info) => {
        if (info.valueTruncated) {
          fail(uploadTooLarge(`the ${name} field is larger than the limit of ${formatBytes(limits.maxFieldBytes)}`));
          return;
        }
        fields[name] = value;
      });
      parser.on('filesLimit', () =>
        fail(new HandoffError(ErrorCodes.invalidInput, `at most ${limits.maxFiles} files per request`)),
      );
      parser.on('fieldsLimit', () => fail(new HandoffError(ErrorCodes.invalidInput, 'too many form fields')));
      parser.on('partsLimit', () => fail(new HandoffError(ErrorCodes.invalidInput, 'too many form parts')));
      parser.on('error', (err) =>
        fail(new HandoffError(ErrorCodes.invalidInput, 'the upload could not be read', { cause: err })),
      );
      parser.on('close', () => {
        void Promise.all(writes).then(() => {
          if (failed) return;
          // A file that closed without being written in full (an error) already failed the upload.
          resolve({ fields, files, discard });
        });
      });
      input.on('error', (err) =>
        fail(new HandoffError(ErrorCodes.invalidInput, 'the upload was interrupted', { cause: err })),
      );
      input.pipe(counter).pipe(parser);
    });
  } catch (err) {
    await discard();
    throw err;
  }
}
