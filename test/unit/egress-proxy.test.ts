import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import {
  createServer as createNetServer,
  type Server as NetServer,
  connect as netConnect,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type EgressDecisionEvent,
  type EgressProxy,
  type EgressProxyOptions,
  prepareEgressSocketDir,
  startEgressProxy,
} from '../../src/runner/egress/index.ts';
import { selfSignedCert } from '../helpers/self-signed.ts';

// Every upstream here listens on 127.0.0.1; the names resolve to documentation addresses that
// the dial below maps to those servers, and it throws for anything else: no test traffic
// ever leaves the loopback interface.

const root = mkdtempSync(join(tmpdir(), 'handoff-egress-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function makeCert(names: string[]): { key: Buffer; cert: Buffer } {
  return selfSignedCert(root, names);
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
}

const seen: Seen[] = [];
let httpServer: Server;
let httpsServer: Server;
let echoServer: NetServer;
/** Sends `blastBytes` as fast as it can and closes: the end of a download. */
let blastServer: NetServer;
let blastBytes = 0;
let closedPort: number;
let tls: { key: Buffer; cert: Buffer };

function port(server: Server | NetServer): number {
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('not listening on TCP');
  return address.port;
}

async function listenLocal<T extends Server | NetServer>(server: T): Promise<T> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

beforeAll(async () => {
  tls = makeCert(['files.example.com']);
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes });
      if (req.url === '/slow') return; // never answers
      if (req.url === '/big') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 1024 * 1024 });
        res.end(Buffer.alloc(1024 * 1024, 7));
        return;
      }
      res.writeHead(200, {
        'Content-Type': 'text/plain',
        'Keep-Alive': 'timeout=5',
        'Proxy-Authenticate': 'Basic realm="upstream"',
        'X-Upstream': 'yes',
      });
      res.end(`hello from ${req.headers.host}${req.url} (${bodyBytes} bytes in)\n`);
    });
  };
  httpServer = await listenLocal(createHttpServer(handler));
  httpsServer = await listenLocal(createHttpsServer({ key: tls.key, cert: tls.cert }, handler));
  echoServer = await listenLocal(createNetServer((socket) => socket.pipe(socket)));
  blastServer = await listenLocal(createNetServer((socket) => socket.end(Buffer.alloc(blastBytes, 9))));
  const spare = await listenLocal(createNetServer());
  closedPort = port(spare);
  spare.close();
});

afterAll(async () => {
  for (const server of [httpServer, httpsServer]) server.closeAllConnections();
  await Promise.all([httpServer, httpsServer, echoServer, blastServer].map((s) => new Promise((r) => s.close(r))));
});

const DNS: Record<string, string[]> = {
  'files.example.com': ['203.0.113.10'],
  'echo.example.com': ['203.0.113.30'],
  'blast.example.com': ['203.0.113.31'],
  'a.cdn.example.com': ['203.0.113.11'],
  'deep.a.cdn.example.com': ['203.0.113.11'],
  'cdn.example.com': ['203.0.113.11'],
  'other.example.org': ['203.0.113.20'],
  'metadata.example.com': ['169.254.169.254'],
  'loopback.example.com': ['127.0.0.1'],
  'private.example.com': ['10.0.0.5'],
  'loopback6.example.com': ['::1'],
  'mapped.example.com': ['::ffff:127.0.0.1'],
  'mixed.example.com': ['203.0.113.10', '10.0.0.5'],
  'down.example.com': ['203.0.113.99'],
};

/** Which local server each checked address:port stands for. */
function routes(): Map<string, number> {
  return new Map([
    ['203.0.113.10:80', port(httpServer)],
    ['203.0.113.10:443', port(httpsServer)],
    ['203.0.113.11:80', port(httpServer)],
    ['203.0.113.30:443', port(echoServer)],
    ['203.0.113.31:443', port(blastServer)],
    ['203.0.113.99:80', closedPort],
  ]);
}

let proxy: EgressProxy;
let socketPath: string;
let allowed: string[];
let events: EgressDecisionEvent[];
let dials: string[];

