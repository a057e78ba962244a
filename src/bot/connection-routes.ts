import { type Context, Hono } from 'hono';
import {
  type AbandonedConnection,
  type CompletedConnection,
  type ConnectionContext,
  ConnectionErrorCodes,
  type ConnectionService,
  callbackPath,
} from '../agent/index.ts';
import { HandoffError } from '../core/index.ts';

export interface ConnectionRoutesOptions {
  /**
   * Called once a person has connected, so the bot can resume what was waiting. Awaited
   * before the page is sent; a failure here is reported to `onError` and the page still
   * says connected (the connection is stored).
   */
  onConnected: (user: string, connector: string, context: ConnectionContext | undefined) => void | Promise<void>;
  /** Called when the authorization server sent the person back with `error=` (declined, or failed). */
  onDeclined?: (user: string, connector: string, context: ConnectionContext | undefined) => void | Promise<void>;
  /**
   * Where failures go that the page cannot show: `onConnected` throwing, or a completion
   * that failed unexpectedly. Messages carry no token material.
   */
  onError?: (err: unknown) => void;
}

const maxCodeChars = 4096;
const maxStateChars = 512;
const maxErrorChars = 256;

/**
 * `GET /connectors/oauth/callback`: where authorization servers send people back. Completes
 * the sign-in and answers with a small page; mount it where the console's sign-in does not
 * apply (the state is what authenticates this request).
 */
export function connectionRoutes(service: ConnectionService, options: ConnectionRoutesOptions): Hono {
  const app = new Hono();
  app.get(callbackPath, async (c) => {
    // Hono answers HEAD with the GET handler; a HEAD (a link preview) must not use up the state.
    if (c.req.method !== 'GET') return page(c, 405, 'Not allowed', 'Open this link in a browser.');
    const code = c.req.query('code');
    const state = c.req.query('state');
    const error = c.req.query('error');
    if (
      (code !== undefined && code.length > maxCodeChars) ||
      (state !== undefined && state.length > maxStateChars) ||
      (error !== undefined && error.length > maxErrorChars)
    ) {
      return refused(c);
    }
    if (!state) return refused(c);
    if (error !== undefined) {
      const abandoned = await service.abandon(state);
      if (!abandoned) return refused(c);
      await notify(options, () => options.onDeclined?.(abandoned.user, abandoned.connector, abandoned.context));
      return declinedPage(c, abandoned, error);
    }
    if (!code) return refused(c);
    let done: CompletedConnection;
    try {
      done = await service.complete(state, code);
    } catch (err) {
      if (err instanceof HandoffError && err.code === ConnectionErrorCodes.flowInvalid) return refused(c);
      if (err instanceof HandoffError && err.code === ConnectionErrorCodes.connectionFailed) {
        options.onError?.(err);
        return page(
          c,
          502,
          'Not connected',
          'The service did not accept the sign-in. Go back to the thread and press Connect again.',
        );
      }
      options.onError?.(err);
      return page(
        c,
        500,
        'Not connected',
        'Something went wrong while connecting. Go back to the thread and try again.',
      );
    }
    await notify(options, () => options.onConnected(done.user, done.connector, done.context));
    return page(c, 200, `Connected to ${done.title}.`, 'You can close this tab and go back to the thread.');
  });
  return app;
}

async function notify(options: ConnectionRoutesOptions, call: () => void | Promise<void> | undefined): Promise<void> {
  try {
    await call();
  } catch (err) {
    options.onError?.(err);
  }
}

function refused(c: Context): Response {
  return page(
    c,
    400,
    'This link cannot be used',
    'This sign-in link is unknown, has expired or was already used. Go back to the thread and press Connect again.',
  );
}

function declinedPage(c: Context, abandoned: AbandonedConnection, error: string): Response {
  const why =
    error === 'access_denied'
      ? 'The sign-in was declined.'
      : `The sign-in did not finish (${error.replace(/[^\w.-]/g, '').slice(0, 64) || 'error'}).`;
  return page(c, 400, `Not connected to ${abandoned.title}.`, `${why} Go back to the thread to try again.`);
}

/** A self-contained page: no scripts, no external resources, nothing cached, no referrer leaking the code. */
function page(c: Context, status: 200 | 400 | 405 | 500 | 502, title: string, text: string): Response {
  const body = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center;background:#f6f6f4;color:#222}main{max-width:32rem;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}h1{font-size:1.25rem;margin:0 0 .5rem}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(text)}</p>
</main>
</body>
</html>
`;
  return c.html(body, status, {
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
  });
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
