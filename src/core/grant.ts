import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from './canonical-json.ts';
import { IdentitySchema, SurfaceSchema } from './identity.ts';
import type { PendingAction } from './run.ts';
import { ActionKindSchema, type TrustLevel } from './trust.ts';

/**
 * A standing approval: an approver's decision that one exact action pattern may run
 * without asking again, for the rest of one run or in one channel until it expires or
 * is revoked. Patterns are derived from a paused call (never typed by a person), so a
 * grant covers exactly what its card showed:
 *
 * - `connector:<connector>__<tool>` — one connector tool (any arguments);
 * - `egress:<domain>` — reaching one web domain (exact host, no wildcard);
 * - `file:<overwrite_input|delete_file>:<path>` — changing one input file (run grants only);
 * - `call:<tool>:<sha256>` — one built-in call with exactly these arguments (run grants only).
 *
 * Only `connector:` and `egress:` patterns may be granted in a channel: the others name
 * one task's files or one exact call, which mean nothing in another task.
 */
export const GrantPatternSchema = z
  .string()
  .max(400)
  .regex(
    /^(?:connector:[A-Za-z0-9_-]{1,64}|egress:[a-z0-9.-]{1,253}|file:(?:overwrite_input|delete_file):\/workspace\/in\/[^\n]{1,300}|call:[a-z_]{1,40}:[0-9a-f]{64})$/,
    'a grant pattern is connector:NAME__TOOL, egress:DOMAIN, file:KIND:PATH or call:TOOL:SHA256',
  );
export type GrantPattern = z.infer<typeof GrantPatternSchema>;

export const GrantScopeSchema = z.enum(['run', 'channel']);
export type GrantScope = z.infer<typeof GrantScopeSchema>;

export const GrantSchema = z.object({
  id: z.string().min(1).max(64),
  pattern: GrantPatternSchema,
  /** The action kind of the call it came from; a call of another kind never matches. */
  action: ActionKindSchema,
  scope: GrantScopeSchema,
  /** Where it was granted; for a channel grant, where it applies (the thread is the card's). */
  surface: SurfaceSchema,
  workspace: z.string().max(200).optional(),
  channel: z.string().min(1).max(200),
  /** The task and run whose card it was granted on; a run grant applies to that run only. */
  taskId: z.string().min(1).max(64),
  runId: z.string().min(1).max(64),
  /** The paused call whose card carried the button. */
  approvalId: z.string().min(1).max(64),
  /** What the card showed, in words ("Connector tool crm__search_accounts"). */
  description: z.string().max(500),
  createdBy: IdentitySchema,
  createdAt: z.string(),
  expiresAt: z.string(),
  revokedBy: IdentitySchema.optional(),
  revokedAt: z.string().optional(),
});
export type Grant = z.infer<typeof GrantSchema>;

/** Where a paused call's tool comes from, which decides the pattern it gets. */
export type GrantSubject = 'builtin' | 'connector' | 'other';

/** The hash an exact built-in call is granted by: its tool and arguments (the `step` hint left out). */
export function callDigest(tool: string, input: Readonly<Record<string, unknown>>): string {
  const { step: _step, ...rest } = input;
  return createHash('sha256')
    .update(canonicalJson({ tool, input: rest }))
    .digest('hex');
}

/**
 * The exact patterns a paused call may be granted by; empty when it cannot be granted at
 * all. A call that reached several held domains gets one pattern per domain, and a grant
 * covers it only when every one of them is granted.
 */
export function grantPatternsFor(
  pending: Pick<PendingAction, 'tool' | 'input' | 'action' | 'egress'>,
  subject: GrantSubject,
): GrantPattern[] {
  const candidates: string[] = [];
  if (pending.egress) {
    candidates.push(...pending.egress.domains.map((d) => `egress:${d.toLowerCase()}`));
  } else if (subject === 'connector') {
    candidates.push(`connector:${pending.tool}`);
  } else if (
    subject === 'builtin' &&
    (pending.action === 'overwrite_input' || pending.action === 'delete_file') &&
    typeof pending.input.path === 'string'
  ) {
    candidates.push(`file:${pending.action}:${pending.input.path}`);
  } else {
    // Abbreviated arguments (a long text cut for the card) cannot be matched exactly: no grant.
    const cut = Object.values(pending.input).some((v) => typeof v === 'string' && /… \(\d+ characters\)$/.test(v));
    if (!cut) candidates.push(`call:${pending.tool}:${callDigest(pending.tool, pending.input)}`);
  }
  const patterns = candidates.filter((p) => GrantPatternSchema.safeParse(p).success);
  return patterns.length === candidates.length ? patterns : [];
}

/** Whether a pattern may be granted for a whole channel (connector tools and egress domains only). */
export function channelGrantable(pattern: string): boolean {
  return pattern.startsWith('connector:') || pattern.startsWith('egress:');
}

/** A pattern in plain words, for cards and lists. */
export function describeGrantPattern(pattern: string): string {
  if (pattern.startsWith('connector:'))
    return `the connector tool ${pattern.slice('connector:'.length)} (any arguments)`;
  if (pattern.startsWith('egress:')) return `reaching ${pattern.slice('egress:'.length)}`;
  if (pattern.startsWith('file:overwrite_input:'))
    return `overwriting ${pattern.slice('file:overwrite_input:'.length)}`;
  if (pattern.startsWith('file:delete_file:')) return `deleting ${pattern.slice('file:delete_file:'.length)}`;
  if (pattern.startsWith('call:')) return `this exact ${pattern.split(':')[1]} call`;
  return pattern;
}

/** The standing-grant rules of a channel's policy (`standingGrants:`). */
export interface StandingGrantRule {
  /** Whether approvers may click "Always allow in this channel" (default false). */
  allow: boolean;
  /** How long a channel grant lasts, in days (default 30). */
  maxDays: number;
}

export const defaultStandingGrantRule: Readonly<StandingGrantRule> = Object.freeze({ allow: false, maxDays: 30 });

/** Which grant buttons a paused call's card offers. */
export interface GrantOffer {
  /** "Approve for the rest of this run". */
  run: boolean;
  /** "Always allow in this channel". */
  channel: boolean;
}

/**
 * What may be offered for a paused call: nothing for a call with no exact pattern or whose
 * kind the channel's policy forbids (now: a policy tightened since the pause wins); the
 * run grant otherwise, except for held egress, whose plain Approve already holds for the
 * rest of the run; the channel grant only where the channel's policy allows standing
 * grants and every pattern is a connector tool or an egress domain.
 */
export function grantOffer(
  pending: Pick<PendingAction, 'action' | 'egress' | 'grantPatterns'>,
  trustLevels: Readonly<Record<string, TrustLevel>>,
  rule: StandingGrantRule,
): GrantOffer {
  const patterns = pending.grantPatterns ?? [];
  if (patterns.length === 0 || trustLevels[pending.action] === 'forbidden') return { run: false, channel: false };
  return {
    run: !pending.egress,
    channel: rule.allow && patterns.every(channelGrantable),
  };
}

/**
 * Whether a grant still allows a call of `action` now: not revoked, not expired, and its
 * kind not forbidden by the channel's policy as it is now; a channel grant also needs the
 * channel's policy to still allow standing grants.
 */
export function grantIsLive(
  grant: Grant,
  now: number,
  trustLevels: Readonly<Record<string, TrustLevel>>,
  rule: StandingGrantRule,
): boolean {
  if (grant.revokedAt || Date.parse(grant.expiresAt) <= now) return false;
  if (trustLevels[grant.action] === 'forbidden') return false;
  if (grant.scope === 'channel' && !rule.allow) return false;
  return true;
}
