import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import {
  type ActionKind,
  ActionKindSchema,
  type ConversationRef,
  defaultStandingGrantRule,
  ErrorCodes,
  HandoffError,
  type RedactionKind,
  redactionKinds,
  type StandingGrantRule,
  type Surface,
  SurfaceSchema,
  type TrustLevel,
  TrustLevelSchema,
} from '../core/index.ts';
import { defaultTrustLevels, strictest } from './default-policy.ts';
import type { PlanPolicy } from './plan-decision.ts';
import {
  type BudgetPolicy,
  type ChannelRule,
  ChannelRuleSchema,
  type Defaults,
  DefaultsSchema,
  knownPolicyKeys,
  PolicyFileSchema,
  parseDuration,
  type RedactionPolicy,
  type SchedulesPolicy,
  type TrustOverrides,
} from './policy-schema.ts';

/** Where the built-in policy (DESIGN §6) says it came from. */
export const builtInPolicySource = 'built-in default policy';

const defaultApprovalExpiryMs = 24 * 3_600_000;

/** A `channels:` key, parsed: `*`, `slack:*`, `slack:C01*` or `slack:C0123`. */
export interface ChannelMatcher {
  key: string;
  /** Undefined for `*` (every surface). */
  surface?: Surface;
  /** The channel id (exact) or the id prefix before `*` (pattern). */
  id: string;
  exact: boolean;
  /** Higher wins: exact ids beat any pattern, longer prefixes beat shorter ones. */
  specificity: number;
}

export interface PolicyChannel extends ChannelMatcher {
  rule: ChannelRule;
}

export interface EffectiveBudget {
  maxTokens?: number;
  maxCostUsd?: number;
  maxWallTimeMs?: number;
  monthlyCostCapUsd?: number;
}

export interface EffectiveRedaction {
  enabled: boolean;
  kinds: RedactionKind[];
}

/** Rules for scheduled briefs in one channel (`schedules:` in the policy file, merged key by key). */
export interface SchedulePolicy {
  /** Who may create a schedule in the channel: anyone in it, or only its approvers. */
  create: 'anyone' | 'approvers';
  /** The shortest time between two runs of one schedule. */
  minIntervalMs: number;
  /** Most schedules one channel may have. */
  maxPerChannel: number;
  /** Whether scheduled runs may use the channel's connectors. */
  connectors: boolean;
  /** IANA zone for schedules that name none; undefined when the policy sets none. */
  timeZone?: string;
}

/** Scheduled-brief rules when the policy file sets none. */
export const defaultSchedulePolicy: Readonly<SchedulePolicy> = Object.freeze({
  create: 'anyone',
  minIntervalMs: 15 * 60_000,
  maxPerChannel: 20,
  connectors: false,
});

/** The policy after loading: validated, durations in milliseconds, channels parsed. */
export interface Policy {
  /** The file it came from, or {@link builtInPolicySource}. */
  source: string;
  defaults: {
    trustLevels: Record<ActionKind, TrustLevel>;
    requesterMayApprove: boolean;
    approvalExpiryMs: number;
    budget: EffectiveBudget;
    redaction: EffectiveRedaction;
    schedules: SchedulePolicy;
  };
  /** Raw `defaults:` section (for explaining where a value came from). */
  defaultsRule: Defaults;
  /** In file order. */
  channels: PolicyChannel[];
  /** Things that are valid but probably not what the author meant. */
  warnings: string[];
}

/** Keys of the effective policy whose origin `explain` reports. */
export type PolicyField =
  | 'approvers'
  | 'quorum'
  | 'requesterMayApprove'
  | 'approvalExpiry'
  | 'connectors'
  | 'egressDomains'
  | 'connectorTrust'
  | 'webSearch'
  | 'skills'
  | 'budget'
  | 'redaction'
  | 'schedules';

