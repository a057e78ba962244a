import { EventEmitter } from 'node:events';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Readable } from 'node:stream';
import { type Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  asHandoffError,
  ErrorCodes,
  HandoffError,
  type Identity,
  newId,
  rememberedFact,
  splitScheduleMessage,
} from '../../../core/index.ts';
import type { Logger } from '../../../observability/index.ts';
import { formatBytes } from '../../../storage/index.ts';
import { bearerOf, tokenMatches } from '../../http-auth.ts';
import type { HandoffInbound } from '../../inbound.ts';
import type { IncomingFile } from '../../incoming-file.ts';
import { declaredOver, payloadTooLarge, readBodyWithin } from '../../read-body.ts';
import { refersToEarlierMessages } from '../../thread-context.ts';
import { asUnavailable } from '../../unavailable.ts';
import { statusView } from '../../views.ts';
import { memoryCardAction, registerChannelSettingsRoutes } from './console-channel-settings.ts';
import { readConsoleContext } from './console-context.ts';
import { grantsHtml } from './console-grants.ts';
import { type OidcSignIn, SignInError } from './console-oidc.ts';
import type { ConsoleSessions } from './console-sessions.ts';
import { type ConsoleMessage, ConsoleMessageSchema, type ConsoleStore, consoleEventsChannel } from './console-store.ts';
import { maxUploadTotalBytes, type SpooledUpload, spoolUpload, type UploadLimits } from './console-upload.ts';
import type { ConsoleUsers } from './console-users.ts';
import { renderHtml } from './render-html.ts';
import { consoleChannelPattern, noticesChannelFor, WebSurface } from './web-surface.ts';

/** Who may use the console, and where identities come from. */
export type ConsoleAccess =
  /** `handoff dev` on a loopback address: anyone who reaches it, named by what they type. */
  | { kind: 'open' }
  /**
   * One shared token guards every request (`handoff dev` on another address); names are
   * still typed, so it keeps strangers out but does not tell people apart.
   */
  | { kind: 'shared-token'; token: string }
  /** People sign in (per-person links or OpenID Connect); the identity comes from the session. */
  | {
      kind: 'signin';
      method: 'tokens' | 'oidc';
      sessions: ConsoleSessions;
      users: ConsoleUsers;
      /** Required for `oidc`. */
      oidc?: OidcSignIn;
    };

export interface ConsoleOptions {
  /** The way in: every request, click and reply goes here; the console reads no task store. */
  gateway: HandoffInbound;
  store: ConsoleStore;
  /** A subscriber connection (it is put in subscribe mode). */
  subscriber: Redis;
  logger: Logger;
  mode: 'dev' | 'bot';
  access: ConsoleAccess;
  /**
   * The URL people open the console at (HANDOFF_PUBLIC_URL, else the bound address), read
   * per request: its host is accepted as Origin, and OIDC redirects come back to it.
   */
  publicUrl: () => string;
  demo: boolean;
  model: string;
  maxUploadBytes: number;
  maxFiles: number;
  /** Uploads are written here while they arrive (never held in memory), then removed. */
  spoolDir: string;
}

/** Actions and sign-out are small JSON bodies. */
export const consoleActionMaxBytes = 64 * 1024;
/** The message text and the other fields of an upload (the text is at most 100,000 characters). */
const maxFieldBytes = 512 * 1024;

const staticDir = new URL('./static/', import.meta.url);
const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** The shared token (`shared-token` access). */
const sharedTokenCookie = 'handoff_console';
/** The session id (`signin` access). */
const sessionCookie = 'handoff_session';
/** Binds an OIDC sign-in in progress to this browser (Lax: it must come back on the provider's redirect). */
const oidcStateCookie = 'handoff_oidc_state';
const mention = /(^|\s)@handoff\b/i;

/** The browser's IANA time zone, sent with each message; the schedule code checks it is one. */
const BrowserZoneSchema = z.string().trim().min(1).max(100);

/** Pause, Resume, Run now, Delete or Edit on a schedule in the console's Schedules panel. */
const ScheduleActionSchema = z.object({
  action: z.literal('schedule'),
  op: z.enum(['pause', 'resume', 'run_now', 'delete', 'edit']),
  scheduleId: z.string().min(1).max(64),
  /** The channel whose panel was used: the schedule must be one of its own. */
  channel: z.string().regex(consoleChannelPattern),
  /** Edit: the new time, e.g. "every weekday at 9:00". */
  when: z.string().trim().min(1).max(300).optional(),
  /** Edit: the new request (it needs a new approval). */
  text: z.string().trim().min(1).max(4000).optional(),
  /** The typed display name; ignored when the person is signed in. */
  author: z.string().optional(),
});

