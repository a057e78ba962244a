import type { Readable } from 'node:stream';

/** A file that came with a request, as a surface hands it to the gateway. */
export interface IncomingFile {
  name: string;
  size: number;
  /** The file's bytes, streamed; the store enforces the size limit while reading. */
  body: Readable | Buffer;
}
