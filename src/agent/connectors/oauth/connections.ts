import {
  auth,
  discoverOAuthServerInfo,
  type OAuthDiscoveryState,
  selectClientAuthMethod,
  UnauthorizedError,
} from '@modelcontextprotocol/sdk/client/auth.js';
import {
  StreamableHTTPClientTransport,
  type StreamableHTTPClientTransportOptions,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  AccessDeniedError,
  InvalidClientError,
  InvalidGrantError,
  InvalidTokenError,
  OAuthError,
  ServerError,
  TemporarilyUnavailableError,
  TooManyRequestsError,
  UnauthorizedClientError,
} from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { ConnectorConfig } from '../../../config/index.ts';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';
import { ConnectionErrorCodes, connectionFailed, connectionRequired, describeFailure } from './errors.ts';
import { sdkCompatibleFetch } from './sdk-fetch.ts';
import { type ConnectionContext, ConnectionContextSchema, type StoredTokens, type TokenStore } from './token-store.ts';
import { defaultFlowTtlMs, type OAuthConnectorSettings, oauthSettings, UserOAuthProvider } from './user-provider.ts';

/** What {@link ConnectionService.begin} found. */
export type BeginResult =
  | { status: 'connected' }
  /** The person must open `authorizationUrl` (a "Connect <title>" button); it works once, for a few minutes. */
  | { status: 'needs_authorization'; authorizationUrl: string };

/** A sign-in that came back and was completed. */
export interface CompletedConnection {
  user: string;
  connector: string;
  /** The connector's human name. */
  title: string;
  context: ConnectionContext | undefined;
}

/** A sign-in that came back refused (`error=` on the callback); its state is used up. */
export interface AbandonedConnection {
  user: string;
  connector: string;
  title: string;
  context: ConnectionContext | undefined;
}

/** One of a person's connections, without token material. */
export interface ConnectionSummary {
  connector: string;
  title: string;
  connectedAt: string;
  /** When the current access token expires, when the server said. */
  expiresAt?: string;
  scopes?: string[];
  /** Whether Handoff can renew it without the person (a refresh token is held). */
  refreshable: boolean;
}

/** What {@link ConnectionService.revoke} did. */
export interface RevokeResult {
  /** Whether anything was stored locally (it is gone now either way). */
  removedLocally: boolean;
  /**
   * The server side: `revoked` (the revocation endpoint accepted every token),
   * `not_supported` (the server advertises no revocation endpoint), `not_connected`
   * (there were no tokens to revoke), or `failed` (see `problem`).
   */
  remote: 'revoked' | 'not_supported' | 'not_connected' | 'failed';
  /** Why the remote revocation failed, safe to show. */
  problem?: string;
}

export interface ConnectionServiceOptions {
  store: TokenStore;
  /** Every configured connector; only per-user (OAuth) HTTP ones can be connected. */
  connectors: readonly ConnectorConfig[];
  /** Base URL people reach the bot at (`HANDOFF_PUBLIC_URL`); the callback is `<publicUrl>/connectors/oauth/callback`. */
  publicUrl: string;
  /** How long a Connect link works (default 10 minutes). */
  flowTtlMs?: number;
  /** Where `env:` references of client secrets are read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Used for discovery, registration, token and revocation requests (default: global fetch). */
  fetch?: FetchLike;
  /** Timeout of one revocation request (default 10 s). */
  revocationTimeoutMs?: number;
  now?: () => Date;
}

/** An access token this close to expiry is not reported as `connected`. */
const expirySkewMs = 60_000;
const maxCodeChars = 4096;
const maxStateChars = 512;

/**
 * Per-user connections to remote MCP servers that need OAuth: a connector configured with
 * `auth:` is used as the person who asked, never as a shared account.
 *
 * - the bot calls {@link begin} and shows `authorizationUrl` as a Connect button;
 * - the callback route calls {@link complete} ({@link connectionRoutes});
 * - the runner calls {@link transportFor} (or {@link providerFor}, for a transport it
 *   builds itself); a {@link ConnectionErrorCodes.connectionRequired} error from it, or
 *   from the MCP client using it, means "ask the person to connect".
 */
export class ConnectionService {
  readonly #options: ConnectionServiceOptions;
  readonly #connectors: Map<string, OAuthConnectorSettings>;

  constructor(options: ConnectionServiceOptions) {
    this.#options = options;
    this.#connectors = new Map(options.connectors.filter((c) => c.perUser).map((c) => [c.name, oauthSettings(c)]));
  }

