import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { type ConnectorConfig, type HttpConnectorSpec, resolveValue } from '../../../config/index.ts';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';
import { ConnectionErrorCodes, connectionRequired } from './errors.ts';
import type { ConnectionContext, StoredTokens, TokenStore } from './token-store.ts';

/** Where authorization servers send people back to: `<publicUrl>` + this. */
export const callbackPath = '/connectors/oauth/callback';

/** How long a Connect link works by default: 10 minutes. */
export const defaultFlowTtlMs = 10 * 60 * 1000;

/**
 * What a provider is for:
 * - `connect`: start a sign-in; the authorization URL is recorded, not followed.
 * - `complete`: exchange the code of a sign-in that came back.
 * - `use`: act as the person (the runner). Anything that would need the person
 *   (no tokens, refresh refused) fails with {@link ConnectionErrorCodes.connectionRequired}.
 */
export type ProviderMode = 'connect' | 'complete' | 'use';

/** The OAuth settings of a per-user connector, read from its config. */
export interface OAuthConnectorSettings {
  name: string;
  /** A human name: the connector's `title`, or its name. */
  title: string;
  /** The MCP server's URL. */
  url: string;
  clientId?: string;
  /** A reference (`env:NAME`, `file:/path`) or literal; resolved only when used. */
  clientSecret?: string;
  scope?: string;
}

/** The OAuth settings of `connector`; throws when it is not a per-user (OAuth) HTTP connector. */
export function oauthSettings(connector: ConnectorConfig): OAuthConnectorSettings {
  const spec = connector.spec as HttpConnectorSpec;
  if (connector.kind !== 'http' || !connector.perUser || !('url' in spec) || spec.auth === undefined) {
    throw new HandoffError(
      ErrorCodes.invalidInput,
      `the connector ${connector.name} does not use per-user sign-in (it needs url and auth: oauth)`,
    );
  }
  const auth = spec.auth === 'oauth' ? {} : spec.auth;
  return {
    name: connector.name,
    title: spec.title ?? connector.name,
    url: spec.url,
    ...(auth.clientId ? { clientId: auth.clientId } : {}),
    ...(auth.clientSecret ? { clientSecret: auth.clientSecret } : {}),
    ...(auth.scope ? { scope: auth.scope } : {}),
  };
}

export interface UserOAuthProviderOptions {
  store: TokenStore;
  connector: OAuthConnectorSettings;
  /** The person, surface-qualified (`slack:U123`). */
  user: string;
  /** Base URL people reach the bot at (`HANDOFF_PUBLIC_URL`). */
  publicUrl: string;
  mode: ProviderMode;
  /** `connect`: handed back when the sign-in completes. */
  context?: ConnectionContext;
  /** `connect`: how long the sign-in link works (default 10 minutes). */
  flowTtlMs?: number;
  /** `complete`: the PKCE verifier saved when the sign-in began. */
  codeVerifier?: string;
  /** Where `env:` references of a configured client secret are read (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

/**
 * The SDK's {@link OAuthClientProvider} for one person and one connector, backed by the
 * {@link TokenStore}. Pass it as `authProvider` to `StreamableHTTPClientTransport` (mode
 * `use`): the SDK sends the stored access token, and on a 401 refreshes it through this
 * provider. A configured `clientId`/`clientSecret` is used instead of dynamic registration.
 */
export class UserOAuthProvider implements OAuthClientProvider {
  /** `connect`: the URL the person must open, once the SDK has built it. */
  authorizationUrl: string | undefined;

  readonly #options: UserOAuthProviderOptions;
  readonly #secrets = new Set<string>();
  readonly #clientSecret: string | undefined;
  #state: string | undefined;
  #loadedVersion: string | undefined;
  #discovery: OAuthDiscoveryState | undefined;

