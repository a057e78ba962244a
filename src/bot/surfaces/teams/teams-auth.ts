import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';

/**
 * Which URLs the bot may call: entries are `host` or `*.domain` (HTTPS only, any port) or
 * an exact origin `scheme://host[:port]`. Everything else is refused, so a forged
 * activity cannot make the bot send its token, or anything, somewhere else.
 */
export class HostAllowlist {
  private readonly hosts: string[] = [];
  private readonly suffixes: string[] = [];
  private readonly origins: string[] = [];

  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      if (!entry) continue;
      if (entry.includes('://')) {
        const url = new URL(entry);
        this.origins.push(url.origin);
      } else if (entry.startsWith('*.')) {
        this.suffixes.push(entry.slice(1));
      } else {
        this.hosts.push(entry);
      }
    }
  }

  allows(input: string | undefined): boolean {
    if (!input) return false;
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      return false;
    }
    if (url.username || url.password) return false;
    if (this.origins.includes(url.origin)) return true;
    if (url.protocol !== 'https:') return false;
    const host = url.hostname.toLowerCase();
    return this.hosts.includes(host) || this.suffixes.some((s) => host.endsWith(s) && host.length > s.length);
  }

  /** Throws a refusal naming the host when `url` is not allowed. */
  check(url: string | undefined, what: string): string {
    if (!this.allows(url)) {
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `${what} ${safeHost(url)} is not on the allowlist; nothing was sent there`,
      );
    }
    return url!;
  }
}

function safeHost(url: string | undefined): string {
  try {
    return JSON.stringify(new URL(url ?? '').host);
  } catch {
    return '(not a URL)';
  }
}

/** Why an incoming request was refused: answered with 401 and logged, never shown to anyone else. */
export class TeamsAuthError extends Error {}

interface Metadata {
  issuer: string;
  jwksUri: string;
}

/**
 * Validates the bearer token of every request to /api/messages as the Bot Framework
 * channel signs it: RS256 signature against the keys its OpenID metadata names (a key
 * with endorsements must endorse the activity's channel), the issuer of that metadata,
 * audience = the bot's app id, not expired, and the `serviceurl` claim equal to the
 * activity's serviceUrl.
 */
export class TeamsTokenValidator {
  private metadata?: { value: Metadata; at: number };
  private keys?: { set: JSONWebKeySet; local: ReturnType<typeof createLocalJWKSet>; at: number };
  private loading?: Promise<unknown>;

  constructor(
    private readonly options: {
      appId: string;
      openIdMetadataUrl: string;
      /** Keys and metadata are refetched after this long (default 24 h), and on an unknown key id (at most every 5 min). */
      cacheMs?: number;
      clockToleranceSec?: number;
    },
  ) {}

