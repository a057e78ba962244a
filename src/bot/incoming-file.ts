import type { Readable } from 'node:stream';
import { fileNameProblem } from '../core/index.ts';

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

/** How many files a request may bring, how large, and of which types (lower case, no dot). */
export interface FileLimits {
  maxBytes: number;
  maxFiles: number;
  extensions: readonly string[];
}

/** The refusal of a file too large for `maxBytes`, in the words every surface uses. */
export function tooLarge(maxBytes: number): string {
  return `it is larger than the limit of ${Math.floor(maxBytes / 1024 / 1024)} MB`;
}

/**
 * Why a file offered with a request is not taken, judged before anything is downloaded:
 * too many files already, a bad name, a type the tools cannot read, or too large (when the
 * size is known). Undefined when it may be fetched.
 */
export function fileRefusal(
  name: string,
  size: number | undefined,
  acceptedSoFar: number,
  limits: FileLimits,
): string | undefined {
  if (acceptedSoFar >= limits.maxFiles) return `at most ${limits.maxFiles} files per request`;
  const problem = fileNameProblem(name);
  if (problem) return problem;
  const ext = name.toLowerCase().split('.').pop() ?? '';
  if (!name.includes('.') || !limits.extensions.includes(ext))
    return `this type is not accepted (accepted: ${limits.extensions.join(', ')})`;
  if (size !== undefined && size > limits.maxBytes) return tooLarge(limits.maxBytes);
  return undefined;
}
