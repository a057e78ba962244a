import type { Readable } from 'node:stream';

export interface PutResult {
  size: number;
  sha256: string;
}

export interface DownloadLink {
  url: string;
  expiresAt: string;
}

/** Where inputs and deliverables live. Local directory by default; S3 in production. */
export interface ArtifactStore {
  readonly name: string;
  /** Streams `body` into the store under `key`. Refuses more than `maxBytes` when given. */
  put(key: string, body: Readable, options: { mediaType: string; maxBytes?: number }): Promise<PutResult>;
  get(key: string): Promise<Readable>;
  /**
   * Copies an object to a new local file readable by all (0644), in one step where the store
   * is on this disk. Optional: without it the object is streamed with `get`.
   */
  copyToFile?(key: string, path: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Removes an object; no error when it does not exist. */
  delete(key: string): Promise<void>;
  /** Removes every object whose key starts with `prefix` (which MUST end with `/`). Returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** A link a person can open, valid until `expiresAt`. */
  downloadUrl(
    key: string,
    options: { fileName: string; mediaType: string; expiresInMs: number },
  ): Promise<DownloadLink>;
}
