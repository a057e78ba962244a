/**
 * A local fake of the Bot Connector REST API (v3) as Microsoft Teams serves it at an activity's
 * `serviceUrl` (e.g. `https://smba.trafficmanager.net/amer/`): create a conversation, send,
 * reply, update and delete activities, read the roster. It answers with Teams' status codes
 * and `{ error: { code, message } }` bodies (BotNotInConversationRoster, Throttled,
 * MessageSizeTooBig, ActivityNotFoundInConversation, MemberNotFoundInConversation, …).
 *
 * The serviceUrl carries a path (`/amer/` by default) as the real one does, so a client that
 * drops it when joining URLs gets a 404. Conversation ids arrive in the path either raw
 * (`19:x@thread.tacv2;messageid=1` — what @microsoft/agents-hosting sends) or URL-encoded;
 * both are decoded.
 *
 * Channel threads: a new post (createConversation with `channelData.channel`, or a send to the
 * bare channel id) starts the conversation `<channelId>;messageid=<postId>`, which is where
 * its replies live. Messages are recorded under that thread id.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  conversationBaseId,
  FakeHttpServer,
  type InjectedFailure,
  isChannelConversation,
  MessageIdClock,
  parseJson,
  personalConversationId,
  pollUntil,
  readBody,
  sendJson,
  takeFailure,
} from './teams-common.ts';
import { BOT_FRAMEWORK_AUDIENCE, type FakeEntra } from './teams-entra.ts';

export type ConnectorOperation =
  | 'createConversation'
  | 'getConversations'
  | 'sendToConversation'
  | 'replyToActivity'
  | 'updateActivity'
  | 'deleteActivity'
  | 'getConversationMember'
  | 'getConversationMembers'
  | 'getConversationPagedMembers'
  | 'unknown';

/** One request as the fake received it. */
export interface ConnectorCall {
  method: string;
  /** The path as received (still encoded), without the query. */
  path: string;
  operation: ConnectorOperation;
  /** Decoded conversation id from the path, with any `;messageid=`. */
  conversationId?: string;
  activityId?: string;
  memberId?: string;
  query: Record<string, string>;
  /** Parsed JSON body, if any. */
  body: unknown;
  status: number;
  /** The Bot Framework error code answered, if any (`Throttled`, …). */
  error?: string;
  /** Why the bearer token was refused; recorded here only, never sent. */
  authError?: string;
  at: number;
}

export type ActivityJson = Record<string, unknown>;

/** A message the bot posted, as it now stands. */
export interface TeamsMessage {
  id: string;
  /** Where it lives: a chat's id, or for a channel the thread `<channelId>;messageid=<rootId>`. */
  conversationId: string;
  /** Set when posted through the reply endpoint (`…/activities/<replyToId>`). */
  replyToId?: string;
  /** The latest version, with `id` set. */
  activity: ActivityJson;
  /** Every version, oldest first (the current one last). */
  history: ActivityJson[];
  edits: number;
  deleted: boolean;
  at: number;
}

/** A person in a conversation's roster (what GET …/members/<id> answers, TeamsChannelAccount). */
export interface TeamsMember {
  /** `29:…` */
  id: string;
  name: string;
  aadObjectId: string;
  email?: string;
  userPrincipalName?: string;
  givenName?: string;
  surname?: string;
  tenantId?: string;
  userRole?: 'user' | 'guest' | 'anonymous';
}

export interface CreatedConversation {
  id: string;
  activityId?: string;
  params: Record<string, unknown>;
  at: number;
}

export interface FakeBotConnectorOptions {
  /** Checks the bot's bearer tokens (audience https://api.botframework.com). */
  entra: FakeEntra;
  /** Teams-like throttling: more than this many requests in one second for a conversation answer 429. */
  limit?: { perConversationPerSecond: number; retryAfterSec?: number };
  /** The path of the serviceUrl (default `/amer/`, as in https://smba.trafficmanager.net/amer/). */
  pathPrefix?: string;
  /** Bodies larger than this answer 413 MessageSizeTooBig (default 28 KiB, Teams' message limit). */
  maxActivityBytes?: number;
  /** Tenant given to members and conversations (default the Entra fake's tenant). */
  tenantId?: string;
}