/** "Schedule…" on a result card: run that request again on a schedule. */
const ScheduleTaskSchema = z.object({
  action: z.literal('schedule_task'),
  taskId: z.string().min(1).max(64),
  when: z.string().trim().min(1).max(300),
  tz: BrowserZoneSchema.optional(),
  author: z.string().optional(),
});

/** Connect on a Connect card (with its task) or in the Connections panel (without). */
const ConnectActionSchema = z.object({
  action: z.literal('connect'),
  connector: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,29}$/),
  taskId: z.string().min(1).max(64).optional(),
  /** The typed display name; ignored when the person is signed in. */
  author: z.string().optional(),
});

/** Disconnect in the Connections panel. */
const DisconnectSchema = z.object({
  connector: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,29}$/),
  /** The typed display name; ignored when the person is signed in. */
  author: z.string().optional(),
});

const ActionSchema = z.object({
  action: z.enum([
    'approve',
    'deny',
    'cancel',
    'approve-action',
    'deny-action',
    'grant-run-action',
    'grant-channel-action',
    'request-changes',
  ]),
  approvalId: z.string().min(1).max(64).optional(),
  taskId: z.string().min(1).max(64),
  planVersion: z.number().int().positive().optional(),
  planHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** The typed display name; ignored when the person is signed in. */
  author: z.string().optional(),
  /** What should change (request-changes only). */
  text: z.string().trim().min(1).max(2000).optional(),
});

/** Revoke on a standing grant. */
const RevokeGrantSchema = z.object({
  grantId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /** The typed display name; ignored when the person is signed in. */
  author: z.string().optional(),
});

/** A display name from the browser; under the console it is the person's identity. */
function identityFrom(raw: unknown): Identity {
  const name = typeof raw === 'string' ? raw.trim().replace(/\s+/g, ' ') : '';
  if (name.length < 1 || name.length > 60)
    throw new HandoffError(ErrorCodes.invalidInput, 'pick a display name (1–60 characters) first');
  return { id: `web:${name.toLowerCase()}`, name };
}

export function statusFor(code: string): 400 | 403 | 404 | 409 | 413 | 500 | 502 | 503 {
  switch (code) {
    case ErrorCodes.invalidInput:
    case ErrorCodes.scheduleInvalid:
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
    case ErrorCodes.channelUnavailable:
      return 409;
    case ErrorCodes.queueUnavailable:
      return 503;
    case ErrorCodes.connectorFailed:
      return 502;
    default:
      return 500;
  }
}

type ConsoleEnv = {
  Variables: {
    /** The signed-in person (`signin` access); undefined elsewhere. */
    who: Identity | undefined;
  };
};

