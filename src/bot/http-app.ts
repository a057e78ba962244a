import { Readable } from 'node:stream';
import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { Metrics } from '../observability/index.ts';
import type { LocalArtifactStore } from '../storage/index.ts';

export interface HttpAppOptions {
  redis: Redis;
  metrics: Metrics;
  /** Serves signed download links when artifacts live in a local directory. */
  localArtifacts?: LocalArtifactStore;
  /** The web console, when enabled. */
  console?: Hono;
  /** Slack's `/slack/events` (HTTP receiver), mounted before the console so its auth never applies. */
  slack?: Hono;
}

/** The bot's HTTP surface: health, metrics, signed downloads, and the console. */
export function createHttpApp(options: HttpAppOptions): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/readyz', async (c) => {
    try {
      await options.redis.ping();
      return c.json({ ok: true });
    } catch {
      return c.json({ ok: false, reason: 'redis unreachable' }, 503);
    }
  });
  app.get('/metrics', async (c) =>
    c.text(await options.metrics.registry.metrics(), 200, { 'content-type': options.metrics.registry.contentType }),
  );

  const local = options.localArtifacts;
  if (local) {
    app.get('/files/*', async (c) => {
      const key = decodeURIComponent(c.req.path.slice('/files/'.length));
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
  if (options.slack) app.route('/', options.slack);
  if (options.console) app.route('/', options.console);
  return app;
}
