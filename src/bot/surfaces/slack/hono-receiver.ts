import { type App, type Receiver, type ReceiverEvent, verifySlackRequest } from '@slack/bolt';
import type { Context } from 'hono';
import { z } from 'zod';
import type { Logger } from '../../../observability/index.ts';

export interface HonoReceiverOptions {
  signingSecret: string;
  logger: Logger;
  /** Largest request body accepted; Slack's payloads are far smaller. */
  maxBodyBytes?: number;
  /** Slack gives up after 3 s; answer before that even when no listener acknowledged. */
  ackTimeoutMs?: number;
}

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
 * Slack shares the port with the console and health checks. It verifies Slack's
 * signature over the raw body (Bolt's `verifySlackRequest`: HMAC and the 5-minute
 * timestamp window), parses JSON, form and `payload=` bodies, and answers with what
 * the listener acks, within Slack's 3 seconds.
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
    const length = Number(c.req.header('content-length') ?? '0');
    if (length > this.maxBodyBytes) return c.text('payload too large', 413);
    const raw = await c.req.text();
    if (Buffer.byteLength(raw) > this.maxBodyBytes) return c.text('payload too large', 413);
    try {
      verifySlackRequest({
        signingSecret: this.options.signingSecret,
        body: raw,
        headers: {
          'x-slack-signature': c.req.header('x-slack-signature') ?? '',
          'x-slack-request-timestamp': Number(c.req.header('x-slack-request-timestamp')),
        },
      });
    } catch (err) {
      this.options.logger.warn({ reason: (err as Error).message }, 'slack: request refused (signature)');
      return c.text('invalid signature', 401);
    }

    const body = parseBody(raw, c.req.header('content-type') ?? '');
    if (!body) return c.text('unreadable body', 400);
    if (body.ssl_check) return c.body(null, 200);
    if (body.type === 'url_verification' && typeof body.challenge === 'string') {
      return c.json({ challenge: body.challenge });
    }
    if (!EnvelopeSchema.safeParse(body).success) {
      this.options.logger.warn({ type: body.type }, 'slack: malformed payload refused');
      return c.text('malformed payload', 400);
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