/** The web console: a chat channel in the browser, served by the bot. */
export function consoleRoutes(options: ConsoleOptions): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  const { access } = options;
  const events = new EventEmitter().setMaxListeners(0);
  void options.subscriber
    .subscribe(consoleEventsChannel)
    .catch((err) => options.logger.error({ err }, 'console subscribe failed'));
  options.subscriber.on('message', (_ch, payload: string) => {
    const parsed = ConsoleMessageSchema.safeParse(JSON.parse(payload));
    if (parsed.success) events.emit('message', parsed.data);
  });
  const uploadLimits: UploadLimits = {
    maxFileBytes: options.maxUploadBytes,
    maxFiles: options.maxFiles,
    maxFieldBytes,
  };

  const fail = (c: Context, err: unknown) => {
    const e = asHandoffError(err);
    const status =
      /over the upload limit/.test(e.message) || /larger than the limit/.test(e.message) ? 413 : statusFor(e.code);
    if (status === 500) options.logger.error({ err }, 'console request failed');
    const message = status === 500 ? 'something went wrong on our side; the error was logged' : e.message;
    // Reading may have stopped part-way: close the connection rather than read the rest.
    if (status === 413) c.header('connection', 'close');
    return c.json({ error: message, code: e.code }, status);
  };
  const cookieOptions = (c: Context, maxAgeSeconds?: number) => ({
    httpOnly: true,
    sameSite: 'Strict' as const,
    path: '/',
    secure: c.req.url.startsWith('https:') || options.publicUrl().startsWith('https:'),
    ...(maxAgeSeconds === undefined ? {} : { maxAge: maxAgeSeconds }),
  });

  /**
   * Why this person may not use a channel, or undefined. A `dm-…` channel holds one person's
   * notices: where people sign in, only that person opens it. (With typed names anyone can
   * claim any name, so there it is a convenience, not a boundary.)
   */
  const channelRefusal = (c: Context<ConsoleEnv>, channel: string): HandoffError | undefined => {
    if (!consoleChannelPattern.test(channel)) return new HandoffError(ErrorCodes.invalidInput, 'unknown channel');
    const who = c.get('who');
    if (access.kind === 'signin' && channel.startsWith('dm-') && (!who || noticesChannelFor(who.id) !== channel))
      return new HandoffError(ErrorCodes.notApprover, "that is another person's notices channel");
    return undefined;
  };

  app.use('*', async (c, next) => {
    // Paths that are not the console's are left to answer 404, whatever they carry.
    if (!isConsolePath(c.req.path)) {
      await next();
      return undefined;
    }
    const bearer = bearerOf(c.req.header('authorization'));
    /** Whether a bearer token proved who is asking (never true where nobody signs in). */
    let byBearer = false;
    try {
      if (access.kind === 'shared-token') {
        const fromQuery = c.req.query('token');
        if (fromQuery !== undefined && c.req.method === 'GET' && c.req.path === '/') {
          if (!tokenMatches(fromQuery, access.token)) return c.text('invalid console token', 401);
          setCookie(c, sharedTokenCookie, fromQuery, cookieOptions(c));
          return c.redirect('/');
        }
        const given = bearer ?? getCookie(c, sharedTokenCookie);
        if (!tokenMatches(given, access.token))
          return c.text('The console needs its access token: open /?token=<HANDOFF_CONSOLE_TOKEN>.', 401);
        byBearer = bearer !== undefined;
      } else if (access.kind === 'signin') {
        const fromQuery = c.req.query('token');
        if (fromQuery !== undefined && c.req.method === 'GET' && c.req.path === '/' && access.method === 'tokens') {
          const user = await access.users.byToken(fromQuery);
          if (!user)
            return c.text(
              'This sign-in link is not valid (it may have been replaced or its user removed): ask for a new one.',
              401,
            );
          const id = await access.sessions.create({
            identity: { id: `web:user:${user.id}`, name: user.name },
            via: 'token',
            tokenSha256: user.tokenSha256,
          });
          setCookie(c, sessionCookie, id, cookieOptions(c, Math.floor(access.sessions.ttlMs / 1000)));
          return c.redirect('/');
        }
        if (bearer !== undefined) {
          // Scripts sign in with a personal token in the header (tokens sign-in only).
          const user = access.method === 'tokens' ? await access.users.byToken(bearer) : undefined;
          if (!user) return c.json({ error: 'this bearer token does not belong to a console user' }, 401);
          c.set('who', { id: `web:user:${user.id}`, name: user.name });
          byBearer = true;
        } else {
          const session = await access.sessions.get(getCookie(c, sessionCookie));
          if (session && (session.via !== 'token' || (await tokenStillValid(access.users, session.tokenSha256))))
            c.set('who', session.identity);
        }
        if (!c.get('who') && !openWithoutSignIn(c.req.method, c.req.path))
          return c.json({ error: 'sign in to the console first (reload the page)' }, 401);
      }
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
    // A page on another site must not be able to change anything from a person's browser:
    // a state-changing request needs the console's own Origin, unless a bearer token
    // (which browsers never add by themselves) authenticated it.
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !byBearer) {
      const refused = originProblem(c.req.header('origin'), c.req.header('host'), options.publicUrl());
      if (refused) return c.json({ error: refused }, 403);
    }
    await next();
    return undefined;
  });

  /** The Schedules panel's buttons, and "Schedule…" on a result card. */
  const scheduleAction = async (
    c: Context<ConsoleEnv>,
    json: unknown,
  ): Promise<{ ok: true; message: string; threadId?: string }> => {
    const { schedules } = options.gateway;
    if ((json as { action?: unknown }).action === 'schedule_task') {
      const parsed = ScheduleTaskSchema.safeParse(json);
      if (!parsed.success)
        throw new HandoffError(
          ErrorCodes.invalidInput,
          parsed.error.issues.some((i) => i.path[0] === 'when')
            ? 'say when it should run (1–300 characters), e.g. "every weekday at 9:00"'
            : 'malformed action',
        );
      const { taskId, when, tz } = parsed.data;
      const by = c.get('who') ?? identityFrom(parsed.data.author);
      const task = await schedules.proposeFrom({
        taskId,
        when,
        by,
        surface: 'web',
        ...(tz ? { requesterTz: tz } : {}),
      });
      return {
        ok: true,
        message: `A schedule was proposed in #${task.conversation.channel}: its plan card asks for approval in the new thread.`,
        threadId: task.conversation.thread,
      };
    }
    const parsed = ScheduleActionSchema.safeParse(json);
    if (!parsed.success) {
      const field = parsed.error.issues[0]?.path[0];
      throw new HandoffError(
        ErrorCodes.invalidInput,
        field === 'when'
          ? 'the new time is 1–300 characters, e.g. "every weekday at 9:00"'
          : field === 'text'
            ? 'the new request is 1–4000 characters'
            : 'malformed action',
      );
    }
    const { op, scheduleId, channel } = parsed.data;
    const refused = channelRefusal(c, channel);
    if (refused) throw refused;
    const by = c.get('who') ?? identityFrom(parsed.data.author);
    // Only this channel's schedules are managed from its panel.
    const from = { surface: 'web', channel };
    if (op !== 'edit') return { ok: true, message: await schedules.act({ scheduleId, action: op, by, from }) };

    const when = parsed.data.when;
    const text = parsed.data.text;
    if (!when && !text)
      throw new HandoffError(ErrorCodes.invalidInput, 'say the new time, or the new request, or both');
    // A changed request is a new proposal: it gets a top-level message of its own, whose
    // thread holds its plan. Opened only when the request really changed.
    let opened: string | undefined;
    const message = await schedules.act({
      scheduleId,
      action: 'edit',
      by,
      from,
      ...(text ? { text } : {}),
      ...(when ? { when } : {}),
      openThread: async () => {
        const target = { surface: 'web' as const, channel };
        opened = await new WebSurface(options.store).postToChannel(
          target,
          statusView(
            { demo: options.demo },
            `${by.name} asked to change schedule ${scheduleId} to: ${text}${when ? ` — ${when}` : ''}`,
          ),
        );
        return { ...target, thread: opened };
      },
    });
    return { ok: true, message, ...(opened ? { threadId: opened } : {}) };
  };

  app.get('/', () => serveStatic('index.html'));
  app.get('/static/:file', (c) => serveStatic(c.req.param('file')));

  app.get('/api/session', (c) => {
    const who = c.get('who');
    const signin = access.kind === 'signin' ? access.method : 'off';
    if (access.kind === 'signin' && !who) {
      return c.json({
        mode: options.mode,
        signin,
        user: null,
        ...(signin === 'oidc' ? { signInUrl: '/auth/login' } : {}),
      });
    }
    return c.json({
      mode: options.mode,
      signin,
      user: who ?? null,
      demo: options.demo,
      model: options.model,
      maxUploadBytes: options.maxUploadBytes,
      maxFiles: options.maxFiles,
      channel: 'general',
    });
  });

  if (access.kind === 'signin' && access.oidc) {
    const oidc = access.oidc;
    const signInPage = (c: Context, err: unknown) => {
      const e = err instanceof SignInError ? err : undefined;
      if (!e) options.logger.error({ err }, 'console sign-in failed');
      return c.text(
        `${e ? e.message : 'signing in failed on our side; the error was logged'}. Sign in again: /auth/login`,
        e?.status ?? 500,
      );
    };
    app.get('/auth/login', async (c) => {
      try {
        const { url, state } = await oidc.start();
        setCookie(c, oidcStateCookie, state, { ...cookieOptions(c, 600), sameSite: 'Lax', path: '/auth' });
        return c.redirect(url);
      } catch (err) {
        return signInPage(c, err);
      }
    });
    app.get('/auth/callback', async (c) => {
      try {
        const search = new URL(c.req.url).search;
        const identity = await oidc.finish(search, getCookie(c, oidcStateCookie));
        deleteCookie(c, oidcStateCookie, { path: '/auth' });
        const id = await access.sessions.create({ identity, via: 'oidc' });
        setCookie(c, sessionCookie, id, cookieOptions(c, Math.floor(access.sessions.ttlMs / 1000)));
        return c.redirect('/');
      } catch (err) {
        return signInPage(c, err);
      }
    });
  }
  if (access.kind === 'signin') {
    app.post('/auth/signout', async (c) => {
      try {
        await access.sessions.delete(getCookie(c, sessionCookie));
        deleteCookie(c, sessionCookie, { path: '/', secure: cookieOptions(c).secure });
        return c.json({ ok: true });
      } catch (err) {
        return fail(c, asUnavailable(err));
      }
    });
  }

  app.get('/api/console/messages', async (c) => {
    const channel = c.req.query('channel') ?? 'general';
    const refused = channelRefusal(c, channel);
    if (refused) return fail(c, refused);
    try {
      return c.json({ messages: await options.store.list(channel) });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  app.get('/api/events', (c) => {
    const channel = c.req.query('channel') ?? 'general';
    const refused = channelRefusal(c, channel);
    if (refused) return fail(c, refused);
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

  app.post('/api/console/messages', async (c) => {
    if (declaredOver(c.req.raw, maxUploadTotalBytes(uploadLimits)))
      return payloadTooLarge(
        `the upload is larger than the limit of ${formatBytes(maxUploadTotalBytes(uploadLimits))}`,
        true,
      );
    let upload: SpooledUpload | undefined;
    try {
      upload = await spoolUpload(c.req.raw.body, c.req.header('content-type') ?? '', uploadLimits, options.spoolDir);
      const body = upload.fields;
      const channel = typeof body.channel === 'string' ? body.channel : 'general';
      const refused = channelRefusal(c, channel);
      if (refused) throw refused;
      const author = c.get('who') ?? identityFrom(body.author);
      const zone = body.tz === undefined || body.tz === '' ? undefined : BrowserZoneSchema.safeParse(body.tz);
      if (zone && !zone.success)
        throw new HandoffError(ErrorCodes.invalidInput, 'tz must be a time zone name of at most 100 characters');
      const requesterTz = zone?.data;
      const text = typeof body.text === 'string' ? body.text : '';
      const threadId = typeof body.threadId === 'string' && body.threadId ? body.threadId : undefined;
      // Opened only when the gateway reads them, so a refused request opens no file.
      const files: IncomingFile[] = upload.files.map((f) => ({
        name: f.name,
        size: f.size,
        body: Readable.from(fileChunks(f.path)),
      }));
      if (text.trim() === '' && files.length === 0)
        throw new HandoffError(ErrorCodes.invalidInput, 'the message is empty');
      const fileList = upload.files.map((f) => ({ name: f.name, size: f.size }));

      if (threadId) {
        const root = await options.store.get(threadId);
        if (!root || root.channel !== channel)
          throw new HandoffError(ErrorCodes.notFound, 'that thread does not exist');
        // A mention in a thread that is no task's: a new request there, with the thread as its context.
        const inThread = { surface: 'web' as const, channel, thread: threadId };
        if (mention.test(text) && !(await options.gateway.taskInThread(inThread))) {
          const context = await readConsoleContext(options.store, channel, threadId);
          const request = text.replace(mention, ' ').trim();
          const task = await options.gateway.submitRequest({
            conversation: inThread,
            requester: author,
            text: request,
            files,
            context,
          });
          const message = await options.store.add({
            channel,
            threadId,
            author: { name: author.name, bot: false },
            text,
            files: fileList,
          });
          await options.gateway.acknowledge(task);
          return c.json({ message, taskId: task.id }, 201);
        }
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
      const conversation = { surface: 'web' as const, channel, thread: id };
      // "@handoff remember that …" goes to the channel's memory: no task.
      const fact = files.length === 0 ? rememberedFact(request) : undefined;
      if (fact !== undefined) {
        const outcome = await options.gateway.channelSettings.remember({ surface: 'web', channel }, author, fact);
        const message = await options.store.add({
          id,
          channel,
          threadId: id,
          author: { name: author.name, bot: false },
          text,
        });
        await new WebSurface(options.store).post(conversation, statusView({ demo: options.demo }, outcome.message));
        return c.json({ message, remembered: outcome.status }, 201);
      }
      // "every weekday at 9:00: …" proposes a schedule; its plan becomes the standing plan.
      const scheduled = splitScheduleMessage(request);
      // The task is created first: if that fails, the person's message stays in their composer.
      const task = scheduled
        ? await options.gateway.schedules.propose({
            conversation,
            requester: author,
            when: scheduled.when,
            text: scheduled.request,
            files,
            ...(requesterTz ? { requesterTz } : {}),
          })
        : await options.gateway.submitRequest({
            conversation,
            requester: author,
            text: request,
            files,
            // "summarise the above": the channel's recent messages go along.
            ...(refersToEarlierMessages(request)
              ? { context: await readConsoleContext(options.store, channel, undefined) }
              : {}),
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
    } finally {
      await upload?.discard();
    }
  });

  registerChannelSettingsRoutes(app, {
    gateway: options.gateway,
    fail,
    channelRefusal,
    identity: (c, typed) => c.get('who') ?? identityFrom(typed),
    maxBodyBytes: consoleActionMaxBytes,
  });

  app.get('/api/schedules', async (c) => {
    const channel = c.req.query('channel') ?? 'general';
    try {
      const refused = channelRefusal(c, channel);
      if (refused) throw refused;
      const list = await options.gateway.schedules.list({ surface: 'web', channel });
      return c.json({ schedules: list, html: renderHtml(list) });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  // A channel's standing grants, for its approvers: listed here, revoked below.
  app.get('/api/console/grants', async (c) => {
    const channel = c.req.query('channel') ?? 'general';
    try {
      const refused = channelRefusal(c, channel);
      if (refused) throw refused;
      const who = c.get('who') ?? identityFrom(c.req.query('author'));
      const grants = await options.gateway.listGrants({ surface: 'web', channel }, who);
      // `html`: the console's Grants panel (server-rendered and escaped, like a card).
      return c.json({ grants, html: grantsHtml(grants) }, 200, { 'cache-control': 'no-store' });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  /**
   * A panel's POST that one person makes (Revoke, Disconnect): the body read within the
   * action limit and checked against `schema`, then `act` with who made it; the answer
   * is the gateway's words.
   */
  const personAction = <T extends { author?: string | undefined }>(
    path: string,
    schema: z.ZodType<T>,
    act: (data: T, by: Identity) => Promise<string>,
  ) =>
    app.post(path, async (c) => {
      try {
        const raw = await readBodyWithin(c.req.raw, consoleActionMaxBytes);
        if (!raw) return payloadTooLarge(`an action is at most ${consoleActionMaxBytes / 1024} KB`, true);
        const parsed = schema.safeParse(parseJson(raw));
        if (!parsed.success) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
        const by = c.get('who') ?? identityFrom(parsed.data.author);
        return c.json({ ok: true, message: await act(parsed.data, by) });
      } catch (err) {
        return fail(c, asUnavailable(err));
      }
    });

  personAction('/api/console/grants/revoke', RevokeGrantSchema, (data, by) =>
    options.gateway.revokeGrant({ id: data.grantId, by, surface: 'web' }),
  );

  // A person's own connections (the Connections panel): listed here, disconnected below.
  app.get('/api/console/connections', async (c) => {
    try {
      const who = c.get('who') ?? identityFrom(c.req.query('author'));
      const view = await options.gateway.connections('web', who);
      return c.json({ connections: view.items, html: renderHtml(view) });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  personAction('/api/console/connections/disconnect', DisconnectSchema, (data, by) =>
    options.gateway.disconnect({ connector: data.connector, by, surface: 'web' }),
  );

  app.post('/api/actions', async (c) => {
    try {
      const raw = await readBodyWithin(c.req.raw, consoleActionMaxBytes);
      if (!raw) return payloadTooLarge(`an action is at most ${consoleActionMaxBytes / 1024} KB`, true);
      const json = parseJson(raw);
      const kind = (json as { action?: unknown } | undefined)?.action;
      if (kind === 'schedule' || kind === 'schedule_task') return c.json(await scheduleAction(c, json));
      if (kind === 'accept-memory' || kind === 'dismiss-memory')
        return c.json(await memoryCardAction(options.gateway, json, (typed) => c.get('who') ?? identityFrom(typed)));
      if (kind === 'connect') {
        const parsed = ConnectActionSchema.safeParse(json);
        if (!parsed.success) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
        const { connector, taskId, author } = parsed.data;
        const by = c.get('who') ?? identityFrom(author);
        // The sign-in link is this person's alone: it goes back in this answer, never onto a card.
        const answer = await options.gateway.connect({ connector, by, surface: 'web', ...(taskId ? { taskId } : {}) });
        return c.json({ ok: true, ...answer }, 200, { 'cache-control': 'no-store' });
      }
      const parsed = ActionSchema.safeParse(json);
      if (!parsed.success) {
        const aboutText = parsed.error.issues.some((i) => i.path[0] === 'text');
        throw new HandoffError(
          ErrorCodes.invalidInput,
          aboutText ? 'say what should change in 1–2000 characters' : 'malformed action',
        );
      }
      const { action, taskId, planVersion, planHash, author, approvalId } = parsed.data;
      const by = c.get('who') ?? identityFrom(author);
      if (action === 'cancel') return c.json({ ok: true, message: await options.gateway.cancel(taskId, by, 'web') });
      if (action === 'approve-action' || action === 'deny-action') {
        if (!approvalId) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
        const outcome = action === 'approve-action' ? 'approved' : 'denied';
        return c.json({
          ok: true,
          message: await options.gateway.decideAction({ taskId, approvalId, by, outcome, surface: 'web' }),
        });
      }
      if (action === 'grant-run-action' || action === 'grant-channel-action') {
        if (!approvalId) throw new HandoffError(ErrorCodes.invalidInput, 'malformed action');
        const grant = action === 'grant-run-action' ? 'run' : 'channel';
        return c.json({
          ok: true,
          message: await options.gateway.decideAction({
            taskId,
            approvalId,
            by,
            outcome: 'approved',
            surface: 'web',
            grant,
          }),
        });
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
          surface: 'web',
        });
        return c.json({ ok: true, message });
      }
      const message = await options.gateway.decide({
        taskId,
        planVersion,
        planHash,
        by,
        outcome: action === 'approve' ? 'approved' : 'denied',
        surface: 'web',
      });
      return c.json({ ok: true, message });
    } catch (err) {
      return fail(c, asUnavailable(err));
    }
  });

  return app;
}

function isConsolePath(path: string): boolean {
  return path === '/' || path.startsWith('/static/') || path.startsWith('/api/') || path.startsWith('/auth/');
}

/** What a signed-out person may still load: the page itself, its assets, and the sign-in routes. */
function openWithoutSignIn(method: string, path: string): boolean {
  if (method === 'POST') return path === '/auth/signout';
  if (method !== 'GET' && method !== 'HEAD') return false;
  return (
    path === '/' ||
    path.startsWith('/static/') ||
    path === '/api/session' ||
    path === '/auth/login' ||
    path === '/auth/callback'
  );
}

/**
 * Why a state-changing request's Origin is refused, or undefined when it is the console's
 * own: the request's Host, or the host of the public URL (behind a proxy that rewrites Host).
 */
export function originProblem(
  origin: string | undefined,
  host: string | undefined,
  publicUrl: string,
): string | undefined {
  if (origin === undefined || origin === '')
    return 'refused: this request has no Origin header; the console accepts changes only from its own page (or with an Authorization: Bearer token)';
  if (origin === 'null')
    return 'refused: Origin is null (a sandboxed page, a file or a redirect from elsewhere); the console accepts changes only from its own page';
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return 'refused: the Origin header is not a URL';
  }
  let publicHost: string | undefined;
  try {
    publicHost = new URL(publicUrl).host;
  } catch {
    publicHost = undefined;
  }
  if (originHost === host || originHost === publicHost) return undefined;
  return `cross-site request refused: Origin ${origin.slice(0, 200)} is not this console`;
}

/** A personal-link session lasts only while that link is still the user's (not removed, not replaced). */
async function tokenStillValid(users: ConsoleUsers, tokenSha256: string | undefined): Promise<boolean> {
  return tokenSha256 !== undefined && (await users.holdsTokenHash(tokenSha256));
}

async function* fileChunks(path: string): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(path)) yield chunk as Buffer;
}

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
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
