import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  StreamableHTTPClientTransport,
  type StreamableHTTPClientTransportOptions,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { type ConnectorConfig, resolveRecord } from '../../config/index.ts';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import type { ServerTool } from './connector-tools.ts';

/** How a session reaches a remote server that acts as a person (OAuth). */
export type AuthProvider = NonNullable<StreamableHTTPClientTransportOptions['authProvider']>;

export interface OpenOptions {
  /** Where `env:NAME` references are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** For a per-user remote connector: the person's OAuth client provider. */
  authProvider?: AuthProvider;
  /** A transport built elsewhere (a per-user connection's); `headers` still apply to it only if its builder added them. */
  transport?: Transport;
  /** Secrets that transport handles (a person's tokens), read at each scrub since they change on refresh. */
  transportSecrets?: () => readonly string[];
  /** How long connecting and listing may take. Default 20 s. */
  connectTimeoutMs?: number;
  signal?: AbortSignal;
  /** Told when the server goes away (a stdio process exited, a remote session closed). */
  onClose?: () => void;
  /** Version sent in the MCP handshake. */
  clientVersion?: string;
}

/** The text of one tool call's result and whether the server called it an error. */
export interface CallOutcome {
  text: string;
  isError: boolean;
}

/** One connection to one MCP server: listing and calling tools. */
export interface ConnectorSession {
  readonly connector: string;
  /** Every tool the server lists (all pages). */
  listTools(): Promise<ServerTool[]>;
  callTool(
    tool: string,
    args: Record<string, unknown>,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<CallOutcome>;
  /** The secrets resolved for it: results are scrubbed of these before anyone sees them. */
  readonly secrets: readonly string[];
  /** Whether the connection is gone (the process exited or the session closed). */
  readonly closed: boolean;
  /** The end of the server's stderr, with its secrets removed (for error messages). */
  stderrTail(): string;
  /** Closes the connection; a stdio server's process is stopped. Idempotent. */
  close(): Promise<void>;
}

const stderrKeep = 4000;

/**
 * Connects to a configured MCP server: a stdio server is started with a clean environment
 * (the SDK's short list of safe variables, such as PATH and HOME, plus the connector's own
 * `env:` entries and nothing else of the runner's), a remote one is reached over Streamable
 * HTTP with its own headers. Secrets are resolved here and only here.
 */
export async function openSession(config: ConnectorConfig, options: OpenOptions = {}): Promise<ConnectorSession> {
  const spec = config.spec;
  const secrets: string[] = [];
  let transport: Transport;
  let stderr = '';
  if ('command' in spec) {
    const own = resolveRecord(spec.env, `connectors.${config.name}.env`, options.env);
    for (const [k, v] of Object.entries(own))
      if (spec.env?.[k]?.match(/^(env|file):/) && v.length >= 4) secrets.push(v);
    const stdio = new StdioClientTransport({
      command: spec.command,
      args: spec.args ?? [],
      env: { ...getDefaultEnvironment(), ...own },
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      stderr: 'pipe',
    });
    stdio.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-stderrKeep);
    });
    transport = stdio;
  } else if (options.transport) {
    transport = options.transport;
  } else {
    const headers = resolveRecord(spec.headers, `connectors.${config.name}.headers`, options.env);
    for (const [k, v] of Object.entries(headers))
      if (spec.headers?.[k]?.match(/^(env|file):/) && v.length >= 4) secrets.push(v);
    transport = new StreamableHTTPClientTransport(new URL(spec.url), {
      requestInit: { headers },
      ...(options.authProvider ? { authProvider: options.authProvider } : {}),
    });
  }
  const scrub = (text: string) =>
    scrubSecrets(text, [...secrets, ...(options.transportSecrets?.() ?? []).filter((s) => s.length >= 8)]);
  const client = new Client({ name: 'handoff', version: options.clientVersion ?? '0.1.0' }, { capabilities: {} });
  let closed = false;
  client.onclose = () => {
    closed = true;
    options.onClose?.();
  };
  const connectTimeoutMs = options.connectTimeoutMs ?? 20_000;
  try {
    await client.connect(transport, {
      timeout: connectTimeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    await client.close().catch(() => undefined);
    throw connectError(config, err, scrub(stderr));
  }

  return {
    connector: config.name,
    secrets,
    get closed() {
      return closed;
    },
    stderrTail: () => scrub(stderr),
    async listTools() {
      const tools: ServerTool[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 50; page++) {
        const r = await client.listTools(cursor ? { cursor } : {}, { timeout: connectTimeoutMs });
        tools.push(...(r.tools as ServerTool[]));
        cursor = r.nextCursor;
        if (!cursor) break;
      }
      return tools;
    },
    async callTool(tool, args, o) {
      // A signal of its own per call: the client leaves its listener on whatever signal it
      // is given, so the run's long-lived signal would collect one per call.
      const call = new AbortController();
      const onAbort = () => call.abort(o.signal?.reason);
      if (o.signal?.aborted) call.abort(o.signal.reason);
      else o.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const r = await client.callTool({ name: tool, arguments: args }, undefined, {
          timeout: o.timeoutMs,
          maxTotalTimeout: o.timeoutMs,
          signal: call.signal,
        });
        return { text: scrub(resultText(r)), isError: r.isError === true };
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.close().catch(() => undefined);
    },
  };
}

/** Removes every occurrence of the connector's secrets from a text. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('[secret removed]');
  return out;
}

/** A tool result as text: text blocks as they are, other blocks described. */
export function resultText(result: Record<string, unknown>): string {
  const content = Array.isArray(result.content) ? (result.content as Array<Record<string, unknown>>) : [];
  const parts: string[] = [];
  for (const block of content) {
    switch (block.type) {
      case 'text':
        parts.push(String(block.text ?? ''));
        break;
      case 'image':
      case 'audio':
        parts.push(`[${block.type} (${String(block.mimeType ?? 'unknown type')}) not shown]`);
        break;
      case 'resource': {
        const r = (block.resource ?? {}) as Record<string, unknown>;
        parts.push(
          typeof r.text === 'string'
            ? `[resource ${String(r.uri ?? '')}]\n${r.text}`
            : `[resource ${String(r.uri ?? '')} (binary) not shown]`,
        );
        break;
      }
      case 'resource_link':
        parts.push(`[link ${String(block.name ?? '')}: ${String(block.uri ?? '')}]`);
        break;
      default:
        parts.push(`[${String(block.type)} content not shown]`);
    }
  }
  if (parts.length === 0 && result.structuredContent !== undefined)
    parts.push(JSON.stringify(result.structuredContent));
  if (parts.length === 0 && 'toolResult' in result) parts.push(JSON.stringify(result.toolResult));
  return parts.join('\n');
}

function connectError(config: ConnectorConfig, err: unknown, stderr: string): HandoffError {
  if (err instanceof HandoffError) return err;
  const e = err as Error & { code?: unknown };
  const tail = stderr.trim()
    ? ` (its output ended: ${stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500)})`
    : '';
  const where = 'command' in config.spec ? `the command ${config.spec.command}` : new URL(config.spec.url).origin;
  return new HandoffError(
    ErrorCodes.connectorFailed,
    `connector ${config.name} could not be reached through ${where}: ${e.message ?? String(err)}${tail}`,
  );
}
