import { ConnectorHub, type ConnectorTrustPolicy, type OfferedTool, toolTrust } from '../agent/index.ts';
import { type Policy, parseChannelId, policyForChannel, toPlanPolicy } from '../approvals/index.ts';
import type { ConnectorConfig } from '../config/index.ts';
import { ErrorCodes, HandoffError } from '../core/index.ts';
import { connectorTrustPolicy } from './run-tools.ts';

/** Where CLI functions print; console by default, a recorder in tests. */
export interface ConnectorsOutput {
  log(line: string): void;
  error(line: string): void;
}

export interface ConnectorsCliOptions {
  env?: NodeJS.ProcessEnv;
  connectTimeoutMs?: number;
}

/** `command args…` or the URL: where a connector lives, never its secrets. */
export function describeTarget(c: ConnectorConfig): string {
  const spec = c.spec;
  if ('command' in spec) return `stdio: ${[spec.command, ...(spec.args ?? [])].join(' ').slice(0, 200)}`;
  return `http: ${spec.url}${c.perUser ? ' (each person connects their own account)' : ''}`;
}

/** The channel rules (and defaults) that let runs use a connector. */
export function channelsAllowing(policy: Policy, name: string): string[] {
  return policy.channels.filter((c) => c.rule.connectors?.includes(name)).map((c) => c.key);
}

/** Lists one connector's tools under a channel's policy (the defaults without one). */
async function listTools(
  config: ConnectorConfig,
  policy: Policy,
  channel: string | undefined,
  options: ConnectorsCliOptions,
): Promise<{ tools: OfferedTool[]; problems: string[]; connectMs: number }> {
  const trust: ConnectorTrustPolicy = channel
    ? connectorTrustPolicy(toPlanPolicy(policyForChannel(policy, channel)))
    : {
        // Under the defaults alone: what a channel no rule matches gets.
        trustLevels: policy.defaults.trustLevels,
        explicit: Object.fromEntries(Object.keys(policy.defaultsRule.trust ?? {}).map((a) => [a, true])),
        connectorTrust: policy.defaultsRule.connectorTrust ?? {},
      };
  const started = performance.now();
  const hub = await ConnectorHub.open({
    configs: [config],
    policy: trust,
    ...(options.env ? { env: options.env } : {}),
    ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
  });
  const connectMs = performance.now() - started;
  try {
    return { tools: hub.tools(), problems: hub.problems, connectMs };
  } finally {
    await hub.close();
  }
}

/**
 * `handoff connectors list [--channel C]`: every configured connector, where it runs, which
 * channels may use it, and its tools with their kinds and levels (a connector that cannot be
 * reached is named, and the listing goes on).
 */
export async function connectorsList(
  configs: readonly ConnectorConfig[],
  policy: Policy,
  opts: { channel?: string } & ConnectorsCliOptions,
  out: ConnectorsOutput = console,
): Promise<number> {
  if (configs.length === 0) {
    out.log('no connectors are configured (add a connectors: section to handoff.yaml; see docs/connectors.md)');
    return 0;
  }
  if (opts.channel) parseChannelId(opts.channel);
  for (const c of configs) {
    const channels = channelsAllowing(policy, c.name);
    out.log(`${c.name}${c.spec.title ? ` (${c.spec.title})` : ''}`);
    out.log(`  ${describeTarget(c)}`);
    out.log(`  timeout per call: ${Math.round(c.timeoutMs / 1000)} s`);
    out.log(
      `  channels: ${channels.length > 0 ? channels.join(', ') : 'none (no channel rule lists it in connectors:)'}`,
    );
    if (c.perUser) {
      out.log('  tools: listed as each person once they connect (/handoff connections)');
      continue;
    }
    try {
      const { tools, problems } = await listTools(c, policy, opts.channel, opts);
      for (const p of problems) out.error(`  problem: ${p}`);
      if (tools.length === 0 && problems.length > 0) continue;
      out.log(`  tools${opts.channel ? ` in ${opts.channel}` : ' (under the defaults)'}:`);
      for (const t of tools) out.log(`    ${t.tool}: ${t.action.replace('_', ' ')}, ${t.trust} (${t.actionSource})`);
      if (tools.length === 0) out.log('    none');
    } catch (err) {
      out.error(`  problem: ${(err as Error).message}`);
    }
  }
  return 0;
}

/**
 * `handoff connectors test NAME`: connects, lists each tool with its level, and reports how
 * long connecting and listing took. Exit 1 when it cannot connect or lists no tools.
 */
