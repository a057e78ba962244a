import { type ActionKind, ActionKindSchema, ErrorCodes, HandoffError, type TrustLevel } from '../core/index.ts';
import { defaultTrustLevels } from './default-policy.ts';
import {
  builtInPolicySource,
  groupSurfaces,
  loadPolicy,
  type Policy,
  PolicyError,
  parseChannelId,
  policyForChannel,
} from './policy.ts';

/** Where CLI functions print; console by default, a recorder in tests. */
export interface CliOutput {
  log(line: string): void;
  error(line: string): void;
}

/** `handoff policy check FILE`: 0 and `ok: N channels` when valid, 1 and every problem when not. */
export function policyCheck(file: string, out: CliOutput = console): number {
  try {
    const policy = loadPolicy(file);
    for (const warning of policy.warnings) out.error(`warning: ${warning}`);
    const n = policy.channels.length;
    out.log(`ok: ${n} channel${n === 1 ? '' : 's'}`);
    return 0;
  } catch (err) {
    if (err instanceof PolicyError) {
      for (const line of err.problems) out.error(line);
      out.error(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}: the policy was not loaded`);
      return 1;
    }
    throw err;
  }
}

const meaning: Record<TrustLevel, string> = {
  autonomous: 'runs without asking; logged',
  batched: 'runs; covered by plan approval, the human reviews the output',
  watched: 'the run pauses; an approver must approve this call in the thread',
  forbidden: 'refused; a plan that needs it cannot be approved',
};

/**
 * `handoff policy explain --channel C --action A`: which rule applies to the channel,
 * the action's trust level and where it was set, and who approves. Without an
 * action, every action kind is listed.
 */
export function policyExplain(policy: Policy, options: { channel: string; action?: string }): string {
  let action: ActionKind | undefined;
  if (options.action !== undefined) {
    const parsed = ActionKindSchema.safeParse(options.action);
    if (!parsed.success) {
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `unknown action ${JSON.stringify(options.action)}; one of: ${ActionKindSchema.options.join(', ')}`,
      );
    }
    action = parsed.data;
  }
  const eff = policyForChannel(policy, options.channel);
  const lines: string[] = [];
  lines.push(`policy: ${policy.source}`);
  lines.push(`channel: ${eff.channel}`);
  lines.push(`rule: ${eff.rule} (${eff.why})`);
  if (eff.matched.length > 1) lines.push(`cascade: defaults → ${eff.matched.join(' → ')} (later rules win)`);

  const describe = (a: ActionKind) => {
    const level = eff.trustLevels[a];
    const source = eff.trustSources[a];
    const builtIn = defaultTrustLevels[a];
    const origin =
      source === builtInPolicySource
        ? 'the built-in default'
        : `set by ${source === 'defaults' ? 'defaults.trust' : `${source}.trust`}.${a}${builtIn !== level ? ` (built-in default: ${builtIn})` : ''}`;
    return `${a}: ${level} — ${origin}; ${meaning[level]}`;
  };
  if (action) lines.push(`action ${describe(action)}`);
  else {
    lines.push('actions:');
    for (const a of ActionKindSchema.options) lines.push(`  ${describe(a)}`);
  }

  const { surface } = parseChannelId(eff.channel);
  const approvers = eff.approvers
    ? [
        eff.approvers.users.length > 0 ? `users ${eff.approvers.users.join(', ')}` : undefined,
        eff.approvers.groups.length > 0
          ? `groups ${eff.approvers.groups.join(', ')}${groupSurfaces.includes(surface) ? (surface === 'teams' ? ' (members looked up in Microsoft Graph)' : ' (members looked up in Slack)') : ` (${surface} has no groups: they approve nobody here)`}`
          : undefined,
      ]
        .filter(Boolean)
        .join('; ')
    : 'anyone in the conversation';
  lines.push(`approvers: ${approvers}${eff.approvers ? ` (from ${eff.sources.approvers})` : ''}`);
  lines.push(
    `quorum: ${eff.quorum} distinct approver${eff.quorum === 1 ? '' : 's'}${eff.sources.quorum === 'default' ? '' : ` (from ${eff.sources.quorum})`}`,
  );
  lines.push(
    `requester may approve own plan: ${eff.requesterMayApprove ? 'yes' : 'no'} (from ${eff.sources.requesterMayApprove})`,
  );
  lines.push(`approval expiry: ${formatMs(eff.approvalExpiryMs)} (from ${eff.sources.approvalExpiry})`);
  lines.push(`connectors: ${eff.connectors.length > 0 ? eff.connectors.join(', ') : 'none'}`);
  lines.push(`egress domains: ${eff.egressDomains.length > 0 ? eff.egressDomains.join(', ') : 'none (no network)'}`);
  lines.push(
    `web search: ${eff.webSearch ? "allowed, limited to each plan's egress domains" : 'not allowed'} (from ${eff.sources.webSearch})`,
  );
  lines.push(
    `skills: ${eff.skills === '*' ? 'every installed skill' : eff.skills.length > 0 ? eff.skills.join(', ') : 'none'} (from ${eff.sources.skills})`,
  );
  const b = eff.budget;
  const caps = [
    b.maxTokens !== undefined ? `${b.maxTokens} tokens` : undefined,
    b.maxCostUsd !== undefined ? `$${b.maxCostUsd} per task` : undefined,
    b.maxWallTimeMs !== undefined ? `${formatMs(b.maxWallTimeMs)} wall time` : undefined,
    b.monthlyCostCapUsd !== undefined ? `$${b.monthlyCostCapUsd} per month` : undefined,
  ].filter(Boolean);
  lines.push(`budget: ${caps.length > 0 ? caps.join(', ') : "the deployment's settings"}`);
  lines.push(`redaction: ${eff.redaction.enabled ? `on (${eff.redaction.kinds.join(', ')})` : 'off'}`);
  const s = eff.schedules;
  lines.push(
    `schedules: created by ${s.create === 'anyone' ? 'anyone in the conversation' : 'approvers only'}; at most every ${formatMs(s.minIntervalMs)}; at most ${s.maxPerChannel} per channel; connectors ${s.connectors ? `allowed (${eff.connectors.length > 0 ? eff.connectors.join(', ') : 'none configured'})` : 'not allowed'}; time zone ${s.timeZone ?? 'not set'} (from ${eff.sources.schedules})`,
  );
  lines.push(
    `standing grants: ${eff.standingGrants.allow ? `"Always allow in this channel" offered, for ${eff.standingGrants.maxDays} days` : 'not offered (only "Approve for the rest of this run")'}`,
  );
  return lines.join('\n');
}

function formatMs(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  let rest = ms;
  let out = '';
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out + (rest > 0 || out === '' ? `${rest}ms` : '');
}
