import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One Web API call as the fake received it. */
export interface SlackCall {
  method: string;
  /** Form fields or JSON body; JSON-encoded fields (blocks, files, view) are decoded. */
  args: Record<string, unknown>;
  at: number;
  /** The `error` the fake answered with, if any. */
  error?: string;
  status: number;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  blocks: unknown[];
  edits: number;
  /** Who wrote it, for messages people posted (`say`); the bot's own posts have none. */
  user?: string;
  /** Set for another app's message (`say` with `botName`). */
  botName?: string;
}

export interface FakeFile {
  id: string;
  filename: string;
  length: number;
  bytes?: Buffer;
  channel?: string;
  threadTs?: string;
  title?: string;
}

/** One chunk a progress stream received, with the call that carried it. */
export interface FakeStreamChunk {
  method: 'chat.startStream' | 'chat.appendStream' | 'chat.stopStream';
  at: number;
  chunk: Record<string, unknown>;
}

/** A message being streamed with chat.startStream / appendStream / stopStream. */
export interface FakeStream {
  channel: string;
  ts: string;
  thread_ts: string;
  taskDisplayMode: string;
  recipientUserId?: string;
  recipientTeamId?: string;
  chunks: FakeStreamChunk[];
  /** When each call that reached this stream succeeded (start, appends, stop). */
  callTimes: number[];
  stoppedAt?: number;
}

export interface FakeUser {
  name: string;
  realName?: string;
  tz?: string;
  deleted?: boolean;
}

/** What a command or click's `response_url` received. */
export interface FakeResponse {
  id: string;
  at: number;
  body: Record<string, unknown>;
}

export interface FakeSlackOptions {
  botToken: string;
  /** App-level token accepted by apps.connections.open (Socket Mode). */
  appToken?: string;
  /** users.info answers; `tz` is the profile's zone, `deleted` a person who left the workspace. */
  users?: Record<string, FakeUser>;
  userGroups?: Record<string, string[]>;
  /** Files served at their `url_private_download`. */
  files?: Record<string, { name: string; bytes: Buffer }>;
}

