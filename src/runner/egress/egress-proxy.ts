import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, HandoffError } from '../../core/index.ts';
import {
  type CheckOptions,
  checkDestination,
  connectChecked,
  DEFAULT_EGRESS_PORTS,
  type Dial,
  defaultDial,
  defaultResolve,
  errorReason,
  parseAuthority,
  type Resolve,
  type Target,
  targetOfUrl,
} from './destination.ts';
import { endToEndHeaders, hostHeader } from './headers.ts';

/** File name of the proxy socket inside the directory mounted into a sandbox. */
export const EGRESS_SOCKET_NAME = 'proxy.sock';

/** What happened to one proxied request; emitted once, after it ended (for the audit trail). */
export interface EgressDecisionEvent {
  /** Target host as requested (lower case); empty when the request named none. */
  host: string;
  port: number;
  /** HTTP method; `CONNECT` for a tunnel. */
  method: string;
  /**
   * `allowed`: on the allowlist and safe (an upstream failure is noted in `reason`).
   * `held`: not on the allowlist; a person's approval would let it through (see `held()`).
   * `refused`: never allowed (IP literal, localhost, port, forbidden address…).
   */
  decision: 'allowed' | 'held' | 'refused';
  /** Why it was held or refused, or what went wrong upstream after it was allowed. */
  reason?: string;
  /** The checked IP address that was connected to. */
  address?: string;
  /** Status the proxy answered with (200 for an established tunnel). */
  status?: number;
  /** Bytes sent to the upstream server (for plain HTTP, including the request head). */
  bytesUp: number;
  /** Bytes received from the upstream server (for plain HTTP, including the response head). */
  bytesDown: number;
  durationMs: number;
}

/** Minimal logger; pino's matches. */
export interface EgressLogger {
  warn(obj: object, msg: string): void;
}

export interface EgressProxyOptions {
  /**
   * Unix socket to listen on, normally `<dir>/proxy.sock` with `<dir>` made by
   * `prepareEgressSocketDir`. A stale socket left there is replaced; any other file is an error.
   */
  socketPath: string;
  /** File mode of the socket. Default 0o666, so the (non-root) sandbox user can connect. */
  socketMode?: number;
  /**
   * The current allowlist: exact names and `*.example.com` wildcards (sub-domains only). Called
   * on every request, so a domain approved during the run takes effect at once.
   */
  allowed(): readonly string[];
  /** Ports a sandbox may reach. Default [80, 443]. */
  ports?: readonly number[];
  /** Default: `dns.promises.lookup(host, { all: true })`. Tests inject a fixed map. */
  resolve?: Resolve;
  /** Default: `net.connect` to the checked address. Tests map addresses to local servers. */
  dial?: Dial;
  /** Called once per request after it ended. MUST NOT throw (a throw is logged and ignored). */
  onEvent?(event: EgressDecisionEvent): void;
  /** Connections from the sandbox served at once; more are closed at once. Default 256. */
  maxConnections?: number;
  /** A connection (either side) idle this long is closed. Default 120 000 ms. */
  idleTimeoutMs?: number;
  /** Budget for resolving the name, and for connecting to the upstream server per address. Default 10 000 ms. */
  connectTimeoutMs?: number;
  logger?: EgressLogger;
}

/** A running egress proxy. */
export interface EgressProxy {
  readonly socketPath: string;
  /** Domains refused only because they were not on the allowlist, deduplicated, since the last drain. */
  held(): string[];
  /** `held()`, then forgets them. */
  drainHeld(): string[];
  /** Stops listening, destroys open connections and tunnels and removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MAX_CONNECTIONS = 256;
const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
/** `close()` resolves by then even if something refuses to go quietly. */
const CLOSE_BUDGET_MS = 900;

/**
 * Creates (or tightens) the directory that holds a run's proxy socket: mode 0o755 so the
 * sandbox user can reach the socket inside it, and nothing else is kept there.
 */
export async function prepareEgressSocketDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  return dir;
}

/**
 * Starts an HTTP forward proxy on a unix socket that lets a sandbox reach only the allowlisted
 * domains (DESIGN §7). Plain HTTP arrives as absolute-form requests (`GET http://host/path`),
 * HTTPS as CONNECT tunnels; Node's own HTTP parser reads both. Every request is checked with
 * `checkDestination` (IP literals, localhost, ports, allowlist, every resolved address) and
 * connected to the checked address, never to the name again.
 */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const proxy = new EgressProxyServer(options);
  await proxy.listen();
  return proxy;
}