/** The policy that applies to one conversation, with where each part came from. */
export interface EffectiveChannelPolicy {
  /** `<surface>:<channelId>`. */
  channel: string;
  trustLevels: Record<ActionKind, TrustLevel>;
  /** Per action: `built-in default`, `defaults` or `channels.<key>`. */
  trustSources: Record<ActionKind, string>;
  /** Undefined: anyone in the conversation may approve. */
  approvers?: { users: string[]; groups: string[] };
  /** Distinct approvers needed. */
  quorum: number;
  requesterMayApprove: boolean;
  approvalExpiryMs: number;
  /** Connectors runs may use; empty means none. */
  connectors: string[];
  /** Domains an envelope may name for egress; empty means no egress at all. */
  egressDomains: string[];
  /** `NAME/TOOL` or `NAME/*` → level, from every matching rule and the defaults, the strictest kept. */
  connectorTrust: Record<string, TrustLevel>;
  /** Whether runs may use the model API's web search, limited to the envelope's domains. */
  webSearch: boolean;
  /** Agent Skills runs may load: `'*'` (every installed skill, the default) or these names. */
  skills: string[] | '*';
  /** Caps from policy; a cap that is not set here falls back to the deployment's settings. */
  budget: EffectiveBudget;
  redaction: EffectiveRedaction;
  /** Rules for scheduled briefs, merged key by key from the defaults and the matching rules. */
  schedules: SchedulePolicy;
  /** Follow-ups: whether the requester alone may approve one inside the delivered envelope (default false). */
  followUps: { requesterMayApproveWithinEnvelope: boolean };
  /** The most specific matching rule's `instructions`, sent with every plan and run. */
  instructions?: string;
  /** Standing grants: whether "Always allow in this channel" is offered, and for how many days (merged key by key). */
  standingGrants: StandingGrantRule;
  /** Matching `channels:` keys, least specific first. */
  matched: string[];
  /** The most specific matching key, or `defaults` when none matched. */
  rule: string;
  /** One sentence on why that rule applies. */
  why: string;
  /** Where each non-trust value came from. */
  sources: Record<PolicyField, string>;
}

/** A policy file with problems; `problems` holds one `<file>: <key.path>: <reason>` line each. */
export class PolicyError extends HandoffError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(ErrorCodes.config, problems.join('\n'));
    this.problems = problems;
  }
}

/** The built-in policy: DESIGN §6 trust levels, no self-approval, 24 h expiry, redaction on. */
export function builtInPolicy(): Policy {
  return {
    source: builtInPolicySource,
    defaults: {
      trustLevels: { ...defaultTrustLevels },
      requesterMayApprove: false,
      approvalExpiryMs: defaultApprovalExpiryMs,
      budget: {},
      redaction: { enabled: true, kinds: [...redactionKinds] },
      schedules: { ...defaultSchedulePolicy },
    },
    defaultsRule: {},
    channels: [],
    warnings: [],
  };
}

/**
 * Reads and validates a policy file; the built-in policy when `path` is undefined.
 * Throws a {@link PolicyError} (code `handoff_config_invalid`) listing every problem.
 */
export function loadPolicy(path?: string): Policy {
  if (path === undefined) return builtInPolicy();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new PolicyError([`${path}: cannot read the policy file: ${reason}`]);
  }
  return parsePolicy(text, path);
}

