import { randomBytes } from 'node:crypto';

/** A short, URL-safe, random id with a readable prefix (`t_…` for tasks). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url')}`;
}
