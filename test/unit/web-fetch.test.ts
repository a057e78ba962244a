import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type WebFetchOptions, type WebFetchPage, webFetch } from '../../src/runner/egress/index.ts';
import { selfSignedCert } from '../helpers/self-signed.ts';

// Servers listen on 127.0.0.1 only; names resolve to documentation addresses that the dial
// maps to them, and it throws for anything else.

const root = mkdtempSync(join(tmpdir(), 'handoff-web-fetch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function makeCert(names: string[]): { key: Buffer; cert: Buffer } {
  return selfSignedCert(root, names);
}

const PAGE = `<!doctype html>
<html><head><title>Quarterly &amp; Annual Report</title>
<style>body { color: red }</style><script>window.secret = "do not show";</script></head>
<body><h1>Revenue</h1><p>Revenue grew <b>12%</b>, see <a href="https://files.example.com/q3.pdf">the Q3 report</a>.</p>
<img src="chart.png" alt="chart"><ul><li>North</li><li>South</li></ul></body></html>`;

let server: Server;
let tlsServer: Server;
let tls: { key: Buffer; cert: Buffer };
let localPort: number;
let tlsPort: number;
const hits: string[] = [];

type Reply = [status: number, headers: Record<string, string | number>, body?: string | Buffer];

/** What each path answers; `/slow` never answers. */
function route(path: string | undefined): Reply | undefined {
  switch (path) {
    case '/page':
      return [200, { 'Content-Type': 'text/html; charset=utf-8' }, PAGE];
    case '/gzip':
      return [200, { 'Content-Type': 'text/html', 'Content-Encoding': 'gzip' }, gzipSync(PAGE)];
    case '/big':
      return [200, { 'Content-Type': 'text/plain' }, 'x'.repeat(3 * 1024 * 1024)];
    case '/latin1':
      return [200, { 'Content-Type': 'text/plain; charset=iso-8859-1' }, Buffer.from([0x63, 0x61, 0x66, 0xe9])];
    case '/json':
      return [200, { 'Content-Type': 'application/json' }, '{"ok":true}'];
    case '/pdf':
      return [200, { 'Content-Type': 'application/pdf', 'Content-Length': 4096 }, Buffer.alloc(4096)];
    case '/missing':
      return [404, { 'Content-Type': 'text/plain' }, 'no such page'];
    case '/to-page':
      return [301, { Location: '/page' }];
    case '/to-https':
      return [302, { Location: 'https://files.example.com/page' }];
    case '/to-private':
      return [302, { Location: 'http://private.example.com/' }];
    case '/to-held':
      return [302, { Location: 'http://other.example.org/start' }];
    case '/to-ip':
      return [307, { Location: `http://127.0.0.1:${localPort}/page` }];
    case '/to-ftp':
      return [302, { Location: 'ftp://files.example.com/file' }];
    case '/loop':
      return [302, { Location: '/loop' }];
    case '/slow':
      return undefined;
    default:
      return [404, { 'Content-Type': 'text/plain' }, 'unknown'];
  }
}

function handler(req: IncomingMessage, res: ServerResponse): void {
  hits.push(`${req.headers.host}${req.url}`);
  const reply = route(req.url);
  if (!reply) return;
  const [status, headers, body] = reply;
  res.writeHead(status, headers);
  res.end(body ?? '');
}

beforeAll(async () => {
  tls = makeCert(['files.example.com']);
  server = createHttpServer(handler).listen(0, '127.0.0.1');
  tlsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, handler).listen(0, '127.0.0.1');
  await Promise.all([once(server, 'listening'), once(tlsServer, 'listening')]);
  localPort = (server.address() as { port: number }).port;
  tlsPort = (tlsServer.address() as { port: number }).port;
});

afterAll(async () => {
  server.closeAllConnections();
  tlsServer.closeAllConnections();
  await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => tlsServer.close(r))]);
});

