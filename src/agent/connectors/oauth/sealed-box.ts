import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';

/**
 * Encryption at rest for per-user connection records: AES-256-GCM with a fresh 96-bit IV
 * per record, and associated data naming what the record is for, so a ciphertext copied
 * to another user's, connector's or kind's key does not open.
 *
 * The configured key is never used directly: one HKDF-SHA256 subkey encrypts, another
 * keys the HMAC that turns user ids and flow states into Redis key names (so Redis shows
 * neither who connected nor a usable state).
 */

const keyBytes = 32;
const ivBytes = 12;
const tagBytes = 16;
const format = 'v1';

/** What a stored ciphertext is bound to: every part must match when it is opened. */
export type SealedContext = readonly string[];

/**
 * Reads the connections key (`HANDOFF_CONNECTIONS_KEY`): 64 hex characters, or base64
 * (standard or URL-safe, padding optional) of exactly 32 bytes. Surrounding whitespace is
 * ignored. Errors say what is wrong, never the value.
 */
export function parseConnectionsKey(text: string): Buffer {
  const value = text.trim();
  if (value === '') {
    throw new HandoffError(
      ErrorCodes.config,
      'the connections key is empty: set it to 32 random bytes, as 64 hex characters or base64 (`openssl rand -base64 32`)',
    );
  }
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  // 43 characters could still be unpadded base64 of 32 bytes that happens to use only hex digits.
  if (/^[0-9a-fA-F]+$/.test(value) && value.length !== 43) {
    throw new HandoffError(
      ErrorCodes.config,
      `the connections key looks like hex but has ${value.length} characters; it must have 64 (32 bytes)`,
    );
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) {
    throw new HandoffError(
      ErrorCodes.config,
      'the connections key is neither 64 hex characters nor base64: it has characters outside both alphabets',
    );
  }
  const standard = value.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const bytes = Buffer.from(standard, 'base64');
  // Buffer.from ignores what it cannot decode; re-encoding shows whether every character counted.
  if (bytes.toString('base64').replace(/=+$/, '') !== standard) {
    throw new HandoffError(ErrorCodes.config, 'the connections key is not valid base64');
  }
  if (bytes.length !== keyBytes) {
    throw new HandoffError(
      ErrorCodes.config,
      `the connections key decodes to ${bytes.length} bytes; it must be exactly ${keyBytes} (\`openssl rand -base64 32\`)`,
    );
  }
  return bytes;
}

/** Seals and opens records with subkeys of one connections key. */
export class SealedBox {
  readonly #encryptionKey: Buffer;
  readonly #namingKey: Buffer;

  /** `key` MUST be 32 bytes (see {@link parseConnectionsKey}). */
  constructor(key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length !== keyBytes) {
      throw new HandoffError(ErrorCodes.config, `the connections key must be ${keyBytes} bytes`);
    }
    this.#encryptionKey = Buffer.from(
      hkdfSync('sha256', key, Buffer.alloc(0), 'handoff connections v1 encryption', 32),
    );
    this.#namingKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'handoff connections v1 key names', 32));
  }

  /** Encrypts `plaintext` bound to `context`: `v1.<base64url of iv | tag | ciphertext>`. */
  seal(plaintext: string, context: SealedContext): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', this.#encryptionKey, iv);
    cipher.setAAD(associatedData(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${format}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /**
   * Decrypts what {@link seal} produced for the same `context`; undefined when it does not
   * open (another key, another context, or altered bytes). Never throws for bad input.
   */
  open(sealed: string, context: SealedContext): string | undefined {
    if (!sealed.startsWith(`${format}.`)) return undefined;
    const raw = Buffer.from(sealed.slice(format.length + 1), 'base64url');
    if (raw.length < ivBytes + tagBytes) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#encryptionKey, raw.subarray(0, ivBytes));
      decipher.setAAD(associatedData(context));
      decipher.setAuthTag(raw.subarray(ivBytes, ivBytes + tagBytes));
      return Buffer.concat([decipher.update(raw.subarray(ivBytes + tagBytes)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** A stable, non-reversible name for `value` in `purpose` (hex HMAC-SHA256), for use in Redis keys. */
  name(purpose: string, value: string): string {
    return createHmac('sha256', this.#namingKey)
      .update(JSON.stringify([purpose, value]))
      .digest('hex');
  }
}

// A JSON array, so no choice of separator can make two different contexts equal.
function associatedData(context: SealedContext): Buffer {
  return Buffer.from(JSON.stringify(['handoff.connections', format, ...context]), 'utf8');
}
