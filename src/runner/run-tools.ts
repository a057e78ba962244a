import {
  type ConnectorHub,
  type ConnectorTrustPolicy,
  type ExtraTools,
  type OfferedTool,
  stricter,
  type ToolDefinition,
} from '../agent/index.ts';
import type { PlanPolicy } from '../approvals/index.ts';
import type { ConnectorConfig } from '../config/index.ts';
import type { Envelope, Task, TrustLevel } from '../core/index.ts';

/** The connector trust inputs of a channel's policy. */
export function connectorTrustPolicy(policy: PlanPolicy): ConnectorTrustPolicy {
  return {
    trustLevels: policy.trustLevels,
    ...(policy.explicitTrust ? { explicit: policy.explicitTrust } : {}),
    ...(policy.connectorTrust ? { connectorTrust: policy.connectorTrust } : {}),
  };
}

/**
 * The connectors a task may use: configured, allowed by its channel's policy, and (for a
 * scheduled brief) allowed for schedules. With `envelope`, only those whose tools it names.
 */
export function connectorsFor(
  configs: readonly ConnectorConfig[],
  policy: PlanPolicy,
  task: Task,
  envelope?: Envelope,
): ConnectorConfig[] {
  const allowed = new Set(policy.connectors ?? []);
  const scheduled = task.brief !== undefined || task.schedule !== undefined;
  if (scheduled && policy.schedules?.connectors !== true) return [];
  const used = envelope ? new Set((envelope.connectors ?? []).map((t) => t.connector)) : undefined;
  return configs.filter((c) => allowed.has(c.name) && (!used || used.has(c.name)));
}

/** A web_fetch tool: run by the runner, through the run's allowlist. */
export interface WebFetchTool {
  definition: ToolDefinition;
  run(input: Record<string, unknown>, signal: AbortSignal): Promise<{ content: string; isError: boolean }>;
}

/**
 * The extra tools of a run: its connectors' tools and, when the envelope allows web
 * access, web_fetch. A connector tool's level is the stricter of the level it was approved
 * at and the level the channel's policy gives it now (a policy tightened since approval wins).
 */
export function extraToolsFor(
  hub: ConnectorHub | undefined,
  envelope: Envelope,
  webFetch: WebFetchTool | undefined,
  egressLevel: TrustLevel,
): ExtraTools | undefined {
  const offered = hub?.tools() ?? [];
  if (offered.length === 0 && !webFetch) return undefined;
  const approved = new Map((envelope.connectors ?? []).map((t) => [t.name, t.trust]));
  const levelOf = (t: OfferedTool): TrustLevel => {
    const then = approved.get(t.name);
    return then ? stricter(then, t.trust) : t.trust;
  };
  const definitions = hub ? hub.definitions() : [];
  if (webFetch) definitions.push(webFetch.definition);
  return {
    definitions,
    classify(name) {
      if (webFetch && name === webFetch.definition.name) {
        // Reaching the envelope's domains was approved with the plan; anything else is held by the allowlist.
        return { action: 'network_egress', trust: egressLevel === 'forbidden' ? 'forbidden' : 'batched' };
      }
      const t = hub?.lookup(name);
      return t ? { action: t.action, trust: levelOf(t) } : undefined;
    },
    async run(name, input, signal) {
      if (webFetch && name === webFetch.definition.name) return webFetch.run(input, signal);
      const r = await hub!.call(name, input, signal);
      return { content: r.content, isError: r.isError };
    },
    describe(name, input) {
      if (webFetch && name === webFetch.definition.name)
        return `fetching ${typeof input.url === 'string' ? input.url.slice(0, 200) : 'a web page'}`;
      const t = hub?.lookup(name);
      return t ? `${t.title}: ${t.tool}` : name;
    },
  };
}
