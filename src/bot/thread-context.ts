import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { PlanPolicy } from '../approvals/index.ts';
import {
  type ContextMessage,
  canonicalJson,
  maxContextMessageChars,
  type RedactionKind,
  redact,
  type ThreadContext,
} from '../core/index.ts';

/** Default of HANDOFF_THREAD_CONTEXT_MESSAGES: most earlier messages a request takes along. */
export const defaultThreadContextMessages = 30;
/** Default of HANDOFF_THREAD_CONTEXT_CHARS: most characters of earlier messages, newest kept. */
export const defaultThreadContextChars = 20_000;

/** The caps on the earlier messages a request takes along. */
export interface ThreadContextLimits {
  /** Most messages kept, newest first; 0 turns thread context off. */
  maxMessages: number;
  /** Most characters kept over all messages, newest first. */
  maxChars: number;
}

/**
 * The earlier messages a surface read for a request, as it hands them to the gateway: the
 * platform's words, not yet capped or redacted. A surface that could not read them (a
 * missing scope, an API error) sets `error` and no messages: the request goes ahead.
 */
export const ThreadContextInputSchema = z.object({
  source: z.enum(['thread', 'channel']),
  /** Oldest first. */
  messages: z
    .array(
      z.object({
        author: z.string().max(500),
        bot: z.boolean().optional(),
        at: z.string().max(64).optional(),
        text: z.string().max(200_000),
      }),
    )
    .max(5000),
  error: z.string().max(2000).optional(),
});
export type ThreadContextInput = z.infer<typeof ThreadContextInputSchema>;

/**
 * Whether a top-level request points at what was said before it ("summarise this",
 * "turn the above into a table", "chart that"): then the channel's recent messages go
 * with it. A reply in a thread always takes the thread's earlier messages.
 */
export function refersToEarlierMessages(text: string): boolean {
  return /\b(?:this|that|above)\b/i.test(text);
}

/** What thread context is redacted for: secrets always, plus what the channel's policy names. */
export function contextRedactionKinds(policy: PlanPolicy): RedactionKind[] {
  const kinds = new Set<RedactionKind>(['secret']);
  if (policy.redaction?.enabled) for (const k of policy.redaction.kinds) kinds.add(k);
  return [...kinds];
}

/**
 * Validates, caps and redacts what a surface read, ready to store on the task. Keeps the
 * newest messages within both caps (the newest one cut to fit when it alone is over the
 * character cap); drops empty ones; redacts every message (secrets always, plus the
 * policy's kinds) before anything is stored. Throws a ZodError on malformed input: the
 * surface handed in something that is not a conversation.
 */
export function prepareThreadContext(
  raw: ThreadContextInput,
  limits: ThreadContextLimits,
  kinds: readonly RedactionKind[],
): ThreadContext | undefined {
  const input = ThreadContextInputSchema.parse(raw);
  if (limits.maxMessages <= 0) return undefined;
  const redactions: Record<string, number> = {};
  const clean = (text: string) => {
    const r = redact(text, kinds);
    for (const [k, n] of Object.entries(r.counts)) if (n > 0) redactions[k] = (redactions[k] ?? 0) + n;
    return r.text;
  };
  const candidates = input.messages.filter((m) => m.text.trim() !== '');
  const kept: ContextMessage[] = [];
  let chars = 0;
  for (let i = candidates.length - 1; i >= 0 && kept.length < limits.maxMessages; i--) {
    const m = candidates[i]!;
    const room = Math.min(limits.maxChars - chars, maxContextMessageChars);
    if (room <= 0) break;
    // Cut before redacting would split a secret in half and let the rest through: redact first.
    let text = clean(m.text.trim());
    if (text.length > room) {
      if (kept.length > 0) break;
      text = `${text.slice(0, Math.max(0, room - 1))}…`;
    }
    chars += text.length;
    const author =
      m.author
        .replace(/[\r\n\t]+/g, ' ')
        .trim()
        .slice(0, 200) || 'someone';
    kept.unshift({ author, ...(m.bot ? { bot: true } : {}), ...(m.at ? { at: m.at } : {}), text });
  }
  if (kept.length === 0 && !input.error) return undefined;
  const omitted = candidates.length - kept.length;
  return {
    source: input.source,
    messages: kept,
    ...(omitted > 0 ? { omitted } : {}),
    ...(input.error ? { error: clean(input.error).slice(0, 300) } : {}),
    sha256: createHash('sha256').update(canonicalJson(kept)).digest('hex'),
    ...(Object.keys(redactions).length > 0 ? { redactions } : {}),
  };
}

/** The audit record's view of a task's context: counts and digest, never the words. */
export function contextAuditData(context: ThreadContext): Record<string, unknown> {
  return {
    source: context.source,
    messages: context.messages.length,
    omitted: context.omitted ?? 0,
    sha256: context.sha256,
    ...(context.error ? { error: context.error } : {}),
    ...(context.redactions ? { redactions: context.redactions } : {}),
  };
}