/** Validates policy YAML; `file` names it in error messages. */
export function parsePolicy(text: string, file: string): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  if (doc.errors.length > 0) {
    throw new PolicyError(
      doc.errors.map((e) => {
        const line = lineCounter.linePos(e.pos[0]);
        return `${file}: ${line ? `line ${line.line}, column ${line.col}` : 'YAML'}: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) {
    throw new PolicyError([`${file}: (top level): the file is empty; a policy starts with \`version: 1\``]);
  }
  const problems: string[] = [];
  const at = (path: readonly PropertyKey[], reason: string) =>
    problems.push(`${file}: ${formatPath(path) || '(top level)'}: ${reason}`);

  // `reportInput` so a value of the wrong type is told apart from a missing one (reportIssue).
  const parsed = PolicyFileSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) for (const issue of parsed.error.issues) reportIssue(issue, at);

  // Semantic checks run on whatever parts are valid, so one run lists every problem.
  const top = isRecord(raw) ? raw : {};
  const defaultsParsed = DefaultsSchema.safeParse(top.defaults ?? {});
  const defaultsRule: Defaults = defaultsParsed.success
    ? defaultsParsed.data
    : { trust: validTrustOnly(isRecord(top.defaults) ? top.defaults.trust : undefined) };
  const channels: PolicyChannel[] = [];
  const rawChannels = isRecord(top.channels) ? top.channels : {};
  for (const [key, value] of Object.entries(rawChannels)) {
    const matcher = parseChannelKey(key);
    if (typeof matcher === 'string') {
      at(['channels', key], matcher);
      continue;
    }
    const rule = ChannelRuleSchema.safeParse(value ?? {});
    // An invalid rule still takes part in the forbidden-action check with its valid levels.
    channels.push({
      ...matcher,
      rule: rule.success ? rule.data : { trust: validTrustOnly(isRecord(value) ? value.trust : undefined) },
    });
  }
  const warnings: string[] = [];
  checkForbidden(defaultsRule, channels, at);
  checkApprovers(channels, at, (key, reason) => warnings.push(`${file}: ${formatPath(['channels', key])}.${reason}`));
  if (problems.length > 0) throw new PolicyError(problems);

  const base = builtInPolicy();
  return {
    source: file,
    defaults: {
      trustLevels: { ...base.defaults.trustLevels, ...definedOnly(defaultsRule.trust ?? {}) },
      requesterMayApprove: defaultsRule.requesterMayApprove ?? false,
      approvalExpiryMs: durationMs(defaultsRule.approvalExpiry) ?? defaultApprovalExpiryMs,
      budget: budgetOf(defaultsRule.budget),
      redaction: redactionOf(base.defaults.redaction, defaultsRule.redaction),
      schedules: schedulesOf(base.defaults.schedules, defaultsRule.schedules),
    },
    defaultsRule,
    channels,
    warnings,
  };
}

/** Parses a `channels:` key; a string is the reason it is not valid. */
export function parseChannelKey(key: string): ChannelMatcher | string {
  const usage =
    'a channel key is <surface>:<channelId>, <surface>:<prefix>*, <surface>:* or * (surfaces: slack, teams, web)';
  if (key === '*') return { key, id: '', exact: false, specificity: 0 };
  const colon = key.indexOf(':');
  if (colon < 0) return usage;
  const surface = SurfaceSchema.safeParse(key.slice(0, colon));
  if (!surface.success) return `unknown surface ${JSON.stringify(key.slice(0, colon))}; ${usage}`;
  const id = key.slice(colon + 1);
  if (id.length === 0 || /\s/.test(id)) return usage;
  const star = id.indexOf('*');
  if (star >= 0 && star !== id.length - 1) return `${usage}; a * may only end the key`;
  if (star >= 0) {
    const prefix = id.slice(0, -1);
    return { key, surface: surface.data, id: prefix, exact: false, specificity: 1 + prefix.length };
  }
  return { key, surface: surface.data, id, exact: true, specificity: 1_000_000 };
}

/** Whether `m` applies to the channel `surface:channel`. */
function matches(m: ChannelMatcher, surface: Surface, channel: string): boolean {
  if (m.surface === undefined) return true;
  if (m.surface !== surface) return false;
  const one = (id: string) => (m.exact ? id === m.id : id.startsWith(m.id));
  // A Teams channel is `<team id>/<channel id>`; a key may also name the channel's own
  // conversation id alone (`teams:19:…@thread.tacv2`).
  const slash = surface === 'teams' ? channel.indexOf('/') : -1;
  return one(channel) || (slash > 0 && one(channel.slice(slash + 1)));
}

/** Whether `outer` applies to every channel `inner` applies to (and is less specific). */
function covers(outer: ChannelMatcher, inner: ChannelMatcher): boolean {
  if (outer.specificity >= inner.specificity) return false;
  if (outer.surface === undefined) return true;
  return outer.surface === inner.surface && !outer.exact && inner.id.startsWith(outer.id);
}

