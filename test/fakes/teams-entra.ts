/**
 * A local fake of the two Microsoft token services a Teams bot deals with:
 *
 * - the Bot Framework channel's signing service: OpenID metadata and JWKS at
 *   `/v1/.well-known/…` (as login.botframework.com serves them), plus `channelToken()` to mint
 *   the bearer token the channel sends with each activity;
 * - Entra ID's v2 token endpoint, `POST /<tenant>/oauth2/v2.0/token`, answering the client
 *   credentials grant with tokens for the Bot Connector or Microsoft Graph, and Entra's
 *   error bodies (`invalid_client`, `invalid_scope`, …) when the request is wrong.
 *
 * Three RSA keys: "channel" (published in the JWKS, signs channel tokens), "tenant" (published
 * at `/<tenant>/discovery/v2.0/keys`, signs the bot's own tokens) and "rogue" (never published:
 * a forgery signed with it names the channel key's `kid`, so only the signature gives it away).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import {
  FAKE_TENANT_ID,
  FakeHttpServer,
  type InjectedFailure,
  readBody,
  sendJson,
  stableGuid,
  takeFailure,
} from './teams-common.ts';

/** The tenant Entra puts into tokens asked for at `/botframework.com/…` (multi-tenant bots). */
export const BOT_FRAMEWORK_TENANT_ID = 'd6d49420-f39b-4df7-a1dc-d59a935871db';
export const BOT_FRAMEWORK_SCOPE = 'https://api.botframework.com/.default';
export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
export const BOT_FRAMEWORK_AUDIENCE = 'https://api.botframework.com';
export const GRAPH_AUDIENCE = 'https://graph.microsoft.com';

export interface FakeEntraOptions {
  /** The bot's Microsoft App ID: the only client the token endpoint knows. */
  appId: string;
  /** Its client secret. */
  appPassword: string;
  /** The bot's home tenant (default `FAKE_TENANT_ID`); `botframework.com` is always accepted too. */
  tenantId?: string;
  /**
   * Application permissions put into Graph tokens as `roles` (default Files.Read.All and
   * GroupMember.Read.All); FakeGraph refuses a call whose permission is missing.
   */
  graphRoles?: string[];
}

export interface ChannelTokenOptions {
  /** Audience: the bot's app id. */
  appId: string;
  /** The `serviceurl` claim; MUST equal the activity's serviceUrl for a genuine token. */
  serviceUrl: string;
  /** Lifetime from now (default 3600). Negative: already expired that long ago. */
  expiresInSec?: number;
  /** Overrides `aud` (default `appId`). */
  audience?: string;
  /** Overrides `iss` (default `https://api.botframework.com`). */
  issuer?: string;
  /** `rogue` signs with an unpublished key under the channel key's `kid` (a forgery). */
  signWith?: 'channel' | 'rogue';
  omitServiceUrl?: boolean;
}

/** One request to the token endpoint. */
export interface TokenRequest {
  tenant: string;
  clientId: string;
  scope: string;
  grantType: string;
  status: number;
  /** Entra's `error` when refused (`invalid_client`, …). */
  error?: string;
  at: number;
}

/** Any request to the fake, for asserting on caching (how often metadata and keys were fetched). */
export interface EntraRequest {
  method: string;
  path: string;
  status: number;
  at: number;
}

interface KeyPair {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

async function newKeyPair(): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  // Microsoft's kids are base64url SHA-1 thumbprints (equal to x5t); the JWK thumbprint looks alike.
  const kid = (await calculateJwkThumbprint(publicJwk, 'sha256')).slice(0, 27);
  return { kid, privateKey, publicKey, publicJwk };
}

export class FakeEntra extends FakeHttpServer {
  readonly tokenRequests: TokenRequest[] = [];
  readonly requests: EntraRequest[] = [];
  readonly appId: string;
  readonly tenantId: string;
  readonly #appPassword: string;
  readonly #graphRoles: string[];
  #channel: KeyPair | undefined;
  /** Channel keys still published after a rotation (Microsoft publishes old and new for a while). */
  #previousChannelKeys: KeyPair[] = [];
  #tenant: KeyPair | undefined;
  #rogue: KeyPair | undefined;
  readonly #failures: Array<InjectedFailure & { remaining: number }> = [];

  constructor(options: FakeEntraOptions) {
    super('FakeEntra');
    this.appId = options.appId;
    this.#appPassword = options.appPassword;
    this.tenantId = options.tenantId ?? FAKE_TENANT_ID;
    this.#graphRoles = options.graphRoles ?? ['Files.Read.All', 'GroupMember.Read.All'];
  }

  /** Base URL, no trailing slash. */
  get url(): string {
    return this.origin;
  }

  /** For `TEAMS_OPENID_METADATA_URL`. */
  get openIdMetadataUrl(): string {
    return `${this.url}/v1/.well-known/openidconfiguration`;
  }

  get jwksUri(): string {
    return `${this.url}/v1/.well-known/keys`;
  }

