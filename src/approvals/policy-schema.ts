import { z } from 'zod';
import {
  ActionKindSchema,
  DurationSchema,
  durationSchema,
  maxInstructionsChars,
  RedactionKindSchema,
  TrustLevelSchema,
} from '../core/index.ts';

/**
 * The policy file's shape (docs/policy.md). Every object is strict: a typo in a
 * security policy is an error, never a key that silently does nothing.
 */

export { DurationSchema, parseDuration } from '../core/index.ts';

const labelPattern = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Why `domain` is not a host name an egress allowlist can hold; undefined when it is fine. */
export function domainProblem(domain: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(domain)) return 'write the host name only, without a scheme (https://)';
  if (/[/?#]/.test(domain)) return 'write the host name only, without a path';
  if (/:\d+$/.test(domain)) return 'write the host name only, without a port';
  if (domain !== domain.toLowerCase()) return 'write domain names in lower case';
  if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(domain) || domain.includes(':')) return 'an IP address is not a domain name';
  const host = domain.startsWith('*.') ? domain.slice(2) : domain;
  if (host.includes('*')) return 'a wildcard is only allowed as the first label, as in *.example.com';
  if (host.length > 253) return 'a domain name is at most 253 characters';
  const labels = host.split('.');
  if (labels.length < 2) return 'a domain needs at least two labels, as in example.com';
  if (!labels.every((l) => labelPattern.test(l))) {
    return 'each label is 1–63 letters, digits or hyphens, not starting or ending with a hyphen';
  }
  if (!/^[a-z]{2,63}$|^xn--[a-z0-9-]+$/.test(labels.at(-1)!)) return 'the last label must be a top-level domain';
  return undefined;
}

