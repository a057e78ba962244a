import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { convert, type HtmlToTextOptions } from 'html-to-text';
import {
  checkDestination,
  connectChecked,
  DEFAULT_EGRESS_PORTS,
  type Dial,
  defaultDial,
  defaultResolve,
  errorReason,
  type Resolve,
  type Target,
  targetOfUrl,
} from './destination.ts';
import { hostHeader } from './headers.ts';

export interface WebFetchOptions {
  /** The run's allowlist (exact names, `*.example.com` wildcards), or a function read at each hop. */
  allowed: readonly string[] | (() => readonly string[]);
  /** Ports that may be fetched. Default [80, 443]. */
  ports?: readonly number[];
  /** Default: `dns.promises.lookup(host, { all: true })`. */
  resolve?: Resolve;
  /** Default: `net.connect` to the checked address. */
  dial?: Dial;
  /** Most content bytes read (after decompression). Default 2 MiB. */
  maxBytes?: number;
  /** Most characters of text returned. Default 100 000. */
  maxChars?: number;
  /** For the whole fetch, redirects included. Default 30 000 ms. */
  timeoutMs?: number;
  /** Redirects followed, each one checked like the first URL. Default 5. */
  maxRedirects?: number;
  /** Aborting stops the fetch; it then resolves with an error result. */
  signal?: AbortSignal;
  /**
   * Certificate authorities to trust INSTEAD of Node's default set (tests, a private CA).
   * Host names are verified either way.
   */
  ca?: string | Buffer | Array<string | Buffer>;
  userAgent?: string;
}

/** A fetched page, as text. The text is untrusted content: it grants no actions. */
export interface WebFetchPage {
  /** The final URL, after redirects. */
  url: string;
  status: number;
  /** Media type without parameters, lower case (`text/html`); empty when the server sent none. */
  contentType: string;
  /** The HTML `<title>`, as text. */
  title?: string;
  /** Readable text for HTML and text types; a one-line description for anything else. */
  text: string;
  /** The body was longer than `maxBytes` or its text longer than `maxChars`. */
  truncated: boolean;
  /** Content bytes read (after decompression). */
  bytes: number;
}

/** A fetch that did not happen or failed; `held` names a domain a person could approve. */
export interface WebFetchFailure {
  error: string;
  held?: string;
  /** The URL that failed (a redirect target, when it was one). */
  url?: string;
}

export type WebFetchResult = WebFetchPage | WebFetchFailure;

const MiB = 1024 * 1024;
const DEFAULT_MAX_BYTES = 2 * MiB;
const DEFAULT_MAX_CHARS = 100_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;
const DEFAULT_USER_AGENT = 'Handoff-web_fetch/1';
const MAX_TITLE_CHARS = 300;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const HTML_TO_TEXT: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'img', format: 'skip' },
    { selector: 'svg', format: 'skip' },
    { selector: 'noscript', format: 'skip' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true, ignoreHref: false, noAnchorUrl: true } },
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'h3', options: { uppercase: false } },
    { selector: 'h4', options: { uppercase: false } },
    { selector: 'h5', options: { uppercase: false } },
    { selector: 'h6', options: { uppercase: false } },
    { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false } },
  ],
};

/**
 * Fetches one http(s) URL for the `web_fetch` tool, in the runner (not the sandbox), under the
 * same rules as the egress proxy: the host must be on the allowlist, and every address it
 * resolves to must be public; the connection goes to the checked address, with TLS verified
 * against the host name. Redirects are followed up to `maxRedirects`, each hop checked again.
 * HTML comes back as readable text, other text as is, anything else as a short description.
 * Never throws for network or policy problems: they come back as `{ error }`.
 */
export async function webFetch(url: string, options: WebFetchOptions): Promise<WebFetchResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;

  let current: URL;
  try {
    current = new URL(url);
  } catch {
    return { error: `${JSON.stringify(url)} is not a URL`, url };
  }
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      return { error: `only http and https URLs can be fetched, not ${current.protocol}`, url: current.href };
    }
    let response: Response;
    try {
      response = await fetchOnce(current, options, signal);
    } catch (err) {
      const why = timeout.aborted
        ? `timed out after ${timeoutMs} ms`
        : signal.aborted
          ? 'the fetch was cancelled'
          : errorReason(err);
      return { error: `could not fetch ${current.href}: ${why}`, url: current.href };
    }
    if ('error' in response) return response;
    const { incoming } = response;
    const location = incoming.headers.location;
    if (REDIRECTS.has(incoming.statusCode ?? 0) && location) {
      incoming.destroy();
      if (hop >= maxRedirects) {
        return { error: `more than ${maxRedirects} redirects; stopped at ${current.href}`, url: current.href };
      }
      try {
        current = new URL(location, current);
      } catch {
        return { error: `the redirect to ${JSON.stringify(location)} is not a URL`, url: current.href };
      }
      continue;
    }
    try {
      return await readPage(current, incoming, options, signal);
    } catch (err) {
      incoming.destroy();
      const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : errorReason(err);
      return { error: `could not read ${current.href}: ${why}`, url: current.href };
    }
  }
}

type Response = { incoming: IncomingMessage } | WebFetchFailure;

