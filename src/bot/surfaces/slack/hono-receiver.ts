import { type App, type Receiver, type ReceiverEvent, verifySlackRequest } from '@slack/bolt';
import type { Context } from 'hono';
import { z } from 'zod';
import type { Logger } from '../../../observability/index.ts';
import type { Inbox } from '../../inbox.ts';
import { payloadTooLarge, readRequestWithin } from '../../read-body.ts';

export interface HonoReceiverOptions {
  signingSecret: string;
  logger: Logger;
  /** Largest request body accepted; Slack's payloads are far smaller. */
  maxBodyBytes?: number;
  /** Slack gives up after 3 s; answer before that even when no listener acknowledged. */
  ackTimeoutMs?: number;
  /**
   * Where Events API callbacks go once verified: queued here (de-duplicated by event id) and
   * answered 200 at once, then handed to Bolt by the inbox's worker. Without it they are
   * handed to Bolt in the request.
   */
  inbox?: Pick<Inbox, 'acceptWithin'>;
}

/**
 * Slack signs with the current time; a timestamp further than this from our clock either
 * way is refused. Within it, a replayed event is caught by the inbox's de-duplication by
 * event id (in the same Redis round trip that queues it), and a replayed command or click by
 * the listeners' de-duplication by trigger id.
 */
const maxClockSkewSeconds = 5 * 60;

/**
 * The shapes of what Slack sends, checked before Bolt sees it: a payload that is not
 * one of these gets a 400 instead of reaching listeners that expect the real thing.
 */
const UserSchema = z.object({ id: z.string().min(1).max(64) }).loose();
const EnvelopeSchema = z.union([
  z
    .object({
      type: z.literal('event_callback'),
      event_id: z.string().min(1).max(64),
      event: z.object({ type: z.string().min(1) }).loose(),
    })
    .loose(),
  z
    .object({
      type: z.literal('block_actions'),
      user: UserSchema,
      actions: z
        .array(z.object({ action_id: z.string().min(1).max(255) }).loose())
        .min(1)
        .max(25),
    })
    .loose(),
  z
    .object({
      type: z.literal('view_submission'),
      user: UserSchema,
      view: z.object({ callback_id: z.string(), private_metadata: z.string().optional() }).loose(),
    })
    .loose(),
  z.object({ type: z.literal('view_closed'), user: UserSchema }).loose(),
  z
    .object({
      type: z.literal('message_action'),
      callback_id: z.string().min(1),
      user: UserSchema,
      channel: z.object({ id: z.string().min(1) }).loose(),
      message: z.object({ ts: z.string().min(1) }).loose(),
    })
    .loose(),
  z.object({ type: z.literal('shortcut'), callback_id: z.string().min(1), user: UserSchema }).loose(),
  z
    .object({
      command: z.string().startsWith('/'),
      user_id: z.string().min(1),
      channel_id: z.string().min(1),
      text: z.string(),
    })
    .loose(),
]);

/**
 * A Bolt receiver mounted on the bot's own HTTP server (Hono) at `/slack/events`, so
 * Slack shares the port with the console and health checks. It reads at most
 * `maxBodyBytes`, refuses timestamps more than 5 minutes from our clock either way,
 * verifies Slack's signature over the raw body (Bolt's `verifySlackRequest`) and parses
 * JSON, form and `payload=` bodies. An Events API callback is queued in the inbox
 * (de-duplicated by event id) and answered 200 at once; commands, clicks and dialogs,
 * whose answer may carry words, are answered with what the listener acks, within Slack's
 * 3 seconds.
 */
export class HonoReceiver implements Receiver {
  private app: App | undefined;
  private readonly maxBodyBytes: number;
  private readonly ackTimeoutMs: number;

  constructor(private readonly options: HonoReceiverOptions) {
    this.maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 2800;
  }

  init(app: App): void {
    this.app = app;
  }