async function startProxy(overrides: Partial<EgressProxyOptions> = {}): Promise<EgressProxy> {
  const dir = await prepareEgressSocketDir(mkdtempSync(join(root, 'sock-')));
  socketPath = overrides.socketPath ?? join(dir, 'proxy.sock');
  const table = routes();
  proxy = await startEgressProxy({
    socketPath,
    allowed: () => allowed,
    resolve: async (host) => {
      const addresses = DNS[host];
      if (!addresses) throw Object.assign(new Error(`test resolver: no ${host}`), { code: 'ENOTFOUND' });
      return addresses;
    },
    dial: (address, p) => {
      dials.push(`${address}:${p}`);
      const local = table.get(`${address}:${p}`);
      if (local === undefined) throw new Error(`test dial: ${address}:${p} is not mapped to a local server`);
      return netConnect(local, '127.0.0.1');
    },
    onEvent: (event) => events.push(event),
    ...overrides,
  });
  return proxy;
}

beforeEach(() => {
  seen.length = 0;
  allowed = ['files.example.com', 'echo.example.com', 'blast.example.com', '*.cdn.example.com', 'down.example.com'];
  events = [];
  dials = [];
});

afterEach(async () => {
  await proxy?.close();
});

interface ProxyResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A plain-HTTP request through the proxy: absolute-form request line, over the unix socket. */
function viaProxy(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { socketPath, method: options.method ?? 'GET', path: url, headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** CONNECT through the proxy; on 200 the socket is the open tunnel, otherwise `body` is the refusal. */
function connectVia(authority: string): Promise<{ status: number; socket: Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'CONNECT', path: authority });
    req.on('connect', (res, socket: Socket, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status === 200) {
        if (head.length > 0) socket.unshift(head);
        resolve({ status, socket, body: '' });
        return;
      }
      const chunks: Buffer[] = [head];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => resolve({ status, socket, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET over TLS inside an open tunnel, verifying the certificate for `host`. */
function httpsThrough(tunnel: Socket, host: string, path: string): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host,
        path,
        // Without an agent Node does not know https's default port: name the host plainly.
        headers: { Host: host },
        createConnection: () => tlsConnect({ socket: tunnel, servername: host, ca: tls.cert }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function eventFor(host: string, method?: string): Promise<EgressDecisionEvent> {
  for (let i = 0; i < 200; i++) {
    const event = events.find((e) => e.host === host && (method === undefined || e.method === method));
    if (event) return event;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no egress event for ${host} (events: ${JSON.stringify(events)})`);
}

describe('egress proxy: allowed traffic', () => {
  it('relays plain HTTP to an allowed domain, connecting to the resolved address', async () => {
    await startProxy();
    const res = await viaProxy('http://files.example.com/hello?x=1', { headers: { Host: 'files.example.com' } });
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from files.example.com/hello?x=1 (0 bytes in)\n');
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/hello?x=1' });
    expect(dials).toEqual(['203.0.113.10:80']);
    const event = await eventFor('files.example.com');
    expect(event).toMatchObject({ port: 80, method: 'GET', decision: 'allowed', address: '203.0.113.10', status: 200 });
    expect(event.reason).toBeUndefined();
    expect(event.bytesUp).toBeGreaterThan(40);
    expect(event.bytesDown).toBeGreaterThan(res.body.length);
    expect(event.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('drops hop-by-hop and proxy headers both ways and sets Host to the target', async () => {
    await startProxy();
    const res = await viaProxy('http://files.example.com/headers', {
      headers: {
        Host: 'evil.example.net',
        'Proxy-Authorization': 'Basic c2VjcmV0OnNlY3JldA==',
        'Proxy-Connection': 'keep-alive',
        Connection: 'close, X-Hop',
        'X-Hop': 'must not pass',
        'Keep-Alive': 'timeout=5',
        TE: 'trailers',
        'X-Kept': 'end to end',
      },
    });
    expect(res.status).toBe(200);
    const headers = seen[0]!.headers;
    expect(headers.host).toBe('files.example.com');
    expect(headers['x-kept']).toBe('end to end');
    for (const name of ['proxy-authorization', 'proxy-connection', 'x-hop', 'keep-alive', 'te']) {
      expect(headers[name], name).toBeUndefined();
    }
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.headers['proxy-authenticate']).toBeUndefined();
    expect(res.headers['keep-alive']).toBeUndefined();
  });

  it('forwards request bodies and counts the bytes each way', async () => {
    await startProxy();
    const body = Buffer.alloc(100_000, 1);
    const res = await viaProxy('http://files.example.com/upload', { method: 'POST', body });
    expect(res.body).toContain('(100000 bytes in)');
    const up = await eventFor('files.example.com');
    expect(up.bytesUp).toBeGreaterThanOrEqual(100_000);
    expect(up.bytesDown).toBeLessThan(1_000);

    events = [];
    const big = await viaProxy('http://files.example.com/big');
    expect(big.body.length).toBe(1024 * 1024);
    const down = await eventFor('files.example.com');
    expect(down.bytesDown).toBeGreaterThanOrEqual(1024 * 1024);
    expect(down.bytesUp).toBeLessThan(1_000);
  });

  it('tunnels HTTPS with CONNECT; TLS is end to end and verified for the host name', async () => {
    await startProxy();
    const tunnel = await connectVia('files.example.com:443');
    expect(tunnel.status).toBe(200);
    const res = await httpsThrough(tunnel.socket, 'files.example.com', '/secure');
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from files.example.com/secure (0 bytes in)\n');
    expect(dials).toEqual(['203.0.113.10:443']);
    const event = await eventFor('files.example.com', 'CONNECT');
    expect(event).toMatchObject({ port: 443, decision: 'allowed', address: '203.0.113.10', status: 200 });
    expect(event.bytesUp).toBeGreaterThan(100);
    expect(event.bytesDown).toBeGreaterThan(300);
  });

  it('counts tunnel bytes exactly (raw TCP echo)', async () => {
    await startProxy();
    const { status, socket } = await connectVia('echo.example.com:443');
    expect(status).toBe(200);
    const payload = Buffer.alloc(65_536, 3);
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received === payload.length) socket.end();
    });
    socket.write(payload);
    await once(socket, 'close');
    const event = await eventFor('echo.example.com', 'CONNECT');
    expect(event).toMatchObject({ decision: 'allowed', bytesUp: 65_536, bytesDown: 65_536 });
  });

  it('delivers everything the server sent before it closed, to a client that reads in bursts', async () => {
    await startProxy();
    // The end of a download can still sit in the proxy's buffers when the server closes; it
    // must get through before the tunnel closes. Whether it is still buffered depends on
    // timing, so several sizes (the last chunk differs) with a reader that keeps stalling.
    for (let k = 1; k <= 30; k++) {
      blastBytes = 1024 * 1024 + k * 997;
      const { status, socket } = await connectVia('blast.example.com:443');
      expect(status).toBe(200);
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      const stall = setInterval(() => (socket.isPaused() ? socket.resume() : socket.pause()), 3);
      await once(socket, 'close');
      clearInterval(stall);
      expect(received, `download ${k} of ${blastBytes} bytes`).toBe(blastBytes);
    }
    await expect.poll(() => events.filter((e) => e.host === 'blast.example.com').length).toBe(30);
    const blasts = events.filter((e) => e.host === 'blast.example.com');
    expect(blasts.map((e) => [e.decision, e.bytesUp])).toEqual(blasts.map(() => ['allowed', 0]));
    expect(blasts.map((e) => e.bytesDown).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 30 }, (_, i) => 1024 * 1024 + (i + 1) * 997),
    );
  });

  it('applies wildcards to sub-domains only', async () => {
    allowed = ['*.cdn.example.com'];
    await startProxy();
    expect((await viaProxy('http://a.cdn.example.com/x')).status).toBe(200);
    expect((await viaProxy('http://deep.a.cdn.example.com/x')).status).toBe(200);
    const apex = await viaProxy('http://cdn.example.com/x');
    expect(apex.status).toBe(403);
    expect(apex.headers['x-handoff-egress']).toBe('held');
    expect(proxy.held()).toEqual(['cdn.example.com']);
  });

  it('reads the allowlist on every request, so a domain approved mid-run works at once', async () => {
    allowed = [];
    await startProxy();
    expect((await viaProxy('http://files.example.com/a')).status).toBe(403);
    allowed.push('files.example.com');
    expect((await viaProxy('http://files.example.com/a')).status).toBe(200);
  });
});

describe('egress proxy: held domains', () => {
  it('answers 403 naming the domain and asking for approval, and remembers it once', async () => {
    await startProxy();
    const res = await viaProxy('http://other.example.org/page');
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.headers['x-handoff-egress']).toBe('held');
    expect(res.body).toContain('other.example.org');
    expect(res.body).toMatch(/not on this run's allowlist/);
    expect(res.body).toMatch(/approval/);

    const tunnel = await connectVia('other.example.org:443');
    expect(tunnel.status).toBe(403);
    expect(tunnel.body).toContain('other.example.org');
    expect(tunnel.body).toMatch(/approval/);

    expect(proxy.held()).toEqual(['other.example.org']);
    expect(dials).toEqual([]);
    expect(seen).toEqual([]);
    const event = await eventFor('other.example.org');
    expect(event).toMatchObject({ decision: 'held', status: 403, bytesUp: 0, bytesDown: 0 });

    expect(proxy.drainHeld()).toEqual(['other.example.org']);
    expect(proxy.held()).toEqual([]);
  });
});

describe('egress proxy: always refused', () => {
  it.each([
    ['metadata.example.com', '169.254.169.254', /cloud metadata/],
    ['loopback.example.com', '127.0.0.1', /loopback/],
    ['private.example.com', '10.0.0.5', /private/],
    ['loopback6.example.com', '::1', /loopback/],
    ['mapped.example.com', '::ffff:127.0.0.1', /loopback/],
    ['mixed.example.com', '10.0.0.5', /private/],
  ])('%s resolving to %s is refused before any connection, allowlisted or not', async (host, address, why) => {
    allowed = [host];
    await startProxy();
    const res = await viaProxy(`http://${host}/`);
    expect(res.status).toBe(403);
    expect(res.headers['x-handoff-egress']).toBe('refused');
    expect(res.body).toContain(address);
    const tunnel = await connectVia(`${host}:443`);
    expect(tunnel.status).toBe(403);
    expect(tunnel.body).toMatch(why);
    expect(dials).toEqual([]);
    expect(proxy.held()).toEqual([]);
    const event = await eventFor(host);
    expect(event.decision).toBe('refused');
    expect(event.reason).toMatch(why);
  });

  it.each([
    'http://127.0.0.1/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://2130706433/',
    'http://0x7f.1/',
    'http://017700000001/',
    'http://203.0.113.10/',
    'http://localhost/',
    'http://localhost./',
    'http://files.localhost/',
  ])('plain HTTP to %s is refused', async (url) => {
    allowed = ['127.0.0.1', '203.0.113.10', 'localhost', '*.localhost', 'files.example.com'];
    await startProxy();
    const res = await viaProxy(url);
    expect(res.status).toBe(403);
    expect(res.headers['x-handoff-egress']).toBe('refused');
    expect(dials).toEqual([]);
    expect(proxy.held()).toEqual([]);
  });

  it.each([
    '127.0.0.1:443',
    '[::1]:443',
    '[::ffff:127.0.0.1]:443',
    '[::ffff:7f00:1]:443',
    '2130706433:443',
    '0x7f000001:443',
    '203.0.113.10:443',
    '[fd00:ec2::254]:443',
    'localhost:443',
  ])('CONNECT %s is refused', async (authority) => {
    allowed = ['127.0.0.1', '203.0.113.10', 'localhost'];
    await startProxy();
    const res = await connectVia(authority);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/refused/);
    expect(dials).toEqual([]);
  });

  it('refuses ports outside the allowed list, even for an allowed domain', async () => {
    await startProxy();
    const ssh = await connectVia('files.example.com:22');
    expect(ssh.status).toBe(403);
    expect(ssh.body).toMatch(/port 22 is not allowed/);
    const alt = await viaProxy('http://files.example.com:8080/');
    expect(alt.status).toBe(403);
    expect(dials).toEqual([]);
    expect(proxy.held()).toEqual([]);
    expect((await eventFor('files.example.com', 'CONNECT')).decision).toBe('refused');
  });

  it('refuses requests that are not proxy requests', async () => {
    await startProxy();
    const res = await viaProxy('/hello', { headers: { Host: 'files.example.com' } });
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/absolute URL/);
    const connect = await connectVia('files.example.com');
    expect(connect.status).toBe(400);
    expect(dials).toEqual([]);
  });
});

describe('egress proxy: failures and lifecycle', () => {
  it('answers 502 with the reason when the upstream server cannot be reached', async () => {
    await startProxy();
    const res = await viaProxy('http://down.example.com/');
    expect(res.status).toBe(502);
    expect(res.body).toMatch(/ECONNREFUSED/);
    const event = await eventFor('down.example.com');
    expect(event).toMatchObject({ decision: 'allowed', status: 502 });
    expect(event.reason).toMatch(/ECONNREFUSED/);

    allowed.push('nowhere.example.com');
    const unknown = await viaProxy('http://nowhere.example.com/');
    expect(unknown.status).toBe(502);
    expect(unknown.body).toMatch(/could not resolve nowhere\.example\.com \(ENOTFOUND\)/);
  });

  it('closes an idle tunnel and says why', async () => {
    await startProxy({ idleTimeoutMs: 300 });
    const { status, socket } = await connectVia('echo.example.com:443');
    expect(status).toBe(200);
    const started = Date.now();
    await once(socket, 'close');
    expect(Date.now() - started).toBeLessThan(3_000);
    const event = await eventFor('echo.example.com', 'CONNECT');
    expect(event.reason).toMatch(/idle for 300 ms/);
  });

  it('answers 504 when the upstream server goes quiet, and gives up resolving a name that hangs', async () => {
    await startProxy({ idleTimeoutMs: 300 });
    const res = await viaProxy('http://files.example.com/slow');
    expect(res.status).toBe(504);
    expect(res.body).toMatch(/idle for 300 ms/);
    const event = await eventFor('files.example.com');
    expect(event).toMatchObject({ decision: 'allowed', status: 504, address: '203.0.113.10' });
    await proxy.close();

    allowed.push('hangs.example.com');
    await startProxy({ connectTimeoutMs: 200, resolve: () => new Promise(() => undefined) });
    const lookup = await viaProxy('http://hangs.example.com/');
    expect(lookup.status).toBe(502);
    expect(lookup.body).toMatch(/could not resolve hangs\.example\.com \(ETIMEOUT\)/);
  });

  it('closes connections beyond maxConnections', async () => {
    await startProxy({ maxConnections: 1 });
    const first = await connectVia('echo.example.com:443');
    expect(first.status).toBe(200);
    await expect(connectVia('echo.example.com:443')).rejects.toMatchObject({
      code: expect.stringMatching(/ECONNRESET|EPIPE/),
    });
    first.socket.destroy();
  });

  it('close() ends open tunnels and removes the socket within a second', async () => {
    await startProxy();
    const { status, socket } = await connectVia('echo.example.com:443');
    expect(status).toBe(200);
    socket.write('still here');
    await once(socket, 'data');
    const closed = once(socket, 'close');
    const started = Date.now();
    await proxy.close();
    await closed;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(existsSync(socketPath)).toBe(false);
    await expect(viaProxy('http://files.example.com/')).rejects.toMatchObject({ code: 'ENOENT' });
    await proxy.close();
  });

  it('makes the socket usable by another (non-root) user and replaces only a stale socket', async () => {
    await startProxy();
    expect(statSync(socketPath).mode & 0o777).toBe(0o666);
    expect(statSync(join(socketPath, '..')).mode & 0o777).toBe(0o755);
    const path = socketPath;
    await proxy.close();

    // A socket left behind by a proxy that died is replaced.
    const stale = createNetServer();
    stale.listen(path);
    await once(stale, 'listening');
    stale.removeAllListeners();
    await startProxy({ socketPath: path });
    expect((await viaProxy('http://files.example.com/again')).status).toBe(200);
    await proxy.close();
    stale.close();

    const file = join(root, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await expect(startProxy({ socketPath: file })).rejects.toThrow(/not a socket/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});
