/**
 * Plays the Microsoft Teams channel towards a bot: builds activities in the shapes Teams sends
 * (channel posts and thread replies with an `<at>` mention, 1:1 and group chat messages,
 * Adaptive Card `Action.Execute`, file consent and message extension invokes) and POSTs them
 * to the bot's messaging endpoint with a channel-signed bearer token from FakeEntra.
 *
 * Like Teams, a message with formatting or a mention also carries a `text/html` attachment
 * with the rendered message, before any file attachments.
 */
import { randomBytes } from 'node:crypto';
import { FAKE_TENANT_ID, MessageIdClock, personalConversationId, sha256, stableGuid } from './teams-common.ts';
import { cardExecutes, cardOf, type TeamsMessage } from './teams-connector.ts';
import type { ChannelTokenOptions, FakeEntra } from './teams-entra.ts';

export interface TeamsUser {
  /** `29:…` */
  id: string;
  /** Entra object id (a GUID). */
  aadObjectId: string;
  name: string;
  email?: string;
  userPrincipalName?: string;
}

export interface TeamsTeam {
  /** `19:…@thread.tacv2` (also the id of its General channel). */
  id: string;
  name: string;
  /** The Microsoft 365 group behind the team. */
  aadGroupId: string;
}

export interface TeamsChannel {
  /** `19:…@thread.tacv2` */
  id: string;
  name: string;
}

export interface TeamsGroupChat {
  /** `19:…@thread.v2` */
  id: string;
  name?: string;
}

export interface TeamsConversationAccount {
  id: string;
  conversationType: 'channel' | 'personal' | 'groupChat';
  tenantId: string;
  isGroup?: boolean;
  name?: string;
}

export interface TeamsChannelData {
  tenant: { id: string };
  team?: { id: string; name?: string; aadGroupId?: string };
  channel?: { id: string; name?: string };
  teamsTeamId?: string;
  teamsChannelId?: string;
  eventType?: string;
  [key: string]: unknown;
}

/** An activity as Teams puts it on the wire. */
export interface TeamsActivity {
  type: string;
  id: string;
  channelId: 'msteams';
  serviceUrl: string;
  timestamp: string;
  localTimestamp: string;
  from: { id: string; name: string; aadObjectId: string };
  recipient: { id: string; name: string };
  conversation: TeamsConversationAccount;
  channelData: TeamsChannelData;
  text?: string;
  textFormat?: string;
  replyToId?: string;
  name?: string;
  value?: unknown;
  attachments?: unknown[];
  entities?: unknown[];
  locale?: string;
  localTimezone?: string;
  [key: string]: unknown;
}

/** Where an invoke happens: the activity it follows up (its conversation and channelData), or a conversation. */
export type TeamsPlace = TeamsActivity | TeamsConversationAccount;

export interface TeamsSenderOptions {
  /** The bot's messaging endpoint; a bare origin gets `/api/messages` appended. */
  botUrl: string;
  /** The bot's Microsoft App ID (token audience, `28:<appId>`). */
  appId: string;
  entra: FakeEntra;
  /** The Bot Connector's URL (FakeBotConnector.url), put into every activity and token. */
  serviceUrl: string;
  /** Default `FAKE_TENANT_ID`. */
  tenantId?: string;
  /** The bot's display name in mentions (default 'Handoff'). */
  botName?: string;
  /** IANA zone of the person's client (default 'America/Los_Angeles'). */
  timezone?: string;
  /** How long to wait for the bot's answer (default 15 s, about what Teams waits). */
  timeoutMs?: number;
}

export interface SendOptions {
  /** A token to send instead of a fresh genuine one; `null` sends no Authorization header. */
  token?: string | null;
  /** Changes to the genuine token (expired, other audience, rogue signature, …). */
  tokenOptions?: Partial<ChannelTokenOptions>;
}

export interface SentActivity {
  activity: TeamsActivity;
  status: number;
  body: unknown;
  at: number;
}

/** A stable Teams user for `name`: the same name always gives the same ids. */
export function teamsUser(name: string): TeamsUser {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '.')
      .replace(/^\.|\.$/g, '') || 'user';
  return {
    id: `29:1${sha256(`user:${name}`).toString('base64url')}`,
    aadObjectId: stableGuid(`aad:${name}`),
    name,
    email: `${slug}@contoso.example`,
    userPrincipalName: `${slug}@contoso.example`,
  };
}

