import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

/**
 * A fetch for the MCP SDK's OAuth client in a process that serves HTTP with
 * `@hono/node-server`: starting a server replaces `globalThis.Response` with Hono's own
 * class, and the SDK recognises an OAuth error response with `instanceof Response`. Without
 * this, what fetch returns fails that test and every refusal (`invalid_grant` included)
 * reads as a server error: a revoked refresh token would look like a passing outage.
 *
 * Error responses are re-created with the current global `Response` (their body is read
 * once, by the SDK, either way); successful ones are returned as they are, so streams are
 * untouched.
 */
export function sdkCompatibleFetch(base?: FetchLike): FetchLike {
  return async (url, init) => {
    const res = await (base ?? fetch)(url, init);
    const Current = globalThis.Response;
    // Typed as the same class, which they are not once Hono has replaced the global.
    const recognised = (res as unknown) instanceof Current;
    if (res.ok || recognised) return res;
    return new Current(res.body, res);
  };
}
