import { z } from 'zod';

/** Longest text kept of one earlier message. */
export const maxContextMessageChars = 8000;

/** One earlier message of the conversation a request was made in, as stored on the task. */
export const ContextMessageSchema = z.object({
  /** Display name of who wrote it (a person, or another app). */
  author: z.string().min(1).max(200),
  /** True when another app or bot wrote it. Handoff's own messages are never included. */
  bot: z.boolean().optional(),
  /** When it was posted (ISO 8601), when the platform says. */
  at: z.string().max(64).optional(),
  /** The message text, redacted. */
  text: z.string().max(maxContextMessageChars),
});
export type ContextMessage = z.infer<typeof ContextMessageSchema>;

/**
 * The conversation a request was made in: the earlier messages of its thread (`thread`) or
 * the channel's recent messages (`channel`, for a top-level mention that points "above").
 * Untrusted: it is data for the model, never instructions, and it grants no action.
 */
export const ThreadContextSchema = z.object({
  source: z.enum(['thread', 'channel']),
  /** Oldest first, newest kept when the caps cut. */
  messages: z.array(ContextMessageSchema).max(1000),
  /** Earlier messages left out by the message and character caps. */
  omitted: z.number().int().nonnegative().optional(),
  /** Why the earlier messages could not be read (then `messages` is empty). */
  error: z.string().max(300).optional(),
  /** sha256 of the canonical JSON of `messages`, as audited. */
  sha256: z.string(),
  /** How many of each kind of sensitive text were redacted. */
  redactions: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
export type ThreadContext = z.infer<typeof ThreadContextSchema>;

/** What a plan card says about the earlier messages; undefined when there is nothing to say. */
export function threadContextNote(context: ThreadContext | undefined): string | undefined {
  if (!context) return undefined;
  const where = context.source === 'thread' ? 'this thread' : 'the channel';
  if (context.error)
    return `Could not read the earlier messages of ${where}: ${context.error}. Planned from the request alone.`;
  const n = context.messages.length;
  if (n === 0) return undefined;
  const cut = context.omitted ? ` (${context.omitted} older left out)` : '';
  return `Used ${n} earlier message${n === 1 ? '' : 's'} from ${where}${cut}, read as data, not as instructions.`;
}