interface ConnectorFailure extends InjectedFailure {
  remaining: number;
  only?: ConnectorOperation;
}

class ConnectorError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const defaultCodes: Record<number, [string, string]> = {
  400: ['BadArgument', 'Bad argument.'],
  401: ['Unauthorized', 'Authorization has been denied for this request.'],
  403: ['BotNotInConversationRoster', 'The bot is not part of the conversation roster.'],
  404: ['ConversationNotFound', 'Conversation not found.'],
  412: ['PreconditionFailed', 'Precondition failed, please try again.'],
  413: ['MessageSizeTooBig', 'Message size too large.'],
  429: ['Throttled', 'Too many requests.'],
  500: ['ServiceError', 'Unknown'],
  502: ['ServiceError', 'Bad gateway.'],
  503: ['ServiceUnavailable', 'Service unavailable.'],
  504: ['GatewayTimeout', 'Gateway timeout.'],
};

export class FakeBotConnector extends FakeHttpServer {
  readonly calls: ConnectorCall[] = [];
  /** Messages by the conversation they live in (see `TeamsMessage.conversationId`). */
  readonly messages = new Map<string, TeamsMessage[]>();
  readonly conversations: CreatedConversation[] = [];
  /** 429s answered because of `limit`. */
  throttled = 0;
  readonly #entra: FakeEntra;
  readonly #options: FakeBotConnectorOptions;
  readonly #prefix: string;
  readonly #members = new Map<string, TeamsMember[]>();
  readonly #teamOf = new Map<string, string>();
  readonly #typing = new Map<string, number>();
  readonly #refusals = new Map<string, { status: number; code: string; message: string }>();
  readonly #recent = new Map<string, number[]>();
  readonly #failures: ConnectorFailure[] = [];
  readonly #ids = new MessageIdClock();

  constructor(options: FakeBotConnectorOptions) {
    super('FakeBotConnector');
    this.#entra = options.entra;
    this.#options = options;
    const p = options.pathPrefix ?? '/amer/';
    this.#prefix = `/${p.replace(/^\/+|\/+$/g, '')}/`.replace('//', '/');
  }

  /** The serviceUrl: `http://127.0.0.1:<port>/amer/` (ends with '/'). */
  get url(): string {
    return `${this.origin}${this.#prefix}`;
  }

  get serviceUrl(): string {
    return this.url;
  }

  get tenantId(): string {
    return this.#options.tenantId ?? this.#entra.tenantId;
  }

  /**
   * Puts a person into a roster: a team's id, a chat's, or a 1:1's (no `;messageid=`). A
   * channel's roster is its team's once `addChannel` linked them, as in Teams.
   */
  addMember(conversationBaseId: string, member: TeamsMember): void {
    const list = this.#members.get(conversationBaseId) ?? [];
    list.push(member);
    this.#members.set(conversationBaseId, list);
  }

  /** Declares channels of a team, so their rosters are the team's. */
  addChannel(teamId: string, ...channelIds: string[]): void {
    for (const c of channelIds) this.#teamOf.set(c, teamId);
  }

  /**
   * Every later request about this conversation answers 403 with `code` (default
   * BotNotInConversationRoster: the bot was removed; ConversationBlockedByUser: a person
   * blocked the bot). `accept` lifts it.
   */
  refuse(
    conversationBaseId: string,
    code:
      | 'BotNotInConversationRoster'
      | 'ConversationBlockedByUser'
      | 'BotDisabledByAdmin'
      | string = 'BotNotInConversationRoster',
    status = 403,
  ): void {
    const messages: Record<string, string> = {
      BotNotInConversationRoster: 'The bot is not part of the conversation roster.',
      ConversationBlockedByUser: 'User blocked the conversation with the bot.',
      BotDisabledByAdmin: 'The tenant admin disabled this bot',
    };
    this.#refusals.set(conversationBaseId, { status, code, message: messages[code] ?? code });
  }

  accept(conversationBaseId: string): void {
    this.#refusals.delete(conversationBaseId);
  }

  /**
   * The next `n` requests (optionally only of one operation) answer `status` with a Bot
   * Framework error body instead of being served; a 429 carries `Retry-After`.
   */
  failNext(
    n: number,
    status: number,
    options: Omit<InjectedFailure, 'status'> & { only?: ConnectorOperation } = {},
  ): void {
    this.#failures.push({ status, ...options, remaining: n });
  }