/** Block Kit problems the real Slack rejects with `invalid_blocks` (or truncates). */
export function blockKitProblems(blocks: unknown, maxBlocks = 50): string[] {
  const problems: string[] = [];
  if (!Array.isArray(blocks)) return ['blocks is not an array'];
  if (blocks.length > maxBlocks) problems.push(`${blocks.length} blocks (max ${maxBlocks})`);
  const actionIds = new Set<string>();
  const visit = (node: unknown, path: string) => {
    if (Array.isArray(node)) {
      for (const [i, n] of node.entries()) visit(n, `${path}[${i}]`);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if ((o.type === 'mrkdwn' || o.type === 'plain_text') && typeof o.text === 'string') {
      if (o.text.length > 3000) problems.push(`${path}: text of ${o.text.length} characters (max 3000)`);
      if (o.text.length === 0) problems.push(`${path}: empty text`);
    }
    if (typeof o.action_id === 'string') {
      if (actionIds.has(o.action_id)) problems.push(`${path}: duplicate action_id ${o.action_id}`);
      actionIds.add(o.action_id);
      if (o.action_id.length > 255) problems.push(`${path}: action_id too long`);
    }
    if (typeof o.value === 'string' && o.value.length > 2000) problems.push(`${path}: value too long`);
    if (o.type === 'header' && typeof (o.text as { text?: string })?.text === 'string') {
      if ((o.text as { text: string }).text.length > 150) problems.push(`${path}: header text over 150`);
    }
    for (const [k, v] of Object.entries(o)) if (typeof v === 'object') visit(v, `${path}.${k}`);
  };
  visit(blocks, 'blocks');
  return problems;
}

/**
 * A local fake of Slack's Web API speaking its wire format: POST form or JSON bodies,
 * `Authorization: Bearer`, HTTP 200 with `{ ok, error }`, 429 with `Retry-After`. It
 * keeps channels, messages and uploaded files, checks Block Kit limits, and records
 * every call for the test to assert on.
 */
export class FakeSlack {
  readonly calls: SlackCall[] = [];
  readonly messages = new Map<string, FakeMessage>();
  readonly uploads = new Map<string, FakeFile>();
  readonly deletedChannels = new Set<string>();
  /** Channels whose chat.postMessage answers an error (the bot was removed, the channel archived). */
  readonly refusingChannels = new Map<string, string>();
  /** Bodies POSTed to response URLs (`responseUrl()`), oldest first. */
  readonly responses: FakeResponse[] = [];
  private readonly rateLimits = new Map<string, { remaining: number; retryAfterSec: number }>();
  private readonly delays = new Map<string, () => number>();
  /** Progress streams by `channel:ts`. */
  readonly streams = new Map<string, FakeStream>();
  /** Assistant statuses by `channel:thread_ts`, newest last (an empty string clears). */
  readonly assistantStatuses = new Map<string, string[]>();
  private streamingError: string | undefined;
  private historyError: string | undefined;
  private server: Server | undefined;
  private seq = 0;
  private readonly sockets = new Set<Socket>();
  /** Envelope ids the Socket Mode client acknowledged, with any response payload. */
  readonly socketAcks: Array<{ envelope_id: string; payload?: unknown }> = [];
  url = '';

  constructor(private readonly options: FakeSlackOptions) {}

  /** Base URL for SLACK_API_URL (`…/api/`). */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    this.server.on('upgrade', (req, socket: Socket) => this.upgrade(req, socket));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  /** The next `count` calls of `method` answer 429 with this Retry-After. */
  rateLimit(method: string, count: number, retryAfterSec: number): void {
    this.rateLimits.set(method, { remaining: count, retryAfterSec });
  }

  /**
   * Later calls of `method` are answered only after `ms` (a number, or a function asked per
   * call for jitter), recorded when they arrive. `files.upload_url` delays the upload POST.
   * `0` removes the delay.
   */
  delay(method: string, ms: number | (() => number)): void {
    if (ms === 0) this.delays.delete(method);
    else this.delays.set(method, typeof ms === 'number' ? () => ms : ms);
  }

  private async delayed(method: string): Promise<void> {
    const ms = this.delays.get(method)?.();
    if (ms) await new Promise((r) => setTimeout(r, ms));
  }

  /** Every later post or edit in this channel answers `channel_not_found`. */
  deleteChannel(channel: string): void {
    this.deletedChannels.add(channel);
  }

  /**
   * Later chat.postMessage calls in this channel answer `error` (default `not_in_channel`,
   * what Slack answers once the bot was removed); edits of existing messages still work.
   * `acceptPosts` lifts it.
   */
  refusePosts(channel: string, error = 'not_in_channel'): void {
    this.refusingChannels.set(channel, error);
  }

  /** Takes posts in `channel` again (the bot was invited back). */
  acceptPosts(channel: string): void {
    this.refusingChannels.delete(channel);
  }

  /** Changes what users.info answers for a person (e.g. `{ deleted: true }`). */
  setUser(id: string, patch: Partial<FakeUser>): void {
    this.options.users ??= {};
    const users = this.options.users;
    users[id] = { ...(users[id] ?? { name: id }), ...patch };
  }

  /** A URL to give as `response_url`: what is POSTed to it is kept in `responses`. */
  responseUrl(id = randomBytes(4).toString('hex')): string {
    return `${this.url}/respond/${id}`;
  }

  /** The direct messages the bot sent a person (chat.postMessage with their user id), oldest first. */
  dmsTo(userId: string): FakeMessage[] {
    return [...this.messages.values()].filter((m) => m.channel === dmChannel(userId));
  }

  /** Top-level messages the bot posted in a channel (no thread_ts), oldest first. */
  topLevel(channel: string): FakeMessage[] {
    return [...this.messages.values()].filter((m) => m.channel === channel && !m.thread_ts && m.text !== '(root)');
  }

  /**
   * Streaming is not available: chat.startStream / appendStream / stopStream answer this
   * error (as Slack does where streaming is not allowed) until `enableStreaming()`.
   */
  disableStreaming(error = 'method_not_supported_for_channel_type'): void {
    this.streamingError = error;
  }

  enableStreaming(): void {
    this.streamingError = undefined;
  }

  /** The progress streams started in a thread, oldest first. */
  streamsIn(channel: string, threadTs: string): FakeStream[] {
    return [...this.streams.values()].filter((s) => s.channel === channel && s.thread_ts === threadTs);
  }

  /** The URL at which the fake serves a private file (needs the bot token). */
  fileUrl(id: string, name: string): string {
    return `${this.url}/files-pri/T1-${id}/download/${encodeURIComponent(name)}`;
  }

  callsOf(method: string): SlackCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /**
   * A message someone posted (not the bot), kept so conversations.replies / history serve
   * it: `user` for a person, `botName` for another app. Posting an event about it is the
   * test's part.
   */
  say(message: { channel: string; ts: string; thread_ts?: string; text: string; user?: string; botName?: string }) {
    this.messages.set(`${message.channel}:${message.ts}`, { ...message, blocks: [], edits: 0 });
  }

  /** conversations.replies / history answer this error (e.g. `missing_scope`) until `readHistory()`. */
  refuseHistory(error = 'missing_scope'): void {
    this.historyError = error;
  }

  readHistory(): void {
    this.historyError = undefined;
  }

  /** A message in the wire format conversations.replies / history return. */
  private wireMessage(m: FakeMessage): Record<string, unknown> {
    const base = {
      type: 'message',
      ts: m.ts,
      text: m.text,
      ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
    };
    if (m.user) return { ...base, user: m.user };
    if (m.botName) return { ...base, subtype: 'bot_message', bot_id: 'BOTHER', username: m.botName };
    return { ...base, user: 'UBOT', bot_id: 'BBOT', app_id: 'A1', bot_profile: { id: 'BBOT', name: 'handoff' } };
  }

  /** One page of `list` from the cursor (`next_ts:<offset>` in base64, like Slack's opaque cursors). */
  private page(list: FakeMessage[], a: Record<string, unknown>, defaultLimit: number): Record<string, unknown> {
    const limit = Math.max(1, Math.min(1000, Number(a.limit ?? defaultLimit) || defaultLimit));
    const cursor = typeof a.cursor === 'string' && a.cursor !== '' ? a.cursor : undefined;
    const decoded = cursor ? Buffer.from(cursor, 'base64').toString('utf8') : 'next_ts:0';
    const offset = Number(decoded.replace(/^next_ts:/, ''));
    if (!Number.isInteger(offset) || offset < 0) return { ok: false, error: 'invalid_cursor' };
    const slice = list.slice(offset, offset + limit);
    const more = offset + limit < list.length;
    return {
      ok: true,
      messages: slice.map((m) => this.wireMessage(m)),
      has_more: more,
      response_metadata: { next_cursor: more ? Buffer.from(`next_ts:${offset + limit}`).toString('base64') : '' },
    };
  }

  /** conversations.replies and conversations.history over the kept messages. */
  private conversations(method: string, a: Record<string, unknown>): Record<string, unknown> {
    const channel = typeof a.channel === 'string' ? a.channel : '';
    if (!channel) return { ok: false, error: 'invalid_arguments' };
    if (this.historyError) {
      return this.historyError === 'missing_scope'
        ? { ok: false, error: 'missing_scope', needed: 'channels:history', provided: 'app_mentions:read,chat:write' }
        : { ok: false, error: this.historyError };
    }
    if (this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
    const inChannel = [...this.messages.values()]
      .filter((m) => m.channel === channel && m.text !== '(root)')
      .sort((x, y) => Number(x.ts) - Number(y.ts));
    if (method === 'conversations.replies') {
      const ts = typeof a.ts === 'string' ? a.ts : '';
      // Slack answers replies of a message in a thread from its parent; oldest first.
      const thread = inChannel.filter((m) => m.ts === ts || m.thread_ts === ts);
      if (thread.length === 0) return { ok: false, error: 'thread_not_found' };
      return this.page(thread, a, 1000);
    }
    // History: top-level messages (and thread broadcasts), newest first, within latest/oldest.
    const inclusive = a.inclusive === true || a.inclusive === 'true' || a.inclusive === '1';
    const latest = a.latest !== undefined ? Number(a.latest) : Number.POSITIVE_INFINITY;
    const oldest = a.oldest !== undefined ? Number(a.oldest) : 0;
    const top = inChannel
      .filter((m) => !m.thread_ts || m.thread_ts === m.ts)
      .filter((m) => {
        const t = Number(m.ts);
        return (inclusive ? t <= latest : t < latest) && (inclusive ? t >= oldest : t > oldest);
      })
      .reverse();
    return this.page(top, a, 100);
  }

  /** Messages posted in a thread (including the root), oldest first. */
  thread(channel: string, threadTs: string): FakeMessage[] {
    return [...this.messages.values()].filter(
      (m) => m.channel === channel && (m.thread_ts === threadTs || m.ts === threadTs),
    );
  }

  async waitFor<T>(what: string, find: () => T | undefined, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = find();
      if (found !== undefined && found !== false) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `timed out waiting for ${what}; calls were:\n${this.calls.map((c) => `${c.method} ${c.error ?? 'ok'}`).join('\n')}`,
    );
  }

  /** Whether a Socket Mode client is connected. */
  get socketConnected(): boolean {
    return this.sockets.size > 0;
  }

  /** Sends a Socket Mode envelope (events_api, interactive, slash_commands) to every connected client. */
  socketSend(type: 'events_api' | 'interactive' | 'slash_commands', payload: Record<string, unknown>): string {
    const envelopeId = randomBytes(8).toString('hex');
    const message = JSON.stringify({
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: type !== 'events_api',
      retry_attempt: 0,
      retry_reason: '',
    });
    for (const s of this.sockets) s.write(wsFrame(0x1, Buffer.from(message)));
    return envelopeId;
  }

  /** The server side of a WebSocket (RFC 6455), enough for Socket Mode: text, ping/pong, close. */
  private upgrade(req: IncomingMessage, socket: Socket): void {
    const key = req.headers['sec-websocket-key'];
    if (!req.url?.startsWith('/link') || typeof key !== 'string') {
      socket.destroy();
      return;
    }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => this.sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const frame = readFrame(buffered);
        if (!frame) break;
        buffered = buffered.subarray(frame.length);
        if (frame.opcode === 0x9) socket.write(wsFrame(0xa, frame.payload));
        else if (frame.opcode === 0x8) {
          socket.end(wsFrame(0x8, Buffer.alloc(0)));
          this.sockets.delete(socket);
        } else if (frame.opcode === 0x1) {
          try {
            const ack = JSON.parse(frame.payload.toString('utf8')) as { envelope_id: string; payload?: unknown };
            this.socketAcks.push(ack);
          } catch {
            // not an ack
          }
        }
      }
    });
    socket.write(
      wsFrame(
        0x1,
        Buffer.from(
          JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: 'A1' }, debug_info: {} }),
        ),
      ),
    );
  }

  private nextTs(): string {
    this.seq++;
    return `${Math.floor(Date.now() / 1000)}.${String(this.seq).padStart(6, '0')}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const raw = await readBody(req);
    const auth = req.headers.authorization ?? '';

    if (req.method === 'GET' && url.pathname.startsWith('/files-pri/')) {
      const id = /^\/files-pri\/T1-([^/]+)\//.exec(url.pathname)?.[1] ?? '';
      const file = this.options.files?.[id];
      this.calls.push({ method: 'files.download', args: { id }, at: Date.now(), status: 200 });
      if (auth !== `Bearer ${this.options.botToken}`) {
        // Slack answers an unauthenticated download with its login page.
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in</html>');
        return;
      }
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.bytes.length });
      res.end(file.bytes);
      return;
    }

    if (req.method === 'POST' && url.pathname.startsWith('/upload/')) {
      const id = url.pathname.slice('/upload/'.length);
      const file = this.uploads.get(id);
      const bytes = await fileBytes(raw, req.headers['content-type'] ?? '');
      this.calls.push({ method: 'files.upload_url', args: { id, bytes: bytes.length }, at: Date.now(), status: 200 });
      await this.delayed('files.upload_url');
      if (!file) {
        res.writeHead(404).end('unknown upload');
        return;
      }
      file.bytes = bytes;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`OK - ${bytes.length}`);
      return;
    }

    if (req.method === 'POST' && url.pathname.startsWith('/respond/')) {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        res.writeHead(400).end('invalid_payload');
        return;
      }
      const problems = body.blocks === undefined ? [] : blockKitProblems(body.blocks);
      this.responses.push({ id: url.pathname.slice('/respond/'.length), at: Date.now(), body });
      if (problems.length > 0) {
        res.writeHead(400).end('invalid_blocks');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }

    const method = /^\/api\/([a-zA-Z.]+)$/.exec(url.pathname)?.[1];
    if (req.method !== 'POST' || !method) {
      res.writeHead(404).end();
      return;
    }
    const args = parseArgs(raw, req.headers['content-type'] ?? '');
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : typeof args.token === 'string' ? args.token : '';
    delete args.token;
    const call: SlackCall = { method, args, at: Date.now(), status: 200 };
    this.calls.push(call);
    await this.delayed(method);

    const limit = this.rateLimits.get(method);
    if (limit && limit.remaining > 0) {
      limit.remaining--;
      call.status = 429;
      call.error = 'ratelimited';
      res
        .writeHead(429, { 'retry-after': String(limit.retryAfterSec), 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: false, error: 'ratelimited' }));
      return;
    }
    const reply = (body: Record<string, unknown>) => {
      if (body.ok === false) call.error = String(body.error);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
    };
    if (method === 'apps.connections.open') {
      if (!this.options.appToken || token !== this.options.appToken) return reply({ ok: false, error: 'invalid_auth' });
      return reply({
        ok: true,
        url: `${this.url.replace('http:', 'ws:')}/link?ticket=${randomBytes(4).toString('hex')}`,
      });
    }
    if (token !== this.options.botToken) return reply({ ok: false, error: token ? 'invalid_auth' : 'not_authed' });

    const result = this.dispatch(method, args);
    reply(result);
  }

  /** chat.startStream / appendStream / stopStream: the stream's chunks are recorded and checked. */
  private stream(method: StreamMethod, a: Record<string, unknown>): Record<string, unknown> {
    const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : undefined);
    const channel = str('channel');
    if (!channel || this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
    if (this.streamingError) return { ok: false, error: this.streamingError };
    let chunks = a.chunks;
    if (typeof chunks === 'string') {
      try {
        chunks = JSON.parse(chunks);
      } catch {
        return { ok: false, error: 'invalid_chunks' };
      }
    }
    const markdown = str('markdown_text');
    if (markdown !== undefined && markdown.length > 12_000) return { ok: false, error: 'msg_too_long' };
    if (chunks === undefined && markdown === undefined && method !== 'chat.stopStream') {
      return { ok: false, error: 'no_text' };
    }
    if (chunks !== undefined) {
      const problems = streamChunkProblems(chunks);
      if (problems.length > 0) return { ok: false, error: 'invalid_chunks', errors: problems };
    }
    const record = (stream: FakeStream) => {
      const at = Date.now();
      stream.callTimes.push(at);
      if (markdown !== undefined) stream.chunks.push({ method, at, chunk: { type: 'markdown_text', text: markdown } });
      for (const chunk of (chunks as Array<Record<string, unknown>> | undefined) ?? []) {
        stream.chunks.push({ method, at, chunk });
      }
    };
    if (method === 'chat.startStream') {
      const thread = str('thread_ts');
      // Streamed messages answer a user request: they are always thread replies here.
      if (!thread) return { ok: false, error: 'invalid_arguments' };
      // Outside DMs Slack needs to know whom the stream is for.
      if (!channel.startsWith('D')) {
        if (!str('recipient_user_id')) return { ok: false, error: 'missing_recipient_user_id' };
        if (!str('recipient_team_id')) return { ok: false, error: 'missing_recipient_team_id' };
      }
      const mode = str('task_display_mode') ?? 'timeline';
      if (!['timeline', 'plan'].includes(mode)) return { ok: false, error: 'invalid_arguments' };
      const ts = this.nextTs();
      this.messages.set(`${channel}:${ts}`, { channel, ts, thread_ts: thread, text: '', blocks: [], edits: 0 });
      const stream: FakeStream = {
        channel,
        ts,
        thread_ts: thread,
        taskDisplayMode: mode,
        ...(str('recipient_user_id') ? { recipientUserId: str('recipient_user_id') } : {}),
        ...(str('recipient_team_id') ? { recipientTeamId: str('recipient_team_id') } : {}),
        chunks: [],
        callTimes: [],
      };
      this.streams.set(`${channel}:${ts}`, stream);
      record(stream);
      return { ok: true, channel, ts };
    }
    const stream = this.streams.get(`${channel}:${str('ts')}`);
    if (!stream) return { ok: false, error: 'message_not_found' };
    if (stream.stoppedAt !== undefined) return { ok: false, error: 'message_not_in_streaming_state' };
    record(stream);
    if (method === 'chat.stopStream') stream.stoppedAt = Date.now();
    return { ok: true, channel, ts: stream.ts };
  }

  private dispatch(method: string, a: Record<string, unknown>): Record<string, unknown> {
    const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : undefined);
    const checkBlocks = (blocks: unknown, max = 50) => {
      if (blocks === undefined) return undefined;
      const problems = blockKitProblems(blocks, max);
      return problems.length > 0 ? { ok: false, error: 'invalid_blocks', errors: problems } : undefined;
    };
    switch (method) {
      case 'auth.test':
        return {
          ok: true,
          url: 'https://test.slack.com/',
          team: 'Test',
          user: 'handoff',
          team_id: 'T1',
          user_id: 'UBOT',
          bot_id: 'BBOT',
        };
      case 'chat.postMessage': {
        const given = str('channel');
        if (!given || this.deletedChannels.has(given)) return { ok: false, error: 'channel_not_found' };
        const refusal = this.refusingChannels.get(given);
        if (refusal) return { ok: false, error: refusal };
        // A user id as the channel is a DM from the bot: Slack posts it in their IM channel.
        let channel = given;
        if (/^[UW][A-Z0-9]+$/.test(given)) {
          const user = this.options.users?.[given];
          if (!user) return { ok: false, error: 'channel_not_found' };
          if (user.deleted) return { ok: false, error: 'user_disabled' };
          channel = dmChannel(given);
        }
        if (!str('text') && !a.blocks) return { ok: false, error: 'no_text' };
        const bad = checkBlocks(a.blocks);
        if (bad) return bad;
        const thread = str('thread_ts');
        if (thread && ![...this.messages.values()].some((m) => m.channel === channel && m.ts === thread)) {
          // Slack accepts any thread_ts of a message in the channel; the tests create roots as events.
          this.messages.set(`${channel}:${thread}`, { channel, ts: thread, text: '(root)', blocks: [], edits: 0 });
        }
        const ts = this.nextTs();
        const message: FakeMessage = {
          channel,
          ts,
          ...(thread ? { thread_ts: thread } : {}),
          text: str('text') ?? '',
          blocks: (a.blocks as unknown[]) ?? [],
          edits: 0,
        };
        this.messages.set(`${channel}:${ts}`, message);
        return { ok: true, channel, ts, message: { ...message, type: 'message', bot_id: 'BBOT' } };
      }
      case 'chat.update': {
        const channel = str('channel') ?? '';
        if (this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
        const m = this.messages.get(`${channel}:${str('ts')}`);
        if (!m) return { ok: false, error: 'message_not_found' };
        const bad = checkBlocks(a.blocks);
        if (bad) return bad;
        m.text = str('text') ?? m.text;
        if (a.blocks) m.blocks = a.blocks as unknown[];
        m.edits++;
        return { ok: true, channel, ts: m.ts, text: m.text };
      }
      case 'chat.delete': {
        const channel = str('channel') ?? '';
        const key = `${channel}:${str('ts')}`;
        if (!this.messages.has(key)) return { ok: false, error: 'message_not_found' };
        this.messages.delete(key);
        return { ok: true, channel, ts: str('ts') };
      }
      case 'chat.postEphemeral': {
        const channel = str('channel');
        if (!channel || this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
        if (!str('user')) return { ok: false, error: 'user_not_in_channel' };
        return { ok: true, message_ts: this.nextTs() };
      }
      case 'views.open':
      case 'views.publish': {
        const view = a.view as { blocks?: unknown; type?: string } | undefined;
        if (!view || typeof view !== 'object') return { ok: false, error: 'invalid_arguments' };
        if (method === 'views.open' && !str('trigger_id')) return { ok: false, error: 'invalid_trigger_id' };
        if (method === 'views.publish' && !str('user_id')) return { ok: false, error: 'invalid_arguments' };
        const bad = checkBlocks(view.blocks, 100);
        if (bad) return bad;
        return { ok: true, view: { id: `V${this.nextTs().replace('.', '')}`, type: view.type } };
      }
      case 'usergroups.users.list': {
        const users = this.options.userGroups?.[str('usergroup') ?? ''];
        return users ? { ok: true, users } : { ok: false, error: 'no_such_subteam' };
      }
      case 'users.info': {
        const id = str('user') ?? '';
        const u = this.options.users?.[id];
        if (!u) return { ok: false, error: 'user_not_found' };
        return {
          ok: true,
          user: {
            id,
            name: u.name,
            real_name: u.realName ?? u.name,
            deleted: u.deleted === true,
            ...(u.tz ? { tz: u.tz } : {}),
            profile: { display_name: u.name },
          },
        };
      }
      case 'files.getUploadURLExternal': {
        const filename = str('filename');
        const length = Number(a.length);
        if (!filename || !Number.isInteger(length) || length <= 0) return { ok: false, error: 'invalid_arguments' };
        const id = `F${randomBytes(5).toString('hex').toUpperCase()}`;
        this.uploads.set(id, { id, filename, length });
        return { ok: true, upload_url: `${this.url}/upload/${id}`, file_id: id };
      }
      case 'files.completeUploadExternal': {
        const files = a.files as Array<{ id: string; title?: string }> | undefined;
        if (!Array.isArray(files) || files.length === 0) return { ok: false, error: 'invalid_arguments' };
        const channel = str('channel_id');
        if (channel && this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
        const done = [];
        for (const f of files) {
          const file = this.uploads.get(f.id);
          if (!file?.bytes) return { ok: false, error: 'file_not_found' };
          if (file.bytes.length !== file.length) return { ok: false, error: 'file_size_mismatch' };
          file.channel = channel;
          file.threadTs = str('thread_ts');
          file.title = f.title ?? file.filename;
          done.push({ id: file.id, name: file.filename, title: file.title, size: file.length });
        }
        return { ok: true, files: done };
      }
      case 'chat.startStream':
      case 'chat.appendStream':
      case 'chat.stopStream':
        return this.stream(method, a);
      case 'conversations.replies':
      case 'conversations.history':
        return this.conversations(method, a);
      case 'assistant.threads.setStatus': {
        const channel = str('channel_id');
        const thread = str('thread_ts');
        if (!channel || !thread || typeof a.status !== 'string') return { ok: false, error: 'invalid_arguments' };
        if (this.deletedChannels.has(channel)) return { ok: false, error: 'channel_not_found' };
        const key = `${channel}:${thread}`;
        this.assistantStatuses.set(key, [...(this.assistantStatuses.get(key) ?? []), a.status]);
        return { ok: true };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }
}

export type StreamMethod = FakeStreamChunk['method'];

/** Chunk problems Slack rejects: unknown types, missing fields, fields over their limits. */
export function streamChunkProblems(chunks: unknown): string[] {
  if (!Array.isArray(chunks)) return ['chunks is not an array'];
  const problems: string[] = [];
  const field = (c: Record<string, unknown>, k: string, i: number, required: boolean, max: number) => {
    const v = c[k];
    if (v === undefined && !required) return;
    if (typeof v !== 'string' || (required && v.length === 0)) problems.push(`chunks[${i}].${k} missing`);
    else if (v.length > max) problems.push(`chunks[${i}].${k} of ${v.length} characters (max ${max})`);
  };
  for (const [i, raw] of chunks.entries()) {
    const c = (raw ?? {}) as Record<string, unknown>;
    switch (c.type) {
      case 'markdown_text':
        field(c, 'text', i, true, 12_000);
        break;
      case 'plan_update':
        field(c, 'title', i, true, 256);
        break;
      case 'task_update':
        field(c, 'id', i, true, 256);
        field(c, 'title', i, true, 256);
        field(c, 'details', i, false, 256);
        field(c, 'output', i, false, 256);
        if (!['pending', 'in_progress', 'complete', 'error'].includes(String(c.status))) {
          problems.push(`chunks[${i}].status ${String(c.status)} is not one of pending, in_progress, complete, error`);
        }
        break;
      case 'blocks':
        problems.push(...blockKitProblems(c.blocks).map((p) => `chunks[${i}]: ${p}`));
        break;
      default:
        problems.push(`chunks[${i}]: unknown type ${String(c.type)}`);
    }
  }
  return problems;
}

/** The IM channel id the fake gives a user's DMs with the bot. */
function dmChannel(userId: string): string {
  return `D${userId}`;
}

/** One unmasked server frame. */
function wsFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(len)]);
  return Buffer.concat([head, payload]);
}

function bigLength(len: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(len));
  return b;
}

/** Reads one (masked, unfragmented) client frame from the buffer, if complete. */
function readFrame(buf: Buffer): { opcode: number; payload: Buffer; length: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  const maskLen = masked ? 4 : 0;
  if (buf.length < offset + maskLen + len) return undefined;
  const mask = masked ? buf.subarray(offset, offset + 4) : undefined;
  const payload = Buffer.from(buf.subarray(offset + maskLen, offset + maskLen + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  return { opcode, payload, length: offset + maskLen + len };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseArgs(raw: Buffer, contentType: string): Record<string, unknown> {
  let args: Record<string, unknown>;
  if (contentType.includes('application/json')) args = JSON.parse(raw.toString('utf8') || '{}');
  else args = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  for (const k of ['blocks', 'attachments', 'view', 'files']) {
    if (typeof args[k] === 'string') {
      try {
        args[k] = JSON.parse(args[k] as string);
      } catch {
        // left as the string: the dispatcher reports it
      }
    }
  }
  return args;
}

/** The uploaded bytes: the raw body, or the first file part of a multipart body. */
async function fileBytes(raw: Buffer, contentType: string): Promise<Buffer> {
  if (!contentType.startsWith('multipart/form-data')) return raw;
  const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType } }).formData();
  for (const value of form.values()) {
    if (typeof value !== 'string') return Buffer.from(await value.arrayBuffer());
  }
  const first = [...form.values()][0];
  return Buffer.from(typeof first === 'string' ? first : '');
}

/** Signs and sends requests to the bot's `/slack/events` as Slack does. */
export class SlackSender {
  /** `responseUrl`: given as every command's and click's `response_url` (the fake's `responseUrl()`). */
  constructor(
    readonly url: string,
    private readonly signingSecret: string,
    private readonly responseUrl = 'http://127.0.0.1:9/unused',
  ) {}

  /** Slack's v0 signature over `v0:{timestamp}:{body}`. */
  sign(body: string, timestamp: number): string {
    return `v0=${createHmac('sha256', this.signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  }

  async send(
    body: string,
    contentType: string,
    options: {
      timestamp?: number;
      signature?: string;
      retryNum?: number;
      alterAfterSigning?: (b: string) => string;
    } = {},
  ): Promise<{ status: number; text: string; ms: number }> {
    const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
    const signature = options.signature ?? this.sign(body, timestamp);
    const sent = options.alterAfterSigning ? options.alterAfterSigning(body) : body;
    const started = performance.now();
    const res = await fetch(`${this.url}/slack/events`, {
      method: 'POST',
      headers: {
        'content-type': contentType,
        'x-slack-request-timestamp': String(timestamp),
        'x-slack-signature': signature,
        ...(options.retryNum !== undefined
          ? { 'x-slack-retry-num': String(options.retryNum), 'x-slack-retry-reason': 'http_timeout' }
          : {}),
      },
      body: sent,
    });
    return { status: res.status, text: await res.text(), ms: performance.now() - started };
  }

  /** An Events API callback (JSON). */
  event(event: Record<string, unknown>, options: { eventId?: string; retryNum?: number; timestamp?: number } = {}) {
    const body = JSON.stringify({
      token: 'verification-token-unused',
      team_id: 'T1',
      api_app_id: 'A1',
      type: 'event_callback',
      event_id: options.eventId ?? `Ev${randomBytes(6).toString('hex').toUpperCase()}`,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: 'T1', user_id: 'UBOT', is_bot: true }],
      event,
    });
    return this.send(body, 'application/json', options);
  }

  /** An interaction (block_actions, view_submission, message_action…): form with `payload=`. */
  interaction(payload: Record<string, unknown>) {
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    return this.send(body, 'application/x-www-form-urlencoded');
  }

  /** A raw form body, signed (for malformed payloads). */
  form(fields: Record<string, string>) {
    return this.send(new URLSearchParams(fields).toString(), 'application/x-www-form-urlencoded');
  }

  /** A slash command. */
  command(command: string, text: string, user: { id: string; name: string }, channel: string) {
    return this.form({
      token: 'unused',
      team_id: 'T1',
      team_domain: 'test',
      channel_id: channel,
      channel_name: 'general',
      user_id: user.id,
      user_name: user.name,
      command,
      text,
      api_app_id: 'A1',
      response_url: this.responseUrl,
      trigger_id: `trig.${randomBytes(4).toString('hex')}`,
    });
  }

  /**
   * A click on a button of a bot message. With `ephemeral`, of a message only the person
   * sees: Slack then sends no `message`, and the response URL can replace it.
   */
  click(
    user: { id: string; name: string },
    channel: string,
    message: { ts: string; thread_ts?: string },
    action: { action_id: string; value: string },
    options: { ephemeral?: boolean } = {},
  ) {
    return this.interaction({
      type: 'block_actions',
      team: { id: 'T1', domain: 'test' },
      user: { id: user.id, username: user.name, name: user.name, team_id: 'T1' },
      api_app_id: 'A1',
      token: 'unused',
      trigger_id: `trig.${randomBytes(4).toString('hex')}`,
      container: {
        type: 'message',
        message_ts: message.ts,
        channel_id: channel,
        is_ephemeral: options.ephemeral === true,
      },
      channel: { id: channel, name: 'general' },
      ...(options.ephemeral
        ? {}
        : { message: { type: 'message', ts: message.ts, thread_ts: message.thread_ts, bot_id: 'BBOT', text: '' } }),
      response_url: this.responseUrl,
      actions: [
        {
          type: 'button',
          action_id: action.action_id,
          block_id: 'b',
          value: action.value,
          action_ts: `${Date.now() / 1000}`,
        },
      ],
    });
  }

  /** A click on a button of the bot's App Home (no channel, no response URL). */
  homeClick(user: { id: string; name: string }, action: { action_id: string; value: string }) {
    return this.interaction({
      type: 'block_actions',
      team: { id: 'T1', domain: 'test' },
      user: { id: user.id, username: user.name, name: user.name, team_id: 'T1' },
      api_app_id: 'A1',
      token: 'unused',
      trigger_id: `trig.${randomBytes(4).toString('hex')}`,
      container: { type: 'view', view_id: 'VHOME' },
      view: { id: 'VHOME', type: 'home', callback_id: '', private_metadata: '', blocks: [] },
      actions: [
        {
          type: 'button',
          action_id: action.action_id,
          block_id: 'b',
          value: action.value,
          action_ts: `${Date.now() / 1000}`,
        },
      ],
    });
  }

  /**
   * Submits a modal the bot opened, with `values` as `{ block_id: text }` of its text
   * inputs; each input's action id is read from the modal's blocks.
   */
  submitView(
    user: { id: string; name: string },
    view: { callback_id: string; private_metadata: string; blocks?: unknown[] },
    values: Record<string, string>,
  ) {
    const actionOf = (block: string) =>
      ((view.blocks ?? []) as Array<{ block_id?: string; element?: { action_id?: string } }>).find(
        (b) => b.block_id === block,
      )?.element?.action_id ?? 'text';
    return this.interaction({
      type: 'view_submission',
      team: { id: 'T1' },
      user: { id: user.id, name: user.name },
      view: {
        id: 'VMODAL',
        type: 'modal',
        callback_id: view.callback_id,
        private_metadata: view.private_metadata,
        state: {
          values: Object.fromEntries(
            Object.entries(values).map(([block, value]) => [
              block,
              { [actionOf(block)]: { type: 'plain_text_input', value } },
            ]),
          ),
        },
      },
    });
  }
}
