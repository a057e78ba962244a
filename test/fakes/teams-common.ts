/**
 * Pieces shared by the Microsoft Teams fakes (`teams-*.ts`): a small HTTP server base that
 * listens on 127.0.0.1 only, JSON answers, body reading, stable ids, and polling.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A tenant id for tests (a GUID Entra would never hand out: it is not random). */
export const FAKE_TENANT_ID = '4c1a2b3d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

/** What `failNext` queued: the next matching requests answer this instead of being served. */
export interface InjectedFailure {
  status: number;
  /** Error code in the body; each fake picks a realistic default for the status. */
  code?: string;
  message?: string;
  /** Sent as `Retry-After` (seconds); a 429 without it gets 1. */
  retryAfterSec?: number;
}

/**
 * The plumbing every Teams fake shares: `start()` on a free port of 127.0.0.1, an idempotent
 * `close()` that also drops keep-alive connections, and a request handler that turns a thrown
 * error into a 500 instead of a hung socket.
 */
export abstract class FakeHttpServer {
  #server: Server | undefined;
  #origin: string | undefined;
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  get origin(): string {
    if (this.#origin === undefined) throw new Error(`${this.#name}: call start() first`);
    return this.#origin;
  }

  async start(): Promise<this> {
    if (this.#server !== undefined) return this;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${this.#name}: ${String(err)}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.#origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops listening and closes every open connection. Idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Reads a request body; more than `limitBytes` answers `undefined` (the caller answers 413). */
export async function readBody(req: IncomingMessage, limitBytes = 64 * 1024 * 1024): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) tooBig = true;
    else chunks.push(chunk);
  }
  return tooBig ? undefined : Buffer.concat(chunks);
}

/** Parses JSON, answering `undefined` for an empty or malformed body. */
export function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return undefined;
  }
}

export function sha256(seed: string): Buffer {
  return createHash('sha256').update(seed).digest();
}

/** A GUID derived from `seed`: the same seed always gives the same id. */
export function stableGuid(seed: string): string {
  const h = sha256(seed).toString('hex');
  // Version 4 / variant 1 nibbles, so it passes the GUID checks real ids pass.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Teams message ids are epoch milliseconds as strings ('1733200000001'); ids from one source
 * never repeat and never go back, even within one millisecond.
 */
export class MessageIdClock {
  #last = 0;

  next(): string {
    this.#last = Math.max(Date.now(), this.#last + 1);
    return String(this.#last);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `predicate` every 25 ms until it answers something other than `undefined`, `null` or
 * `false`, and resolves with that. On timeout it throws naming `what` and whatever `describe`
 * says about the fake's state, so a failing test shows what did arrive.
 */
export async function pollUntil<T>(
  predicate: () => T | undefined | null | false,
  timeoutMs: number,
  what: string,
  describe: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = predicate();
    if (found !== undefined && found !== null && found !== false) return found;
    if (Date.now() >= deadline) break;
    await sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${describe()}`);
}

/** Takes the first queued failure that applies, counting it down. */
export function takeFailure<F extends InjectedFailure & { remaining: number }>(
  queue: F[],
  applies: (f: F) => boolean = () => true,
): F | undefined {
  const f = queue.find((q) => q.remaining > 0 && applies(q));
  if (f === undefined) return undefined;
  f.remaining -= 1;
  if (f.remaining === 0) queue.splice(queue.indexOf(f), 1);
  return f;
}

/** The part of a conversation id before `;messageid=…` (a channel's or chat's own id). */
export function conversationBaseId(conversationId: string): string {
  const i = conversationId.indexOf(';messageid=');
  return i === -1 ? conversationId : conversationId.slice(0, i);
}

/** Whether a conversation id names a Teams channel (`19:…@thread.tacv2` or the older `@thread.skype`). */
export function isChannelConversation(conversationId: string): boolean {
  return /^19:[^;]+@thread\.(tacv2|skype)$/.test(conversationId.split(';')[0] ?? '');
}

/**
 * The id of the 1:1 chat between a user and a bot. Teams gives the same `a:…` id every time
 * the bot asks for that chat, and it is the conversation the user's own messages arrive in.
 */
export function personalConversationId(appId: string, userId: string): string {
  return `a:1${sha256(`personal:${appId}:${userId}`).toString('base64url')}${sha256(`p2:${userId}`).toString('base64url').slice(0, 24)}`;
}
