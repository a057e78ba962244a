import type { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { z } from 'zod';
import { ErrorCodes, HandoffError, type Identity } from '../../../core/index.ts';
import type { Logger } from '../../../observability/index.ts';

export interface OidcSignInOptions {
  /** Issuer URL; https, or http on a loopback address (a provider on the same machine). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated; must include `openid`. */
  scopes: string;
  /** `<public url>/auth/callback`, read when a sign-in starts (the port may be known only after listening). */
  redirectUri: () => string;
  /** Where a sign-in in progress is kept (any bot may receive the callback). */
  redis: Redis;
  logger: Logger;
}

/** How long a person has between leaving for the provider and coming back. */
const pendingTtlSeconds = 10 * 60;
const pendingKey = (state: string) => `hf:console-auth:oidc:${state}`;
const PendingSchema = z.object({ verifier: z.string().min(43), nonce: z.string().min(1) });

/** The failure a person sees on the callback page; `status` is the HTTP answer. */
export class SignInError extends HandoffError {
  constructor(
    message: string,
    readonly status: 400 | 502,
    cause?: unknown,
  ) {
    super(ErrorCodes.invalidInput, message, cause === undefined ? undefined : { cause });
  }
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Console sign-in with OpenID Connect, through `openid-client` (v6, certified by the
 * OpenID Foundation): authorization code flow with PKCE (S256), `state` bound to the
 * browser by a cookie, and a `nonce` checked in the ID token. The identity is
 * `web:oidc:<sub>`; the display name comes from `name`, `preferred_username` or `email`
 * (from the ID token, else from the userinfo endpoint).
 */
export class OidcSignIn {
  private configuration: Promise<oidc.Configuration> | undefined;
  private readonly issuerUrl: URL;
  private readonly insecure: boolean;

  constructor(private readonly options: OidcSignInOptions) {
    this.issuerUrl = new URL(options.issuer);
    this.insecure = this.issuerUrl.protocol === 'http:';
    if (this.insecure && !isLoopbackHost(this.issuerUrl.hostname)) {
      throw new HandoffError(
        ErrorCodes.config,
        `HANDOFF_OIDC_ISSUER must be an https URL (http is allowed only on a loopback address): ${options.issuer}`,
      );
    }
    if (!options.scopes.split(/\s+/).includes('openid'))
      throw new HandoffError(ErrorCodes.config, 'HANDOFF_OIDC_SCOPES must include openid');
  }

  /** Discovery, once; a failure is not cached, so the next sign-in tries again. */
  private config(): Promise<oidc.Configuration> {
    this.configuration ??= oidc
      .discovery(
        this.issuerUrl,
        this.options.clientId,
        undefined,
        // Every provider must accept HTTP Basic client authentication (RFC 6749 §2.3.1).
        oidc.ClientSecretBasic(this.options.clientSecret),
        this.insecure ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((err: unknown) => {
        this.configuration = undefined;
        this.options.logger.error({ err: (err as Error).message }, 'console sign-in: OpenID discovery failed');
        throw new SignInError(
          `the sign-in provider (${this.issuerUrl.origin}) cannot be reached right now; try again shortly`,
          502,
          err,
        );
      });
    return this.configuration;
  }

  /** Starts a sign-in: the provider URL to redirect to, and the state to bind to the browser. */
  async start(): Promise<{ url: string; state: string }> {
    const config = await this.config();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    await this.options.redis.set(pendingKey(state), JSON.stringify({ verifier, nonce }), 'EX', pendingTtlSeconds);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.options.redirectUri(),
      scope: this.options.scopes,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, state };
  }

  /**
   * Completes a sign-in from the provider's redirect. `search` is the callback's query
   * string; `browserState` the state cookie set by `start` (so a callback link made by
   * someone else cannot sign this browser in as them). Each state works once.
   */
  async finish(search: string, browserState: string | undefined): Promise<Identity> {
    const callback = new URL(this.options.redirectUri());
    callback.search = search;
    const state = callback.searchParams.get('state') ?? '';
    if (!browserState || state !== browserState || !/^[A-Za-z0-9_-]{1,200}$/.test(state))
      throw new SignInError('this sign-in was not started in this browser (or took too long): sign in again', 400);
    const key = pendingKey(state);
    const [[, raw]] = (await this.options.redis.multi().get(key).del(key).exec()) as [[Error | null, string | null]];
    const pending = raw ? PendingSchema.safeParse(JSON.parse(raw)) : undefined;
    if (!pending?.success) throw new SignInError('this sign-in has expired or was already used: sign in again', 400);
    const config = await this.config();
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: pending.data.verifier,
        expectedState: state,
        expectedNonce: pending.data.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      if (err instanceof oidc.AuthorizationResponseError)
        throw new SignInError(`the sign-in provider refused: ${err.error_description ?? err.error}`, 400, err);
      this.options.logger.warn({ err: (err as Error).message }, 'console sign-in: code exchange failed');
      throw new SignInError('the sign-in could not be completed with the provider: sign in again', 502, err);
    }
    const claims = tokens.claims();
    if (!claims?.sub) throw new SignInError('the provider sent no subject (sub) for this person', 502);
    let profile: Record<string, unknown> = claims;
    if (!displayNameOf(claims) && tokens.access_token) {
      profile = {
        ...(await oidc.fetchUserInfo(config, tokens.access_token, claims.sub).catch(() => ({}))),
        ...claims,
      };
    }
    const id = `web:oidc:${claims.sub}`;
    if (id.length > 200) throw new SignInError('the provider’s subject (sub) for this person is too long', 502);
    return { id, name: displayNameOf(profile) ?? claims.sub.slice(0, 60) };
  }
}

/** The first usable of name, preferred_username and email, tidied to 1–60 characters. */
function displayNameOf(claims: Record<string, unknown>): string | undefined {
  for (const claim of ['name', 'preferred_username', 'email']) {
    const value = claims[claim];
    if (typeof value !== 'string') continue;
    const name = value
      .replace(/[\p{Cc}\p{Cf}]/gu, '')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 60);
    if (name) return name;
  }
  return undefined;
}