  // The HTTP server belongs to the bot; there is nothing to start or stop here.
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  async handle(c: Context): Promise<Response> {
    const app = this.app;
    if (!app) return c.text('not ready', 503);
    // Counted while reading (a chunked body has no Content-Length) and before the signature
    // is checked: an unsigned body must not be able to fill the memory.
    const bytes = await readRequestWithin(c.req.raw, c.env, this.maxBodyBytes);
    if (!bytes) return payloadTooLarge('payload too large');
    const raw = bytes.toString('utf8');
    const signature = c.req.header('x-slack-signature') ?? '';
    const timestamp = Number(c.req.header('x-slack-request-timestamp'));
    // Bolt refuses old timestamps only; one from the future would stay replayable for as long.
    if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > maxClockSkewSeconds) {
      this.options.logger.warn({ timestamp }, 'slack: request refused (timestamp more than 5 minutes off)');
      return c.text('invalid signature: the request timestamp is more than 5 minutes from our clock', 401);
    }
    try {
      verifySlackRequest({
        signingSecret: this.options.signingSecret,
        body: raw,
        headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': timestamp },
      });
    } catch (err) {
      this.options.logger.warn({ reason: (err as Error).message }, 'slack: request refused (signature)');
      return c.text('invalid signature', 401);
    }

    const contentType = c.req.header('content-type') ?? '';
    const json = contentType.includes('application/json');
    const body = parseBody(raw, contentType);
    if (!body) return c.text('unreadable body', 400);
    if (body.ssl_check) return c.body(null, 200);
    if (body.type === 'url_verification' && typeof body.challenge === 'string') {
      return c.json({ challenge: body.challenge });
    }
    if (!EnvelopeSchema.safeParse(body).success) {
      this.options.logger.warn({ type: body.type }, 'slack: malformed payload refused');
      return c.text('malformed payload', 400);
    }
    const inbox = this.options.inbox;
    if (inbox && body.type === 'event_callback') {
      // The whole answer to an event: queued (or a retry of one queued before), 200. When
      // Redis cannot take it in time the event is handled here instead, as without an inbox:
      // acknowledged by Bolt, then told in the thread if Redis is still out of reach.
      const outcome = await inbox
        .acceptWithin(String(body.event_id), json ? raw : JSON.stringify(body), 1000)
        .catch((err: unknown) => {
          this.options.logger.warn(
            { err: (err as Error)?.message },
            'slack: could not queue an event; handling it here',
          );
          return 'direct' as const;
        });
      if (outcome === 'full') {
        this.options.logger.warn({}, 'slack: event refused, too many waiting; Slack will deliver it again');
        return c.text('too many events waiting; retry later', 503);
      }
      if (outcome !== 'direct') return c.body(null, 200);
    }

    let settle: (r: Response) => void = () => undefined;
    const answered = new Promise<Response>((r) => {
      settle = r;
    });
    let acked = false;
    const retryNum = Number(c.req.header('x-slack-retry-num'));
    const retryReason = c.req.header('x-slack-retry-reason');
    const event: ReceiverEvent = {
      body,
      ...(Number.isInteger(retryNum) ? { retryNum } : {}),
      ...(retryReason ? { retryReason } : {}),
      ack: async (response?: unknown) => {
        if (acked) return;
        acked = true;
        if (response === undefined || response === '') settle(new Response(null, { status: 200 }));
        else if (typeof response === 'string') settle(new Response(response, { status: 200 }));
        else settle(Response.json(response));
      },
    };
    const timer = setTimeout(() => {
      if (acked) return;
      acked = true;
      this.options.logger.error({ type: body.type ?? body.command }, 'slack: no acknowledgement within 3 s');
      settle(new Response('no acknowledgement in time', { status: 500 }));
    }, this.ackTimeoutMs);
    app
      .processEvent(event)
      .then(() => {
        if (!acked) {
          acked = true;
          settle(new Response('no handler for this request', { status: 404 }));
        }
      })
      .catch((err: unknown) => {
        this.options.logger.error(
          { err: (err as Error)?.message, type: body.type ?? body.command },
          'slack: a listener failed',
        );
        if (!acked) {
          acked = true;
          settle(new Response('internal error', { status: 500 }));
        }
      });
    const response = await answered;
    clearTimeout(timer);
    return response;
  }
}

function parseBody(raw: string, contentType: string): Record<string, unknown> | undefined {
  try {
    if (contentType.includes('application/json')) {
      const parsed: unknown = JSON.parse(raw);
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : undefined;
    }
    const form = Object.fromEntries(new URLSearchParams(raw));
    if (typeof form.payload === 'string') {
      const parsed: unknown = JSON.parse(form.payload);
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : undefined;
    }
    return form;
  } catch {
    return undefined;
  }
}
