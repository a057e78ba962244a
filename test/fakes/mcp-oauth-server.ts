/**
 * A local remote MCP server that needs OAuth, built from the SDK's own server pieces so
 * the real client SDK talks to it exactly as it would to a hosted one:
 *
 * - `/mcp`: Streamable HTTP (stateless), behind `requireBearerAuth`; tools `whoami`
 *   (read-only: the user the token belongs to) and `create_note` (no annotations).
 * - an authorization server on the same origin (`mcpAuthRouter`) with an in-memory
 *   provider: dynamic client registration, authorization code with PKCE S256, rotating
 *   refresh tokens, revocation, short access-token lifetimes on demand.
 * - protected resource metadata at `/.well-known/oauth-protected-resource/mcp`.
 *
 * `/authorize` simulates the person consenting: it signs in as the user named by the
 * `x-fake-user` request header (a browser's session), or `consentAs`, and redirects to
 * the client's redirect_uri with code and state. Listens on 127.0.0.1 only.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { OAuthRegisteredClientsStore } from '@modelcontextprotocol/sdk/server/auth/clients.js';
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import type { AuthorizationParams, OAuthServerProvider } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import {
  createOAuthMetadata,
  getOAuthProtectedResourceMetadataUrl,
  mcpAuthRouter,
} from '@modelcontextprotocol/sdk/server/auth/router.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type {
  OAuthClientInformationFull,
  OAuthTokenRevocationRequest,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import type { Express, Response } from 'express';
import { z } from 'zod';

export interface FakeMcpOAuthServerOptions {
  /** Who `/authorize` signs in as when the request has no `x-fake-user` header (default `alice`). */
  consentAs?: string;
  /** Lifetime of new access tokens, in seconds (default 3600). */
  accessTokenTtlSeconds?: number;
  /** Advertised instead of `['S256']` as `code_challenge_methods_supported` (`null`: the field is left out). */
  codeChallengeMethods?: string[] | null;
  /** Whether `/revoke` exists and is advertised (default true). */
  revocation?: boolean;
  /**
   * A careless server: its error descriptions quote the code or refresh token it refused,
   * so tests can check that Handoff never passes them on.
   */
  leakyErrors?: boolean;
}

/** A grant the fake issued: one per code exchange, followed by its refreshes. */
interface Grant {
  id: string;
  user: string;
  clientId: string;
  scopes: string[];
  resource?: URL;
}

interface IssuedAccessToken {
  grant: Grant;
  expiresAtMs: number;
}

interface PendingCode {
  clientId: string;
  user: string;
  codeChallenge: string;
  redirectUri: string;
  scopes: string[];
  resource?: URL;
  expiresAtMs: number;
}

/** What reached the token endpoint, for assertions. */
export interface RecordedGrant {
  grantType: 'authorization_code' | 'refresh_token';
  clientId: string;
  user: string;
}

/** A note `create_note` stored, with who created it. */
export interface RecordedNote {
  user: string;
  text: string;
}

class InMemoryAuthorizationServer implements OAuthServerProvider {
  readonly clients = new Map<string, OAuthClientInformationFull>();
  readonly codes = new Map<string, PendingCode>();
  readonly accessTokens = new Map<string, IssuedAccessToken>();
  readonly refreshTokens = new Map<string, Grant>();
  readonly grants: RecordedGrant[] = [];
  readonly revoked: string[] = [];
  /** Every token and client secret ever issued, for scanning what Handoff shows and stores. */
  readonly issued: string[] = [];
  revokeToken?: (client: OAuthClientInformationFull, request: OAuthTokenRevocationRequest) => Promise<void>;

  constructor(private readonly fake: FakeMcpOAuthServer) {
    if (fake.options.revocation !== false) this.revokeToken = (client, request) => this.#revoke(client, request);
  }

  get clientsStore(): OAuthRegisteredClientsStore {
    return {
      getClient: (id) => this.clients.get(id),
      registerClient: (client) => {
        const full = client as OAuthClientInformationFull;
        this.clients.set(full.client_id, full);
        if (full.client_secret) this.issued.push(full.client_secret);
        return full;
      },
    };
  }

