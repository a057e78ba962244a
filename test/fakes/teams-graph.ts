/**
 * A local fake of the slice of Microsoft Graph v1.0 a Teams bot uses with its own (app-only)
 * token: resolving a file shared in a channel or group chat through the shares API, and
 * `checkMemberGroups` for approver groups. Graph's error body is
 * `{ error: { code, message, innerError } }`; tokens must have audience
 * https://graph.microsoft.com and the application permission (`roles`) each call needs.
 *
 * Download URLs (`@microsoft.graph.downloadUrl`) are pre-authenticated, like SharePoint's: they
 * carry a `tempauth` query and take no Authorization header.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWTPayload } from 'jose';
import {
  FakeHttpServer,
  type InjectedFailure,
  parseJson,
  pollUntil,
  readBody,
  sendJson,
  sha256,
  stableGuid,
  takeFailure,
} from './teams-common.ts';
import { type FakeEntra, GRAPH_AUDIENCE } from './teams-entra.ts';

/**
 * The shares API's id for a sharing URL: `u!` + base64url of the URL without padding (base64,
 * '=' trimmed, '/' → '_', '+' → '-'), as Graph documents it.
 */
export function shareIdFor(webUrl: string): string {
  return `u!${Buffer.from(webUrl, 'utf8').toString('base64').replace(/=+$/, '').replace(/\//g, '_').replace(/\+/g, '-')}`;
}

const mimeTypes: Record<string, string> = {
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  json: 'application/json',
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  zip: 'application/x-zip-compressed',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
};

/** The MIME type SharePoint reports for a file name. */
export function mimeTypeOf(name: string): string {
  return mimeTypes[fileTypeOf(name)] ?? 'application/octet-stream';
}

/** The extension Teams reports as `fileType` (lower case, no dot). */
export function fileTypeOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i === -1 ? '' : name.slice(i + 1).toLowerCase();
}

/** SharePoint drive item ids look like `01` + 32 upper-case characters. */
export function driveItemId(seed: string): string {
  return `01${sha256(seed).toString('hex').slice(0, 32).toUpperCase()}`;
}

export interface SharedFile {
  id: string;
  webUrl: string;
  name: string;
  bytes: Buffer;
  mimeType: string;
  /** `u!…`, what the bot puts into /shares/{shareId}/driveItem. */
  shareId: string;
  /** The pre-authenticated URL Graph hands out for it. */
  downloadUrl: string;
  /** The attachment Teams puts into a channel or group chat message for this file. */
  attachment: { contentType: 'reference'; contentUrl: string; name: string };
}

export type GraphOperation =
  | 'getSharedDriveItem'
  | 'getSharedContent'
  | 'download'
  | 'checkMemberGroups'
  | 'listChannelMessages'
  | 'getChannelMessage'
  | 'listReplies'
  | 'unknown';

/** Who posted a channel message: a person (Entra user) or an app (a bot). */
export type ChannelMessageAuthor =
  | { user: { id: string; displayName: string } }
  | { application: { id: string; displayName: string } };

export interface ChannelMessageInput {
  /** The team's Microsoft 365 group id (what Graph names a team by). */
  teamId: string;
  /** `19:…@thread.tacv2` */
  channelId: string;
  /** The message id Teams used (the activity id); default: a new id from the clock. */
  id?: string;
  /** The thread's root id: this message is a reply in it. */
  replyTo?: string;
  from: ChannelMessageAuthor;
  /** The body; `contentType` defaults to html (as Teams clients post). */
  content: string;
  contentType?: 'html' | 'text';
  createdDateTime?: string;
  deleted?: boolean;
  messageType?: 'message' | 'systemEventMessage';
}

interface StoredChannelMessage extends Required<Omit<ChannelMessageInput, 'replyTo' | 'deleted' | 'contentType'>> {
  replyTo?: string;
  deleted: boolean;
  contentType: 'html' | 'text';
}

export interface GraphCall {
  method: string;
  path: string;
  operation: GraphOperation;
  body: unknown;
  status: number;
  /** Graph error code answered, if any. */
  error?: string;
  authError?: string;
  at: number;
}

export interface FakeGraphOptions {
  /** Checks the bot's bearer tokens (audience https://graph.microsoft.com). */
  entra: FakeEntra;
}

