/**
 * A local fake of the Anthropic Messages API (`POST /v1/messages`, non-streaming) that
 * speaks the real wire format, so the real SDK can talk to it through `baseURL`.
 *
 * Scripted: each request takes the next queued responder, or the default handler when
 * the queue is empty. Every request is recorded (parsed body + headers) for assertions.
 * Requests are validated the way the real API does for the basics (auth, model,
 * max_tokens, role alternation, tool_use/tool_result pairing, at most 4 cache
 * breakpoints) and rejected with 400 `invalid_request_error`, which catches transcript
 * bugs in the agent loop before they reach production.
 */
import { randomBytes } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** A content block as the API returns it; missing ids and `stop_reason` are filled in. */
export type FakeContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id?: string; name: string; input: unknown }
  | { type: 'thinking'; thinking: string; signature?: string }
  | ({ type: string } & Record<string, unknown>);

export interface FakeUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface FakeMessageReply {
  content: FakeContentBlock[];
  /** Default: `tool_use` when the content has a tool_use block, else `end_turn`. */
  stop_reason?: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'pause_turn' | 'refusal';
  /** Merged over an estimate derived from the request size. */
  usage?: Partial<FakeUsage>;
  /** Default: the model named in the request. */
  model?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (to test aborts and timeouts). */
  delayMs?: number;
}

export interface FakeErrorReply {
  status: number;
  error: { type: string; message: string };
  /** e.g. `{ 'retry-after': '0' }` on a 429. */
  headers?: Record<string, string>;
  delayMs?: number;
}

export type FakeReply = FakeMessageReply | FakeErrorReply;

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body text, for byte-stability assertions. */
  rawBody: string;
  /** The parsed JSON body (`{}` when it was not a JSON object). */
  body: MessagesRequestBody;
  /** What the fake answered with. */
  status?: number;
  /** True when the client went away before the fake answered (e.g. an abort). */
  aborted: boolean;
}

/** The request body loosely typed: the fake must cope with whatever a buggy client sends. */
export type MessagesRequestBody = {
  model?: unknown;
  max_tokens?: unknown;
  system?: unknown;
  messages?: unknown;
  tools?: unknown;
  tool_choice?: unknown;
  [key: string]: unknown;
};

export type FakeHandler = (body: MessagesRequestBody, request: RecordedRequest) => FakeReply | Promise<FakeReply>;
export type Responder = FakeReply | FakeHandler;

export interface FakeAnthropicServerOptions {
  /**
   * When set, requests must carry exactly this key (as `x-api-key` or
   * `Authorization: Bearer`), else 401 `authentication_error`. When unset, any
   * non-empty credential is accepted.
   */
  apiKey?: string;
}

export class FakeAnthropicServer {
  readonly requests: RecordedRequest[] = [];
  readonly #queue: Responder[] = [];
  readonly #options: FakeAnthropicServerOptions;
  readonly #timers = new Set<NodeJS.Timeout>();
  #handler: FakeHandler | undefined;
  #server: Server | undefined;
  #url: string | undefined;
  #closed = false;

  constructor(options: FakeAnthropicServerOptions = {}) {
    this.#options = options;
  }

