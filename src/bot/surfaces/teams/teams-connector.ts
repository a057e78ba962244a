import { Activity } from '@microsoft/agents-activity';
import { ConnectorClient } from '@microsoft/agents-hosting';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';
import type { Metrics } from '../../../observability/index.ts';
import type { ClientCredentials, HostAllowlist } from './teams-auth.ts';

/** The scope of tokens for the Bot Connector service. */
export const botFrameworkScope = 'https://api.botframework.com/.default';

export interface PacingOptions {
  /** Sends per conversation: Teams allows 7 a second and 60 in 30 s per bot and thread. */
  perConversation?: Array<{ max: number; windowMs: number }>;
  /** Sends per bot across all conversations (Teams: 50 a second). */
  perBot?: Array<{ max: number; windowMs: number }>;
  /** Progress edits per conversation are at least this far apart (default 1 s). */
  minProgressIntervalMs?: number;
  /** Attempts of one call that Teams answers 429 or 5xx (default 4). */
  maxAttempts?: number;
  /** The longest `Retry-After` waited for; longer ones fail the call (default 60 s). */
  maxRetryAfterMs?: number;
}

const defaultPerConversation = [
  { max: 7, windowMs: 1000 },
  { max: 8, windowMs: 2000 },
  { max: 60, windowMs: 30_000 },
];
const defaultPerBot = [{ max: 50, windowMs: 1000 }];

/** Room for a request to arrive later than it left (a loaded machine, a slow network): Teams counts arrivals. */
const marginMs = 400;

/** Send times in sliding windows: how long until one more send fits every window. */
class Windows {
  private readonly times: number[] = [];
  constructor(private readonly limits: Array<{ max: number; windowMs: number }>) {}

  waitMs(now: number): number {
    const longest = Math.max(...this.limits.map((l) => l.windowMs)) + marginMs;
    while (this.times.length > 0 && this.times[0]! <= now - longest) this.times.shift();
    let wait = 0;
    for (const { max, windowMs } of this.limits) {
      const inWindow = this.times.filter((t) => t > now - windowMs - marginMs);
      // A margin for the time a request takes to arrive: Teams counts arrivals, not departures.
      if (inWindow.length >= max) wait = Math.max(wait, inWindow[inWindow.length - max]! + windowMs + marginMs - now);
    }
    return wait;
  }

  record(now: number): void {
    this.times.push(now);
  }
}

/**
 * Every call the bot makes to the Bot Connector: only to allowlisted service URLs, with
 * the bot's own token, paced within Teams' per-conversation and per-bot limits, one
 * conversation's calls in order, a 429's `Retry-After` honoured before trying again.
 * Progress edits of one message are coalesced: only the newest view is sent.
 */
export class TeamsConnector {
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly windows = new Map<string, Windows>();
  private readonly bot: Windows;
  private readonly lastProgress = new Map<string, number>();
  private readonly pendingProgress = new Map<string, { activity: Partial<Activity>; done: Promise<void> }>();
  private readonly clients = new Map<string, { client: ConnectorClient; token: string }>();
  private closed = false;
  /** Calls answered 429 (for tests and metrics). */
  rateLimited = 0;

  constructor(
    private readonly options: {
      credentials: ClientCredentials;
      allowlist: HostAllowlist;
      pacing?: PacingOptions;
      /** Counts every call and 429 (/metrics). */
      metrics?: Metrics;
    },
  ) {
    this.bot = new Windows(options.pacing?.perBot ?? defaultPerBot);
  }

  /** Posts an activity into a conversation (a channel thread when the id carries `;messageid=`). */
  async send(serviceUrl: string, conversationId: string, activity: Partial<Activity>): Promise<string> {
    const res = await this.paced(conversationId, () =>
      this.call(serviceUrl, 'sendToConversation', (c) => c.sendToConversation(conversationId, toActivity(activity))),
    );
    return res.id ?? '';
  }

  /** Replaces a message the bot posted. A progress edit waits for the conversation's edit interval, newest view wins. */
  async update(
    serviceUrl: string,
    conversationId: string,
    activityId: string,
    activity: Partial<Activity>,
    options: { progress?: boolean } = {},
  ): Promise<void> {
    const body = { ...activity, id: activityId };
    if (!options.progress) {
      await this.paced(conversationId, () =>
        this.call(serviceUrl, 'updateActivity', (c) => c.updateActivity(conversationId, activityId, toActivity(body))),
      );
      return;
    }
    const key = `${conversationId}\n${activityId}`;
    const pending = this.pendingProgress.get(key);
    if (pending) {
      pending.activity = body;
      return pending.done;
    }
    const entry: { activity: Partial<Activity>; done: Promise<void> } = { activity: body, done: Promise.resolve() };
    entry.done = this.paced(conversationId, async () => {
      const interval = this.options.pacing?.minProgressIntervalMs ?? 1000;
      const since = Date.now() - (this.lastProgress.get(conversationId) ?? 0);
      if (since < interval) await sleep(interval - since);
      this.pendingProgress.delete(key);
      if (this.closed) return;
      this.lastProgress.set(conversationId, Date.now());
      await this.call(serviceUrl, 'updateActivity', (c) =>
        c.updateActivity(conversationId, activityId, toActivity(entry.activity)),
      );
    }).then(() => undefined);
    this.pendingProgress.set(key, entry);
    return entry.done;
  }

  /** Deletes a message the bot posted. */
  async remove(serviceUrl: string, conversationId: string, activityId: string): Promise<void> {
    await this.paced(conversationId, () =>
      this.call(serviceUrl, 'deleteActivity', (c) => c.deleteActivity(conversationId, activityId)),
    );
  }