interface GraphFailure extends InjectedFailure {
  remaining: number;
  only?: GraphOperation;
}

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const fileRoles = ['Files.Read.All', 'Files.ReadWrite.All', 'Sites.Read.All', 'Sites.ReadWrite.All'];
const directoryRoles = ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All', 'Group.ReadWrite.All'];
/** Tenant-wide application permissions that read every channel's messages. */
const channelMessageRoles = ['ChannelMessage.Read.All'];

export class FakeGraph extends FakeHttpServer {
  readonly calls: GraphCall[] = [];
  /** Downloads served, by drive item id. */
  readonly downloads = new Map<string, number>();
  readonly #entra: FakeEntra;
  readonly #files = new Map<string, SharedFile & { tempauth: string }>();
  readonly #groups = new Map<string, Set<string>>();
  readonly #failures: GraphFailure[] = [];
  readonly #channelMessages: StoredChannelMessage[] = [];
  readonly #stalls: Array<{ operation: GraphOperation; remaining: number }> = [];
  /** Teams (group ids) whose owners consented to ChannelMessage.Read.Group, and for which app ids. */
  readonly #rsc = new Map<string, Set<string>>();
  #lastMessageId = 0;

  constructor(options: FakeGraphOptions) {
    super('FakeGraph');
    this.#entra = options.entra;
  }

  /** Base URL for `TEAMS_GRAPH_URL` (no trailing slash; paths start with /v1.0/). */
  get url(): string {
    return this.origin;
  }