/** A stable team for `name`. */
export function teamsTeam(name: string): TeamsTeam {
  return {
    id: `19:${sha256(`team:${name}`).toString('hex').slice(0, 32)}@thread.tacv2`,
    name,
    aadGroupId: stableGuid(`group:${name}`),
  };
}

/** A stable channel of `team`; its General channel has the team's id, as in Teams. */
export function teamsChannel(team: TeamsTeam, name: string): TeamsChannel {
  if (name === 'General') return { id: team.id, name };
  return { id: `19:${sha256(`channel:${team.id}:${name}`).toString('hex').slice(0, 32)}@thread.tacv2`, name };
}

/** A stable group chat. */
export function teamsGroupChat(name: string): TeamsGroupChat {
  return { id: `19:${sha256(`chat:${name}`).toString('hex').slice(0, 32)}@thread.v2`, name };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

export class TeamsSender {
  readonly sent: SentActivity[] = [];
  readonly botUrl: string;
  readonly appId: string;
  readonly serviceUrl: string;
  readonly tenantId: string;
  readonly botName: string;
  readonly #entra: FakeEntra;
  readonly #timezone: string;
  readonly #timeoutMs: number;
  readonly #ids = new MessageIdClock();

  constructor(options: TeamsSenderOptions) {
    const u = new URL(options.botUrl);
    this.botUrl = u.pathname === '/' ? `${u.origin}/api/messages` : options.botUrl;
    this.appId = options.appId;
    this.#entra = options.entra;
    this.serviceUrl = options.serviceUrl;
    this.tenantId = options.tenantId ?? FAKE_TENANT_ID;
    this.botName = options.botName ?? 'Handoff';
    this.#timezone = options.timezone ?? 'America/Los_Angeles';
    this.#timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** The bot as Teams names it: `{ id: '28:<appId>', name }`. */
  get bot(): { id: string; name: string } {
    return { id: `28:${this.appId}`, name: this.botName };
  }

  /** POSTs `activity` to the bot as Teams does; answers the HTTP status and the parsed body. */
  /**
   * Clicks `verb` on the card the bot posted as `card`, as `who`, in `place`: the data is
   * the button's own unless given. Returns the HTTP status and the card Teams would show
   * the clicker (`text`: its JSON, for matching words).
   */
  async click(
    place: TeamsPlace,
    card: TeamsMessage,
    who: TeamsUser,
    verb: string,
    data?: Record<string, unknown>,
  ): Promise<{ status: number; type?: string; card: Record<string, unknown>; text: string }> {
    const given = data ?? cardExecutes(cardOf(card)).find((e) => e.verb === verb)?.data;
    const res = await this.send(
      this.actionExecute({
        conversation: place,
        from: who,
        replyToId: card.id,
        verb,
        ...(given ? { data: given } : {}),
      }),
    );
    const body = (res.body ?? {}) as { type?: string; value?: Record<string, unknown> };
    const value = body.value ?? {};
    return { status: res.status, ...(body.type ? { type: body.type } : {}), card: value, text: JSON.stringify(value) };
  }

  async send(activity: TeamsActivity, opts: SendOptions = {}): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Microsoft-SkypeBotApi (Microsoft-BotFramework 3.0)',
      'x-ms-conversation-id': activity.conversation.id,
      'x-ms-tenant-id': activity.conversation.tenantId,
    };
    const token =
      opts.token === undefined
        ? await this.#entra.channelToken({ appId: this.appId, serviceUrl: activity.serviceUrl, ...opts.tokenOptions })
        : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await fetch(this.botUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify(activity),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    const text = await res.text();
    let body: unknown = text === '' ? undefined : text;
    try {
      if (text !== '') body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    this.sent.push({ activity, status: res.status, body, at: Date.now() });
    return { status: res.status, body };
  }

  /**
   * A message in a channel that mentions the bot. Without `replyToRoot` it is a new post (its
   * conversation is `<channelId>;messageid=<its own id>`); with it, a reply in that thread.
   */
  channelMention(opts: {
    team: TeamsTeam;
    channel: TeamsChannel;
    from: TeamsUser;
    /** What follows the mention: the activity's text is `<at>Handoff</at> <text>`. */
    text: string;
    attachments?: unknown[];
    replyToRoot?: string;
    /** false: a plain channel message (Teams delivers those only with RSC permissions). */
    mention?: boolean;
  }): TeamsActivity {
    const id = this.#ids.next();
    const root = opts.replyToRoot ?? id;
    const conversation: TeamsConversationAccount = {
      isGroup: true,
      conversationType: 'channel',
      tenantId: this.tenantId,
      id: `${opts.channel.id};messageid=${root}`,
    };
    const channelData: TeamsChannelData = {
      teamsChannelId: opts.channel.id,
      teamsTeamId: opts.team.id,
      channel: { id: opts.channel.id, name: opts.channel.name },
      team: { id: opts.team.id, name: opts.team.name, aadGroupId: opts.team.aadGroupId },
      tenant: { id: this.tenantId },
    };
    return {
      ...this.#message(id, conversation, channelData, opts.from, opts.text, opts.attachments, opts.mention ?? true),
      ...(opts.replyToRoot ? { replyToId: opts.replyToRoot } : {}),
    };
  }

  /** A message in the person's 1:1 chat with the bot (no mention needed there). */
  personalMessage(opts: { from: TeamsUser; text: string; attachments?: unknown[] }): TeamsActivity {
    const conversation: TeamsConversationAccount = {
      conversationType: 'personal',
      tenantId: this.tenantId,
      id: personalConversationId(this.appId, opts.from.id),
    };
    return this.#message(
      this.#ids.next(),
      conversation,
      { tenant: { id: this.tenantId } },
      opts.from,
      opts.text,
      opts.attachments,
      false,
    );
  }

  /** A message in a group chat that mentions the bot. */
  groupChatMention(opts: {
    chat: TeamsGroupChat;
    from: TeamsUser;
    text: string;
    attachments?: unknown[];
    mention?: boolean;
  }): TeamsActivity {
    const conversation: TeamsConversationAccount = {
      isGroup: true,
      conversationType: 'groupChat',
      tenantId: this.tenantId,
      id: opts.chat.id,
      ...(opts.chat.name ? { name: opts.chat.name } : {}),
    };
    return this.#message(
      this.#ids.next(),
      conversation,
      { tenant: { id: this.tenantId } },
      opts.from,
      opts.text,
      opts.attachments,
      opts.mention ?? true,
    );
  }

  /** A click on an Adaptive Card `Action.Execute` button in the card posted as `replyToId`. */
  actionExecute(opts: {
    conversation: TeamsPlace;
    from: TeamsUser;
    replyToId: string;
    verb: string;
    data?: Record<string, unknown>;
  }): TeamsActivity {
    return {
      ...this.#invoke(opts.conversation, opts.from, 'adaptiveCard/action', {
        action: { type: 'Action.Execute', id: randomBytes(4).toString('hex'), verb: opts.verb, data: opts.data ?? {} },
        trigger: 'manual',
      }),
      replyToId: opts.replyToId,
    };
  }

  /** The person's answer to a FileConsentCard posted as `replyToId`. */
  fileConsent(opts: {
    conversation: TeamsPlace;
    from: TeamsUser;
    replyToId: string;
    action: 'accept' | 'decline';
    /** The card's `acceptContext` / `declineContext`, echoed back. */
    context?: unknown;
    /** Only with accept: where to upload (FakeTeamsFiles.newUploadSession). */
    uploadInfo?: unknown;
  }): TeamsActivity {
    return {
      ...this.#invoke(opts.conversation, opts.from, 'fileConsent/invoke', {
        type: 'fileUpload',
        action: opts.action,
        context: opts.context ?? {},
        ...(opts.action === 'accept' && opts.uploadInfo !== undefined ? { uploadInfo: opts.uploadInfo } : {}),
      }),
      replyToId: opts.replyToId,
    };
  }

  /** A message action ("…" on a message → the bot's command) submitted from its dialog. */
  messageExtensionAction(opts: {
    conversation: TeamsPlace;
    from: TeamsUser;
    commandId: string;
    messagePayload: {
      /** The message's id (default a new one). */
      id?: string;
      /** Its body, as Teams gives it (HTML by default). */
      content: string;
      contentType?: 'html' | 'text';
      /** Who wrote it (default `from`). Teams identifies them by Entra object id here. */
      author?: TeamsUser;
      attachments?: unknown[];
    };
    data?: Record<string, unknown>;
  }): TeamsActivity {
    const author = opts.messagePayload.author ?? opts.from;
    const messageId = opts.messagePayload.id ?? this.#ids.next();
    const place = this.#place(opts.conversation);
    return this.#invoke(opts.conversation, opts.from, 'composeExtension/submitAction', {
      commandId: opts.commandId,
      commandContext: 'message',
      context: { theme: 'default' },
      ...(opts.data ? { data: opts.data } : {}),
      messagePayload: {
        id: messageId,
        replyToId: null,
        createdDateTime: new Date().toISOString(),
        lastModifiedDateTime: null,
        deleted: false,
        subject: null,
        summary: null,
        importance: 'normal',
        locale: 'en-us',
        linkToMessage: `https://teams.microsoft.com/l/message/${encodeURIComponent(place.conversation.id.split(';')[0] ?? '')}/${messageId}`,
        from: { user: { id: author.aadObjectId, displayName: author.name, userIdentityType: 'aadUser' } },
        body: { contentType: opts.messagePayload.contentType ?? 'html', content: opts.messagePayload.content },
        attachments: opts.messagePayload.attachments ?? [],
        mentions: [],
        reactions: [],
      },
    });
  }

  /** The bot was added to a team, chat or 1:1 (a conversationUpdate with the bot in membersAdded). */
  botAdded(opts: { conversation: TeamsPlace; from: TeamsUser }): TeamsActivity {
    const place = this.#place(opts.conversation);
    const channelData: TeamsChannelData =
      place.conversation.conversationType === 'channel'
        ? { ...place.channelData, eventType: 'teamMemberAdded' }
        : place.channelData;
    return {
      ...this.#base('conversationUpdate', this.#ids.next(), place.conversation, channelData, opts.from),
      membersAdded: [{ id: this.bot.id }],
    };
  }

  #message(
    id: string,
    conversation: TeamsConversationAccount,
    channelData: TeamsChannelData,
    from: TeamsUser,
    text: string,
    attachments: unknown[] | undefined,
    mention: boolean,
  ): TeamsActivity {
    const at = `<at>${this.botName}</at>`;
    const html = mention
      ? `<p><span itemscope="" itemtype="http://schema.skype.com/Mention" itemid="0">${escapeHtml(this.botName)}</span>&nbsp;${escapeHtml(text)}</p>`
      : `<p>${escapeHtml(text)}</p>`;
    return {
      ...this.#base('message', id, conversation, channelData, from),
      text: mention ? `${at} ${text}` : text,
      textFormat: 'plain',
      attachments: [{ contentType: 'text/html', content: html }, ...(attachments ?? [])],
      entities: [
        ...(mention ? [{ type: 'mention', text: at, mentioned: this.bot }] : []),
        { type: 'clientInfo', locale: 'en-US', country: 'US', platform: 'Web', timezone: this.#timezone },
      ],
    };
  }

  #invoke(place: TeamsPlace, from: TeamsUser, name: string, value: unknown): TeamsActivity {
    const { conversation, channelData } = this.#place(place);
    return {
      ...this.#base(
        'invoke',
        `f:${BigInt(`0x${randomBytes(8).toString('hex')}`) % 10n ** 19n}`,
        conversation,
        channelData,
        from,
      ),
      name,
      value,
      entities: [{ type: 'clientInfo', locale: 'en-US', country: 'US', platform: 'Web', timezone: this.#timezone }],
    };
  }

  #place(place: TeamsPlace): { conversation: TeamsConversationAccount; channelData: TeamsChannelData } {
    if ('type' in place && 'channelData' in place) {
      const { eventType: _e, ...channelData } = place.channelData;
      return { conversation: place.conversation, channelData };
    }
    const conversation = place as TeamsConversationAccount;
    const channelData: TeamsChannelData = { tenant: { id: conversation.tenantId } };
    if (conversation.conversationType === 'channel') {
      const channelId = conversation.id.split(';')[0] ?? conversation.id;
      channelData.channel = { id: channelId };
      channelData.teamsChannelId = channelId;
    }
    return { conversation, channelData };
  }

  #base(
    type: string,
    id: string,
    conversation: TeamsConversationAccount,
    channelData: TeamsChannelData,
    from: TeamsUser,
  ): TeamsActivity {
    const now = new Date();
    return {
      type,
      id,
      channelId: 'msteams',
      serviceUrl: this.serviceUrl,
      timestamp: now.toISOString(),
      localTimestamp: localTimestamp(now, this.#timezone),
      from: { id: from.id, name: from.name, aadObjectId: from.aadObjectId },
      recipient: this.bot,
      conversation,
      channelData,
      locale: 'en-US',
      localTimezone: this.#timezone,
    };
  }
}

/** `2024-05-01T05:34:56.789-07:00`: the time as the person's client saw it. */
function localTimestamp(d: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(d);
  const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  const offsetMin = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  const local = new Date(d.getTime() + offsetMin * 60_000).toISOString().slice(0, -1);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
