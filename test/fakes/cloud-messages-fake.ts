/**
 * What the Bedrock and Vertex fakes share: a loopback HTTP server, a script of replies
 * (queued, then a default handler), and a record of every request. The Messages checks
 * and reply bodies come from the Anthropic fake, so all three validate alike.
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
import type { FakeMessageReply, MessagesRequestBody } from './anthropic-server.ts';

export interface CloudRequest {
  method: string;
  /** The path as sent (still percent-encoded), without the query. */
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body (`{}` when it was not a JSON object). */
  body: MessagesRequestBody;
  /** The model id taken from the URL. */
  modelId?: string;
  status?: number;
  /** The platform's error type when the fake refused the request. */
  errorType?: string;
}

/** A scripted platform error (status, the platform's error type, its message). */
export interface CloudErrorReply {
  status: number;
  type: string;
  message: string;
}

export type CloudReply = FakeMessageReply | CloudErrorReply;
export type CloudHandler = (body: MessagesRequestBody, request: CloudRequest) => CloudReply | Promise<CloudReply>;
export type CloudResponder = CloudReply | CloudHandler;

export abstract class CloudMessagesFake {
  readonly requests: CloudRequest[] = [];
  readonly #queue: CloudResponder[] = [];
  #handler: CloudHandler | undefined;
  #server: Server | undefined;
  #url: string | undefined;
  #closed = false;

  /** `http://127.0.0.1:<port>`. */
  get origin(): string {
    if (this.#url === undefined) throw new Error(`${this.constructor.name}: call start() first`);
    return this.#url;
  }

  /** Requests answered with a message. */
  get messageRequests(): CloudRequest[] {
    return this.requests.filter((r) => r.status === 200);
  }

  enqueue(...responders: CloudResponder[]): this {
    this.#queue.push(...responders);
    return this;
  }

  setHandler(handler: CloudHandler | undefined): this {
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
        if (!res.headersSent) sendJson(res, 500, { message: `fake server error: ${String(err)}` });
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
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  /** Idempotent; drops keep-alive connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const server = this.#server;
    if (server === undefined) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The next scripted reply, or undefined when nothing is scripted. */
  protected async nextReply(body: MessagesRequestBody, request: CloudRequest): Promise<CloudReply | undefined> {
    const responder = this.#queue.shift() ?? this.#handler;
    if (responder === undefined) return undefined;
    return typeof responder === 'function' ? responder(body, request) : responder;
  }

  /** Answers one request: checks the platform's rules, then the script. */
  protected abstract serve(request: CloudRequest, res: ServerResponse): Promise<void>;

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    let body: MessagesRequestBody = {};
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as MessagesRequestBody;
    } catch {
      // Left as {}: the platform checks say what is wrong.
    }
    const request: CloudRequest = {
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      headers: req.headers,
      rawBody,
      body,
    };
    this.requests.push(request);
    await this.serve(request, res);
  }
}

export function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) {
  if (res.destroyed) return;
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function requestId(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