  /** Makes a file resolvable through /shares: `webUrl` is the SharePoint URL Teams shows for it. */
  addSharedFile(webUrl: string, name: string, bytes: Buffer | string, mimeType = mimeTypeOf(name)): SharedFile {
    const id = driveItemId(`${webUrl}:${this.#files.size}`);
    const tempauth = randomBytes(24).toString('base64url');
    const file = {
      id,
      webUrl,
      name,
      bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes),
      mimeType,
      shareId: shareIdFor(webUrl),
      downloadUrl: `${this.url}/download/${id}?tempauth=${tempauth}`,
      attachment: { contentType: 'reference' as const, contentUrl: webUrl, name },
      tempauth,
    };
    this.#files.set(id, file);
    const { tempauth: _secret, ...shared } = file;
    return shared;
  }

  /** Makes `userId` (an Entra object id or UPN) a member of `groupId`. */
  addGroupMember(groupId: string, userId: string): void {
    const members = this.#groups.get(groupId) ?? new Set<string>();
    members.add(userId.toLowerCase());
    this.#groups.set(groupId, members);
  }

  removeGroupMember(groupId: string, userId: string): void {
    this.#groups.get(groupId)?.delete(userId.toLowerCase());
  }

  /**
   * Posts a message in a channel (a reply when `replyTo` is set), as Graph will list it. Ids
   * are the post time in ms, as Teams makes them; returns the id.
   */
  addChannelMessage(input: ChannelMessageInput): string {
    this.#lastMessageId = Math.max(Date.now(), this.#lastMessageId + 1);
    const id = input.id ?? String(this.#lastMessageId);
    this.#channelMessages.push({
      teamId: input.teamId.toLowerCase(),
      channelId: input.channelId,
      id,
      ...(input.replyTo ? { replyTo: input.replyTo } : {}),
      from: input.from,
      content: input.content,
      contentType: input.contentType ?? 'html',
      createdDateTime: input.createdDateTime ?? new Date(/^\d{13}$/.test(id) ? Number(id) : Date.now()).toISOString(),
      deleted: input.deleted ?? false,
      messageType: input.messageType ?? 'message',
    });
    return id;
  }

  /**
   * A team owner consents to `ChannelMessage.Read.Group` for `appId` (resource-specific
   * consent, given when the app is added to the team): its app-only tokens may then read
   * that team's channel messages, and no other team's.
   */
  grantChannelMessages(teamId: string, appId: string): void {
    const apps = this.#rsc.get(teamId.toLowerCase()) ?? new Set<string>();
    apps.add(appId.toLowerCase());
    this.#rsc.set(teamId.toLowerCase(), apps);
  }

  revokeChannelMessages(teamId: string, appId: string): void {
    this.#rsc.get(teamId.toLowerCase())?.delete(appId.toLowerCase());
  }

  /** How many checkMemberGroups calls were answered 200. */
  get checkMemberGroupsCount(): number {
    return this.calls.filter((c) => c.operation === 'checkMemberGroups' && c.status === 200).length;
  }

  callsOf(operation: GraphOperation): GraphCall[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  /** The next `n` calls (optionally of one operation) answer `status` with a Graph error body. */
  failNext(n: number, status: number, options: Omit<InjectedFailure, 'status'> & { only?: GraphOperation } = {}): void {
    this.#failures.push({ status, ...options, remaining: n });
  }

  /** The next `n` calls of `operation` get no answer at all until the client gives up (or the fake closes). */
  stallNext(n: number, operation: GraphOperation): void {
    this.#stalls.push({ operation, remaining: n });
  }

  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
    return pollUntil(predicate, timeoutMs, what, () =>
      this.calls.map((c) => `${c.method} ${c.path} → ${c.status}${c.error ? ` ${c.error}` : ''}`).join('\n'),
    );
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const call: GraphCall = { method, path, operation: 'unknown', body: undefined, status: 0, at: Date.now() };
    this.calls.push(call);
    const requestId = stableGuid(`request:${this.calls.length}:${Date.now()}`);
    try {
      const raw = (await readBody(req, 4 * 1024 * 1024)) ?? Buffer.alloc(0);
      call.body = parseJson(raw);
      const download = /^\/download\/([^/]+)$/.exec(path);
      const share = /^\/v1\.0\/shares\/([^/]+)\/driveItem(\/content)?$/.exec(path);
      const check = /^\/v1\.0\/(users|directoryObjects)\/([^/]+)\/checkMemberGroups$/.exec(path);
      const messages = /^\/v1\.0\/teams\/([^/]+)\/channels\/([^/]+)\/messages(?:\/([^/]+)(\/replies)?)?$/.exec(path);
      if (download && method === 'GET') call.operation = 'download';
      else if (share && method === 'GET') call.operation = share[2] ? 'getSharedContent' : 'getSharedDriveItem';
      else if (check && method === 'POST') call.operation = 'checkMemberGroups';
      else if (messages && method === 'GET')
        call.operation = messages[4] ? 'listReplies' : messages[3] ? 'getChannelMessage' : 'listChannelMessages';
      else throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${path.split('/')[2] ?? ''}'.`);

      const stall = this.#stalls.find((x) => x.remaining > 0 && x.operation === call.operation);
      if (stall) {
        stall.remaining -= 1;
        call.error = 'stalled';
        await new Promise<void>((resolve) => res.once('close', () => resolve()));
        return;
      }
      const failure = takeFailure(this.#failures, (f) => f.only === undefined || f.only === call.operation);
      if (failure) {
        const code =
          failure.status === 429
            ? 'TooManyRequests'
            : failure.status >= 500
              ? 'serviceNotAvailable'
              : 'generalException';
        throw new GraphError(
          failure.status,
          failure.code ?? code,
          failure.message ?? 'Injected failure.',
          failure.status === 429 || failure.status === 503 || failure.retryAfterSec !== undefined
            ? { 'retry-after': String(failure.retryAfterSec ?? 1) }
            : {},
        );
      }

      if (call.operation === 'download') {
        const file = this.#files.get(decodeURIComponent(download![1]!));
        if (!file) throw new GraphError(404, 'itemNotFound', 'The resource could not be found.');
        if (url.searchParams.get('tempauth') !== file.tempauth) {
          throw new GraphError(401, 'unauthenticated', 'Invalid or missing tempauth token.');
        }
        this.downloads.set(file.id, (this.downloads.get(file.id) ?? 0) + 1);
        call.status = 200;
        res.writeHead(200, {
          'content-type': file.mimeType,
          'content-length': file.bytes.length,
          'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`,
        });
        res.end(file.bytes);
        return;
      }

      const claims = await this.#authorize(req, call);
      if (messages) {
        this.#channelMessagesAnswer(res, url, claims, messages, requestId);
        call.status = 200;
        return;
      }
      if (call.operation === 'checkMemberGroups') {
        requireRole(
          claims,
          directoryRoles,
          'Authorization_RequestDenied',
          'Insufficient privileges to complete the operation.',
        );
        const body = call.body as { groupIds?: unknown } | undefined;
        const groupIds = body?.groupIds;
        if (!Array.isArray(groupIds) || !groupIds.every((g) => typeof g === 'string')) {
          throw new GraphError(
            400,
            'Request_BadRequest',
            "Invalid value specified for property 'groupIds' of resource 'CheckMemberGroups'.",
          );
        }
        if (groupIds.length > 20) {
          throw new GraphError(400, 'Request_BadRequest', 'The number of groupIds specified exceeds the limit of 20.');
        }
        const user = decodeURIComponent(check![2]!).toLowerCase();
        const value = (groupIds as string[]).filter((g) => this.#groups.get(g)?.has(user));
        call.status = 200;
        sendJson(
          res,
          200,
          { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)', value },
          { 'request-id': requestId },
        );
        return;
      }

      requireRole(claims, fileRoles, 'accessDenied', 'Access denied');
      const shareId = decodeURIComponent(share![1]!);
      if (!/^u![A-Za-z0-9_-]+$/.test(shareId)) {
        throw new GraphError(400, 'invalidRequest', 'Invalid shares key.');
      }
      const webUrl = Buffer.from(shareId.slice(2), 'base64url').toString('utf8');
      const file = [...this.#files.values()].find((f) => f.webUrl === webUrl);
      if (!file)
        throw new GraphError(
          404,
          'itemNotFound',
          'The sharing link no longer exists, or you do not have permission to access it.',
        );
      if (call.operation === 'getSharedContent') {
        call.status = 302;
        res.writeHead(302, { location: file.downloadUrl, 'content-length': 0, 'request-id': requestId }).end();
        return;
      }
      const created = new Date(Date.now() - 86_400_000).toISOString();
      call.status = 200;
      sendJson(
        res,
        200,
        {
          '@odata.context': `https://graph.microsoft.com/v1.0/$metadata#shares('${shareId}')/driveItem/$entity`,
          '@microsoft.graph.downloadUrl': file.downloadUrl,
          createdDateTime: created,
          eTag: `"{${stableGuid(file.id).toUpperCase()}},1"`,
          id: file.id,
          lastModifiedDateTime: created,
          name: file.name,
          webUrl: file.webUrl,
          cTag: `"c:{${stableGuid(file.id).toUpperCase()}},1"`,
          size: file.bytes.length,
          parentReference: { driveType: 'documentLibrary', driveId: `b!${sha256(file.webUrl).toString('base64url')}` },
          file: { mimeType: file.mimeType },
        },
        { 'request-id': requestId },
      );
    } catch (err) {
      const e = err instanceof GraphError ? err : new GraphError(500, 'generalException', String(err));
      call.status = e.status;
      call.error = e.code;
      sendJson(
        res,
        e.status,
        {
          error: {
            code: e.code,
            message: e.message,
            innerError: {
              date: new Date().toISOString().replace(/\.\d+Z$/, ''),
              'request-id': requestId,
              'client-request-id': requestId,
            },
          },
        },
        { 'request-id': requestId, ...e.headers },
      );
    }
  }

  /**
   * GET /teams/{team}/channels/{channel}/messages[/{id}[/replies]]: chatMessage resources in
   * Graph's shape, newest first, `$top` up to 50 (default 20) with `@odata.nextLink`. Needs
   * ChannelMessage.Read.All in the token, or the team's resource-specific consent for the
   * token's app (ChannelMessage.Read.Group); otherwise 403, as Graph answers.
   */
  #channelMessagesAnswer(
    res: ServerResponse,
    url: URL,
    claims: JWTPayload,
    match: RegExpExecArray,
    requestId: string,
  ): void {
    const teamId = decodeURIComponent(match[1]!).toLowerCase();
    const channelId = decodeURIComponent(match[2]!);
    const messageId = match[3] === undefined ? undefined : decodeURIComponent(match[3]);
    const roles = Array.isArray(claims.roles) ? (claims.roles as string[]) : [];
    const appId = String(claims.appid ?? claims.azp ?? '').toLowerCase();
    const consented = this.#rsc.get(teamId)?.has(appId) ?? false;
    if (!consented && !roles.some((r) => channelMessageRoles.includes(r)))
      throw new GraphError(
        403,
        'Forbidden',
        `Missing role permissions on the request. API requires one of 'ChannelMessage.Read.All, ChannelMessage.Read.Group'. Roles on the request '${roles.join(',')}'. Resource specific consent grants on the request ''.`,
      );
    const inChannel = this.#channelMessages.filter((m) => m.teamId === teamId && m.channelId === channelId);
    if (inChannel.length === 0 && !this.#rsc.has(teamId))
      throw new GraphError(404, 'NotFound', `No team found with Group Id ${teamId}`);
    const context = `https://graph.microsoft.com/v1.0/$metadata#teams('${teamId}')/channels('${encodeURIComponent(channelId)}')/messages`;
    if (messageId !== undefined && match[4] === undefined) {
      const m = inChannel.find((x) => x.id === messageId && !x.replyTo);
      if (!m) throw new GraphError(404, 'NotFound', 'Message not found.');
      sendJson(res, 200, { '@odata.context': `${context}/$entity`, ...chatMessage(m) }, { 'request-id': requestId });
      return;
    }
    if (messageId !== undefined && !inChannel.some((x) => x.id === messageId && !x.replyTo))
      throw new GraphError(404, 'NotFound', 'Message not found.');
    const top = url.searchParams.has('$top') ? Number(url.searchParams.get('$top')) : 20;
    if (!Number.isInteger(top) || top < 1 || top > 50)
      throw new GraphError(400, 'BadRequest', `Invalid page size requested. Page size must be between 1 and 50.`);
    const skip = url.searchParams.has('$skiptoken')
      ? Number(Buffer.from(url.searchParams.get('$skiptoken')!, 'base64url').toString('utf8'))
      : 0;
    if (!Number.isInteger(skip) || skip < 0) throw new GraphError(400, 'BadRequest', 'Invalid skip token.');
    const all = inChannel
      .filter((m) => (messageId === undefined ? !m.replyTo : m.replyTo === messageId))
      .sort((a, b) => Number(b.id) - Number(a.id));
    const page = all.slice(skip, skip + top);
    const next = new URL(url.href);
    next.searchParams.set('$top', String(top));
    next.searchParams.set('$skiptoken', Buffer.from(String(skip + top), 'utf8').toString('base64url'));
    sendJson(
      res,
      200,
      {
        '@odata.context': messageId === undefined ? context : `${context}('${messageId}')/replies`,
        '@odata.count': page.length,
        ...(skip + top < all.length ? { '@odata.nextLink': next.href } : {}),
        value: page.map(chatMessage),
      },
      { 'request-id': requestId },
    );
  }

  async #authorize(req: IncomingMessage, call: GraphCall): Promise<JWTPayload> {
    if (!req.headers.authorization) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const auth = await this.#entra.checkBotToken(req.headers.authorization, GRAPH_AUDIENCE);
    if (!auth.ok) {
      call.authError = auth.reason;
      throw new GraphError(
        401,
        'InvalidAuthenticationToken',
        /aud/.test(auth.reason)
          ? 'Access token validation failure. Invalid audience.'
          : 'Access token validation failure.',
      );
    }
    return auth.claims;
  }
}

function requireRole(claims: JWTPayload, accepted: string[], code: string, message: string): void {
  const roles = Array.isArray(claims.roles) ? (claims.roles as string[]) : [];
  if (roles.length === 0)
    throw new GraphError(
      401,
      'InvalidAuthenticationToken',
      'Either scp or roles claim need to be present in the token.',
    );
  if (!roles.some((r) => accepted.includes(r))) throw new GraphError(403, code, message);
}

/** A stored channel message in Graph's chatMessage shape. */
function chatMessage(m: StoredChannelMessage): Record<string, unknown> {
  const from =
    'user' in m.from
      ? {
          application: null,
          device: null,
          user: {
            '@odata.type': '#microsoft.graph.teamworkUserIdentity',
            id: m.from.user.id,
            displayName: m.from.user.displayName,
            userIdentityType: 'aadUser',
          },
        }
      : {
          application: {
            '@odata.type': '#microsoft.graph.teamworkApplicationIdentity',
            id: m.from.application.id,
            displayName: m.from.application.displayName,
            applicationIdentityType: 'bot',
          },
          device: null,
          user: null,
        };
  return {
    id: m.id,
    replyToId: m.replyTo ?? null,
    etag: m.id,
    messageType: m.messageType,
    createdDateTime: m.createdDateTime,
    lastModifiedDateTime: m.createdDateTime,
    lastEditedDateTime: null,
    deletedDateTime: m.deleted ? m.createdDateTime : null,
    subject: null,
    summary: null,
    chatId: null,
    importance: 'normal',
    locale: 'en-us',
    webUrl: `https://teams.microsoft.com/l/message/${encodeURIComponent(m.channelId)}/${m.id}`,
    policyViolation: null,
    eventDetail: null,
    from,
    body: { contentType: m.contentType, content: m.deleted ? '' : m.content },
    channelIdentity: { teamId: m.teamId, channelId: m.channelId },
    attachments: [],
    mentions: [],
    reactions: [],
  };
}