  /** Base URL for the SDK's `baseURL` option, e.g. `http://127.0.0.1:40123`. */
  get url(): string {
    if (this.#url === undefined) throw new Error('FakeAnthropicServer: call start() first');
    return this.#url;
  }

  /** Requests answered with a message (not rejected by validation or auth). */
  get messageRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.status === 200);
  }

  /** Queue one reply; replies are used in order, one per request that passes validation. */
  enqueue(...responders: Responder[]): this {
    this.#queue.push(...responders);
    return this;
  }

  /** Drops every queued reply (after a failed test, so the next one starts clean). */
  clearQueue(): this {
    this.#queue.length = 0;
    return this;
  }

  /** Answers requests when the queue is empty. */
  setHandler(handler: FakeHandler | undefined): this {
    this.#handler = handler;
    return this;
  }

  /** Replies still queued; a test SHOULD assert this is 0 when its script must be used up. */
  get pending(): number {
    return this.#queue.length;
  }

  async start(): Promise<this> {
    if (this.#server !== undefined) return this;
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendError(res, 500, 'api_error', `fake server error: ${String(err)}`);
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    this.#url = `http://127.0.0.1:${port}`;
    return this;
  }

  /** Idempotent; drops keep-alive connections and pending delayed replies. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const server = this.#server;
    if (server === undefined) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    let body: MessagesRequestBody = {};
    let bodyIsJson = true;
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (isObject(parsed)) body = parsed;
      else bodyIsJson = false;
    } catch {
      bodyIsJson = false;
    }
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path,
      headers: req.headers,
      rawBody,
      body,
      aborted: false,
    };
    this.requests.push(recorded);
    res.on('close', () => {
      if (!res.writableFinished) recorded.aborted = true;
    });
    const reply = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      recorded.status = status;
      send(res, status, payload, headers);
    };

    if (req.method !== 'POST' || path !== '/v1/messages') {
      return reply(404, errorBody('not_found_error', `Not found: ${req.method} ${path}`));
    }
    const authProblem = this.#checkAuth(req.headers);
    if (authProblem !== undefined) return reply(401, errorBody('authentication_error', authProblem));
    if (req.headers['anthropic-version'] === undefined) {
      return reply(400, errorBody('invalid_request_error', 'anthropic-version: header is required'));
    }
    if (!bodyIsJson) {
      return reply(400, errorBody('invalid_request_error', 'Request body must be a JSON object.'));
    }
    const problem = validateRequest(body);
    if (problem !== undefined) return reply(400, errorBody('invalid_request_error', problem));

    const responder = this.#queue.shift() ?? this.#handler;
    if (responder === undefined) {
      // Not retryable, so a missing script fails the test at once instead of after SDK backoff.
      return reply(500, errorBody('api_error', 'FakeAnthropicServer: no reply scripted for this request'), {
        'x-should-retry': 'false',
      });
    }
    const result = typeof responder === 'function' ? await responder(body, recorded) : responder;
    if (result.delayMs !== undefined && result.delayMs > 0) {
      await this.#sleep(result.delayMs, res);
      if (recorded.aborted || this.#closed) return;
    }
    if ('status' in result) {
      return reply(result.status, errorBody(result.error.type, result.error.message), result.headers);
    }
    reply(200, messageBody(result, body), result.headers);
  }

  #checkAuth(headers: IncomingHttpHeaders): string | undefined {
    const apiKey = headerValue(headers['x-api-key']);
    const authorization = headerValue(headers.authorization);
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
    const presented = apiKey ?? bearer;
    if (presented === undefined || presented === '') return 'x-api-key header is required';
    if (this.#options.apiKey !== undefined && presented !== this.#options.apiKey) return 'invalid x-api-key';
    return undefined;
  }

  #sleep(ms: number, res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      this.#timers.add(timer);
      res.once('close', done);
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}

/** Starts a fake on a random loopback port. */
export async function startFakeAnthropic(options: FakeAnthropicServerOptions = {}): Promise<FakeAnthropicServer> {
  return new FakeAnthropicServer(options).start();
}

/** The API key sent with a recorded request, whichever header the SDK used. */
export function presentedApiKey(request: RecordedRequest): string | undefined {
  const apiKey = headerValue(request.headers['x-api-key']);
  if (apiKey !== undefined) return apiKey;
  const authorization = headerValue(request.headers.authorization);
  return authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length) : undefined;
}

/** Every place a recorded body carries `cache_control`, as `tools[2]`, `system[0]`, `messages[3].content[1]`. */
export function cacheBreakpoints(body: MessagesRequestBody): string[] {
  const found: string[] = [];
  asArray(body.tools).forEach((t, i) => {
    if (hasCacheControl(t)) found.push(`tools[${i}]`);
  });
  asArray(body.system).forEach((b, i) => {
    if (hasCacheControl(b)) found.push(`system[${i}]`);
  });
  asArray(body.messages).forEach((m, i) => {
    asArray(isObject(m) ? m.content : undefined).forEach((b, j) => {
      if (hasCacheControl(b)) found.push(`messages[${i}].content[${j}]`);
    });
  });
  return found;
}

