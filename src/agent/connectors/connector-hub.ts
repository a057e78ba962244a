import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { ConnectorConfig } from '../../config/index.ts';
import { ErrorCodes, HandoffError, type TrustLevel } from '../../core/index.ts';
import type { ToolDefinition } from '../model/provider.ts';
import {
  type ConnectorTool,
  type ConnectorTrustPolicy,
  connectorTools,
  toolDefinition,
  toolTrust,
  wrapUntrusted,
} from './connector-tools.ts';
import { type ConnectorSession, openSession } from './mcp-session.ts';

/** A connector tool with its level in this channel. */
export interface OfferedTool extends ConnectorTool {
  trust: TrustLevel;
  /** The connector's human name. */
  title: string;
}

export interface HubOptions {
  /** The connectors to start (already limited to what the channel allows). */
  configs: readonly ConnectorConfig[];
  policy: ConnectorTrustPolicy;
  /** Where `env:` references are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * For per-user connectors: a transport that acts as the person (their OAuth connection).
   * It throws `handoff_connection_required` when they have not connected the service.
   */
  transportFor?: (config: ConnectorConfig) => Promise<{ transport: Transport; secrets?: () => readonly string[] }>;
  /** Turns a per-user connector's failure into a clear one (no token material in it). */
  explainFailure?: (config: ConnectorConfig, err: unknown) => unknown;
  signal?: AbortSignal;
  connectTimeoutMs?: number;
}

/** One finished connector call, for the audit trail. */
export interface ConnectorCallResult {
  content: string;
  isError: boolean;
  connector: string;
  tool: string;
}

/**
 * The connectors of one run (or one planning attempt): one client per connector, started
 * when the hub opens and stopped when it closes. A connector that cannot start is left
 * out and named in `problems`; a call that fails, hangs past its timeout or meets a
 * crashed server comes back as an error result, never as an exception that ends the run.
 */
export class ConnectorHub {
  readonly problems: string[] = [];
  /** Per-user connectors left out because the person has not connected them (or must connect again). */
  readonly needsConnection: ConnectorConfig[] = [];
  readonly #options: HubOptions;
  readonly #sessions = new Map<string, ConnectorSession>();
  readonly #tools = new Map<string, OfferedTool>();
  readonly #configs = new Map<string, ConnectorConfig>();
  #closed = false;

  private constructor(options: HubOptions) {
    this.#options = options;
  }

  /** Starts every connector in `configs` (in parallel) and lists its tools. */
  static async open(options: HubOptions): Promise<ConnectorHub> {
    const hub = new ConnectorHub(options);
    await Promise.all(options.configs.map((c) => hub.#start(c)));
    return hub;
  }

  /** The tools offered, sorted by name (a stable list keeps the prompt cache warm). */
  tools(): OfferedTool[] {
    return [...this.#tools.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  definitions(): ToolDefinition[] {
    return this.tools().map((t) => toolDefinition(t, t.title));
  }

  lookup(name: string): OfferedTool | undefined {
    return this.#tools.get(name);
  }

  /** Calls a tool by its model name; the result is scrubbed of secrets, capped and framed as data. */
  async call(name: string, input: Record<string, unknown>, signal?: AbortSignal): Promise<ConnectorCallResult> {
    const tool = this.#tools.get(name);
    if (!tool) throw new HandoffError(ErrorCodes.invalidInput, `there is no connector tool ${name}`);
    const config = this.#configs.get(tool.connector)!;
    const base = { connector: tool.connector, tool: tool.tool };
    const source = `connector:${tool.connector}/${tool.tool}`;
    let session = this.#sessions.get(tool.connector);
    try {
      if (!session || session.closed) {
        // The server went away (a crash, a closed session): one fresh start per call.
        await session?.close();
        session = await this.#connect(config);
      }
      const r = await session.callTool(tool.tool, input, {
        timeoutMs: config.timeoutMs,
        ...(signal ? { signal } : {}),
      });
      return { ...base, content: wrapUntrusted(source, r.text), isError: r.isError };
    } catch (err) {
      if (signal?.aborted) throw err;
      const explained =
        this.#options.explainFailure && config.perUser ? this.#options.explainFailure(config, err) : err;
      const message = describeFailure(explained, config, session);
      return { ...base, content: `Error: ${message}`, isError: true };
    }
  }

  /** Stops every connector: stdio processes end, remote sessions close. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.close()));
    this.#sessions.clear();
  }

  async #start(config: ConnectorConfig): Promise<void> {
    try {
      const session = await this.#connect(config);
      const listed = await session.listTools();
      const { tools, skipped } = connectorTools(config, listed);
      for (const s of skipped) this.problems.push(`${config.name}: ${s}`);
      const title = config.spec.title ?? config.name;
      for (const t of tools) {
        this.#tools.set(t.name, { ...t, title, trust: toolTrust(config, t, this.#options.policy).level });
      }
      this.#configs.set(config.name, config);
    } catch (raw) {
      const err = this.#options.explainFailure && config.perUser ? this.#options.explainFailure(config, raw) : raw;
      if (err instanceof HandoffError && err.code === ErrorCodes.connectionRequired) this.needsConnection.push(config);
      this.problems.push(`${config.name}: ${(err as Error).message}`);
      await this.#sessions.get(config.name)?.close();
      this.#sessions.delete(config.name);
    }
  }

  async #connect(config: ConnectorConfig): Promise<ConnectorSession> {
    if (this.#closed) throw new HandoffError(ErrorCodes.cancelled, 'the run has ended');
    const o = this.#options;
    let transport: Transport | undefined;
    let transportSecrets: (() => readonly string[]) | undefined;
    if (config.perUser) {
      if (!o.transportFor) {
        throw new HandoffError(
          ErrorCodes.connectionRequired,
          `${config.spec.title ?? config.name} acts as each person, and per-user connections are not set up (HANDOFF_CONNECTIONS_KEY)`,
        );
      }
      ({ transport, secrets: transportSecrets } = await o.transportFor(config));
    }
    const session = await openSession(config, {
      ...(o.env ? { env: o.env } : {}),
      ...(transport ? { transport } : {}),
      ...(transportSecrets ? { transportSecrets } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
    });
    if (this.#closed) {
      await session.close();
      throw new HandoffError(ErrorCodes.cancelled, 'the run has ended');
    }
    this.#sessions.set(config.name, session);
    return session;
  }
}

function describeFailure(err: unknown, config: ConnectorConfig, session: ConnectorSession | undefined): string {
  const e = err as Error & { code?: unknown };
  const seconds = Math.round(config.timeoutMs / 1000);
  // The SDK's request timeout is JSON-RPC error -32001.
  if (e.code === -32001 || /timed? ?out/i.test(e.message ?? '')) {
    return `connector ${config.name} did not answer within ${seconds} s; the call was abandoned. Continue without it or try once more later.`;
  }
  const gone = session?.closed
    ? ` The connector stopped${session.stderrTail().trim() ? ` (its last output: ${session.stderrTail().trim().split('\n').slice(-2).join(' | ').slice(0, 300)})` : ''}; it is restarted on the next call.`
    : '';
  return `connector ${config.name} failed: ${(e.message ?? String(err)).slice(0, 500)}.${gone}`;
}