  callsOf(operation: ConnectorOperation): ConnectorCall[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  /** Every message, oldest first, each as it now stands (deleted ones left out). */
  latest(): TeamsMessage[] {
    return [...this.messages.values()]
      .flat()
      .filter((m) => !m.deleted)
      .sort((a, b) => a.at - b.at);
  }

  /**
   * Messages in a conversation, oldest first. A base id (no `;messageid=`) matches every thread
   * of that channel or chat; a full id matches that thread only.
   */
  messagesIn(conversationId: string): TeamsMessage[] {
    const exact = conversationId.includes(';messageid=');
    return this.latest().filter((m) =>
      exact ? m.conversationId === conversationId : conversationBaseId(m.conversationId) === conversationId,
    );
  }

  /** A channel thread: the root post (if the bot posted it) and every reply, oldest first. */
  thread(channelId: string, rootId: string): TeamsMessage[] {
    return this.messagesIn(`${conversationBaseId(channelId)};messageid=${rootId}`);
  }

  /** Top-level posts the bot started in a channel (the first message of each thread it created). */
  posts(channelId: string): TeamsMessage[] {
    return this.messagesIn(conversationBaseId(channelId)).filter(
      (m) => m.conversationId === `${conversationBaseId(channelId)};messageid=${m.id}`,
    );
  }

  /** A message by its activity id. */
  message(activityId: string): TeamsMessage | undefined {
    return [...this.messages.values()].flat().find((m) => m.id === activityId);
  }

  /** Typing indicators sent to a conversation (base id, or a full id: counted by its base). */
  typingCount(conversationId: string): number {
    return this.#typing.get(conversationBaseId(conversationId)) ?? 0;
  }

  /**
   * Polls `predicate` every 25 ms until it answers something other than undefined/null/false
   * and resolves with that; on timeout throws listing the calls received.
   */
  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
    return pollUntil(predicate, timeoutMs, what, () => this.describe());
  }

  /** Waits for a message (latest versions) that `match` accepts. */
  waitForMessage(
    match: (m: TeamsMessage) => boolean,
    timeoutMs = 10_000,
    what = 'a matching message',
  ): Promise<TeamsMessage> {
    return this.waitFor(() => this.latest().find(match), timeoutMs, what);
  }