/** A forbidden action stays forbidden: in defaults, and in every channel a forbidding rule covers. */
function checkForbidden(
  defaults: Defaults,
  channels: readonly PolicyChannel[],
  at: (path: readonly PropertyKey[], reason: string) => void,
): void {
  for (const [action, level] of trustEntries(defaults.trust)) {
    if (defaultTrustLevels[action] === 'forbidden' && level !== 'forbidden') {
      at(['defaults', 'trust', action], `${action} is forbidden by the built-in policy and can never be loosened`);
    }
  }
  for (const channel of channels) {
    for (const [action, level] of trustEntries(channel.rule.trust)) {
      if (level === 'forbidden') continue;
      const path = ['channels', channel.key, 'trust', action];
      if (defaultTrustLevels[action] === 'forbidden') {
        at(path, `${action} is forbidden by the built-in policy and can never be loosened`);
      } else if (defaults.trust?.[action] === 'forbidden') {
        at(path, `${action} is forbidden in defaults.trust and can never be loosened in a channel`);
      } else {
        const outer = channels.find((o) => o.rule.trust?.[action] === 'forbidden' && covers(o, channel));
        if (outer) {
          at(
            path,
            `${action} is forbidden by ${formatPath(['channels', outer.key])}, which also covers this channel, and can never be loosened`,
          );
        }
      }
    }
  }
}

/** Quorum must be reachable and an approver list must name someone. */
function checkApprovers(
  channels: readonly PolicyChannel[],
  at: (path: readonly PropertyKey[], reason: string) => void,
  warn: (key: string, reason: string) => void,
): void {
  for (const channel of channels) {
    const { approvers, quorum } = channel.rule;
    if (approvers) {
      const users = approvers.users ?? [];
      const groups = approvers.groups ?? [];
      if (users.length === 0 && groups.length === 0) {
        at(
          ['channels', channel.key, 'approvers'],
          'no one could approve: list users or groups, or remove approvers to let anyone in the conversation approve',
        );
      }
      const dupes = users.filter((u, i) => users.indexOf(u) !== i);
      if (dupes.length > 0) at(['channels', channel.key, 'approvers', 'users'], `${dupes[0]} is listed twice`);
      // Groups approve nobody where membership cannot be looked up (the web console has no
      // groups; Teams looks them up in Graph only when TEAMS_GRAPH_ENABLED is set).
      const unresolved = channel.surface
        ? groupSurfaces.includes(channel.surface)
          ? undefined
          : `${channel.surface} has no user groups`
        : `only Slack user groups and Entra groups (Teams) are looked up`;
      if (groups.length > 0 && unresolved) {
        warn(
          channel.key,
          `approvers.groups: ${unresolved}, so on ${channel.surface ?? 'other surfaces'} only the listed users can approve here`,
        );
      }
    }
    if (approvers === undefined && quorum === undefined) continue;
    // The approvers and quorum this channel ends up with, after cascading from covering patterns.
    const chain = channels.filter((o) => o === channel || covers(o, channel)).sort(bySpecificity);
    const effApprovers = lastDefined(chain.map((c) => c.rule.approvers));
    const effQuorum = lastDefined(chain.map((c) => c.rule.quorum)) ?? 1;
    if (!effApprovers || (effApprovers.groups?.length ?? 0) > 0) continue;
    const distinct = new Set(effApprovers.users ?? []).size;
    if (distinct > 0 && effQuorum > distinct) {
      const path = quorum !== undefined ? ['channels', channel.key, 'quorum'] : ['channels', channel.key, 'approvers'];
      at(
        path,
        `quorum ${effQuorum} is more than the ${distinct} approver${distinct === 1 ? '' : 's'} listed in approvers.users, so no plan could ever be approved`,
      );
    }
  }
}

/**
 * The effective policy for a conversation (or a `<surface>:<channelId>` string).
 * Matching rules cascade from least to most specific (`*`, `slack:*`, `slack:C0*`,
 * `slack:C0123`), each key a rule sets replacing the value from the rules before it;
 * a level that any applying rule forbids stays forbidden.
 */