  async validate(
    authorization: string | undefined,
    activity: { serviceUrl?: string; channelId?: string },
  ): Promise<JWTPayload> {
    const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$/.exec(authorization ?? '');
    if (!match) throw new TeamsAuthError(authorization ? 'malformed authorization header' : 'no bearer token');
    const token = match[1]!;
    const { issuer } = await this.loadMetadata();
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      const result = await jwtVerify(
        token,
        async (header) => {
          kid = header.kid;
          return (await this.keySet(header.kid))(header);
        },
        {
          issuer,
          audience: this.options.appId,
          algorithms: ['RS256'],
          clockTolerance: this.options.clockToleranceSec ?? 300,
          requiredClaims: ['exp'],
        },
      );
      payload = result.payload;
    } catch (err) {
      throw new TeamsAuthError(`token refused: ${(err as Error).message}`);
    }
    const key = this.keys?.set.keys.find((k) => k.kid === kid) as { endorsements?: unknown } | undefined;
    if (Array.isArray(key?.endorsements) && activity.channelId && !key.endorsements.includes(activity.channelId)) {
      throw new TeamsAuthError(`the signing key does not endorse channel ${JSON.stringify(activity.channelId)}`);
    }
    const claimed = typeof payload.serviceurl === 'string' ? payload.serviceurl : undefined;
    if (!claimed || !activity.serviceUrl || sameServiceUrl(claimed, activity.serviceUrl) === false) {
      throw new TeamsAuthError('the token’s serviceurl claim does not match the activity’s serviceUrl');
    }
    return payload;
  }

  private async loadMetadata(): Promise<Metadata> {
    const cacheMs = this.options.cacheMs ?? 86_400_000;
    if (this.metadata && Date.now() - this.metadata.at < cacheMs) return this.metadata.value;
    const body = (await fetchJson(this.options.openIdMetadataUrl)) as { issuer?: unknown; jwks_uri?: unknown };
    if (typeof body.issuer !== 'string' || typeof body.jwks_uri !== 'string')
      throw new TeamsAuthError('the OpenID metadata names no issuer or jwks_uri');
    this.metadata = { value: { issuer: body.issuer, jwksUri: body.jwks_uri }, at: Date.now() };
    return this.metadata.value;
  }

  private async keySet(kid: string | undefined): Promise<ReturnType<typeof createLocalJWKSet>> {
    const cacheMs = this.options.cacheMs ?? 86_400_000;
    const known = this.keys?.set.keys.some((k) => k.kid === kid);
    const age = this.keys ? Date.now() - this.keys.at : Number.POSITIVE_INFINITY;
    if (!this.keys || age > cacheMs || (!known && age > 300_000)) {
      // One fetch at a time: a burst of requests after a key rollover asks once.
      this.loading ??= (async () => {
        const { jwksUri } = await this.loadMetadata();
        const set = (await fetchJson(jwksUri)) as JSONWebKeySet;
        if (!Array.isArray(set.keys)) throw new TeamsAuthError('the signing keys document has no keys');
        this.keys = { set, local: createLocalJWKSet(set), at: Date.now() };
      })().finally(() => {
        this.loading = undefined;
      });
      await this.loading;
    }
    return this.keys!.local;
  }
}

function sameServiceUrl(a: string, b: string): boolean {
  const norm = (u: string) => {
    const url = new URL(u);
    return `${url.protocol}//${url.host.toLowerCase()}${url.pathname.replace(/\/+$/, '')}`;
  };
  try {
    return norm(a) === norm(b);
  } catch {
    return false;
  }
}

/** A JSON document fetched without following redirects, within 10 s. */
export async function fetchJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'error' });
  if (!res.ok) throw new TeamsAuthError(`${new URL(url).host} answered ${res.status}`);
  return res.json();
}

/**
 * The bot's own tokens (OAuth client credentials), one per scope, kept until five minutes
 * before they expire; concurrent callers share one request.
 */
export class ClientCredentials {
  private readonly cache = new Map<string, { token: string; until: number }>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(private readonly options: { tokenEndpoint: string; clientId: string; clientSecret: string }) {}

  async token(scope: string): Promise<string> {
    const cached = this.cache.get(scope);
    if (cached && cached.until > Date.now()) return cached.token;
    let p = this.pending.get(scope);
    if (!p) {
      p = this.fetchToken(scope).finally(() => this.pending.delete(scope));
      this.pending.set(scope, p);
    }
    return p;
  }

  private async fetchToken(scope: string): Promise<string> {
    const res = await fetch(this.options.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: this.options.clientId,
        client_secret: this.options.clientSecret,
        scope,
      }),
      signal: AbortSignal.timeout(15_000),
      redirect: 'error',
    }).catch((err) => {
      throw new HandoffError(ErrorCodes.config, `cannot reach the Teams token endpoint: ${(err as Error).message}`, {
        cause: err,
        retryable: true,
      });
    });
    const body = (await res.json().catch(() => ({}))) as {
      access_token?: string;
      expires_in?: number;
      error?: string;
      error_description?: string;
    };
    if (!res.ok || !body.access_token) {
      // Entra's error code only: its description may echo request details.
      throw new HandoffError(
        ErrorCodes.config,
        `the Teams token endpoint refused the bot's credentials (${res.status} ${body.error ?? ''}): check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID`,
        { retryable: res.status >= 500 },
      );
    }
    const lifetimeMs = Math.max(60, Number(body.expires_in ?? 3600)) * 1000;
    this.cache.set(scope, {
      token: body.access_token,
      until: Date.now() + lifetimeMs - Math.min(300_000, lifetimeMs / 2),
    });
    return body.access_token;
  }
}