  /** Starts a conversation: a new post in a channel, or a 1:1 chat with a person. */
  async createConversation(
    serviceUrl: string,
    params: Record<string, unknown> & { activity?: Partial<Activity> },
  ): Promise<{ id: string; activityId?: string }> {
    const body = { ...params, ...(params.activity ? { activity: toActivity(params.activity) } : {}) };
    const channel = (params.channelData as { channel?: { id?: unknown } } | undefined)?.channel?.id;
    const res = await this.paced(typeof channel === 'string' ? channel : `create:${serviceUrl}`, () =>
      this.call(serviceUrl, 'createConversation', (c) =>
        c.createConversation(body as unknown as Parameters<ConnectorClient['createConversation']>[0]),
      ),
    );
    return { id: res.id ?? '', ...(res.activityId ? { activityId: res.activityId } : {}) };
  }

  /** A member of a conversation, or undefined when Teams says they are not in it. */
  async member(
    serviceUrl: string,
    conversationId: string,
    userId: string,
  ): Promise<Record<string, unknown> | undefined> {
    try {
      return (await this.call(serviceUrl, 'getConversationMember', (c) =>
        c.getConversationMember(userId, conversationId),
      )) as unknown as Record<string, unknown>;
    } catch (err) {
      if (statusOf(err) === 404 || statusOf(err) === 403) return undefined;
      throw err;
    }
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Runs `op` in turn with the conversation's other calls, once it fits every window. A
   * channel's reply chains share their channel's windows: Teams counts them together.
   */
  private paced<T>(conversation: string, op: () => Promise<T>): Promise<T> {
    const conversationId = conversation.split(';messageid=')[0]!;
    const previous = this.chains.get(conversationId) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        let windows = this.windows.get(conversationId);
        if (!windows) {
          windows = new Windows(this.options.pacing?.perConversation ?? defaultPerConversation);
          this.windows.set(conversationId, windows);
        }
        for (;;) {
          const now = Date.now();
          const wait = Math.max(windows.waitMs(now), this.bot.waitMs(now));
          if (wait <= 0) break;
          await sleep(wait);
        }
        const now = Date.now();
        windows.record(now);
        this.bot.record(now);
        return op();
      });
    const settled = next.catch(() => undefined);
    this.chains.set(conversationId, settled);
    void settled.then(() => {
      if (this.chains.get(conversationId) === settled) {
        this.chains.delete(conversationId);
        // Kept only while in use: an idle conversation's windows are long past.
        setTimeout(() => {
          if (!this.chains.has(conversationId)) this.windows.delete(conversationId);
        }, 31_000).unref();
      }
    });
    return next;
  }

  /** One Bot Connector call (`method` names it for /metrics), retried on 429, 5xx and an expired token. */
  private async call<T>(serviceUrl: string, method: string, fn: (client: ConnectorClient) => Promise<T>): Promise<T> {
    this.options.allowlist.check(serviceUrl, 'the Bot Connector service URL');
    const maxAttempts = this.options.pacing?.maxAttempts ?? 4;
    const maxRetryAfterMs = this.options.pacing?.maxRetryAfterMs ?? 60_000;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await fn(await this.client(serviceUrl));
        this.options.metrics?.chatApiCall('teams', method, 'ok');
        return result;
      } catch (err) {
        const status = statusOf(err);
        this.options.metrics?.chatApiCall('teams', method, status === 429 ? 'rate_limited' : 'error');
        if (status === 401) this.clients.delete(serviceUrl);
        const retryable = status === 429 || status === 502 || status === 503 || status === 504 || status === 401;
        if (!retryable || attempt >= maxAttempts || this.closed) throw describeError(err);
        if (status === 429) this.rateLimited++;
        const wait = status === 429 ? retryAfterMs(err) : 250 * 2 ** attempt;
        if (wait > maxRetryAfterMs) throw describeError(err);
        await sleep(wait);
      }
    }
  }

  private async client(serviceUrl: string): Promise<ConnectorClient> {
    const token = await this.options.credentials.token(botFrameworkScope);
    const cached = this.clients.get(serviceUrl);
    if (cached && cached.token === token) return cached.client;
    const client = ConnectorClient.createClientWithToken(serviceUrl, token);
    this.clients.set(serviceUrl, { client, token });
    return client;
  }
}

function toActivity(activity: Partial<Activity>): Activity {
  return Activity.fromObject({ type: 'message', ...activity });
}

export function statusOf(err: unknown): number | undefined {
  const e = err as { status?: unknown; response?: { status?: unknown } } | undefined;
  const s = e?.status ?? e?.response?.status;
  return typeof s === 'number' ? s : undefined;
}

function retryAfterMs(err: unknown): number {
  const headers = (err as { response?: { headers?: { get?: (n: string) => string | null } } }).response?.headers;
  const raw = headers?.get?.('retry-after');
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.max(100, seconds * 1000);
  const date = raw ? Date.parse(raw) : Number.NaN;
  return Number.isFinite(date) ? Math.max(100, date - Date.now()) : 1000;
}

/** A plain error for logs: the status and Teams' error code, never the request (it carries the token). */
function describeError(err: unknown): Error {
  if (err instanceof HandoffError) return err;
  const status = statusOf(err);
  if (status === undefined) return err instanceof Error ? err : new Error(String(err));
  const data = (err as { response?: { data?: { error?: { code?: unknown } } } }).response?.data;
  const code = typeof data?.error?.code === 'string' ? data.error.code : '';
  const out = new HandoffError(
    status === 403 || status === 404 ? ErrorCodes.channelUnavailable : 'handoff_internal',
    `Teams answered ${status}${code ? ` (${code})` : ''}`,
    { retryable: status >= 500 || status === 429 },
  );
  (out as { status?: number }).status = status;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