  /** A summary of what the fake received, for failure messages. */
  describe(): string {
    const lines = this.calls.map(
      (c) =>
        `${c.method} ${c.operation} ${c.conversationId ?? ''}${c.activityId ? ` /${c.activityId}` : ''} → ${c.status}${c.error ? ` ${c.error}` : ''}${c.authError ? ` (${c.authError})` : ''}`,
    );
    const msgs = this.latest().map((m) => `  [${m.conversationId}] ${m.id}: ${activityText(m.activity).slice(0, 120)}`);
    return `calls were:\n${lines.join('\n') || '  (none)'}\nmessages:\n${msgs.join('\n') || '  (none)'}`;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    const call: ConnectorCall = {
      method,
      path: rawPath,
      operation: 'unknown',
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      status: 0,
      at: Date.now(),
    };
    this.calls.push(call);
    try {
      const raw = await readBody(req, this.#options.maxActivityBytes ?? 28 * 1024);
      if (raw !== undefined) call.body = parseJson(raw);
      this.#route(call, rawPath);
      const auth = await this.#entra.checkBotToken(req.headers.authorization, BOT_FRAMEWORK_AUDIENCE);
      if (!auth.ok) {
        call.authError = auth.reason;
        throw new ConnectorError(401, ...defaultCodes[401]!);
      }
      if (raw === undefined) throw new ConnectorError(413, ...defaultCodes[413]!);
      if (raw.length > 0 && call.body === undefined) {
        throw new ConnectorError(400, 'BadSyntax', 'The request body is not valid JSON.');
      }
      const failure = takeFailure(this.#failures, (f) => f.only === undefined || f.only === call.operation);
      if (failure) {
        const [code, message] = defaultCodes[failure.status] ?? ['ServiceError', 'Unknown'];
        throw new ConnectorError(
          failure.status,
          failure.code ?? code,
          failure.message ?? message,
          failure.status === 429 || failure.retryAfterSec !== undefined
            ? { 'retry-after': String(failure.retryAfterSec ?? 1) }
            : {},
        );
      }
      const base = this.#conversationKey(call);
      if (base !== undefined) {
        const refusal = this.#refusals.get(base);
        if (refusal) throw new ConnectorError(refusal.status, refusal.code, refusal.message);
        this.#throttle(base);
      }
      const [status, body] = this.#serve(call);
      call.status = status;
      sendJson(res, status, body);
    } catch (err) {
      const e = err instanceof ConnectorError ? err : new ConnectorError(500, 'ServiceError', String(err));
      call.status = e.status;
      call.error = e.code;
      sendJson(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
    }
  }

  /** Works out the operation and ids from the path; throws 404 for anything else. */
  #route(call: ConnectorCall, rawPath: string): void {
    if (!rawPath.startsWith(this.#prefix)) {
      throw new ConnectorError(404, 'NotFound', `No route for ${rawPath} (the serviceUrl is ${this.url})`);
    }
    const seg = rawPath.slice(this.#prefix.length).split('/');
    const decode = (s: string | undefined) => (s === undefined ? undefined : decodeURIComponent(s));
    if (seg[0] !== 'v3' || seg[1] !== 'conversations') {
      throw new ConnectorError(404, 'NotFound', `No route for ${rawPath}`);
    }
    call.conversationId = decode(seg[2]);
    const m = call.method;
    const n = seg.length;
    if (n === 2 && m === 'POST') call.operation = 'createConversation';
    else if (n === 2 && m === 'GET') call.operation = 'getConversations';
    else if (n === 4 && seg[3] === 'activities' && m === 'POST') call.operation = 'sendToConversation';
    else if (n === 5 && seg[3] === 'activities') {
      call.activityId = decode(seg[4]);
      if (m === 'POST') call.operation = 'replyToActivity';
      else if (m === 'PUT') call.operation = 'updateActivity';
      else if (m === 'DELETE') call.operation = 'deleteActivity';
    } else if (n === 4 && seg[3] === 'members' && m === 'GET') call.operation = 'getConversationMembers';
    else if (n === 5 && seg[3] === 'members' && m === 'GET') {
      call.operation = 'getConversationMember';
      call.memberId = decode(seg[4]);
    } else if (n === 4 && seg[3] === 'pagedmembers' && m === 'GET') call.operation = 'getConversationPagedMembers';
    if (call.operation === 'unknown' || (n > 2 && !call.conversationId)) {
      throw new ConnectorError(404, 'NotFound', `No route for ${m} ${rawPath}`);
    }
  }

  /** The conversation a request is about, for refusals and throttling. */
  #conversationKey(call: ConnectorCall): string | undefined {
    if (call.conversationId) return conversationBaseId(call.conversationId);
    if (call.operation === 'createConversation') {
      const body = (call.body ?? {}) as { channelData?: { channel?: { id?: unknown } } };
      const channel = body.channelData?.channel?.id;
      return typeof channel === 'string' ? conversationBaseId(channel) : undefined;
    }
    return undefined;
  }

  #throttle(key: string): void {
    const limit = this.#options.limit;
    if (!limit) return;
    const now = Date.now();
    const recent = (this.#recent.get(key) ?? []).filter((t) => now - t < 1000);
    if (recent.length >= limit.perConversationPerSecond) {
      this.#recent.set(key, recent);
      this.throttled += 1;
      throw new ConnectorError(429, 'Throttled', 'Too many requests.', {
        'retry-after': String(limit.retryAfterSec ?? 1),
      });
    }
    recent.push(now);
    this.#recent.set(key, recent);
  }

  #serve(call: ConnectorCall): [number, unknown] {
    switch (call.operation) {
      case 'createConversation':
        return this.#create(call);
      case 'getConversations':
        return [200, { conversations: [], continuationToken: null }];
      case 'sendToConversation':
      case 'replyToActivity':
        return this.#post(call);
      case 'updateActivity':
        return this.#update(call);
      case 'deleteActivity': {
        const msg = this.#find(call.conversationId!, call.activityId!);
        if (!msg)
          throw new ConnectorError(404, 'ActivityNotFoundInConversation', 'Message does not exist in the thread.');
        msg.deleted = true;
        return [200, undefined];
      }
      case 'getConversationMembers':
        return [200, this.#roster(call.conversationId!).map((m) => this.#memberJson(m))];
      case 'getConversationPagedMembers': {
        const all = this.#roster(call.conversationId!);
        const size = Math.max(1, Math.min(500, Number(call.query.pageSize ?? 200) || 200));
        const start = Number(call.query.continuationToken ?? 0) || 0;
        const page = all.slice(start, start + size).map((m) => this.#memberJson(m));
        const next = start + size < all.length ? String(start + size) : undefined;
        return [200, next === undefined ? { members: page } : { members: page, continuationToken: next }];
      }
      case 'getConversationMember': {
        const want = call.memberId!.toLowerCase();
        const member = this.#roster(call.conversationId!).find(
          (m) =>
            m.id.toLowerCase() === want ||
            m.aadObjectId.toLowerCase() === want ||
            m.userPrincipalName?.toLowerCase() === want,
        );
        if (!member)
          throw new ConnectorError(
            404,
            'MemberNotFoundInConversation',
            'The specified user was not found in the conversation.',
          );
        return [200, this.#memberJson(member)];
      }
      default:
        throw new ConnectorError(404, 'NotFound', 'Unknown operation');
    }
  }

  #create(call: ConnectorCall): [number, unknown] {
    const body = call.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object')
      throw new ConnectorError(400, 'BadArgument', 'ConversationParameters are required.');
    const channelData = (body.channelData ?? {}) as { channel?: { id?: string }; tenant?: { id?: string } };
    const activity = body.activity as ActivityJson | undefined;
    const members = Array.isArray(body.members) ? (body.members as Array<{ id?: string }>) : [];
    const tenantId = (body.tenantId as string | undefined) ?? channelData.tenant?.id;
    let id: string;
    let activityId: string | undefined;
    if (typeof channelData.channel?.id === 'string') {
      if (!activity || typeof activity.type !== 'string') {
        throw new ConnectorError(400, 'BadArgument', 'An activity is required to start a conversation in a channel.');
      }
      activityId = this.#ids.next();
      id = `${conversationBaseId(channelData.channel.id)};messageid=${activityId}`;
      this.#store(id, activityId, activity, undefined);
    } else if (members.length === 1 && typeof members[0]?.id === 'string' && body.isGroup !== true) {
      if (!tenantId)
        throw new ConnectorError(400, 'BadArgument', 'Tenant ID is required to create a conversation with a user.');
      id = personalConversationId(this.#entra.appId, members[0].id);
      if (activity && typeof activity.type === 'string') {
        activityId = this.#ids.next();
        this.#store(id, activityId, activity, undefined);
      }
    } else {
      throw new ConnectorError(400, 'BadArgument', 'Incorrect conversation creation parameters.');
    }
    this.conversations.push({ id, ...(activityId ? { activityId } : {}), params: body, at: Date.now() });
    return [201, { id, ...(activityId ? { activityId } : {}), serviceUrl: this.url }];
  }

  #post(call: ConnectorCall): [number, unknown] {
    const activity = call.body as ActivityJson | undefined;
    if (!activity || typeof activity !== 'object' || typeof activity.type !== 'string') {
      throw new ConnectorError(400, 'BadArgument', 'Activity type is required.');
    }
    const conversationId = call.conversationId!;
    const base = conversationBaseId(conversationId);
    if (activity.type === 'typing') {
      this.#typing.set(base, (this.#typing.get(base) ?? 0) + 1);
      return [201, {}];
    }
    const id = this.#ids.next();
    let where = conversationId;
    if (isChannelConversation(base) && base === conversationId) {
      // A channel without a thread: a reply goes into the thread of the activity replied to,
      // anything else starts a new post.
      where = `${base};messageid=${call.activityId ?? id}`;
    }
    this.#store(where, id, activity, call.activityId);
    return [201, { id }];
  }

  #update(call: ConnectorCall): [number, unknown] {
    const activity = call.body as ActivityJson | undefined;
    if (!activity || typeof activity !== 'object' || typeof activity.type !== 'string') {
      throw new ConnectorError(400, 'BadArgument', 'Activity type is required.');
    }
    const msg = this.#find(call.conversationId!, call.activityId!);
    if (!msg || msg.deleted) {
      throw new ConnectorError(404, 'ActivityNotFoundInConversation', 'Message does not exist in the thread.');
    }
    const version = { ...activity, id: msg.id };
    msg.activity = version;
    msg.history.push(version);
    msg.edits += 1;
    return [200, { id: msg.id }];
  }

  #find(conversationId: string, activityId: string): TeamsMessage | undefined {
    const base = conversationBaseId(conversationId);
    for (const [conv, list] of this.messages) {
      if (conversationBaseId(conv) !== base) continue;
      const m = list.find((x) => x.id === activityId);
      if (m) return m;
    }
    return undefined;
  }

  #store(conversationId: string, id: string, activity: ActivityJson, replyToId: string | undefined): void {
    const version = { ...activity, id };
    const list = this.messages.get(conversationId) ?? [];
    list.push({
      id,
      conversationId,
      ...(replyToId ? { replyToId } : {}),
      activity: version,
      history: [version],
      edits: 0,
      deleted: false,
      at: Date.now(),
    });
    this.messages.set(conversationId, list);
  }