  /** For `TEAMS_TOKEN_ENDPOINT`: the v2 token endpoint of `tenant` (default the bot's tenant). */
  tokenEndpoint(tenant: string = this.tenantId): string {
    return `${this.url}/${tenant}/oauth2/v2.0/token`;
  }

  /** The `kid` of the published channel key. */
  get channelKid(): string {
    return this.#keys().channel.kid;
  }

  override async start(): Promise<this> {
    if (this.#channel === undefined) {
      [this.#channel, this.#tenant, this.#rogue] = await Promise.all([newKeyPair(), newKeyPair(), newKeyPair()]);
    }
    return super.start();
  }

  /**
   * Replaces the channel signing key (a key rollover). With `keepOld` the old key stays in the
   * JWKS, as Microsoft does during a rollover; without it tokens signed before now stop verifying.
   */
  async rotateChannelKey(options: { keepOld?: boolean } = {}): Promise<void> {
    const old = this.#keys().channel;
    if (options.keepOld) this.#previousChannelKeys.push(old);
    this.#channel = await newKeyPair();
  }

  /** Successful token requests, by scope (`https://api.botframework.com/.default` …). */
  get tokenCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.tokenRequests) if (r.status === 200) counts[r.scope] = (counts[r.scope] ?? 0) + 1;
    return counts;
  }

  /** Tokens issued for `scope`. */
  tokenCount(scope: string): number {
    return this.tokenCounts[scope] ?? 0;
  }

  /** How many times the JWKS (`/v1/.well-known/keys`) was fetched. */
  get jwksFetches(): number {
    return this.requests.filter((r) => r.path === '/v1/.well-known/keys').length;
  }

  /** The next `n` token requests answer `status` (503 `temporarily_unavailable` by default). */
  failNext(n: number, status = 503, options: Omit<InjectedFailure, 'status'> = {}): void {
    this.#failures.push({ status, ...options, remaining: n });
  }

  /** A bearer token exactly like the one the Bot Framework channel sends with an activity. */
  async channelToken(opts: ChannelTokenOptions): Promise<string> {
    const keys = this.#keys();
    const now = Math.floor(Date.now() / 1000);
    const exp = now + (opts.expiresInSec ?? 3600);
    // An expired token was still issued before it expired.
    const iat = Math.min(now, exp - 60);
    const key = opts.signWith === 'rogue' ? keys.rogue : keys.channel;
    const claims: JWTPayload = opts.omitServiceUrl ? {} : { serviceurl: opts.serviceUrl };
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: keys.channel.kid, x5t: keys.channel.kid, typ: 'JWT' })
      .setIssuer(opts.issuer ?? 'https://api.botframework.com')
      .setAudience(opts.audience ?? opts.appId)
      .setIssuedAt(iat)
      .setNotBefore(iat - 300)
      .setExpirationTime(exp)
      .sign(key.privateKey);
  }

  /**
   * Whether `authorization` is `Bearer <token>` for a token this fake's token endpoint issued to
   * the configured app for `audience`, still valid. Used by the other fakes.
   */
  async verifyBotToken(authorization: string | undefined, audience: string): Promise<boolean> {
    return (await this.checkBotToken(authorization, audience)).ok;
  }

  /** Like `verifyBotToken`, saying why a token was refused (for the fakes' call records). */
  async checkBotToken(
    authorization: string | undefined,
    audience: string,
  ): Promise<{ ok: true; claims: JWTPayload } | { ok: false; reason: string }> {
    const m = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
    if (!m) return { ok: false, reason: authorization ? 'malformed authorization header' : 'no bearer token' };
    try {
      const { payload } = await jwtVerify(m[1]!, this.#keys().tenant.publicKey, {
        audience,
        algorithms: ['RS256'],
        requiredClaims: ['exp', 'iss'],
      });
      if (payload.azp !== this.appId) return { ok: false, reason: `token issued to ${String(payload.azp)}` };
      return { ok: true, claims: payload };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  #keys(): { channel: KeyPair; tenant: KeyPair; rogue: KeyPair } {
    if (!this.#channel || !this.#tenant || !this.#rogue) throw new Error('FakeEntra: call start() first');
    return { channel: this.#channel, tenant: this.#tenant, rogue: this.#rogue };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const record: EntraRequest = { method, path, status: 0, at: Date.now() };
    this.requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, body, headers);
    };

    if (method === 'GET' && path === '/v1/.well-known/openidconfiguration') {
      req.resume();
      answer(200, {
        issuer: 'https://api.botframework.com',
        // What login.botframework.com answers: the channel never runs an interactive flow.
        authorization_endpoint: 'https://invalid.botframework.com',
        jwks_uri: this.jwksUri,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
      });
      return;
    }
    if (method === 'GET' && path === '/v1/.well-known/keys') {
      req.resume();
      const keys = [this.#keys().channel, ...this.#previousChannelKeys].map((k) => ({
        kty: 'RSA',
        use: 'sig',
        kid: k.kid,
        x5t: k.kid,
        n: k.publicJwk.n,
        e: k.publicJwk.e,
        endorsements: ['msteams'],
      }));
      answer(200, { keys });
      return;
    }
    const tenantMeta = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
    if (method === 'GET' && tenantMeta) {
      req.resume();
      const tid = this.#tenantOf(decodeURIComponent(tenantMeta[1]!));
      answer(200, {
        issuer: `https://login.microsoftonline.com/${tid}/v2.0`,
        token_endpoint: this.tokenEndpoint(tenantMeta[1]),
        jwks_uri: `${this.url}/${tenantMeta[1]}/discovery/v2.0/keys`,
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      });
      return;
    }
    if (method === 'GET' && /^\/[^/]+\/discovery\/v2\.0\/keys$/.test(path)) {
      req.resume();
      const k = this.#keys().tenant;
      answer(200, { keys: [{ kty: 'RSA', use: 'sig', kid: k.kid, x5t: k.kid, n: k.publicJwk.n, e: k.publicJwk.e }] });
      return;
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
    if (token) {
      if (method !== 'POST') {
        req.resume();
        answer(405, entraError('invalid_request', 900561, 'The endpoint only accepts POST requests.'));
        return;
      }
      await this.#token(req, decodeURIComponent(token[1]!), answer);
      return;
    }
    req.resume();
    answer(404, { error: 'not_found', error_description: `${method} ${path} is not served by this fake` });
  }

  #tenantOf(pathTenant: string): string {
    return pathTenant.toLowerCase() === 'botframework.com' ? BOT_FRAMEWORK_TENANT_ID : pathTenant;
  }

  async #token(
    req: IncomingMessage,
    pathTenant: string,
    answer: (status: number, body: unknown, headers?: Record<string, string>) => void,
  ): Promise<void> {
    const raw = (await readBody(req, 1024 * 1024)) ?? Buffer.alloc(0);
    const form = new URLSearchParams(raw.toString('utf8'));
    const rec: TokenRequest = {
      tenant: pathTenant,
      clientId: form.get('client_id') ?? '',
      scope: form.get('scope') ?? '',
      grantType: form.get('grant_type') ?? '',
      status: 0,
      at: Date.now(),
    };
    this.tokenRequests.push(rec);
    const refuse = (status: number, error: string, code: number, description: string) => {
      rec.status = status;
      rec.error = error;
      answer(status, entraError(error, code, description));
    };

    const failure = takeFailure(this.#failures);
    if (failure) {
      refuse(
        failure.status,
        failure.code ?? 'temporarily_unavailable',
        50196,
        failure.message ?? 'The server is temporarily unavailable.',
      );
      return;
    }
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      refuse(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
      return;
    }
    const tenant = pathTenant.toLowerCase();
    if (tenant !== this.tenantId.toLowerCase() && tenant !== 'botframework.com') {
      refuse(
        400,
        'invalid_request',
        90002,
        `Tenant '${pathTenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      );
      return;
    }
    for (const p of ['grant_type', 'client_id', 'scope']) {
      if (!form.get(p)) {
        refuse(400, 'invalid_request', 900144, `The request body must contain the following parameter: '${p}'.`);
        return;
      }
    }
    if (rec.grantType !== 'client_credentials') {
      refuse(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${rec.grantType}'.`);
      return;
    }
    if (rec.clientId !== this.appId) {
      refuse(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${rec.clientId}' was not found in the directory '${pathTenant}'.`,
      );
      return;
    }
    if (form.get('client_secret') !== this.#appPassword) {
      refuse(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${this.appId}'.`,
      );
      return;
    }
    if (!rec.scope.endsWith('/.default')) {
      refuse(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${rec.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
      return;
    }
    const audience = rec.scope.slice(0, -'/.default'.length);
    if (audience !== BOT_FRAMEWORK_AUDIENCE && audience !== GRAPH_AUDIENCE) {
      refuse(
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${audience} was not found in the tenant named ${pathTenant}.`,
      );
      return;
    }

    const tid = this.#tenantOf(pathTenant);
    const now = Math.floor(Date.now() / 1000);
    const claims: JWTPayload = {
      appid: this.appId,
      azp: this.appId,
      azpacr: '1',
      idp: `https://sts.windows.net/${tid}/`,
      oid: stableGuid(`sp:${this.appId}:${tid}`),
      sub: stableGuid(`sp:${this.appId}:${tid}`),
      tid,
      ver: '2.0',
      ...(audience === GRAPH_AUDIENCE ? { roles: this.#graphRoles } : {}),
    };
    const k = this.#keys().tenant;
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: k.kid, x5t: k.kid, typ: 'JWT' })
      .setIssuer(`https://login.microsoftonline.com/${tid}/v2.0`)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now - 300)
      .setExpirationTime(now + 3600)
      .sign(k.privateKey);
    rec.status = 200;
    answer(
      200,
      { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: accessToken },
      { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' },
    );
  }
}

/** Entra's error body: `error`, an `AADSTS…` description with trace ids, the numeric codes. */
function entraError(error: string, code: number, description: string): Record<string, unknown> {
  const traceId = stableGuid(`trace:${Date.now()}:${Math.random()}`);
  const correlationId = stableGuid(`correlation:${Date.now()}:${Math.random()}`);
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  return {
    error,
    error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
}