export function policyForChannel(policy: Policy, conversation: ConversationRef | string): EffectiveChannelPolicy {
  const { surface, channel } = typeof conversation === 'string' ? parseChannelId(conversation) : conversation;
  const channelId = `${surface}:${channel}`;
  const matched = policy.channels.filter((c) => matches(c, surface, channel)).sort(bySpecificity);

  const trustLevels = { ...policy.defaults.trustLevels };
  const trustSources = Object.fromEntries(
    ActionKindSchema.options.map((a) => [
      a,
      policy.defaultsRule.trust?.[a] !== undefined ? 'defaults' : builtInPolicySource,
    ]),
  ) as Record<ActionKind, string>;
  const sources: Record<PolicyField, string> = {
    approvers: 'nobody set approvers',
    quorum: 'default',
    requesterMayApprove: policy.defaultsRule.requesterMayApprove !== undefined ? 'defaults' : builtInPolicySource,
    approvalExpiry: policy.defaultsRule.approvalExpiry !== undefined ? 'defaults' : builtInPolicySource,
    connectors: 'default',
    egressDomains: 'default',
    connectorTrust: policy.defaultsRule.connectorTrust !== undefined ? 'defaults' : 'default',
    webSearch: 'default',
    skills: 'default',
    budget: policy.defaultsRule.budget !== undefined ? 'defaults' : builtInPolicySource,
    redaction: policy.defaultsRule.redaction !== undefined ? 'defaults' : builtInPolicySource,
    schedules: policy.defaultsRule.schedules !== undefined ? 'defaults' : builtInPolicySource,
  };
  let approvers: EffectiveChannelPolicy['approvers'];
  let quorum = 1;
  let requesterMayApprove = policy.defaults.requesterMayApprove;
  let approvalExpiryMs = policy.defaults.approvalExpiryMs;
  let connectors: string[] = [];
  let egressDomains: string[] = [];
  let webSearch = false;
  let skills: string[] | '*' = '*';
  const connectorTrust: Record<string, TrustLevel> = {};
  const tighten = (entries: Record<string, TrustLevel> | undefined) => {
    for (const [k, level] of Object.entries(entries ?? {}))
      connectorTrust[k] = connectorTrust[k] ? strictest([connectorTrust[k], level]) : level;
  };
  tighten(policy.defaultsRule.connectorTrust);
  let budget = { ...policy.defaults.budget };
  let redaction = { ...policy.defaults.redaction, kinds: [...policy.defaults.redaction.kinds] };
  let schedules = { ...policy.defaults.schedules };
  let requesterMayApproveWithinEnvelope = false;
  let instructions: string | undefined;
  const standingGrants: StandingGrantRule = { ...defaultStandingGrantRule };

  for (const c of matched) {
    const from = formatPath(['channels', c.key]);
    const r = c.rule;
    for (const [action, level] of trustEntries(r.trust)) {
      // Belt and braces: loading refuses this already.
      if (trustLevels[action] === 'forbidden') continue;
      trustLevels[action] = level;
      trustSources[action] = from;
    }
    if (r.approvers) {
      approvers = { users: [...new Set(r.approvers.users ?? [])], groups: [...(r.approvers.groups ?? [])] };
      sources.approvers = from;
    }
    if (r.quorum !== undefined) [quorum, sources.quorum] = [r.quorum, from];
    if (r.requesterMayApprove !== undefined)
      [requesterMayApprove, sources.requesterMayApprove] = [r.requesterMayApprove, from];
    if (r.approvalExpiry !== undefined)
      [approvalExpiryMs, sources.approvalExpiry] = [durationMs(r.approvalExpiry)!, from];
    if (r.connectors) [connectors, sources.connectors] = [[...r.connectors], from];
    if (r.egressDomains) [egressDomains, sources.egressDomains] = [[...r.egressDomains], from];
    if (r.webSearch !== undefined) [webSearch, sources.webSearch] = [r.webSearch, from];
    if (r.skills !== undefined) [skills, sources.skills] = [r.skills === '*' ? '*' : [...new Set(r.skills)], from];
    if (r.connectorTrust) {
      tighten(r.connectorTrust);
      sources.connectorTrust = from;
    }
    if (r.budget) [budget, sources.budget] = [{ ...budget, ...budgetOf(r.budget) }, from];
    if (r.redaction) [redaction, sources.redaction] = [redactionOf(redaction, r.redaction), from];
    if (r.schedules) [schedules, sources.schedules] = [schedulesOf(schedules, r.schedules), from];
    if (r.followUps?.requesterMayApproveWithinEnvelope !== undefined)
      requesterMayApproveWithinEnvelope = r.followUps.requesterMayApproveWithinEnvelope;
    if (r.instructions !== undefined) instructions = r.instructions;
    if (r.standingGrants?.allow !== undefined) standingGrants.allow = r.standingGrants.allow;
    if (r.standingGrants?.maxDays !== undefined) standingGrants.maxDays = r.standingGrants.maxDays;
  }

  const top = matched.at(-1);
  const why = !top
    ? `no channels: rule matches ${channelId}, so the defaults apply`
    : top.surface === undefined
      ? `${formatPath(['channels', top.key])} matches every channel and no more specific rule matches ${channelId}`
      : top.exact
        ? `${formatPath(['channels', top.key])} names ${channelId} exactly`
        : `${formatPath(['channels', top.key])} is the most specific pattern matching ${channelId}`;
  return {
    channel: channelId,
    trustLevels,
    trustSources,
    ...(approvers ? { approvers } : {}),
    quorum,
    requesterMayApprove,
    approvalExpiryMs,
    connectors,
    egressDomains,
    connectorTrust,
    webSearch,
    skills,
    budget,
    redaction,
    schedules,
    followUps: { requesterMayApproveWithinEnvelope },
    ...(instructions !== undefined ? { instructions } : {}),
    standingGrants,
    matched: matched.map((c) => formatPath(['channels', c.key])),
    rule: top ? formatPath(['channels', top.key]) : 'defaults',
    why,
    sources,
  };
}

