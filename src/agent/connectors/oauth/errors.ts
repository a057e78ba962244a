import { OAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { HandoffError } from '../../../core/index.ts';

/**
 * The error codes of per-user connections. Local to this folder rather than in
 * `ErrorCodes`, matched the same way (`err.code === connectionRequiredCode`).
 */
export const ConnectionErrorCodes = {
  /**
   * This person has no usable connection to the connector (never connected, revoked, or the
   * refresh token was refused): the caller SHOULD offer a Connect button ({@link ConnectionService.begin}).
   */
  connectionRequired: 'handoff_connection_required',
  /** A connection exists but could not be refreshed just now (network, server error). Retryable. */
  connectionUnavailable: 'handoff_connection_unavailable',
  /** The connector's authorization server cannot be used safely (no metadata, no PKCE S256). */
  serverUnsupported: 'handoff_connection_unsupported',
  /** A callback's state is unknown, expired or already used. */
  flowInvalid: 'handoff_connection_flow_invalid',
  /** The authorization server refused the exchange, or could not be reached. */
  connectionFailed: 'handoff_connection_failed',
} as const;

/** The code of the error thrown when a person must connect their account first. */
export const connectionRequiredCode = ConnectionErrorCodes.connectionRequired;

/** Whether `err` says the person must connect (or reconnect) before the connector can be used as them. */
export function isConnectionRequired(err: unknown): err is HandoffError {
  return err instanceof HandoffError && err.code === connectionRequiredCode;
}

/** The error the runner turns into "connect your <title> account". */
export function connectionRequired(connector: string, title: string, why: string): HandoffError {
  return new HandoffError(connectionRequiredCode, `connect your ${title} account to continue (${connector}): ${why}`);
}

const redacted = '[redacted]';
const maxDescriptionChars = 200;

/**
 * Replaces every occurrence of each secret in `text` (secrets shorter than 8 characters
 * are left alone: they would match ordinary words).
 */
export function scrub(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 8) out = out.split(secret).join(redacted);
  return out;
}

/**
 * Says what went wrong talking to an authorization server in words safe to log and show:
 * OAuth error codes, HTTP statuses and network error codes, never response bodies (the SDK
 * quotes them), and with every known secret removed.
 */
export function describeFailure(err: unknown, secrets: Iterable<string>): string {
  const list = [...secrets];
  let text: string;
  if (err instanceof OAuthError) {
    const description = err.message ? `: ${err.message}` : '';
    text = `the authorization server answered ${err.errorCode}${description}`;
  } else if (err instanceof HandoffError) {
    text = err.message;
  } else if (err instanceof Error) {
    const network = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (err.name === 'TypeError' && network) text = `could not reach it (${network})`;
    else if (err.name === 'TimeoutError' || err.name === 'AbortError') text = 'it did not answer in time';
    else text = err.message;
  } else {
    text = 'unknown error';
  }
  // The SDK appends whatever body it could not parse; that is the server's to log, not ours.
  const clean = scrub(text.replace(/\.?\s*Raw body:[\s\S]*$/, ''), list)
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length > maxDescriptionChars ? `${clean.slice(0, maxDescriptionChars - 1)}…` : clean;
}

/**
 * A HandoffError for a failed exchange whose cause is a sanitised copy of the original
 * (name and scrubbed description only), so a logger that prints causes prints no secret.
 */
export function connectionFailed(
  code: string,
  message: string,
  err: unknown,
  secrets: Iterable<string>,
  retryable = false,
): HandoffError {
  const description = describeFailure(err, secrets);
  const cause = new Error(description);
  cause.name = err instanceof Error ? err.name : 'Error';
  return new HandoffError(code, `${message}: ${description}`, { cause, retryable });
}