export async function connectorsTest(
  configs: readonly ConnectorConfig[],
  policy: Policy,
  name: string,
  opts: ConnectorsCliOptions = {},
  out: ConnectorsOutput = console,
): Promise<number> {
  const config = configs.find((c) => c.name === name);
  if (!config) {
    out.error(
      `no connector named ${JSON.stringify(name)}; configured: ${configs.map((c) => c.name).join(', ') || 'none'}`,
    );
    return 2;
  }
  if (config.perUser) {
    out.error(
      `${name} acts as each person (OAuth): it is tested by connecting in a thread (the Connect button) or with /handoff connections`,
    );
    return 2;
  }
  const { tools, problems, connectMs } = await listTools(config, policy, undefined, opts);
  for (const p of problems) out.error(`problem: ${p}`);
  if (tools.length === 0) {
    out.error(`${name}: FAILED (no tools could be listed)`);
    return 1;
  }
  out.log(
    `${name}: ok — connected and listed ${tools.length} tool${tools.length === 1 ? '' : 's'} in ${Math.round(connectMs)} ms`,
  );
  for (const t of tools) out.log(`  ${t.tool}: ${t.action.replace('_', ' ')}, ${t.trust} (${t.actionSource})`);
  return 0;
}

/**
 * `handoff policy explain --channel C --action connector:NAME/TOOL`: whether the channel may
 * use the connector, the tool's kind (from its annotations, listed from the server), and its
 * level with every rule that shaped it.
 */
export async function connectorExplain(
  configs: readonly ConnectorConfig[],
  policy: Policy,
  channel: string,
  action: string,
  opts: ConnectorsCliOptions = {},
): Promise<string> {
  const m = /^connector:([^/]+)\/(.+)$/.exec(action);
  if (!m) throw new HandoffError(ErrorCodes.invalidInput, 'write the action as connector:NAME/TOOL');
  const [, name, tool] = m as unknown as [string, string, string];
  const config = configs.find((c) => c.name === name);
  const eff = policyForChannel(policy, channel);
  const lines = [`policy: ${policy.source}`, `channel: ${eff.channel}`, `rule: ${eff.rule} (${eff.why})`];
  if (!config) {
    lines.push(`connector ${name}: not configured in handoff.yaml, so no run can use it`);
    return lines.join('\n');
  }
  const allowed = eff.connectors.includes(name);
  lines.push(
    `connector ${name}: ${allowed ? `allowed in this channel (from ${eff.sources.connectors})` : 'not allowed in this channel: add it to connectors: in its channel rule'}`,
  );
  const planPolicy = toPlanPolicy(eff);
  let found: OfferedTool | undefined;
  if (config.perUser) {
    lines.push(
      `${name} acts as each person; its tools are listed once they connect. Unknown tools are treated as writes.`,
    );
  } else {
    const { tools, problems } = await listTools(config, policy, channel, opts);
    for (const p of problems) lines.push(`problem: ${p}`);
    found = tools.find((t) => t.tool === tool);
    if (!found && problems.length === 0) lines.push(`${name} lists no tool named ${tool}`);
  }
  const subject = found ?? {
    tool,
    action: 'connector_write' as const,
    actionSource: 'not listed by the server, treated as a write',
  };
  const { level, why } = toolTrust(config, subject, connectorTrustPolicy(planPolicy));
  lines.push(`action connector:${name}/${tool}: ${allowed ? level : `${level} if the channel allowed the connector`}`);
  for (const w of why) lines.push(`  ${w}`);
  return lines.join('\n');
}

/** Doctor checks: each configured connector starts and lists its tools. */
export async function connectorChecks(
  configs: readonly ConnectorConfig[],
  policy: Policy,
  opts: ConnectorsCliOptions = {},
): Promise<Array<{ name: string; ok: boolean; warn?: boolean; detail: string; fix?: string }>> {
  const checks = [];
  for (const c of configs) {
    const name = `Connector ${c.name}`;
    if (c.perUser) {
      checks.push({ name, ok: true, warn: true, detail: 'acts as each person (OAuth): checked when someone connects' });
      continue;
    }
    try {
      const { tools, problems, connectMs } = await listTools(c, policy, undefined, opts);
      checks.push(
        tools.length > 0
          ? { name, ok: true, detail: `${tools.length} tools listed in ${Math.round(connectMs)} ms` }
          : {
              name,
              ok: false,
              detail: problems.join('; ').slice(0, 500) || 'the server lists no tools',
              fix: `check connectors.${c.name} in handoff.yaml, then run: handoff connectors test ${c.name}`,
            },
      );
    } catch (err) {
      checks.push({ name, ok: false, detail: (err as Error).message.slice(0, 500) });
    }
  }
  return checks;
}

/** Warnings for channel rules that name connectors handoff.yaml does not configure. */
export function unknownConnectors(policy: Policy, configs: readonly ConnectorConfig[]): string[] {
  const known = new Set(configs.map((c) => c.name));
  const out: string[] = [];
  for (const ch of policy.channels) {
    for (const n of ch.rule.connectors ?? []) {
      if (!known.has(n))
        out.push(`${policy.source}: channels.${ch.key}.connectors names ${n}, which handoff.yaml does not configure`);
    }
  }
  return out;
}