  /** The per-user connectors, by name. */
  connectorNames(): string[] {
    return [...this.#connectors.keys()];
  }

  /** A connector's human name (its `title`, or its name). */
  title(connector: string): string {
    return this.#connectors.get(connector)?.title ?? connector;
  }

  /**
   * Connected already (an unexpired access token, or one the server just renewed), or the
   * URL the person must open. Runs the SDK's discovery afresh and refuses an authorization
   * server that does not support PKCE S256 ({@link ConnectionErrorCodes.serverUnsupported}).
   */
  async begin(connector: string, user: string, context?: ConnectionContext): Promise<BeginResult> {
    const settings = this.#settings(connector);
    checkUser(user);
    const parsedContext = context === undefined ? undefined : ConnectionContextSchema.safeParse(context);
    if (parsedContext && !parsedContext.success) {
      throw new HandoffError(ErrorCodes.invalidInput, `not a connection context: ${parsedContext.error.message}`);
    }
    const checkedContext = parsedContext?.data;
    const { store } = this.#options;
    let current: StoredTokens | undefined;
    try {
      current = await store.getTokens(user, connector);
    } catch {
      // Unreadable (another key): replaced by this sign-in.
      await store.deleteTokens(user, connector);
    }
    if (current && (!current.expiresAt || Date.parse(current.expiresAt) - expirySkewMs > this.#now().getTime())) {
      return { status: 'connected' };
    }
    // Discovered again for every sign-in, so a server that stopped offering S256 is noticed.
    await store.deleteDiscovery(user, connector);
    const provider = this.#provider(settings, user, 'connect', {
      ...(checkedContext ? { context: checkedContext } : {}),
    });
    let result: Awaited<ReturnType<typeof auth>>;
    try {
      result = await auth(provider, this.#authOptions(settings));
    } catch (err) {
      if (err instanceof HandoffError) throw err;
      throw connectionFailed(
        ConnectionErrorCodes.connectionFailed,
        `could not start signing in to ${settings.title}`,
        err,
        provider.secretsSeen(),
        true,
      );
    }
    if (result === 'AUTHORIZED') return { status: 'connected' };
    if (!provider.authorizationUrl) {
      throw new HandoffError(ConnectionErrorCodes.connectionFailed, `signing in to ${settings.title} gave no URL`);
    }
    return { status: 'needs_authorization', authorizationUrl: provider.authorizationUrl };
  }

  /**
   * Completes a sign-in that came back with `code`: validates and consumes `state` (once;
   * unknown, used or expired states are {@link ConnectionErrorCodes.flowInvalid}), then
   * exchanges the code with the PKCE verifier saved for that state.
   */
  async complete(state: string, code: string): Promise<CompletedConnection> {
    if (!state || state.length > maxStateChars || !code || code.length > maxCodeChars) {
      throw new HandoffError(ConnectionErrorCodes.flowInvalid, 'this sign-in link is not valid');
    }
    const flow = await this.#options.store.takeFlow(state, this.#now());
    if (!flow) {
      throw new HandoffError(ConnectionErrorCodes.flowInvalid, 'this sign-in link is unknown, expired or already used');
    }
    const settings = this.#connectors.get(flow.connector);
    if (!settings) {
      throw new HandoffError(
        ConnectionErrorCodes.flowInvalid,
        `the connector ${flow.connector} is no longer configured`,
      );
    }
    if (flow.codeVerifier === undefined) {
      throw new HandoffError(
        ConnectionErrorCodes.flowInvalid,
        'this sign-in link expired; start again from the thread',
      );
    }
    const provider = this.#provider(settings, flow.user, 'complete', { codeVerifier: flow.codeVerifier });
    try {
      await auth(provider, { ...this.#authOptions(settings), authorizationCode: code });
    } catch (err) {
      if (err instanceof HandoffError) throw err;
      throw connectionFailed(
        ConnectionErrorCodes.connectionFailed,
        `${settings.title} did not accept the sign-in`,
        err,
        [...provider.secretsSeen(), code, state],
      );
    }
    return { user: flow.user, connector: flow.connector, title: settings.title, context: flow.context };
  }

  /**
   * Uses up the state of a sign-in the authorization server refused (`error=` on the
   * callback), so the link cannot be replayed. Undefined when the state is not valid.
   */
  async abandon(state: string): Promise<AbandonedConnection | undefined> {
    if (!state || state.length > maxStateChars) return undefined;
    const flow = await this.#options.store.takeFlow(state, this.#now());
    if (!flow) return undefined;
    return { user: flow.user, connector: flow.connector, title: this.title(flow.connector), context: flow.context };
  }

  /** A person's connections (no token material), by connector name. */
  async list(user: string): Promise<ConnectionSummary[]> {
    checkUser(user);
    const stored = await this.#options.store.list(user);
    return stored.map((s) => ({ ...s, title: this.title(s.connector) }));
  }

  /**
   * Disconnects: deletes everything stored locally first, then asks the server to revoke
   * the refresh and access tokens when its metadata advertises a revocation endpoint.
   * Never throws for the remote part: the result says how it went.
   */
  async revoke(user: string, connector: string): Promise<RevokeResult> {
    checkUser(user);
    const { store } = this.#options;
    let tokens: OAuthTokens | undefined;
    let client: OAuthClientInformationMixed | undefined;
    let discovery: OAuthDiscoveryState | undefined;
    const settings = this.#connectors.get(connector);
    try {
      tokens = (await store.getTokens(user, connector))?.tokens;
    } catch {
      tokens = undefined;
    }
    const registered = await store.getClient(user, connector).catch(() => undefined);
    if (settings) {
      try {
        client = await this.#provider(settings, user, 'connect', {}).clientInformation();
      } catch {
        client = undefined;
      }
      discovery = await store.getDiscovery(user, connector);
    }
    const removedLocally = tokens !== undefined || registered !== undefined;
    await store.delete(user, connector);
    if (!tokens) return { removedLocally, remote: 'not_connected' };
    if (!settings) return { removedLocally, remote: 'failed', problem: `${connector} is no longer configured` };
    const secrets = [tokens.access_token, tokens.refresh_token ?? '', client?.client_secret ?? ''];
    try {
      let metadata = discovery?.authorizationServerMetadata;
      if (!metadata) {
        const info = await discoverOAuthServerInfo(settings.url, { fetchFn: sdkCompatibleFetch(this.#options.fetch) });
        metadata = info.authorizationServerMetadata;
      }
      // OpenID Connect discovery documents may carry these too; the SDK's type for them does not name them.
      const advertised = metadata as
        | { revocation_endpoint?: unknown; revocation_endpoint_auth_methods_supported?: unknown }
        | undefined;
      const endpoint = typeof advertised?.revocation_endpoint === 'string' ? advertised.revocation_endpoint : undefined;
      if (!metadata || !endpoint) return { removedLocally, remote: 'not_supported' };
      if (!client) return { removedLocally, remote: 'failed', problem: 'no client registration to revoke with' };
      const revocationMethods = advertised?.revocation_endpoint_auth_methods_supported;
      const methods = Array.isArray(revocationMethods)
        ? revocationMethods.filter((m): m is string => typeof m === 'string')
        : metadata.token_endpoint_auth_methods_supported;
      const method = selectClientAuthMethod(client, methods ?? []);
      // The refresh token first: revoking it ends the whole grant on most servers.
      const all = [
        ...(tokens.refresh_token ? [{ token: tokens.refresh_token, hint: 'refresh_token' }] : []),
        { token: tokens.access_token, hint: 'access_token' },
      ];
      for (const { token, hint } of all) {
        const problem = await this.#revokeOne(endpoint, token, hint, client, method);
        if (problem) return { removedLocally, remote: 'failed', problem: describeFailure(new Error(problem), secrets) };
      }
      return { removedLocally, remote: 'revoked' };
    } catch (err) {
      return { removedLocally, remote: 'failed', problem: describeFailure(err, secrets) };
    }
  }

  /**
   * The provider to pass as `authProvider` to a `StreamableHTTPClientTransport` for this
   * person. A transport built this way MUST also get `fetch: sdkCompatibleFetch()` in a
   * process that serves HTTP with Hono ({@link transportFor} does both). Fails at once with {@link ConnectionErrorCodes.connectionRequired}
   * when there is nothing usable (no tokens, or an expired access token and no refresh
   * token); later, mid-run, the provider fails the same way when the server refuses
   * the refresh.
   */
  async providerFor(connector: string, user: string): Promise<UserOAuthProvider> {
    const settings = this.#settings(connector);
    checkUser(user);
    let record: StoredTokens | undefined;
    try {
      record = await this.#options.store.getTokens(user, connector);
    } catch {
      throw connectionRequired(connector, settings.title, 'the stored connection is unreadable');
    }
    if (!record) throw connectionRequired(connector, settings.title, 'not connected');
    const expired = record.expiresAt !== undefined && Date.parse(record.expiresAt) <= this.#now().getTime();
    if (expired && !record.tokens.refresh_token) {
      throw connectionRequired(connector, settings.title, 'the connection has expired');
    }
    return this.#provider(settings, user, 'use', {});
  }

  /**
   * A Streamable HTTP transport to the connector that acts as this person: the
   * {@link providerFor} provider as `authProvider`, and a fetch the SDK's OAuth error
   * handling works with ({@link sdkCompatibleFetch}). `options` are passed through.
   * Fails like {@link providerFor} when there is no usable connection.
   */
  async transportFor(
    connector: string,
    user: string,
    options: Omit<StreamableHTTPClientTransportOptions, 'authProvider'> = {},
  ): Promise<StreamableHTTPClientTransport> {
    return (await this.sessionFor(connector, user, options)).transport;
  }

  /**
   * {@link transportFor}, with the secrets its provider has handled (the person's tokens),
   * so whatever the service returns can be scrubbed of them before the model sees it.
   */
  async sessionFor(
    connector: string,
    user: string,
    options: Omit<StreamableHTTPClientTransportOptions, 'authProvider'> = {},
  ): Promise<{ transport: StreamableHTTPClientTransport; secrets: () => string[] }> {
    const settings = this.#settings(connector);
    const provider = await this.providerFor(connector, user);
    const transport = new StreamableHTTPClientTransport(new URL(settings.url), {
      ...options,
      authProvider: provider,
      fetch: sdkCompatibleFetch(options.fetch ?? this.#options.fetch),
    });
    return { transport, secrets: () => provider.secretsSeen() };
  }

  /**
   * What an error from using a connector as a person means, as a HandoffError the runner
   * can act on: {@link ConnectionErrorCodes.connectionRequired} (ask the person to connect),
   * {@link ConnectionErrorCodes.connectionUnavailable} (retryable), or `err` unchanged when
   * it is not about the connection. The SDK's OAuth errors reach the MCP client's caller
   * as they are; this names them, in words that carry no token.
   */
  toConnectionError(connector: string, err: unknown): unknown {
    if (err instanceof HandoffError) return err;
    const title = this.title(connector);
    if (err instanceof UnauthorizedError)
      return connectionRequired(connector, title, 'the service asked for a new sign-in');
    if (!(err instanceof OAuthError)) return err;
    if (
      err instanceof InvalidGrantError ||
      err instanceof InvalidClientError ||
      err instanceof UnauthorizedClientError ||
      err instanceof AccessDeniedError ||
      err instanceof InvalidTokenError
    ) {
      return connectionRequired(connector, title, `the service refused the stored connection (${err.errorCode})`);
    }
    const transient =
      err instanceof ServerError || err instanceof TemporarilyUnavailableError || err instanceof TooManyRequestsError;
    return connectionFailed(
      transient ? ConnectionErrorCodes.connectionUnavailable : ConnectionErrorCodes.connectionFailed,
      `could not renew the ${title} connection`,
      err,
      [],
      transient,
    );
  }

  async #revokeOne(
    endpoint: string,
    token: string,
    hint: string,
    client: OAuthClientInformationMixed,
    method: string,
  ): Promise<string | undefined> {
    const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' });
    const body = new URLSearchParams({ token, token_type_hint: hint });
    if (method === 'client_secret_basic' && client.client_secret !== undefined) {
      const pair = `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`;
      headers.set('authorization', `Basic ${Buffer.from(pair).toString('base64')}`);
    } else {
      body.set('client_id', client.client_id);
      if (method === 'client_secret_post' && client.client_secret !== undefined)
        body.set('client_secret', client.client_secret);
    }
    const res = await (this.#options.fetch ?? fetch)(endpoint, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(this.#options.revocationTimeoutMs ?? 10_000),
    });
    if (res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    // Only the OAuth error code is kept: a body is the server's to log.
    const text = await res.text().catch(() => '');
    let code: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed.error === 'string' && /^[\w.-]{1,64}$/.test(parsed.error)) code = parsed.error;
    } catch {
      code = undefined;
    }
    return `the revocation endpoint answered HTTP ${res.status}${code ? ` ${code}` : ''}`;
  }

  #settings(connector: string): OAuthConnectorSettings {
    const settings = this.#connectors.get(connector);
    if (!settings) {
      throw new HandoffError(ErrorCodes.invalidInput, `no per-user connector is named ${JSON.stringify(connector)}`);
    }
    return settings;
  }

  #provider(
    settings: OAuthConnectorSettings,
    user: string,
    mode: 'connect' | 'complete' | 'use',
    extra: { context?: ConnectionContext; codeVerifier?: string },
  ): UserOAuthProvider {
    const { store, publicUrl, flowTtlMs, env, now } = this.#options;
    return new UserOAuthProvider({
      store,
      connector: settings,
      user,
      publicUrl,
      mode,
      flowTtlMs: flowTtlMs ?? defaultFlowTtlMs,
      ...extra,
      ...(env ? { env } : {}),
      ...(now ? { now } : {}),
    });
  }

  #authOptions(settings: OAuthConnectorSettings): Parameters<typeof auth>[1] {
    return {
      serverUrl: settings.url,
      ...(settings.scope ? { scope: settings.scope } : {}),
      fetchFn: sdkCompatibleFetch(this.#options.fetch),
    };
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }
}

function checkUser(user: string): void {
  if (typeof user !== 'string' || user.length === 0 || user.length > 200) {
    throw new HandoffError(ErrorCodes.invalidInput, 'a user id is 1–200 characters');
  }
}
