import { z } from 'zod';

export const DeliverableTypeSchema = z.enum(['xlsx', 'docx', 'pptx', 'pdf', 'csv', 'md', 'png']);
export type DeliverableType = z.infer<typeof DeliverableTypeSchema>;

/** A stored file: an input a person attached, or a deliverable a run produced. */
export const StoredFileSchema = z.object({
  name: z.string().min(1).max(255),
  mediaType: z.string().min(1).max(200),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Key in the artifact store. */
  key: z.string().min(1).max(1024),
});
export type StoredFile = z.infer<typeof StoredFileSchema>;

export const ArtifactSchema = StoredFileSchema.extend({
  createdAt: z.string(),
});
export type Artifact = z.infer<typeof ArtifactSchema>;

const mediaTypes: Record<string, string> = {
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  pdf: 'application/pdf',
  csv: 'text/csv',
  md: 'text/markdown',
  png: 'image/png',
  txt: 'text/plain',
  json: 'application/json',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
};

/** Media type from a file name's extension; octet-stream when unknown. */
export function mediaTypeFor(name: string): string {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  return mediaTypes[ext] ?? 'application/octet-stream';
}

/**
 * Checks a file name a person or a model gave us: a plain name, no directories,
 * no traversal, no control characters. Returns a reason when it is refused.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the file name is empty';
  if (name.length > 255) return 'the file name is longer than 255 characters';
  if (name.includes('/') || name.includes('\\')) return 'the file name must not contain a path (/ or \\)';
  if (name === '.' || name === '..' || name.startsWith('..')) return 'the file name must not start with ..';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the file name contains control characters';
  return undefined;
}
