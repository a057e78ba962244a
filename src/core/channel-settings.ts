import { z } from 'zod';
import { IdentitySchema, SurfaceSchema } from './identity.ts';
import { type RedactionKind, redact } from './redaction.ts';

/** Most characters of a channel's standing instructions. */
export const maxInstructionsChars = 4000;
/** Most characters of one remembered fact. */
export const maxFactChars = 500;
/** Most facts a channel's memory holds; an approver forgets one to make room. */
export const maxFactsPerChannel = 50;
/** Most facts the agent may propose in one run. */
export const maxProposalsPerRun = 5;

/** A channel as its settings are keyed: the surface and the channel id (threads share them). */
export const ChannelKeySchema = z.object({
  surface: SurfaceSchema,
  channel: z.string().min(1).max(200),
});
export type ChannelKey = z.infer<typeof ChannelKeySchema>;

/** Standing instructions set by one of the channel's approvers (already redacted). */
export const ChannelInstructionsSchema = z.object({
  text: z.string().min(1).max(maxInstructionsChars),
  by: IdentitySchema,
  at: z.string(),
});
export type ChannelInstructions = z.infer<typeof ChannelInstructionsSchema>;

/** One remembered fact (already redacted). */
export const MemoryFactSchema = z.object({
  id: z.string().min(1).max(40),
  text: z.string().min(1).max(maxFactChars),
  /** An approver who asked for it, or the approver who accepted a proposal. */
  by: IdentitySchema,
  at: z.string(),
  /** `asked`: an approver said "remember that …"; `proposed`: a person or the agent proposed it and an approver accepted. */
  source: z.enum(['asked', 'proposed']),
  /** Who proposed it (a person's name, or `the agent`), for a proposed fact. */
  proposedBy: z.string().max(200).optional(),
});
export type MemoryFact = z.infer<typeof MemoryFactSchema>;

/** A fact waiting for an approver's Accept or Dismiss (already redacted). */
export const MemoryProposalSchema = z.object({
  id: z.string().min(1).max(40),
  channel: ChannelKeySchema,
  text: z.string().min(1).max(maxFactChars),
  /** The person who asked, or absent when the agent proposed it at the end of a run. */
  by: IdentitySchema.optional(),
  /** The task it came from (the agent's proposals, and requests in a task's thread). */
  taskId: z.string().max(100).optional(),
  at: z.string(),
});
export type MemoryProposal = z.infer<typeof MemoryProposalSchema>;

/**
 * What a plan and its run are told about the channel: the policy file's instructions, the
 * approvers' instructions and the remembered facts, as they were when the plan was drafted.
 */
export const ChannelContextSchema = z.object({
  policyInstructions: z.string().max(maxInstructionsChars).optional(),
  instructions: z.string().max(maxInstructionsChars).optional(),
  memory: z
    .array(z.object({ id: z.string().max(40), text: z.string().max(maxFactChars) }))
    .max(maxFactsPerChannel)
    .default([]),
});
export type ChannelContext = z.infer<typeof ChannelContextSchema>;

/** Whether a context has anything to tell the model. */
export function hasChannelContext(ctx: ChannelContext | undefined): ctx is ChannelContext {
  return !!ctx && (!!ctx.policyInstructions || !!ctx.instructions || ctx.memory.length > 0);
}

/**
 * What is always redacted from instructions and memory, whatever the channel's redaction
 * policy says: they are sent with every plan and run, so a secret or card number typed into
 * them would otherwise travel forever.
 */
export const alwaysRedactedInSettings: readonly RedactionKind[] = ['secret', 'card', 'iban'];

/**
 * Cleans text bound for instructions or memory: redacted (the kinds above plus the channel's
 * policy kinds), whitespace trimmed. Pure; the counts say what was removed, never the text.
 */
export function cleanSettingText(
  text: string,
  policyKinds: readonly RedactionKind[] = [],
): { text: string; counts: Record<string, number> } {
  const kinds = [...new Set([...alwaysRedactedInSettings, ...policyKinds])];
  const r = redact(text.trim(), kinds);
  const counts: Record<string, number> = {};
  for (const [kind, n] of Object.entries(r.counts)) if (n > 0) counts[kind] = n;
  return { text: r.text.trim(), counts };
}

/**
 * The fact in "remember that …" (also "remember: …", "please remember that …"); undefined
 * when the text is not such a request ("remember to …" is a request, not a fact). The surfaces hand it over from a mention of the bot.
 */
export function rememberedFact(text: string): string | undefined {
  const m = /^\s*(?:please\s+)?remember(?:\s+that\b|\s*:)\s*([\s\S]+)$/i.exec(text);
  const fact = m?.[1]?.trim().replace(/[.!]+$/, '');
  return fact ? fact : undefined;
}