  async authorize(client: OAuthClientInformationFull, params: AuthorizationParams, res: Response): Promise<void> {
    const target = new URL(params.redirectUri);
    if (this.fake.decline) {
      target.searchParams.set('error', 'access_denied');
      target.searchParams.set('error_description', 'the user declined');
    } else {
      const code = token('code');
      this.codes.set(code, {
        clientId: client.client_id,
        user: (res.locals.fakeUser as string | undefined) ?? this.fake.consentAs,
        codeChallenge: params.codeChallenge,
        redirectUri: params.redirectUri,
        scopes: params.scopes ?? [],
        ...(params.resource ? { resource: params.resource } : {}),
        expiresAtMs: Date.now() + 60_000,
      });
      target.searchParams.set('code', code);
    }
    if (params.state !== undefined) target.searchParams.set('state', params.state);
    res.redirect(302, target.href);
  }

  async challengeForAuthorizationCode(client: OAuthClientInformationFull, code: string): Promise<string> {
    const pending = this.codes.get(code);
    if (!pending || pending.clientId !== client.client_id)
      throw new InvalidGrantError(this.#leaky(`unknown authorization code`, code));
    return pending.codeChallenge;
  }

  async exchangeAuthorizationCode(
    client: OAuthClientInformationFull,
    code: string,
    _codeVerifier?: string,
    redirectUri?: string,
    resource?: URL,
  ): Promise<OAuthTokens> {
    const pending = this.codes.get(code);
    // Single use, whatever happens next.
    this.codes.delete(code);
    if (!pending || pending.clientId !== client.client_id || pending.expiresAtMs < Date.now())
      throw new InvalidGrantError(this.#leaky('unknown or expired authorization code', code));
    if (redirectUri !== undefined && redirectUri !== pending.redirectUri)
      throw new InvalidGrantError('redirect_uri differs from the authorization request');
    const grant: Grant = {
      id: token('grant'),
      user: pending.user,
      clientId: client.client_id,
      scopes: pending.scopes,
      ...((resource ?? pending.resource) ? { resource: resource ?? pending.resource } : {}),
    };
    this.grants.push({ grantType: 'authorization_code', clientId: client.client_id, user: grant.user });
    return this.#issue(grant);
  }

  async exchangeRefreshToken(client: OAuthClientInformationFull, refreshToken: string): Promise<OAuthTokens> {
    const grant = this.refreshTokens.get(refreshToken);
    if (!grant || grant.clientId !== client.client_id)
      throw new InvalidGrantError(this.#leaky('unknown refresh token', refreshToken));
    // Rotation: the old refresh token is spent.
    this.refreshTokens.delete(refreshToken);
    this.grants.push({ grantType: 'refresh_token', clientId: client.client_id, user: grant.user });
    return this.#issue(grant);
  }

  async verifyAccessToken(accessToken: string): Promise<AuthInfo> {
    const issued = this.accessTokens.get(accessToken);
    if (!issued) throw new InvalidTokenError('unknown or revoked token');
    return {
      token: accessToken,
      clientId: issued.grant.clientId,
      scopes: issued.grant.scopes,
      expiresAt: Math.floor(issued.expiresAtMs / 1000),
      ...(issued.grant.resource ? { resource: issued.grant.resource } : {}),
      extra: { user: issued.grant.user },
    };
  }

  async #revoke(client: OAuthClientInformationFull, request: OAuthTokenRevocationRequest): Promise<void> {
    const grant = this.refreshTokens.get(request.token) ?? this.accessTokens.get(request.token)?.grant;
    // RFC 7009: an unknown token, or another client's, is answered 200 and left alone.
    if (!grant || grant.clientId !== client.client_id) return;
    this.revoked.push(request.token);
    if (this.refreshTokens.has(request.token)) {
      // Revoking a refresh token ends its whole grant.
      for (const [t, g] of this.refreshTokens) if (g.id === grant.id) this.refreshTokens.delete(t);
      for (const [t, a] of this.accessTokens) if (a.grant.id === grant.id) this.accessTokens.delete(t);
    } else {
      this.accessTokens.delete(request.token);
    }
  }

  #leaky(message: string, secret: string): string {
    return this.fake.options.leakyErrors ? `${message} ${secret}` : message;
  }

  #issue(grant: Grant): OAuthTokens {
    const access = token('at');
    const refresh = token('rt');
    const ttl = this.fake.accessTokenTtlSeconds;
    this.accessTokens.set(access, { grant, expiresAtMs: Date.now() + ttl * 1000 });
    this.refreshTokens.set(refresh, grant);
    this.issued.push(access, refresh);
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: ttl,
      refresh_token: refresh,
      ...(grant.scopes.length ? { scope: grant.scopes.join(' ') } : {}),
    };
  }
}