class EgressProxyServer implements EgressProxy {
  readonly socketPath: string;
  readonly #options: EgressProxyOptions;
  readonly #ports: readonly number[];
  readonly #resolve: Resolve;
  readonly #dial: Dial;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #server: Server;
  /** Every socket this proxy has open, on either side, so close() can end them all. */
  readonly #sockets = new Set<Duplex>();
  #held = new Set<string>();
  #closing: Promise<void> | undefined;

  constructor(options: EgressProxyOptions) {
    this.#options = options;
    this.socketPath = options.socketPath;
    this.#ports = options.ports ?? DEFAULT_EGRESS_PORTS;
    this.#resolve = options.resolve ?? defaultResolve;
    this.#dial = options.dial ?? defaultDial;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    // No overall request deadline (a long download is fine while bytes flow). What ends a
    // connection: the upstream socket's idle timeout while a request is relayed (a stalled
    // upload or a silent server), `headersTimeout` for a sandbox that never finishes a request
    // head, and the server's keep-alive timeout between requests. No idle timeout on the
    // sandbox's side of a relayed request: it would cut off a client waiting for a slow server.
    this.#server = createServer({ requestTimeout: 0, headersTimeout: Math.min(60_000, this.#idleTimeoutMs) });
    this.#server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#server.on('connection', (socket: Duplex) => this.#track(socket));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.#onRequest(req, res);
    });
    this.#server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.#onConnect(req, socket, head);
    });
    // WebSockets over plain HTTP are not supported; wss:// goes through CONNECT like any https.
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      const started = performance.now();
      const target = absoluteTarget(req.url);
      writeRawResponse(socket, 501, 'error', 'protocol upgrades are not proxied; use https:// (CONNECT) instead');
      this.#emit({
        host: target?.host ?? '',
        port: target?.port ?? 0,
        method: req.method ?? 'GET',
        decision: 'refused',
        reason: 'protocol upgrade over plain HTTP',
        status: 501,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: elapsed(started),
      });
    });
    this.#server.on('clientError', (_err: Error, socket: Duplex) => {
      if (socket.writable) writeRawResponse(socket, 400, 'error', 'the request could not be parsed');
      else socket.destroy();
    });
  }

  async listen(): Promise<void> {
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new HandoffError(
        ErrorCodes.config,
        `The egress proxy socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${this.socketPath}`,
      );
    }
    await removeStaleSocket(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.socketPath, () => {
        this.#server.off('error', onError);
        resolve();
      });
    }).catch((err: unknown) => {
      throw new HandoffError(ErrorCodes.sandboxFailed, `The egress proxy could not listen on ${this.socketPath}`, {
        cause: err,
      });
    });
    this.#server.on('error', (err) => this.#options.logger?.warn({ err }, 'Egress proxy server error'));
    await chmod(this.socketPath, this.#options.socketMode ?? 0o666);
  }

  held(): string[] {
    return [...this.#held];
  }

  drainHeld(): string[] {
    const held = [...this.#held];
    this.#held = new Set();
    return held;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeAllConnections();
      for (const socket of this.#sockets) socket.destroy();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_BUDGET_MS)))]);
      clearTimeout(timer);
      await unlink(this.socketPath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') this.#options.logger?.warn({ err }, 'Could not remove the egress proxy socket');
      });
    })();
    return this.#closing;
  }

  /** Remembers a socket until it closes and makes sure its errors never go unhandled. */
  #track(socket: Duplex): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #check(target: Target) {
    const options: CheckOptions = {
      allowed: this.#options.allowed(),
      ports: this.#ports,
      resolve: this.#resolve,
      resolveTimeoutMs: this.#connectTimeoutMs,
    };
    return checkDestination(target, options);
  }

  /** The record of a request refused or held before any connection was made. */
  #emitRefused(
    base: Pick<EgressDecisionEvent, 'host' | 'port' | 'method'>,
    verdict: { decision: EgressDecisionEvent['decision']; reason: string; status: number },
    started: number,
  ): void {
    this.#emit({
      ...base,
      decision: verdict.decision,
      reason: verdict.reason,
      status: verdict.status,
      bytesUp: 0,
      bytesDown: 0,
      durationMs: elapsed(started),
    });
  }

  #emit(event: EgressDecisionEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (err) {
      this.#options.logger?.warn({ err }, 'The egress event handler threw; the event is lost');
    }
  }

  #noteHeld(host: string): void {
    this.#held.add(host);
  }

  /** Plain HTTP: `GET http://host/path HTTP/1.1` relayed to the checked address. */
  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const target = absoluteTarget(req.url);
    const base = { host: target?.host ?? '', port: target?.port ?? 0, method };
    if (!target) {
      const reason = 'not a proxy request: send the absolute URL (http://host/path); https goes through CONNECT';
      reply(res, 400, 'refused', reason);
      this.#emit({ ...base, decision: 'refused', reason, status: 400, bytesUp: 0, bytesDown: 0, durationMs: 0 });
      req.resume();
      return;
    }

    const verdict = await this.#check(target);
    if (!verdict.ok) {
      if (verdict.decision === 'held') this.#noteHeld(target.host);
      reply(res, verdict.status, verdict.decision, refusalText(target, verdict.decision, verdict.reason));
      req.resume();
      this.#emitRefused(base, verdict, started);
      return;
    }

    let upstream: Awaited<ReturnType<typeof connectChecked>>;
    try {
      upstream = await connectChecked(verdict.addresses, target.port, this.#dial, this.#connectTimeoutMs);
    } catch (err) {
      const reason = errorReason(err);
      reply(res, 502, 'error', refusalText(target, 'allowed', reason));
      req.resume();
      this.#emit({
        ...base,
        decision: 'allowed',
        reason,
        status: 502,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: elapsed(started),
      });
      return;
    }
    if (res.destroyed || this.#closing) {
      upstream.socket.destroy();
      this.#emit({
        ...base,
        decision: 'allowed',
        reason: 'the sandbox closed the connection before the request was sent',
        address: upstream.address,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: elapsed(started),
      });
      return;
    }
    this.#relay(req, res, target, upstream, started);
  }

  #relay(
    req: IncomingMessage,
    res: ServerResponse,
    target: Target & { path: string },
    upstream: { socket: Socket; address: string },
    started: number,
  ): void {
    const { socket, address } = upstream;
    this.#track(socket);
    socket.setTimeout(this.#idleTimeoutMs);
    let reason: string | undefined;
    let status: number | undefined;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      socket.destroy();
      this.#emit({
        host: target.host,
        port: target.port,
        method: req.method ?? 'GET',
        decision: 'allowed',
        ...(reason ? { reason } : {}),
        address,
        ...(status !== undefined ? { status } : {}),
        bytesUp: socket.bytesWritten,
        bytesDown: socket.bytesRead,
        durationMs: elapsed(started),
      });
    };
    const fail = (why: string, code: 502 | 504) => {
      reason ??= why;
      if (res.destroyed || res.writableEnded) {
        socket.destroy();
        return;
      }
      if (!res.headersSent) {
        status = code;
        reply(res, code, 'error', refusalText(target, 'allowed', why));
      } else res.destroy();
      socket.destroy();
    };

    const headers: string[] = ['Host', hostHeader(target.host, target.port, 80), ...endToEndHeaders(req.rawHeaders)];
    const outgoing = httpRequest({
      method: req.method,
      path: target.path,
      headers: headers as unknown as OutgoingHttpHeaders,
      // The already connected socket to the checked address: no agent, no second lookup.
      createConnection: () => socket,
    });
    outgoing.on('error', (err) => fail(errorReason(err), 502));
    socket.on('timeout', () => fail(`the upstream server was idle for ${this.#idleTimeoutMs} ms`, 504));
    outgoing.on('response', (incoming) => {
      status = incoming.statusCode ?? 502;
      res.writeHead(status, incoming.statusMessage, endToEndHeaders(incoming.rawHeaders));
      incoming.pipe(res);
      incoming.on('error', (err) => fail(errorReason(err), 502));
      incoming.on('aborted', () => fail('the upstream server closed the connection mid-response', 502));
    });
    res.on('close', () => {
      if (!res.writableFinished) reason ??= 'the sandbox closed the connection early';
      finish();
    });
    req.on('error', () => socket.destroy());
    req.pipe(outgoing);
  }

  /** HTTPS (and any TLS): `CONNECT host:443` becomes a byte tunnel to the checked address. */
  async #onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      const reason = 'CONNECT needs host:port';
      writeRawResponse(client, 400, 'refused', reason);
      this.#emit({
        host: '',
        port: 0,
        method: 'CONNECT',
        decision: 'refused',
        reason,
        status: 400,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      });
      return;
    }
    const base = { host: target.host, port: target.port, method: 'CONNECT' };
    const verdict = await this.#check(target);
    if (!verdict.ok) {
      if (verdict.decision === 'held') this.#noteHeld(target.host);
      writeRawResponse(
        client,
        verdict.status,
        verdict.decision === 'allowed' ? 'error' : verdict.decision,
        refusalText(target, verdict.decision, verdict.reason),
      );
      this.#emitRefused(base, verdict, started);
      return;
    }

    let upstream: Awaited<ReturnType<typeof connectChecked>>;
    try {
      upstream = await connectChecked(verdict.addresses, target.port, this.#dial, this.#connectTimeoutMs);
    } catch (err) {
      const reason = errorReason(err);
      writeRawResponse(client, 502, 'error', refusalText(target, 'allowed', reason));
      this.#emit({ ...base, decision: 'allowed', reason, status: 502, bytesUp: 0, bytesDown: 0, durationMs: 0 });
      return;
    }
    const { socket, address } = upstream;
    this.#track(socket);
    if (client.destroyed || this.#closing) {
      socket.destroy();
      this.#emit({
        ...base,
        decision: 'allowed',
        reason: 'the sandbox closed the connection before the tunnel opened',
        address,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: elapsed(started),
      });
      return;
    }

    let reason: string | undefined;
    let open = 2;
    const onClosed = (hadError: boolean, other: Duplex) => {
      open -= 1;
      // Either side going away ends the tunnel. After a clean close the other side is ended
      // first and destroyed once what it still had buffered (the end of a download) has been
      // handed to the kernel; destroying it at once would cut that off.
      if (hadError) other.destroy();
      else other.end(() => other.destroy());
      if (open > 0) return;
      this.#emit({
        ...base,
        decision: 'allowed',
        ...(reason ? { reason } : {}),
        address,
        status: 200,
        bytesUp: socket.bytesWritten,
        bytesDown: socket.bytesRead,
        durationMs: elapsed(started),
      });
    };
    client.once('close', (hadError: boolean) => onClosed(hadError, socket));
    socket.once('close', (hadError: boolean) => onClosed(hadError, client));
    const idle = () => {
      reason ??= `the tunnel was idle for ${this.#idleTimeoutMs} ms`;
      client.destroy();
      socket.destroy();
    };
    socket.setTimeout(this.#idleTimeoutMs, idle);
    setSocketTimeout(client, this.#idleTimeoutMs, idle);

    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(client);
    client.pipe(socket);
  }
}