const DNS: Record<string, string[]> = {
  'files.example.com': ['203.0.113.10'],
  'wrong-name.example.com': ['203.0.113.10'],
  'private.example.com': ['10.0.0.5'],
  'other.example.org': ['203.0.113.20'],
};
let dials: string[];

function options(overrides: Partial<WebFetchOptions> = {}): WebFetchOptions {
  return {
    allowed: ['files.example.com', 'wrong-name.example.com', 'private.example.com'],
    resolve: async (host) => {
      const addresses = DNS[host];
      if (!addresses) throw Object.assign(new Error(`no ${host}`), { code: 'ENOTFOUND' });
      return addresses;
    },
    dial: (address, port) => {
      dials.push(`${address}:${port}`);
      if (address === '203.0.113.10' && port === 80) return netConnect(localPort, '127.0.0.1');
      if (address === '203.0.113.10' && port === 443) return netConnect(tlsPort, '127.0.0.1');
      throw new Error(`test dial: ${address}:${port} is not mapped to a local server`);
    },
    ca: tls.cert,
    timeoutMs: 5_000,
    ...overrides,
  };
}

function page(result: Awaited<ReturnType<typeof webFetch>>): WebFetchPage {
  if ('error' in result) throw new Error(`expected a page, got ${JSON.stringify(result)}`);
  return result;
}

beforeEach(() => {
  dials = [];
  hits.length = 0;
});