/** Surfaces whose approver groups are looked up (Slack user groups, `usergroups.users.list`). */
export const groupSurfaces: readonly Surface[] = ['slack', 'teams'];

/**
 * The shape `checkPlanDecision` takes: approvers are the listed user ids, and
 * `approverGroups` the listed groups, whose membership the bot resolves per surface.
 * Where it cannot (the web console), a channel that lists only groups has no one who
 * can approve (fail closed).
 */
export function toPlanPolicy(effective: EffectiveChannelPolicy): PlanPolicy {
  const groups = effective.approvers?.groups ?? [];
  return {
    trustLevels: effective.trustLevels,
    allowSelfApproval: effective.requesterMayApprove,
    ...(effective.approvers ? { approvers: effective.approvers.users } : {}),
    ...(groups.length > 0 ? { approverGroups: groups } : {}),
    quorum: effective.quorum,
    approvalExpiryMs: effective.approvalExpiryMs,
    budget: effective.budget,
    redaction: effective.redaction,
    schedules: { ...effective.schedules },
    followUps: { ...effective.followUps },
    connectors: effective.connectors,
    egressDomains: effective.egressDomains,
    connectorTrust: effective.connectorTrust,
    webSearch: effective.webSearch,
    skills: effective.skills === '*' ? '*' : [...effective.skills],
    ...(effective.instructions !== undefined ? { instructions: effective.instructions } : {}),
    standingGrants: { ...effective.standingGrants },
    explicitTrust: Object.fromEntries(
      Object.entries(effective.trustSources).map(([a, from]) => [a, from !== builtInPolicySource]),
    ) as Partial<Record<ActionKind, boolean>>,
  };
}

/** Whether the channel's egress allowlist admits `host` (`*.example.com` admits sub-domains only). */
export function egressAllowed(effective: EffectiveChannelPolicy, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return effective.egressDomains.some((d) => (d.startsWith('*.') ? h.endsWith(d.slice(1)) : h === d));
}

