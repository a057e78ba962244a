import { timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { type Context, Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { asHandoffError, ErrorCodes, HandoffError, type Identity, newId } from '../../../core/index.ts';
import type { Logger } from '../../../observability/index.ts';
import { asUnavailable, type Gateway, type IncomingFile } from '../../gateway.ts';
import { type ConsoleMessage, ConsoleMessageSchema, type ConsoleStore, consoleEventsChannel } from './console-store.ts';

export interface ConsoleOptions {
  gateway: Gateway;
  store: ConsoleStore;
  /** A subscriber connection (it is put in subscribe mode). */
  subscriber: Redis;
  logger: Logger;
  mode: 'dev' | 'bot';
  /** Required under `handoff bot`; every request must carry it (cookie or Bearer). */
  token?: string;
  demo: boolean;
  model: string;
  maxUploadBytes: number;
  maxFiles: number;
}

const staticDir = new URL('./static/', import.meta.url);
const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
const cookieName = 'handoff_console';
const channelPattern = /^[a-z0-9-]{1,40}$/;
const mention = /(^|\s)@handoff\b/i;

const ActionSchema = z.object({
  action: z.enum(['approve', 'deny', 'cancel', 'approve-action', 'deny-action', 'request-changes']),
  approvalId: z.string().min(1).max(64).optional(),
  taskId: z.string().min(1).max(64),
  planVersion: z.number().int().positive().optional(),
  planHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  author: z.string(),
  /** What should change (request-changes only). */
  text: z.string().trim().min(1).max(2000).optional(),
});

/** A display name from the browser; under the console it is the person's identity. */
function identityFrom(raw: unknown): Identity {
  const name = typeof raw === 'string' ? raw.trim().replace(/\s+/g, ' ') : '';
  if (name.length < 1 || name.length > 60)
    throw new HandoffError(ErrorCodes.invalidInput, 'pick a display name (1–60 characters) first');
  return { id: `web:${name.toLowerCase()}`, name };
}

export function statusFor(code: string): 400 | 403 | 404 | 409 | 413 | 500 | 503 {
  switch (code) {
    case ErrorCodes.invalidInput:
      return 400;
    case ErrorCodes.notApprover:
      return 403;
    case ErrorCodes.notFound:
      return 404;
    case ErrorCodes.budgetExceeded:
      return 403;
    case ErrorCodes.staleApproval:
    case ErrorCodes.planNotApprovable:
    case ErrorCodes.illegalTransition:
      return 409;
    case ErrorCodes.queueUnavailable:
      return 503;
    default:
      return 500;
  }
}

/** The web console: a chat channel in the browser, served by the bot. */
export function consoleRoutes(options: ConsoleOptions): Hono {
  const app = new Hono();
  const events = new EventEmitter().setMaxListeners(0);
  void options.subscriber
    .subscribe(consoleEventsChannel)
    .catch((err) => options.logger.error({ err }, 'console subscribe failed'));
  options.subscriber.on('message', (_ch, payload: string) => {
    const parsed = ConsoleMessageSchema.safeParse(JSON.parse(payload));
    if (parsed.success) events.emit('message', parsed.data);
  });

  const fail = (c: Context, err: unknown) => {
    const e = asHandoffError(err);
    const status =
      /over the upload limit/.test(e.message) || /larger than the limit/.test(e.message) ? 413 : statusFor(e.code);
    if (status === 500) options.logger.error({ err }, 'console request failed');
    const message = status === 500 ? 'something went wrong on our side; the error was logged' : e.message;
    return c.json({ error: message, code: e.code }, status);
  };

  app.use('*', async (c, next) => {
    if (options.mode === 'bot') {
      const fromQuery = c.req.query('token');
      if (fromQuery !== undefined && c.req.method === 'GET' && c.req.path === '/') {
        if (!tokenMatches(fromQuery, options.token)) return c.text('invalid console token', 401);
        setCookie(c, cookieName, fromQuery, {
          httpOnly: true,
          sameSite: 'Strict',
          path: '/',
          secure: c.req.url.startsWith('https:'),
        });
        return c.redirect('/');
      }
      const bearer = c.req.header('authorization')?.replace(/^Bearer\s+/i, '');
      if (!tokenMatches(getCookie(c, cookieName) ?? bearer, options.token)) {
        return c.text('The console needs its access token: open /?token=<HANDOFF_CONSOLE_TOKEN>.', 401);
      }
    }
    // A page on another site must not be able to post here from a person's browser.
    if (c.req.method !== 'GET') {
      const origin = c.req.header('origin');
      if (origin && new URL(origin).host !== c.req.header('host'))
        return c.json({ error: 'cross-site request refused' }, 403);
    }
    await next();
    return undefined;
  });

  app.get('/', () => serveStatic('index.html'));
  app.get('/static/:file', (c) => serveStatic(c.req.param('file')));

  app.get('/api/session', (c) =>
    c.json({
      mode: options.mode,
      demo: options.demo,
      model: options.model,
      maxUploadBytes: options.maxUploadBytes,
      maxFiles: options.maxFiles,
      channel: 'general',
    }),
  );

  app.get('/api/messages', async (c) => {
    const channel = c.req.query('channel') ?? 'general';
    if (!channelPattern.test(channel)) return c.json({ error: 'unknown channel' }, 400);
    try {
      return c.json({ messages: await options.store.list(channel) });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  app.get('/api/events', (c) => {
    const channel = c.req.query('channel') ?? 'general';
    return streamSSE(c, async (stream) => {
      const send = (m: ConsoleMessage) => {
        if (m.channel === channel)
          void stream.writeSSE({ event: 'message', data: JSON.stringify(m), id: m.editedTs ?? m.ts });
      };
      events.on('message', send);
      stream.onAbort(() => {
        events.off('message', send);
      });
      while (!stream.aborted) {
        await stream.writeSSE({ event: 'ping', data: '' });
        await stream.sleep(15_000);
      }
      events.off('message', send);
    });
  });

  app.post('/api/messages', async (c) => {
    try {
      const body = await c.req.parseBody({ all: true });
      const channel = typeof body.channel === 'string' ? body.channel : 'general';
      if (!channelPattern.test(channel)) throw new HandoffError(ErrorCodes.invalidInput, 'unknown channel');
      const author = identityFrom(body.author);
      const text = typeof body.text === 'string' ? body.text : '';
      const threadId = typeof body.threadId === 'string' && body.threadId ? body.threadId : undefined;
      const rawFiles = ([] as unknown[]).concat(body.files ?? []).filter((f): f is File => f instanceof File);
      const files: IncomingFile[] = await Promise.all(
        rawFiles.map(async (f) => ({ name: f.name, size: f.size, body: Buffer.from(await f.arrayBuffer()) })),
      );
      if (text.trim() === '' && files.length === 0)
        throw new HandoffError(ErrorCodes.invalidInput, 'the message is empty');
      const fileList = rawFiles.map((f) => ({ name: f.name, size: f.size }));

      if (threadId) {
        const root = await options.store.get(threadId);
        if (!root || root.channel !== channel)
          throw new HandoffError(ErrorCodes.notFound, 'that thread does not exist');
        if (files.length > 0)
          throw new HandoffError(ErrorCodes.invalidInput, 'files can only be attached to a new request');
        const message = await options.store.add({ channel, threadId, author: { name: author.name, bot: false }, text });
        await options.gateway.reply({ surface: 'web', channel, thread: threadId }, author, text);
        return c.json({ message }, 201);
      }
      if (!mention.test(text)) {
        if (files.length > 0)
          throw new HandoffError(ErrorCodes.invalidInput, 'mention @handoff to hand off a task with these files');
        const id = newId('m');
        const message = await options.store.add({
          id,
          channel,
          threadId: id,
          author: { name: author.name, bot: false },
          text,
        });
        return c.json({ message }, 201);
      }
      const request = text.replace(mention, ' ').trim();
      const id = newId('m');
      // The task is created first: if that fails, the person's message stays in their composer.
      const task = await options.gateway.submitRequest({
        conversation: { surface: 'web', channel, thread: id },
        requester: author,
        text: request,
        files,
      });
      const message = await options.store.add({
        id,
        channel,
        threadId: id,
        author: { name: author.name, bot: false },
        text,
        files: fileList,
      });
      await options.gateway.acknowledge(task);
      return c.json({ message, taskId: task.id }, 201);
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  app.post('/api/actions', async (c) => {
    try {
      const parsed = ActionSchema.safeParse(await c.req.json().catch(() => undefined));
      if (!parsed.success) {
        const aboutText = parsed.error.issues.some((i) => i.path[0] === 'text');
        throw new HandoffError(
          ErrorCodes.invalidInput,
          aboutText ? 'say what should change in 1–2000 characters' : 'malformed action',
        );
      }
      const { action, taskId, planVersion, planHash, author, approvalId } = parsed.data;
      const by = identityFrom(author);
      if (action === 'cancel') return c.json({ ok: true, message: await options.gateway.cancel(taskId, by) });
      if (action === 'approve-action' || action === 'deny-action') {
        if (!approvalId) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
        const outcome = action === 'approve-action' ? 'approved' : 'denied';
        return c.json({ ok: true, message: await options.gateway.decideAction({ taskId, approvalId, by, outcome }) });
      }
      if (planVersion === undefined || planHash === undefined)
        throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
      if (action === 'request-changes') {
        if (parsed.data.text === undefined)
          throw new HandoffError(ErrorCodes.invalidInput, 'say what should change (1–2000 characters)');
        const message = await options.gateway.requestChanges({
          taskId,
          planVersion,
          planHash,
          by,
          text: parsed.data.text,
        });
        return c.json({ ok: true, message });
      }
      const message = await options.gateway.decide({
        taskId,
        planVersion,
        planHash,
        by,
        outcome: action === 'approve' ? 'approved' : 'denied',
      });
      return c.json({ ok: true, message });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  return app;
}

async function serveStatic(file: string): Promise<Response> {
  if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(file)) return new Response('not found', { status: 404 });
  try {
    const body = await readFile(new URL(file, staticDir));
    return new Response(body, {
      headers: {
        'content-type': contentTypes[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
      },
    });
  } catch {
    return new Response('not found', { status: 404 });
  }
}

function tokenMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