describe('webFetch', () => {
  it('turns an HTML page into readable text with its title', async () => {
    const result = page(await webFetch('http://files.example.com/page', options()));
    expect(result).toMatchObject({
      url: 'http://files.example.com/page',
      status: 200,
      contentType: 'text/html',
      title: 'Quarterly & Annual Report',
      truncated: false,
      bytes: Buffer.byteLength(PAGE),
    });
    expect(result.text).toContain('Revenue');
    expect(result.text).toContain('Revenue grew 12%, see the Q3 report [https://files.example.com/q3.pdf].');
    expect(result.text).toMatch(/\* North\n \* South/);
    expect(result.text).not.toContain('do not show');
    expect(result.text).not.toContain('color: red');
    expect(result.text).not.toContain('<');
    expect(dials).toEqual(['203.0.113.10:80']);
    expect(hits).toEqual(['files.example.com/page']);
  });

  it('decompresses gzip and decodes the declared charset', async () => {
    expect(page(await webFetch('http://files.example.com/gzip', options())).text).toContain('Revenue grew 12%');
    expect(page(await webFetch('http://files.example.com/latin1', options())).text).toBe('café');
    expect(page(await webFetch('http://files.example.com/json', options())).text).toBe('{"ok":true}');
  });

  it('fetches over TLS from the checked address, verifying the certificate for the host name', async () => {
    const result = page(await webFetch('https://files.example.com/page', options()));
    expect(result.status).toBe(200);
    expect(result.title).toBe('Quarterly & Annual Report');
    expect(dials).toEqual(['203.0.113.10:443']);

    // Same server and address, another name: the certificate does not match, so no page.
    const wrong = await webFetch('https://wrong-name.example.com/page', options());
    expect(wrong).toMatchObject({ error: expect.stringMatching(/wrong-name\.example\.com/) });
    expect('text' in wrong).toBe(false);
  });

  it('caps what it downloads and the text it returns', async () => {
    const capped = page(await webFetch('http://files.example.com/big', options({ maxBytes: 10_000 })));
    expect(capped).toMatchObject({ truncated: true, bytes: 10_000 });
    expect(capped.text).toHaveLength(10_000);

    const byDefault = page(await webFetch('http://files.example.com/big', options()));
    expect(byDefault.bytes).toBe(2 * 1024 * 1024);
    expect(byDefault.text).toHaveLength(100_000);
    expect(byDefault.truncated).toBe(true);

    const chars = page(await webFetch('http://files.example.com/page', options({ maxChars: 20 })));
    expect(chars.text).toHaveLength(20);
    expect(chars.truncated).toBe(true);
  });

  it('describes non-text content instead of returning it', async () => {
    const result = page(await webFetch('http://files.example.com/pdf', options()));
    expect(result).toMatchObject({ contentType: 'application/pdf', bytes: 0, truncated: false });
    expect(result.text).toMatch(/application\/pdf, 4\.0 KiB: not text/);
  });

  it('returns error pages with their status', async () => {
    expect(page(await webFetch('http://files.example.com/missing', options()))).toMatchObject({
      status: 404,
      text: 'no such page',
    });
  });

  it('follows redirects, checking each hop', async () => {
    const result = page(await webFetch('http://files.example.com/to-page', options()));
    expect(result).toMatchObject({ url: 'http://files.example.com/page', status: 200 });
    const upgraded = page(await webFetch('http://files.example.com/to-https', options()));
    expect(upgraded.url).toBe('https://files.example.com/page');
    expect(dials).toEqual(['203.0.113.10:80', '203.0.113.10:80', '203.0.113.10:80', '203.0.113.10:443']);
  });

  it('refuses a redirect to a private address, an IP literal or another scheme', async () => {
    const toPrivate = await webFetch('http://files.example.com/to-private', options());
    expect(toPrivate).toMatchObject({
      error: expect.stringMatching(/private\.example\.com resolves to 10\.0\.0\.5, a private network address/),
      url: 'http://private.example.com/',
    });
    expect(toPrivate).not.toHaveProperty('held');

    const toIp = await webFetch('http://files.example.com/to-ip', options());
    expect(toIp).toMatchObject({ error: expect.stringMatching(/IP address is not allowed/) });

    const toFtp = await webFetch('http://files.example.com/to-ftp', options());
    expect(toFtp).toMatchObject({ error: expect.stringMatching(/only http and https/) });

    expect(dials.every((d) => d === '203.0.113.10:80')).toBe(true);
  });

  it('holds a redirect to a domain that is not on the allowlist', async () => {
    const result = await webFetch('http://files.example.com/to-held', options());
    expect(result).toMatchObject({
      held: 'other.example.org',
      error: expect.stringMatching(/approval/),
      url: 'http://other.example.org/start',
    });
    expect(dials).toEqual(['203.0.113.10:80']);
  });

  it('stops after maxRedirects', async () => {
    const result = await webFetch('http://files.example.com/loop', options({ maxRedirects: 3 }));
    expect(result).toMatchObject({ error: expect.stringMatching(/more than 3 redirects/) });
    expect(hits).toHaveLength(4);
  });

  it('refuses anything but http and https, and bad URLs', async () => {
    for (const url of [
      'file:///etc/passwd',
      'ftp://files.example.com/x',
      'javascript:alert(1)',
      'data:text/plain,hi',
    ]) {
      expect(await webFetch(url, options())).toMatchObject({ error: expect.stringMatching(/only http and https/) });
    }
    expect(await webFetch('not a url', options())).toMatchObject({ error: expect.stringMatching(/is not a URL/) });
    expect(dials).toEqual([]);
  });

  it('holds a domain that is not on the allowlist and refuses private targets without connecting', async () => {
    expect(await webFetch('https://other.example.org/', options())).toMatchObject({ held: 'other.example.org' });
    expect(await webFetch('http://private.example.com/', options())).toMatchObject({
      error: expect.stringMatching(/private network address/),
    });
    expect(await webFetch('http://localhost/', options())).toMatchObject({ error: expect.stringMatching(/localhost/) });
    expect(await webFetch('http://files.example.com:22/', options())).toMatchObject({
      error: expect.stringMatching(/port 22/),
    });
    expect(dials).toEqual([]);
  });

  it('gives up at its time limit', async () => {
    const started = Date.now();
    const result = await webFetch('http://files.example.com/slow', options({ timeoutMs: 300 }));
    expect(result).toMatchObject({ error: expect.stringMatching(/timed out after 300 ms/) });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
