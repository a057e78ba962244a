import type { Readable } from 'node:stream';

/** A file that came with a request, as a surface hands it to the gateway. */
export interface IncomingFile {
  name: string;
  size: number;
  /** The file's bytes, streamed; the store enforces the size limit while reading. */
  body: Readable | Buffer;
}

/** Input types the sandbox tools can read: what every surface accepts with a request. */
export const inputExtensions = [
  'csv',
  'tsv',
  'xlsx',
  'xls',
  'docx',
  'pptx',
  'pdf',
  'md',
  'markdown',
  'txt',
  'json',
  'png',
  'jpg',
  'jpeg',
] as const;

/** A file that was not used, and why, for the thread. */
export interface RefusedFile {
  name: string;
  reason: string;
}