  #roster(conversationId: string): TeamsMember[] {
    const base = conversationBaseId(conversationId);
    const team = this.#teamOf.get(base);
    const own = this.#members.get(base) ?? [];
    const inherited = team === undefined || team === base ? [] : (this.#members.get(team) ?? []);
    return [...own, ...inherited.filter((m) => !own.some((o) => o.id === m.id))];
  }

  #memberJson(m: TeamsMember): Record<string, unknown> {
    const [givenName, ...rest] = m.name.split(' ');
    return {
      id: m.id,
      name: m.name,
      aadObjectId: m.aadObjectId,
      objectId: m.aadObjectId,
      givenName: m.givenName ?? givenName,
      surname: m.surname ?? (rest.join(' ') || undefined),
      email: m.email,
      userPrincipalName: m.userPrincipalName,
      tenantId: m.tenantId ?? this.tenantId,
      userRole: m.userRole ?? 'user',
    };
  }
}

/** Adaptive Card contents among an activity's attachments. */
export function adaptiveCards(activity: ActivityJson): Record<string, unknown>[] {
  const attachments = Array.isArray(activity.attachments) ? (activity.attachments as Record<string, unknown>[]) : [];
  return attachments
    .filter((a) => a.contentType === 'application/vnd.microsoft.card.adaptive')
    .map((a) => (typeof a.content === 'string' ? JSON.parse(a.content) : a.content) as Record<string, unknown>);
}