/** One request: check, connect to the checked address, send GET, wait for the response head. */
async function fetchOnce(url: URL, options: WebFetchOptions, signal: AbortSignal): Promise<Response> {
  const target = targetOfUrl(url);
  const allowed = typeof options.allowed === 'function' ? options.allowed() : options.allowed;
  const verdict = await checkDestination(target, {
    allowed,
    ports: options.ports ?? DEFAULT_EGRESS_PORTS,
    resolve: options.resolve ?? defaultResolve,
    resolveTimeoutMs: Math.min(10_000, options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  });
  signal.throwIfAborted();
  if (!verdict.ok) {
    if (verdict.decision === 'held') {
      return {
        error: `${target.host} is not on this run's allowlist; reaching it needs a person's approval`,
        held: target.host,
        url: url.href,
      };
    }
    if (verdict.decision === 'allowed')
      return { error: `could not fetch ${url.href}: ${verdict.reason}`, url: url.href };
    return { error: `${url.href} is refused: ${verdict.reason}`, url: url.href };
  }

  const { socket } = await connectChecked(
    verdict.addresses,
    target.port,
    options.dial ?? defaultDial,
    Math.min(10_000, options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    signal,
  );
  const https = url.protocol === 'https:';
  const connection = https ? await startTls(socket, target, options.ca, signal) : socket;
  return await new Promise<Response>((resolve, reject) => {
    const request = (https ? httpsRequest : httpRequest)({
      method: 'GET',
      path: `${url.pathname}${url.search}`,
      headers: {
        Host: hostHeader(target.host, target.port, https ? 443 : 80),
        'User-Agent': options.userAgent ?? DEFAULT_USER_AGENT,
        Accept: 'text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5',
        'Accept-Encoding': 'gzip, deflate, br',
      },
      // The connection made above, to the checked address: no agent, no second lookup.
      createConnection: () => connection,
      signal,
    });
    request.on('response', (incoming) => resolve({ incoming }));
    request.on('error', (err) => {
      connection.destroy();
      reject(err);
    });
    request.end();
  });
}

/** TLS over the connected socket, verified against the host name (not the address). */
function startTls(socket: Socket, target: Target, ca: WebFetchOptions['ca'], signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      servername: target.host,
      host: target.host,
      ALPNProtocols: ['http/1.1'],
      ...(ca ? { ca } : {}),
    });
    const onAbort = () => tls.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    tls.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(tls);
    });
    tls.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    });
  });
}

async function readPage(
  url: URL,
  incoming: IncomingMessage,
  options: WebFetchOptions,
  signal: AbortSignal,
): Promise<WebFetchPage> {
  const contentTypeHeader = incoming.headers['content-type'] ?? '';
  const contentType = (contentTypeHeader.split(';', 1)[0] ?? '').trim().toLowerCase();
  const status = incoming.statusCode ?? 0;
  const kind = kindOf(contentType);
  if (kind === 'binary') {
    incoming.destroy();
    const length = Number(incoming.headers['content-length']);
    const size = Number.isFinite(length) && length >= 0 ? `, ${formatBytes(length)}` : '';
    return {
      url: url.href,
      status,
      contentType,
      text: `[${contentType || 'content of no stated type'}${size}: not text, so not shown. Fetch it in the sandbox if the task needs the file.]`,
      truncated: false,
      bytes: 0,
    };
  }

  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const body = await readCapped(decoded(incoming), maxBytes, signal);
  incoming.destroy();
  const charset = /;\s*charset="?([^";\s]+)/i.exec(contentTypeHeader)?.[1];
  const source = decodeText(body.data, charset);
  const maxChars = options.maxChars ?? DEFAULT_MAX_CHARS;
  let text = kind === 'html' ? convert(source, HTML_TO_TEXT) : source;
  let truncated = body.truncated;
  if (text.length > maxChars) {
    text = text.slice(0, maxChars);
    truncated = true;
  }
  const title = kind === 'html' ? titleOf(source) : undefined;
  return {
    url: url.href,
    status,
    contentType,
    ...(title ? { title } : {}),
    text,
    truncated,
    bytes: body.data.length,
  };
}

function kindOf(contentType: string): 'html' | 'text' | 'binary' {
  if (contentType === 'text/html' || contentType === 'application/xhtml+xml') return 'html';
  if (
    contentType === '' ||
    contentType.startsWith('text/') ||
    /^application\/(?:json|xml|javascript|ecmascript|x-ndjson|csv|yaml|x-yaml|toml|rss\+xml|atom\+xml)$/.test(
      contentType,
    ) ||
    /\+(?:json|xml)$/.test(contentType)
  ) {
    return 'text';
  }
  return 'binary';
}

/** The body with its Content-Encoding undone. */
function decoded(incoming: IncomingMessage): Readable {
  const encoding = String(incoming.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (!decoder) {
    if (encoding !== 'identity' && encoding !== '') throw new Error(`unsupported Content-Encoding ${encoding}`);
    return incoming;
  }
  incoming.on('error', (err) => decoder.destroy(err));
  incoming.pipe(decoder);
  return decoder;
}

/** Reads at most `maxBytes`; stops reading (and says so) when there is more. */
async function readCapped(
  stream: Readable,
  maxBytes: number,
  signal: AbortSignal,
): Promise<{ data: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  const onAbort = () => stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      const buffer = chunk as Buffer;
      const room = maxBytes - size;
      if (buffer.length > room) {
        chunks.push(buffer.subarray(0, room));
        size += room;
        truncated = true;
        break;
      }
      chunks.push(buffer);
      size += buffer.length;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.destroy();
  }
  return { data: Buffer.concat(chunks, size), truncated };
}

function decodeText(data: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(data);
  } catch {
    // An unknown charset label: UTF-8 is the best guess on today's web.
    return new TextDecoder('utf-8').decode(data);
  }
}

function titleOf(html: string): string | undefined {
  const match = /<title[^>]*>([\s\S]*?)<\/title\s*>/i.exec(html);
  if (!match) return undefined;
  const title = convert(match[1]!, { wordwrap: false }).replace(/\s+/g, ' ').trim();
  return title ? title.slice(0, MAX_TITLE_CHARS) : undefined;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / MiB).toFixed(1)} MiB`;
}