  constructor(options: UserOAuthProviderOptions) {
    this.#options = options;
    const ref = options.connector.clientSecret;
    this.#clientSecret = ref === undefined ? undefined : resolveValue(ref, options.env);
    if (this.#clientSecret) this.#secrets.add(this.#clientSecret);
    if (options.codeVerifier) this.#secrets.add(options.codeVerifier);
  }

  get redirectUrl(): string {
    return `${this.#options.publicUrl.replace(/\/+$/, '')}${callbackPath}`;
  }

  get clientMetadata(): OAuthClientMetadata {
    const { connector } = this.#options;
    return {
      client_name: 'Handoff',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: tokenEndpointAuthMethod(
        this.#clientSecret !== undefined,
        this.#discovery?.authorizationServerMetadata?.token_endpoint_auth_methods_supported,
      ),
      ...(connector.scope ? { scope: connector.scope } : {}),
    };
  }

  /** The `state` of the sign-in this provider started (mode `connect`). */
  get flowState(): string | undefined {
    return this.#state;
  }

  /**
   * Every secret this provider has handled (tokens, client secret, verifier, state), so
   * error text can be scrubbed of them before it is logged or shown.
   */
  secretsSeen(): string[] {
    return [...this.#secrets];
  }

  async state(): Promise<string> {
    const { mode, store, user, connector, context } = this.#options;
    if (mode === 'use') throw await this.#needsPerson();
    if (mode === 'complete') throw flowInvalid('the sign-in has to start again');
    this.#state = await store.createFlow(
      { user, connector: connector.name, ...(context ? { context } : {}) },
      this.#flowTtlMs(),
      this.#now(),
    );
    this.#secrets.add(this.#state);
    return this.#state;
  }

  async clientInformation(): Promise<OAuthClientInformationMixed | undefined> {
    const { connector, store, user, mode } = this.#options;
    if (connector.clientId) {
      return {
        client_id: connector.clientId,
        ...(this.#clientSecret !== undefined ? { client_secret: this.#clientSecret } : {}),
      };
    }
    let info: OAuthClientInformationMixed | undefined;
    try {
      info = await store.getClient(user, connector.name);
    } catch {
      info = undefined;
    }
    // Registering a new client is part of connecting, which needs the person.
    if (!info && mode === 'use') throw connectionRequired(connector.name, connector.title, 'not connected');
    if (info?.client_secret) this.#secrets.add(info.client_secret);
    return info;
  }

  async saveClientInformation(info: OAuthClientInformationMixed): Promise<void> {
    const { connector, store, user } = this.#options;
    // Configured credentials live in the config, not in Redis.
    if (connector.clientId) return;
    if (info.client_secret) this.#secrets.add(info.client_secret);
    await store.saveClient(user, connector.name, info);
  }

  async tokens(): Promise<OAuthTokens | undefined> {
    const { mode, connector } = this.#options;
    if (mode === 'complete') return undefined;
    let record: StoredTokens | undefined;
    try {
      record = await this.#options.store.getTokens(this.#options.user, connector.name);
    } catch {
      if (mode === 'use')
        throw connectionRequired(connector.name, connector.title, 'the stored connection is unreadable');
      return undefined;
    }
    if (!record) {
      if (mode === 'use') throw connectionRequired(connector.name, connector.title, 'not connected');
      return undefined;
    }
    this.#remember(record);
    return record.tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    const { store, user, connector, mode } = this.#options;
    this.#secrets.add(tokens.access_token);
    if (tokens.refresh_token) this.#secrets.add(tokens.refresh_token);
    let previous: StoredTokens | undefined;
    if (mode !== 'complete') {
      try {
        previous = await store.getTokens(user, connector.name);
      } catch {
        previous = undefined;
      }
    }
    const now = this.#now();
    const stored = await store.saveTokens(user, connector.name, {
      tokens,
      connectedAt: previous?.connectedAt ?? now.toISOString(),
      savedAt: now.toISOString(),
      ...(tokens.expires_in !== undefined
        ? { expiresAt: new Date(now.getTime() + tokens.expires_in * 1000).toISOString() }
        : {}),
    });
    this.#loadedVersion = stored.version;
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    if (this.#options.mode !== 'connect') throw await this.#needsPerson();
    this.authorizationUrl = authorizationUrl.href;
  }

  async saveCodeVerifier(codeVerifier: string): Promise<void> {
    const { mode, store, user, connector } = this.#options;
    if (mode === 'use') throw await this.#needsPerson();
    if (mode === 'complete' || this.#state === undefined) throw flowInvalid('the sign-in has to start again');
    this.#secrets.add(codeVerifier);
    await store.saveVerifier(this.#state, user, connector.name, codeVerifier, this.#flowTtlMs());
  }

  async codeVerifier(): Promise<string> {
    const verifier = this.#options.codeVerifier;
    if (verifier === undefined) throw flowInvalid('the sign-in was not started here, or took too long');
    return verifier;
  }

  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    const { store, user, connector } = this.#options;
    if (scope === 'all' || scope === 'tokens') {
      // Only tokens this provider read: a refused refresh says nothing about tokens saved since.
      if (this.#loadedVersion !== undefined) await store.deleteTokens(user, connector.name, this.#loadedVersion);
    }
    if ((scope === 'all' || scope === 'client') && !connector.clientId) await store.deleteClient(user, connector.name);
    if ((scope === 'all' || scope === 'verifier') && this.#state !== undefined) await store.deleteVerifier(this.#state);
    if (scope === 'all' || scope === 'discovery') {
      this.#discovery = undefined;
      await store.deleteDiscovery(user, connector.name);
    }
  }

  async discoveryState(): Promise<OAuthDiscoveryState | undefined> {
    this.#discovery = await this.#options.store.getDiscovery(this.#options.user, this.#options.connector.name);
    return this.#discovery;
  }

  /** Refuses an authorization server that does not promise PKCE with S256, before anything is sent to it. */
  async saveDiscoveryState(state: OAuthDiscoveryState): Promise<void> {
    const { connector, store, user } = this.#options;
    const metadata = state.authorizationServerMetadata;
    if (!metadata) {
      throw new HandoffError(
        ConnectionErrorCodes.serverUnsupported,
        `${connector.title}'s authorization server publishes no metadata, so its PKCE support cannot be checked; Handoff does not connect to it`,
      );
    }
    if (!metadata.code_challenge_methods_supported?.includes('S256')) {
      throw new HandoffError(
        ConnectionErrorCodes.serverUnsupported,
        `${connector.title}'s authorization server does not support PKCE with S256; Handoff does not connect to it`,
      );
    }
    this.#discovery = state;
    await store.saveDiscovery(user, connector.name, state);
  }

  /**
   * Mode `use` reached a step that needs the person. When a refresh token is still stored,
   * the refresh failed for a passing reason (the SDK drops tokens the server refused).
   */
  async #needsPerson(): Promise<HandoffError> {
    const { store, user, connector } = this.#options;
    let record: StoredTokens | undefined;
    try {
      record = await store.getTokens(user, connector.name);
    } catch {
      record = undefined;
    }
    if (record?.tokens.refresh_token) {
      return new HandoffError(
        ConnectionErrorCodes.connectionUnavailable,
        `could not renew the ${connector.title} connection just now; try again shortly`,
        { retryable: true },
      );
    }
    return connectionRequired(connector.name, connector.title, 'the connection has expired');
  }

  #remember(record: StoredTokens): void {
    this.#loadedVersion = record.version;
    this.#secrets.add(record.tokens.access_token);
    if (record.tokens.refresh_token) this.#secrets.add(record.tokens.refresh_token);
  }

  #flowTtlMs(): number {
    return this.#options.flowTtlMs ?? defaultFlowTtlMs;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }
}

/**
 * The token endpoint authentication Handoff asks for: with a configured secret, Basic when
 * the server allows it; with dynamic registration, a public client (`none`, PKCE binds the
 * code) unless the server only takes secrets.
 */
function tokenEndpointAuthMethod(hasSecret: boolean, supported: string[] | undefined): string {
  if (hasSecret)
    return !supported || supported.includes('client_secret_basic') ? 'client_secret_basic' : 'client_secret_post';
  if (!supported || supported.includes('none')) return 'none';
  return supported.includes('client_secret_post') ? 'client_secret_post' : 'client_secret_basic';
}

function flowInvalid(why: string): HandoffError {
  return new HandoffError(ConnectionErrorCodes.flowInvalid, why);
}
