import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import { formatBytes } from './format-bytes.ts';

/**
 * A pass-through that counts bytes and hashes them on the way to a store, and fails
 * the stream as soon as `maxBytes` is exceeded, so nothing past the limit is written.
 */
export function meteredStream(maxBytes = Number.POSITIVE_INFINITY): {
  stream: Transform;
  size: () => number;
  sha256: () => string;
} {
  const hash = createHash('sha256');
  let size = 0;
  let digest: string | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > maxBytes) {
        done(
          new HandoffError(ErrorCodes.invalidInput, `the file is larger than the limit of ${formatBytes(maxBytes)}`),
        );
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return {
    stream,
    size: () => size,
    sha256: () => {
      digest ??= hash.digest('hex');
      return digest;
    },
  };
}
