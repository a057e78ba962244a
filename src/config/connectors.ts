import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DurationSchema, ErrorCodes, HandoffError, parseDuration, TrustLevelSchema } from '../core/index.ts';

/**
 * The `connectors:` section of handoff.yaml: one MCP server per name, in the shape MCP
 * clients already use (`command`/`args`/`env` for stdio, `url`/`headers` for remote
 * Streamable HTTP servers), so an existing entry can be pasted in.
 *
 * Values of `env` and `headers` may be references to secrets, `env:NAME` (an environment
 * variable of the runner) or `file:/path` (a file's contents, trailing newline removed);
 * they are resolved when a connector starts, only for that connector, and never printed.
 */

/** A connector's name: it prefixes its tools' names (`<name>__<tool>`), so it is short and plain. */
export const connectorNamePattern = /^[a-z0-9][a-z0-9_-]{0,29}$/;

/** A value that is a literal, or a reference to a secret (`env:NAME`, `file:/path`). */
const ValueSchema = z.string().max(8192);

/** Per-tool override: a trust level, or `read`/`write` to say what the tool does when its annotations are missing or wrong. */
export const ToolTrustSchema = z.union([TrustLevelSchema, z.enum(['read', 'write'])], {
  error: 'must be read, write, autonomous, batched, watched or forbidden',
});
export type ToolTrust = z.infer<typeof ToolTrustSchema>;

const common = {
  /** Only these tools are offered (default: every tool the server lists). */
  tools: z.array(z.string().min(1).max(128)).max(500).optional(),
  /** Per-tool trust overrides, by the server's tool name. */
  trust: z.record(z.string().min(1).max(128), ToolTrustSchema).optional(),
  /** How long one call may take before the model gets an error result (default 30s). */
  timeout: DurationSchema.optional(),
  /** A human name shown on cards and the Connect button (default: the connector's name). */
  title: z.string().min(1).max(80).optional(),
  description: z.string().max(500).optional(),
};

export const StdioConnectorSchema = z.strictObject({
  type: z.literal('stdio').optional(),
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(4096)).max(200).optional(),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), ValueSchema).optional(),
  cwd: z.string().min(1).optional(),
  ...common,
});

export const OAuthSchema = z.strictObject({
  /** A client id registered with the server's authorization server (default: dynamic client registration). */
  clientId: z.string().min(1).max(512).optional(),
  /** Its secret, by reference. */
  clientSecret: ValueSchema.optional(),
  /** Scopes to ask for (space-separated). */
  scope: z.string().max(2000).optional(),
});

export const HttpConnectorSchema = z.strictObject({
  type: z.enum(['http', 'streamable-http', 'streamableHttp']).optional(),
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'a header name'), ValueSchema).optional(),
  /** Used as the requester: each person connects their own account (docs/connectors.md, "Per-user connections"). */
  auth: z.union([z.literal('oauth'), OAuthSchema]).optional(),
  ...common,
});

/** Picks the shape by its key, so a mistake inside an entry is reported as itself, not as "neither shape". */
export const ConnectorSpecSchema = z.unknown().transform((value, ctx): StdioConnectorSpec | HttpConnectorSpec => {
  const has = (k: string) => typeof value === 'object' && value !== null && k in value;
  const schema = has('command') ? StdioConnectorSchema : has('url') ? HttpConnectorSchema : undefined;
  if (!schema) {
    ctx.addIssue({
      code: 'custom',
      message: 'a connector has either command (a stdio server) or url (a Streamable HTTP server)',
    });
    return z.NEVER;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      ctx.addIssue({ ...issue, code: 'custom', path: issue.path, message: issue.message });
    return z.NEVER;
  }
  return parsed.data;
});
export type StdioConnectorSpec = z.infer<typeof StdioConnectorSchema>;
export type HttpConnectorSpec = z.infer<typeof HttpConnectorSchema>;
export type ConnectorSpec = StdioConnectorSpec | HttpConnectorSpec;

export const ConnectorsSchema = z.record(z.string(), ConnectorSpecSchema).superRefine((all, ctx) => {
  for (const name of Object.keys(all)) {
    if (!connectorNamePattern.test(name)) {
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: 'a connector name is 1–30 lower-case letters, digits, _ or -, starting with a letter or digit',
      });
    }
  }
});

/** One configured connector, validated. */
export interface ConnectorConfig {
  name: string;
  spec: ConnectorSpec;
  kind: 'stdio' | 'http';
  /** Per-call timeout. */
  timeoutMs: number;
  /** Whether it is used as each requester (OAuth), rather than as one shared identity. */
  perUser: boolean;
}

export const defaultConnectorTimeoutMs = 30_000;

/** Validates the `connectors:` section (undefined: none). Every problem names its key. */
export function parseConnectors(raw: unknown, file: string): ConnectorConfig[] {
  if (raw === undefined || raw === null) return [];
  const parsed = ConnectorsSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = i.code === 'unrecognized_keys' ? `: unknown key(s) ${i.keys.join(', ')}` : `: ${i.message}`;
      return `  connectors.${i.path.map(String).join('.')} in ${file}${key}`;
    });
    throw new HandoffError(ErrorCodes.config, `invalid connectors:\n${lines.join('\n')}`);
  }
  return Object.entries(parsed.data).map(([name, spec]) => ({
    name,
    spec,
    kind: 'command' in spec ? 'stdio' : 'http',
    timeoutMs: spec.timeout ? parseDuration(spec.timeout)! : defaultConnectorTimeoutMs,
    perUser: 'url' in spec && spec.auth !== undefined,
  }));
}

/**
 * Resolves one value: `env:NAME` from `env`, `file:/path` from the file, anything else as
 * it is. A reference that cannot be resolved is an error naming the reference, never its value.
 */
export function resolveValue(value: string, env: NodeJS.ProcessEnv = process.env): string {
  if (value.startsWith('env:')) {
    const name = value.slice(4);
    const v = env[name];
    if (v === undefined || v === '')
      throw new HandoffError(ErrorCodes.config, `the environment variable ${name} is not set`);
    return v;
  }
  if (value.startsWith('file:')) {
    const path = value.slice(5);
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new HandoffError(
        ErrorCodes.config,
        `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
  return value;
}

/** Whether a value is a reference to a secret rather than a literal. */
export function isReference(value: string): boolean {
  return value.startsWith('env:') || value.startsWith('file:');
}

/** Resolves every value of a record (env or headers); throws naming the key whose reference failed. */
export function resolveRecord(
  values: Record<string, string> | undefined,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values ?? {})) {
    try {
      out[k] = resolveValue(v, env);
    } catch (err) {
      throw new HandoffError(ErrorCodes.config, `${what}.${k}: ${(err as Error).message}`);
    }
  }
  return out;
}