const DomainSchema = z.string().superRefine((domain, ctx) => {
  const problem = domainProblem(domain);
  if (problem) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(domain)}: ${problem}` });
});

/** As in handoff.yaml's `connectors:` (src/config/connectors.ts). */
const ConnectorNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,29}$/, 'a connector name: 1–30 lower-case letters, digits, _ or -');

/**
 * Per connector tool: `NAME/TOOL` or `NAME/*` → a trust level. These only tighten the level
 * a tool would otherwise have (docs/connectors.md, "Trust").
 */
export const ConnectorTrustSchema = z.record(z.string(), TrustLevelSchema).superRefine((entries, ctx) => {
  for (const key of Object.keys(entries)) {
    if (!/^[a-z0-9][a-z0-9_-]{0,29}\/(?:\*|[A-Za-z0-9_./-]{1,128})$/.test(key))
      ctx.addIssue({ code: 'custom', path: [key], message: 'a key is CONNECTOR/TOOL or CONNECTOR/*' });
  }
});

/** Trust-level overrides per action kind; unknown action kinds are errors. */
export const TrustOverridesSchema = z.strictObject(
  Object.fromEntries(ActionKindSchema.options.map((k) => [k, TrustLevelSchema.optional()])) as Record<
    z.infer<typeof ActionKindSchema>,
    z.ZodOptional<typeof TrustLevelSchema>
  >,
);
export type TrustOverrides = z.infer<typeof TrustOverridesSchema>;

export const BudgetPolicySchema = z.strictObject({
  /** Tokens per task (input + output). */
  maxTokens: z.number().int().positive().optional(),
  /** Estimated cost per task, in US dollars. */
  maxCostUsd: z.number().positive().optional(),
  /** Wall time per run, as a duration (`15m`). */
  maxWallTime: DurationSchema.optional(),
  /** Estimated cost per channel per calendar month (UTC), in US dollars. */
  monthlyCostCapUsd: z.number().positive().optional(),
});
export type BudgetPolicy = z.infer<typeof BudgetPolicySchema>;

export const RedactionPolicySchema = z.strictObject({
  enabled: z.boolean().optional(),
  kinds: z.array(RedactionKindSchema).min(1).optional(),
});
export type RedactionPolicy = z.infer<typeof RedactionPolicySchema>;

/** Entra ids are GUIDs, which compare without regard to case: they are kept in lower case, as Teams sends them. */
const ApproverId = z
  .string()
  .min(1)
  .max(200)
  .transform((id) =>
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id.toLowerCase() : id,
  );

export const ApproversSchema = z.strictObject({
  /** Chat user ids as the surface gives them (Slack `U…`, Teams AAD object ids, web user ids). */
  users: z.array(ApproverId).optional(),
  /** Group ids (Slack user groups `S…`, Teams/Entra groups). */
  groups: z.array(ApproverId).optional(),
});
export type Approvers = z.infer<typeof ApproversSchema>;

/**
 * Whether `zone` is an IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`);
 * undefined when it is, else why not. Names are written as IANA spells them (`europe/berlin` is refused). Abbreviations such as `CET` or `EST`, which `Intl`
 * also accepts, are refused: they hide daylight saving and mean different things to different people.
 */
export function timeZoneProblem(zone: string): string | undefined {
  const example = 'an IANA time zone name such as Europe/Berlin, America/New_York or UTC';
  if (zone !== 'UTC' && !/^[A-Z][A-Za-z]*(?:\/[A-Z][A-Za-z0-9_+-]*)+$/.test(zone)) {
    return /^[A-Z][A-Z0-9+-]{1,9}$/.test(zone)
      ? `${JSON.stringify(zone)} is an abbreviation, not a time zone name: write ${example}`
      : `${JSON.stringify(zone)} is not a time zone name: write ${example}`;
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch (err) {
    if (err instanceof RangeError) return `${JSON.stringify(zone)} is not a known time zone: write ${example}`;
    throw err;
  }
  return undefined;
}

const TimeZoneSchema = z
  .string({ error: 'must be an IANA time zone name such as Europe/Berlin' })
  .superRefine((zone, ctx) => {
    const problem = timeZoneProblem(zone);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Rules for scheduled briefs in a channel (docs/policy.md, "Scheduled briefs"). */
export const SchedulesPolicySchema = z.strictObject({
  /** Who may create a schedule in the channel. */
  create: z.enum(['anyone', 'approvers'], { error: 'must be anyone or approvers' }).optional(),
  /** The most often a schedule may run, as a duration of at least 1m. */
  minInterval: durationSchema({
    ms: 60_000,
    reason: 'must be at least 1m: a schedule runs at most once a minute',
  }).optional(),
  /** Most schedules per channel. */
  maxPerChannel: z
    .number({ error: 'must be a whole number from 1 to 1000' })
    .int({ error: 'must be a whole number from 1 to 1000' })
    .min(1, { error: 'must be a whole number from 1 to 1000' })
    .max(1000, { error: 'must be a whole number from 1 to 1000' })
    .optional(),
  /** Whether scheduled runs may use the channel's connectors. */
  connectors: z.boolean({ error: 'must be true or false' }).optional(),
  /** The zone for schedules that name none. */
  timeZone: TimeZoneSchema.optional(),
});
export type SchedulesPolicy = z.infer<typeof SchedulesPolicySchema>;

/** Standing approvals in a channel (docs/policy.md, "Standing grants"). */
export const StandingGrantsPolicySchema = z.strictObject({
  /** Whether approvers may click "Always allow in this channel" on a paused call (default false). */
  allow: z.boolean({ error: 'must be true or false' }).optional(),
  /** How long a channel grant lasts, in whole days from 1 to 365 (default 30). */
  maxDays: z
    .number({ error: 'must be a whole number of days from 1 to 365' })
    .int({ error: 'must be a whole number of days from 1 to 365' })
    .min(1, { error: 'must be a whole number of days from 1 to 365' })
    .max(365, { error: 'must be a whole number of days from 1 to 365' })
    .optional(),
});
export type StandingGrantsPolicy = z.infer<typeof StandingGrantsPolicySchema>;

/** Rules for follow-ups in a channel (docs/policy.md, "Follow-ups"). */
export const FollowUpsPolicySchema = z.strictObject({
  /** Whether the requester alone may approve a follow-up plan inside the delivered plan's envelope. */
  requesterMayApproveWithinEnvelope: z.boolean({ error: 'must be true or false' }).optional(),
});

/** As in a SKILL.md's `name:` (docs/skills.md): lower-case letters, digits and single hyphens, at most 64. */
const SkillNameSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9]|-(?!-))*$/, 'a skill name: lower-case letters, digits and single hyphens')
  .max(64, 'a skill name is at most 64 characters')
  .refine((n) => !n.endsWith('-'), 'a skill name does not end with a hyphen');

/** `skills:` of a channel rule: `"*"` (every installed skill) or a list of skill names. */
export const SkillsPolicySchema = z.union([z.literal('*'), z.array(SkillNameSchema)], {
  error: 'must be "*" (every installed skill) or a list of skill names, such as [xlsx, pptx]',
});

export const DefaultsSchema = z.strictObject({
  trust: TrustOverridesSchema.optional(),
  connectorTrust: ConnectorTrustSchema.optional(),
  requesterMayApprove: z.boolean().optional(),
  approvalExpiry: DurationSchema.optional(),
  budget: BudgetPolicySchema.optional(),
  redaction: RedactionPolicySchema.optional(),
  schedules: SchedulesPolicySchema.optional(),
});
export type Defaults = z.infer<typeof DefaultsSchema>;

export const ChannelRuleSchema = z.strictObject({
  approvers: ApproversSchema.optional(),
  /** How many distinct approvers must approve (default 1). */
  quorum: z.number().int().min(1).max(20).optional(),
  requesterMayApprove: z.boolean().optional(),
  approvalExpiry: DurationSchema.optional(),
  /** Connectors runs in this channel may use (default: none). */
  connectors: z.array(ConnectorNameSchema).optional(),
  /** Domains an envelope in this channel may name for egress (default: none). */
  egressDomains: z.array(DomainSchema).optional(),
  /** Whether runs may use the model API's web search, limited to the envelope's domains (default false). */
  webSearch: z.boolean({ error: 'must be true or false' }).optional(),
  /** Agent Skills runs in this channel may load: a list of names, or `"*"` for all (default: all). */
  skills: SkillsPolicySchema.optional(),
  budget: BudgetPolicySchema.optional(),
  trust: TrustOverridesSchema.optional(),
  /** Per connector tool levels; they only tighten. */
  connectorTrust: ConnectorTrustSchema.optional(),
  redaction: RedactionPolicySchema.optional(),
  schedules: SchedulesPolicySchema.optional(),
  /** Standing approvals ("Always allow in this channel") (docs/policy.md, "Standing grants"). */
  standingGrants: StandingGrantsPolicySchema.optional(),
  /** Follow-ups in a task's thread after a delivery (docs/policy.md, "Follow-ups"). */
  followUps: FollowUpsPolicySchema.optional(),
  /** Standing instructions sent with every plan and run in the channel, before the approvers' own. */
  instructions: z
    .string({ error: 'must be text' })
    .trim()
    .min(1, { error: 'must not be empty' })
    .max(maxInstructionsChars, { error: `must be at most ${maxInstructionsChars} characters` })
    .optional(),
});
export type ChannelRule = z.infer<typeof ChannelRuleSchema>;

export const PolicyFileSchema = z.strictObject({
  version: z.literal(1, {
    error: (issue) =>
      issue.input === undefined
        ? 'is required: start the file with `version: 1`'
        : 'must be 1 (the only policy file version)',
  }),
  defaults: DefaultsSchema.optional(),
  channels: z.record(z.string(), ChannelRuleSchema).optional(),
});
export type PolicyFile = z.infer<typeof PolicyFileSchema>;

/** Every key the file may contain, for "did you mean" hints on typos. */
export const knownPolicyKeys: readonly string[] = [
  ...new Set([
    ...Object.keys(PolicyFileSchema.shape),
    ...Object.keys(DefaultsSchema.shape),
    ...Object.keys(ChannelRuleSchema.shape),
    ...Object.keys(BudgetPolicySchema.shape),
    ...Object.keys(RedactionPolicySchema.shape),
    ...Object.keys(ApproversSchema.shape),
    ...Object.keys(SchedulesPolicySchema.shape),
    ...Object.keys(StandingGrantsPolicySchema.shape),
    ...Object.keys(FollowUpsPolicySchema.shape),
    ...ActionKindSchema.options,
  ]),
];