/** One `Action.Execute` button of a card: its verb and the data it sends. */
export interface CardExecute {
  verb: string;
  data: Record<string, unknown>;
}

/** Every Action.Execute in a card, ShowCards included (not the refresh block). */
export function cardExecutes(node: unknown, out: CardExecute[] = []): CardExecute[] {
  if (Array.isArray(node)) for (const n of node) cardExecutes(n, out);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (o.type === 'Action.Execute')
      out.push({ verb: String(o.verb), data: (o.data ?? {}) as Record<string, unknown> });
    for (const [k, v] of Object.entries(o)) if (k !== 'refresh') cardExecutes(v, out);
  }
  return out;
}

/** The first Adaptive Card of a message ({} when it has none). */
export function cardOf(m: TeamsMessage): Record<string, unknown> {
  return adaptiveCards(m.activity)[0] ?? {};
}

/**
 * Everything a person would read in an activity: its `text`, then every `text` and `title`
 * in its attachments (Adaptive Card TextBlocks, facts, buttons), joined by newlines.
 */
export function activityText(activity: ActivityJson): string {
  const out: string[] = [];
  if (typeof activity.text === 'string') out.push(activity.text);
  const visit = (node: unknown) => {
    if (Array.isArray(node)) {
      for (const n of node) visit(n);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (typeof o.text === 'string') out.push(o.text);
    if (typeof o.title === 'string') out.push(o.title);
    // A fact is { title, value }.
    if (typeof o.title === 'string' && typeof o.value === 'string') out.push(o.value);
    for (const [k, v] of Object.entries(o)) if (typeof v === 'object' && k !== 'data') visit(v);
  };
  visit(adaptiveCards(activity));
  return out.join('\n');
}