/** `slack:C0123` → surface and channel id; throws on anything else. */
export function parseChannelId(text: string): { surface: Surface; channel: string } {
  const colon = text.indexOf(':');
  const surface = SurfaceSchema.safeParse(colon > 0 ? text.slice(0, colon) : '');
  const channel = text.slice(colon + 1);
  if (colon < 0 || !surface.success || channel.length === 0) {
    throw new HandoffError(
      ErrorCodes.invalidInput,
      `${JSON.stringify(text)} is not a channel: write <surface>:<channelId>, e.g. slack:C0123 or web:general`,
    );
  }
  return { surface: surface.data, channel };
}

/** `channels.slack:C0123.approvers.users[1]`; keys with dots or odd characters are quoted. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z0-9_:*@-]+$/.test(String(segment))) out += `${out ? '.' : ''}${String(segment)}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

function reportIssue(issue: z.core.$ZodIssue, at: (path: readonly PropertyKey[], reason: string) => void): void {
  if (issue.code === 'unrecognized_keys') {
    for (const key of issue.keys) {
      const hint = suggest(key);
      at([...issue.path, key], `unknown key${hint ? `; did you mean ${hint}?` : ''}`);
    }
    return;
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    at(issue.path, 'is required');
    return;
  }
  at(issue.path, issue.message);
}

function suggest(key: string): string | undefined {
  let best: { word: string; distance: number } | undefined;
  for (const word of knownPolicyKeys) {
    const distance = editDistance(key.toLowerCase(), word.toLowerCase());
    if (distance <= Math.max(1, Math.floor(word.length / 4)) && (!best || distance < best.distance)) {
      best = { word, distance };
    }
  }
  return best?.word;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function trustEntries(trust: TrustOverrides | undefined): [ActionKind, TrustLevel][] {
  return Object.entries(trust ?? {}).filter((e): e is [ActionKind, TrustLevel] => e[1] !== undefined);
}

/** The entries of a raw `trust:` mapping that are valid, for checks on a file that has other errors. */
function validTrustOnly(raw: unknown): TrustOverrides {
  if (!isRecord(raw)) return {};
  return Object.fromEntries(
    Object.entries(raw).filter(
      ([k, v]) => ActionKindSchema.safeParse(k).success && TrustLevelSchema.safeParse(v).success,
    ),
  ) as TrustOverrides;
}

function definedOnly(trust: TrustOverrides): Partial<Record<ActionKind, TrustLevel>> {
  return Object.fromEntries(trustEntries(trust));
}

function durationMs(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseDuration(text);
}

function budgetOf(budget: BudgetPolicy | undefined): EffectiveBudget {
  if (!budget) return {};
  return {
    ...(budget.maxTokens !== undefined ? { maxTokens: budget.maxTokens } : {}),
    ...(budget.maxCostUsd !== undefined ? { maxCostUsd: budget.maxCostUsd } : {}),
    ...(budget.maxWallTime !== undefined ? { maxWallTimeMs: parseDuration(budget.maxWallTime)! } : {}),
    ...(budget.monthlyCostCapUsd !== undefined ? { monthlyCostCapUsd: budget.monthlyCostCapUsd } : {}),
  };
}

function redactionOf(base: EffectiveRedaction, over: RedactionPolicy | undefined): EffectiveRedaction {
  return {
    enabled: over?.enabled ?? base.enabled,
    kinds: over?.kinds ? [...new Set(over.kinds)] : [...base.kinds],
  };
}

function schedulesOf(base: SchedulePolicy, over: SchedulesPolicy | undefined): SchedulePolicy {
  const timeZone = over?.timeZone ?? base.timeZone;
  return {
    create: over?.create ?? base.create,
    minIntervalMs: durationMs(over?.minInterval) ?? base.minIntervalMs,
    maxPerChannel: over?.maxPerChannel ?? base.maxPerChannel,
    connectors: over?.connectors ?? base.connectors,
    ...(timeZone !== undefined ? { timeZone } : {}),
  };
}

function bySpecificity(a: ChannelMatcher, b: ChannelMatcher): number {
  return a.specificity - b.specificity;
}

function lastDefined<T>(values: readonly (T | undefined)[]): T | undefined {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== undefined) return values[i];
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