// --- validation -------------------------------------------------------------

/** The checks the Messages API makes before answering; the message of its 400, or undefined. */
export function validateRequest(body: MessagesRequestBody): string | undefined {
  if (typeof body.model !== 'string' || body.model === '') return 'model: Field required';
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) {
    return 'max_tokens: Field required and must be a positive integer';
  }
  if (body.stream === true) return 'stream: this fake only supports non-streaming requests';

  const systemProblem = validateSystem(body.system);
  if (systemProblem !== undefined) return systemProblem;

  const tools = body.tools;
  const toolNames = new Set<string>();
  if (tools !== undefined) {
    if (!Array.isArray(tools)) return 'tools: Input should be a valid list';
    for (const [i, tool] of tools.entries()) {
      if (!isObject(tool)) return `tools.${i}: Input should be an object`;
      if (typeof tool.name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(tool.name)) {
        return `tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`;
      }
      if (toolNames.has(tool.name)) return 'tools: Tool names must be unique.';
      toolNames.add(tool.name);
      // Custom tools (no `type`, or `type: 'custom'`) need an object schema.
      if (tool.type === undefined || tool.type === 'custom') {
        if (!isObject(tool.input_schema) || tool.input_schema.type !== 'object') {
          return `tools.${i}.custom.input_schema.type: Input should be 'object'`;
        }
      }
    }
  }
  if (body.tool_choice !== undefined) {
    const choice = body.tool_choice;
    if (!isObject(choice) || typeof choice.type !== 'string') return 'tool_choice: Input should be an object';
    if (choice.type !== 'none' && toolNames.size === 0) {
      return 'tool_choice may only be specified while providing tools.';
    }
    if (choice.type === 'tool' && (typeof choice.name !== 'string' || !toolNames.has(choice.name))) {
      return `tool_choice.name: Tool '${String(choice.name)}' not found in tools`;
    }
  }

  const messagesProblem = validateMessages(body.messages);
  if (messagesProblem !== undefined) return messagesProblem;

  const breakpoints = cacheBreakpoints(body);
  if (breakpoints.length > 4) {
    return `A maximum of 4 blocks with cache_control may be provided. Found ${breakpoints.length}.`;
  }
  return undefined;
}

function validateSystem(system: unknown): string | undefined {
  if (system === undefined || typeof system === 'string') return undefined;
  if (!Array.isArray(system)) return 'system: Input should be a valid string or list';
  for (const [i, block] of system.entries()) {
    if (!isObject(block) || block.type !== 'text' || typeof block.text !== 'string') {
      return `system.${i}: Input should be a text block`;
    }
    if (block.text === '') return `system.${i}: text content blocks must be non-empty`;
    const cc = cacheControlProblem(block, `system.${i}`);
    if (cc !== undefined) return cc;
  }
  return undefined;
}