/** The fake; {@link startMcpOAuthServer} makes and starts one. */
export class FakeMcpOAuthServer {
  readonly options: FakeMcpOAuthServerOptions;
  /** Who `/authorize` signs in as when the request names nobody. */
  consentAs: string;
  /** Lifetime of access tokens issued from now on, in seconds. */
  accessTokenTtlSeconds: number;
  /** When true, `/authorize` redirects back with `error=access_denied` (the person declined). */
  decline = false;
  /** When true, `/token` fails with `tokenEndpointStatus` (the service is having a bad day). */
  tokenEndpointDown = false;
  /** 503 (`temporarily_unavailable`) or 500 (`server_error`). */
  tokenEndpointStatus: 500 | 503 = 503;
  /** When true, `/revoke` answers 503, quoting the token it was sent (a careless server). */
  revocationDown = false;
  /** Every note `create_note` stored. */
  readonly notes: RecordedNote[] = [];
  /** Every request, as `METHOD /path` (no query), in order. */
  readonly requests: string[] = [];

  readonly #auth: InMemoryAuthorizationServer;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #app: Express | undefined;
  #url: string | undefined;

  constructor(options: FakeMcpOAuthServerOptions = {}) {
    this.options = options;
    this.consentAs = options.consentAs ?? 'alice';
    this.accessTokenTtlSeconds = options.accessTokenTtlSeconds ?? 3600;
    this.#auth = new InMemoryAuthorizationServer(this);
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    if (!this.#url) throw new Error('the fake MCP OAuth server is not started');
    return this.#url;
  }

  /** The MCP endpoint, `<url>/mcp`. */
  get mcpUrl(): string {
    return `${this.url}/mcp`;
  }

  /** What reached the token endpoint, in order. */
  get grants(): readonly RecordedGrant[] {
    return this.#auth.grants;
  }

  /** Tokens revoked through `/revoke`. */
  get revoked(): readonly string[] {
    return this.#auth.revoked;
  }

  /** Every token and client secret the fake issued, including spent and revoked ones. */
  get issued(): readonly string[] {
    return this.#auth.issued;
  }

  /** Registers a client out of band, as an administrator would (for configured clientId/clientSecret). */
  registerClient(redirectUri: string): { clientId: string; clientSecret: string } {
    const clientId = token('client');
    const clientSecret = token('secret');
    this.#auth.clients.set(clientId, {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'client_secret_post',
    });
    this.#auth.issued.push(clientSecret);
    return { clientId, clientSecret };
  }

  /** Clients registered through `/register`. */
  get registeredClients(): OAuthClientInformationFull[] {
    return [...this.#auth.clients.values()];
  }

  /** The tokens the server would still accept for `user`. */
  liveTokens(user: string): { access: string[]; refresh: string[] } {
    const now = Date.now();
    return {
      access: [...this.#auth.accessTokens]
        .filter(([, a]) => a.grant.user === user && a.expiresAtMs > now)
        .map(([t]) => t),
      refresh: [...this.#auth.refreshTokens].filter(([, g]) => g.user === user).map(([t]) => t),
    };
  }

  /** The person removed Handoff's access at the service: every token of theirs stops working. */
  revokeAllFor(user: string): void {
    for (const [t, g] of this.#auth.refreshTokens) if (g.user === user) this.#auth.refreshTokens.delete(t);
    for (const [t, a] of this.#auth.accessTokens) if (a.grant.user === user) this.#auth.accessTokens.delete(t);
  }

  /** Makes every access token issued so far expired (refresh tokens stay valid). */
  expireAccessTokens(): void {
    for (const issued of this.#auth.accessTokens.values()) issued.expiresAtMs = Date.now() - 1000;
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      if (this.#app) this.#app(req, res);
      else res.writeHead(503).end();
    });
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.#app = this.#buildApp();
    return this;
  }

  /** Stops listening and closes every socket. Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await closed;
  }

  #buildApp(): Express {
    const issuerUrl = new URL(`${this.url}/`);
    const mcpUrl = new URL(this.mcpUrl);
    const app = createMcpExpressApp({ host: '127.0.0.1' });
    app.use((req, _res, next) => {
      this.requests.push(`${req.method} ${req.path}`);
      next();
    });
    app.use('/token', (_req, res, next) => {
      if (!this.tokenEndpointDown) return next();
      const error = this.tokenEndpointStatus === 503 ? 'temporarily_unavailable' : 'server_error';
      res.status(this.tokenEndpointStatus).json({ error, error_description: 'try again later' });
    });
    app.use('/revoke', (req, res, next) => {
      if (!this.revocationDown) return next();
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        const token = new URLSearchParams(body).get('token') ?? '';
        res.status(503).json({ error: 'temporarily_unavailable', error_description: `could not revoke ${token}` });
      });
    });
    // The browser's session: who is signed in at the authorization server.
    app.use('/authorize', (req, res, next) => {
      const user = req.get('x-fake-user');
      if (user) res.locals.fakeUser = user;
      next();
    });
    if (this.options.codeChallengeMethods !== undefined) {
      const metadata: Record<string, unknown> = { ...createOAuthMetadata({ provider: this.#auth, issuerUrl }) };
      if (this.options.codeChallengeMethods === null) delete metadata.code_challenge_methods_supported;
      else metadata.code_challenge_methods_supported = this.options.codeChallengeMethods;
      app.get('/.well-known/oauth-authorization-server', (_req, res) => {
        res.json(metadata);
      });
    }
    const noRateLimit = { rateLimit: false as const };
    app.use(
      mcpAuthRouter({
        provider: this.#auth,
        issuerUrl,
        resourceServerUrl: mcpUrl,
        resourceName: 'Fake Notes',
        authorizationOptions: noRateLimit,
        tokenOptions: noRateLimit,
        clientRegistrationOptions: noRateLimit,
        revocationOptions: noRateLimit,
      }),
    );
    const bearer = requireBearerAuth({
      verifier: this.#auth,
      resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(mcpUrl),
      expectedResource: mcpUrl,
    });
    app.post('/mcp', bearer, async (req, res) => {
      const user = String(req.auth?.extra?.user ?? '');
      const server = this.#mcpServer(user);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    app.all('/mcp', bearer, (_req, res) => {
      res.status(405).set('allow', 'POST').json({ error: 'stateless server: POST only' });
    });
    return app;
  }

  #mcpServer(user: string): McpServer {
    const server = new McpServer({ name: 'fake-notes', version: '1.0.0' });
    server.registerTool(
      'whoami',
      { description: 'Who the token belongs to.', annotations: { readOnlyHint: true } },
      async () => ({ content: [{ type: 'text', text: user }] }),
    );
    server.registerTool(
      'echo_token',
      { description: 'Says which bearer token the request carried.', annotations: { readOnlyHint: true } },
      async (extra) => ({ content: [{ type: 'text', text: `your token is ${extra.authInfo?.token ?? 'none'}` }] }),
    );
    server.registerTool(
      'create_note',
      { description: 'Stores a note as the signed-in user.', inputSchema: { text: z.string().max(1000) } },
      async ({ text }) => {
        this.notes.push({ user, text });
        return { content: [{ type: 'text', text: `noted for ${user}` }] };
      },
    );
    return server;
  }
}

/** Starts a fake on 127.0.0.1 (port 0); `close()` it in afterAll. */
export async function startMcpOAuthServer(options: FakeMcpOAuthServerOptions = {}): Promise<FakeMcpOAuthServer> {
  return new FakeMcpOAuthServer(options).start();
}

function token(kind: string): string {
  return `${kind}_${randomBytes(24).toString('hex')}`;
}
