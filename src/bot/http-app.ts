import { Readable } from 'node:stream';
import { type Context, Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { Metrics } from '../observability/index.ts';
import type { LocalArtifactStore } from '../storage/index.ts';
import { bearerOf, tokenMatches } from './http-auth.ts';

/**
 * Who may read `/metrics`: anyone (`handoff dev` on loopback), holders of a bearer token,
 * or nobody on this app (404; `handoff bot` serves it on HANDOFF_METRICS_PORT instead).
 */
export type MetricsAccess = 'open' | 'none' | { bearerToken: string };

export interface HttpAppOptions {
  redis: Redis;
  metrics: Metrics;
  metricsAccess: MetricsAccess;
  /**
   * Host names this server answers to (`handoff dev`): any other Host header is refused,
   * so a web page whose domain was re-pointed at 127.0.0.1 (DNS rebinding) cannot drive it.
   * Unset: every Host is accepted (`handoff bot`, where every console request is signed in).
   */
  allowedHosts?: readonly string[];
  /** Serves signed download links when artifacts live in a local directory. */
  localArtifacts?: LocalArtifactStore;
  /** The web console, when enabled. */
  // biome-ignore lint/suspicious/noExplicitAny: the console app has its own Variables type; only routing is needed here.
  console?: Hono<any>;
  /** Slack's `/slack/events` (HTTP receiver), mounted before the console so its auth never applies. */
  slack?: Hono;
  /** Teams' `/api/messages` (Bot Framework activities), mounted before the console likewise. */
  teams?: Hono;
  /**
   * `GET /connectors/oauth/callback` (per-user connections, `connectionRoutes`), mounted
   * before the console so its sign-in never applies: the sign-in's state authenticates it.
   */
  connections?: Hono;
}

/** The bot's HTTP surface: health, metrics, signed downloads, and the console. */
export function createHttpApp(options: HttpAppOptions): Hono {
  const app = new Hono();
  // Should be first: a request for a name that is not ours reaches nothing.
  if (options.allowedHosts) {
    const allowed = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
    app.use('*', async (c, next) => {
      const host = hostnameOf(c.req.header('host'));
      if (!host || !allowed.has(host)) {
        return c.text(
          `refused: Host ${JSON.stringify(c.req.header('host') ?? '')} is not a name of this server (${[...allowed].join(', ')}); set HANDOFF_PUBLIC_URL to the URL people open`,
          403,
        );
      }
      await next();
      return undefined;
    });
  }
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', async (c) => {
    try {
      await options.redis.ping();
      return c.json({ ok: true });
    } catch {
      return c.json({ ok: false, reason: 'redis unreachable' }, 503);
    }
  });
  // Answered here even when not served, so no other app mounted below (the console) claims the path.
  const metricsAccess = options.metricsAccess;
  if (metricsAccess === 'none') app.get('/metrics', (c) => c.text('not found', 404));
  else app.get('/metrics', metricsHandler(options.metrics, metricsAccess));

  const local = options.localArtifacts;
  if (local) {
    app.get('/files/*', async (c) => {
      let key: string;
      try {
        key = decodeURIComponent(c.req.path.slice('/files/'.length));
      } catch {
        return c.text('malformed download link', 400);
      }
      const fileName = c.req.query('name') ?? '';
      const mediaType = c.req.query('type') ?? '';
      const refused = local.verify({
        key,
        fileName,
        mediaType,
        expiresAtMs: Number(c.req.query('exp')),
        signature: c.req.query('sig') ?? '',
      });
      if (refused) return c.text(refused, refused.includes('expired') ? 410 : 403);
      try {
        const stream = await local.get(key);
        return new Response(Readable.toWeb(stream) as ReadableStream, {
          headers: {
            'content-type': mediaType,
            'content-disposition': `attachment; filename="${fileName.replace(/[^\x20-\x7e]|"/g, '_')}"; filename*=UTF-8''${encodeURIComponent(fileName)}`,
            'x-content-type-options': 'nosniff',
            'cache-control': 'private, no-store',
          },
        });
      } catch {
        return c.text('this file is no longer available', 404);
      }
    });
  }
  if (options.connections) app.route('/', options.connections);
  if (options.slack) app.route('/', options.slack);
  if (options.teams) app.route('/', options.teams);
  if (options.console) app.route('/', options.console);
  return app;
}

/** What a process without the bot's HTTP app (the runner) answers on /healthz and /readyz. */
export interface Probes {
  /** Whether this process can take work now; `reason` says what is missing when not. */
  ready(): Promise<{ ok: boolean; reason?: string }>;
}

/**
 * `/metrics` alone, for its own port (HANDOFF_METRICS_PORT). With `probes` (`handoff
 * runner`, which has no other HTTP server) also `/healthz` and `/readyz`, unauthenticated
 * like the bot's: they say nothing but ok or what is missing.
 */
export function createMetricsApp(metrics: Metrics, access: Exclude<MetricsAccess, 'none'>, probes?: Probes): Hono {
  const app = new Hono();
  app.get('/metrics', metricsHandler(metrics, access));
  if (probes) {
    app.get('/healthz', (c) => c.json({ ok: true }));
    app.get('/readyz', async (c) => {
      const ready = await probes.ready().catch((err: Error) => ({ ok: false, reason: err.message }));
      return c.json(ready, ready.ok ? 200 : 503);
    });
  }
  return app;
}

function metricsHandler(metrics: Metrics, access: Exclude<MetricsAccess, 'none'>) {
  return async (c: Context): Promise<Response> => {
    if (access !== 'open' && !tokenMatches(bearerOf(c.req.header('authorization')), access.bearerToken)) {
      c.header('www-authenticate', 'Bearer realm="metrics"');
      return c.text('metrics need Authorization: Bearer <HANDOFF_METRICS_TOKEN>', 401);
    }
    return c.text(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  };
}

/** The host name of a Host header, lower case, without the port (`[::1]` keeps its brackets). */
function hostnameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  try {
    return new URL(`http://${header}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}