function validateMessages(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return 'messages: Field required';
  if (messages.length === 0) return 'messages: at least one message is required';
  let previous: { role: string; toolUseIds: string[] } | undefined;
  for (const [i, message] of messages.entries()) {
    if (!isObject(message)) return `messages.${i}: Input should be an object`;
    const { role, content } = message;
    if (role !== 'user' && role !== 'assistant') {
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    }
    if (i === 0 && role !== 'user') return 'messages: first message must use the "user" role';
    if (previous !== undefined && previous.role === role) {
      return `messages: roles must alternate between "user" and "assistant", but found multiple "${role}" roles in a row`;
    }
    const blocks = typeof content === 'string' ? [{ type: 'text', text: content }] : content;
    if (!Array.isArray(blocks)) return `messages.${i}.content: Input should be a valid string or list`;
    const isLast = i === messages.length - 1;
    // The final assistant turn may be empty-ish (prefill); anything else must say something.
    if (blocks.length === 0 && !(isLast && role === 'assistant')) {
      return `messages.${i}: all messages must have non-empty content except for the optional final assistant message`;
    }

    const toolUseIds: string[] = [];
    const toolResultIds: string[] = [];
    for (const [j, block] of blocks.entries()) {
      const where = `messages.${i}.content.${j}`;
      if (!isObject(block) || typeof block.type !== 'string') return `${where}: Input should be a content block`;
      const cc = cacheControlProblem(block, where);
      if (cc !== undefined) return cc;
      switch (block.type) {
        case 'text':
          if (typeof block.text !== 'string') return `${where}.text: Field required`;
          if (block.text === '' && !(isLast && role === 'assistant')) {
            return `${where}: text content blocks must be non-empty`;
          }
          break;
        case 'tool_use':
          if (role !== 'assistant') return `${where}: tool_use blocks may only appear in assistant messages`;
          if (typeof block.id !== 'string' || typeof block.name !== 'string') {
            return `${where}: tool_use blocks need an id and a name`;
          }
          if (!isObject(block.input)) return `${where}.input: Input should be an object`;
          if (toolUseIds.includes(block.id)) return `${where}: tool_use ids must be unique`;
          toolUseIds.push(block.id);
          break;
        case 'tool_result': {
          if (role !== 'user') return `${where}: tool_result blocks may only appear in user messages`;
          const id = block.tool_use_id;
          if (typeof id !== 'string') return `${where}.tool_use_id: Field required`;
          if (previous === undefined || !previous.toolUseIds.includes(id)) {
            return `${where}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
          }
          if (toolResultIds.includes(id)) return `${where}: duplicate tool_result for tool_use_id ${id}`;
          toolResultIds.push(id);
          break;
        }
        default:
          break;
      }
    }
    if (previous?.role === 'assistant' && previous.toolUseIds.length > 0) {
      const missing = previous.toolUseIds.filter((id) => !toolResultIds.includes(id));
      if (missing.length > 0) {
        return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    }
    previous = { role, toolUseIds };
  }
  return undefined;
}

function cacheControlProblem(block: Record<string, unknown>, where: string): string | undefined {
  const cc = block.cache_control;
  if (cc === undefined || cc === null) return undefined;
  if (!isObject(cc) || cc.type !== 'ephemeral') return `${where}.cache_control.type: Input should be 'ephemeral'`;
  return undefined;
}

// --- wire helpers -----------------------------------------------------------

/** A Messages API reply body for `reply` (ids, stop reason and usage filled in). */
export function messageBody(reply: FakeMessageReply, request: MessagesRequestBody) {
  const content = reply.content.map((block) => {
    if (block.type === 'tool_use') return { ...block, id: typeof block.id === 'string' ? block.id : newId('toolu_') };
    if (block.type === 'text') return { citations: null, ...block };
    return block;
  });
  const hasToolUse = content.some((b) => b.type === 'tool_use');
  const estimate = Math.ceil(JSON.stringify(request.messages ?? []).length / 4);
  const usage: FakeUsage = {
    input_tokens: estimate,
    output_tokens: Math.ceil(JSON.stringify(content).length / 4),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    ...reply.usage,
  };
  return {
    id: newId('msg_'),
    type: 'message',
    role: 'assistant',
    model: reply.model ?? request.model,
    content,
    stop_reason: reply.stop_reason ?? (hasToolUse ? 'tool_use' : 'end_turn'),
    stop_sequence: null,
    usage,
  };
}

function errorBody(type: string, message: string) {
  return { type: 'error', error: { type, message } };
}

function send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string>): void {
  if (res.destroyed) return;
  const requestId = newId('req_');
  const body =
    isObject(payload) && payload.type === 'error' ? { ...payload, request_id: requestId } : (payload as object);
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'request-id': requestId,
    ...headers,
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, errorBody(type, message), {});
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function newId(prefix: string): string {
  return `${prefix}${randomBytes(12).toString('hex')}`;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function hasCacheControl(value: unknown): boolean {
  return isObject(value) && value.cache_control !== undefined && value.cache_control !== null;
}