/** The target of an absolute-form `http://` request line, with the path to send upstream. */
function absoluteTarget(raw: string | undefined): (Target & { path: string }) | undefined {
  if (!raw || !/^http:\/\//i.test(raw)) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  return { ...targetOfUrl(url), path: `${url.pathname}${url.search}` };
}

/** The plain-text body of a refusal: what was asked for, what happened and what would help. */
function refusalText(target: Target, decision: 'held' | 'refused' | 'allowed', reason: string): string {
  const where = `${target.host}:${target.port}`;
  switch (decision) {
    case 'held':
      return (
        `Handoff egress proxy: ${target.host} is not on this run's allowlist, so the request is held. ` +
        `Reaching ${target.host} needs a person's approval; ask for it, and retry once it is given.`
      );
    case 'refused':
      return `Handoff egress proxy: ${where} is refused: ${reason}. No approval can allow this.`;
    case 'allowed':
      return `Handoff egress proxy: could not reach ${where}: ${reason}.`;
  }
}

function reply(res: ServerResponse, status: number, kind: string, text: string): void {
  if (res.destroyed || res.headersSent) return;
  const body = `${text}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Handoff-Egress': kind,
    Connection: 'close',
  });
  res.end(body);
}

/** Answers on a socket that has left the HTTP server (CONNECT, upgrade) and closes it. */
function writeRawResponse(socket: Duplex, status: number, kind: string, text: string): void {
  const body = `${text}\n`;
  const statusText: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    501: 'Not Implemented',
    502: 'Bad Gateway',
  };
  socket.end(
    `HTTP/1.1 ${status} ${statusText[status] ?? 'Error'}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Handoff-Egress: ${kind}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  // Make sure a client that never reads cannot keep the socket open.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** `setTimeout` on a socket that the HTTP server hands over as a plain Duplex. */
function setSocketTimeout(socket: Duplex, ms: number, onTimeout: () => void): void {
  const s = socket as Duplex & { setTimeout?: (ms: number, cb?: () => void) => void };
  // The server set its own idle timeout on this socket; this one replaces it.
  socket.removeAllListeners('timeout');
  s.setTimeout?.(ms, onTimeout);
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    const info = await lstat(path);
    if (!info.isSocket()) {
      throw new HandoffError(ErrorCodes.config, `${path} exists and is not a socket; refusing to replace it`);
    }
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
