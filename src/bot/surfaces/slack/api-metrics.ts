import type { webApi } from '@slack/bolt';
import type { Metrics } from '../../../observability/index.ts';

/** A Web API method name (`chat.postMessage`); anything else is labelled by kind, never by its path. */
const methodName = /^[a-z]+(?:\.[a-zA-Z]+)+$/;

/**
 * The WebClient's `fetch`, counting every Slack call by method and outcome for /metrics
 * (`handoff_chat_api_calls_total`, `handoff_chat_api_rate_limited_total`). The WebClient
 * has no per-call hook, and its methods are bound at construction, so the transport is
 * the one place that sees every call. A 200 whose body says `ok: false` is an `error`.
 * File upload URLs (`files.slack.com/upload/…`, which carry a token in their path) are
 * labelled `file_upload`.
 */
export function countingSlackFetch(metrics: Metrics, base: typeof fetch = globalThis.fetch): webApi.FetchFunction {
  return async (url, init) => {
    const last = new URL(String(url)).pathname.split('/').pop() ?? '';
    const method = methodName.test(last) ? last : 'file_upload';
    let res: Response;
    try {
      // The WebClient's init is a subset of the standard one.
      res = await base(url, init as RequestInit);
    } catch (err) {
      metrics.chatApiCall('slack', method, 'error');
      throw err;
    }
    if (res.status === 429) metrics.chatApiCall('slack', method, 'rate_limited');
    else if (res.status !== 200) metrics.chatApiCall('slack', method, 'error');
    else metrics.chatApiCall('slack', method, (await platformOk(res)) ? 'ok' : 'error');
    return res;
  };
}

/** Whether a 200 answer's JSON says `ok` (a non-JSON answer, an upload's, counts as ok). */
async function platformOk(res: Response): Promise<boolean> {
  if (!(res.headers.get('content-type') ?? '').includes('json')) return true;
  try {
    const body = (await res.clone().json()) as { ok?: unknown };
    return body.ok !== false;
  } catch {
    return true;
  }
}
