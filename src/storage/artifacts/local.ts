import { createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import type { ArtifactStore, DownloadLink, PutResult } from './artifact-store.ts';
import { meteredStream } from './meter.ts';

/** Keys are slash-separated segments of safe characters; nothing can climb out of the root. */
const keyPattern = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}(\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}){0,8}$/;

export function assertValidKey(key: string): void {
  if (!keyPattern.test(key) || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new HandoffError(ErrorCodes.invalidInput, `invalid artifact key: ${JSON.stringify(key.slice(0, 80))}`);
  }
}

export interface LocalArtifactStoreOptions {
  root: string;
  /** HMAC key for download links; MUST be the same on every bot that serves them. */
  signingSecret: string;
  /** Base URL of the bot that serves `/files/…` (a function when known only once it listens). */
  publicUrl: string | (() => string);
}

export interface SignedDownload {
  key: string;
  fileName: string;
  mediaType: string;
  expiresAtMs: number;
  signature: string;
}

/** Artifacts in a local directory, downloaded through signed, expiring links served by the bot. */
export class LocalArtifactStore implements ArtifactStore {
  readonly name = 'local';

  constructor(private readonly options: LocalArtifactStoreOptions) {}

  private path(key: string): string {
    assertValidKey(key);
    return join(this.options.root, key);
  }

  async put(key: string, body: Readable, options: { mediaType: string; maxBytes?: number }): Promise<PutResult> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}-${Date.now()}`;
    const meter = meteredStream(options.maxBytes);
    try {
      await pipeline(body, meter.stream, createWriteStream(partial, { mode: 0o600 }));
      // Renamed only when complete, so a reader never sees half a file.
      await rename(partial, target);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { size: meter.size(), sha256: meter.sha256() };
  }

  async get(key: string): Promise<Readable> {
    const path = this.path(key);
    try {
      await stat(path);
    } catch {
      throw new HandoffError(ErrorCodes.notFound, `no artifact ${key}`);
    }
    return createReadStream(path);
  }

  async copyToFile(key: string, path: string): Promise<void> {
    try {
      await copyFile(this.path(key), path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HandoffError(ErrorCodes.notFound, `no artifact ${key}`);
      }
      throw err;
    }
    // Stored objects are private to the runner (0600); a workspace copy is for the sandbox user.
    await chmod(path, 0o644);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await stat(this.path(key));
      return true;
    } catch {
      return false;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (!prefix.endsWith('/')) throw new HandoffError(ErrorCodes.invalidInput, 'a prefix must end with /');
    const dir = this.path(prefix.slice(0, -1));
    const count = await countFiles(dir);
    await rm(dir, { recursive: true, force: true });
    return count;
  }

  async downloadUrl(
    key: string,
    options: { fileName: string; mediaType: string; expiresInMs: number },
  ): Promise<DownloadLink> {
    assertValidKey(key);
    const expiresAtMs = Date.now() + options.expiresInMs;
    const signature = this.sign(key, options.fileName, options.mediaType, expiresAtMs);
    const query = new URLSearchParams({
      name: options.fileName,
      type: options.mediaType,
      exp: String(expiresAtMs),
      sig: signature,
    });
    const base = typeof this.options.publicUrl === 'function' ? this.options.publicUrl() : this.options.publicUrl;
    const url = `${base.replace(/\/$/, '')}/files/${key.split('/').map(encodeURIComponent).join('/')}?${query}`;
    return { url, expiresAt: new Date(expiresAtMs).toISOString() };
  }

  /** Checks a download request; returns why it is refused, or undefined when it is good. */
  verify(download: SignedDownload, now = Date.now()): string | undefined {
    if (!keyPattern.test(download.key)) return 'invalid link';
    if (!Number.isFinite(download.expiresAtMs)) return 'invalid link';
    const expected = Buffer.from(this.sign(download.key, download.fileName, download.mediaType, download.expiresAtMs));
    const given = Buffer.from(download.signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid link signature';
    if (download.expiresAtMs < now) return 'this link has expired; ask for a new one in the thread';
    return undefined;
  }

  private sign(key: string, fileName: string, mediaType: string, expiresAtMs: number): string {
    return createHmac('sha256', this.options.signingSecret)
      .update(`${key}\n${fileName}\n${mediaType}\n${expiresAtMs}`)
      .digest('base64url');
  }
}

async function countFiles(dir: string): Promise<number> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) n += e.isDirectory() ? await countFiles(join(dir, e.name)) : 1;
  return n;
}
