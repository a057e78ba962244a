import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import { domainProblem } from '../../approvals/index.ts';
import { forbiddenAddressReason } from './address-rules.ts';

/** Resolves a host name to IP addresses (text form). Default: the system resolver, every family. */
export type Resolve = (host: string) => Promise<string[]>;

/**
 * Opens a TCP connection to an already checked IP address. MUST connect to exactly `address`
 * (never look a name up again: that is what keeps DNS rebinding out). Default: `net.connect`.
 * The socket may still be connecting when returned.
 */
export type Dial = (address: string, port: number) => Socket | Promise<Socket>;

/** Ports a sandbox may reach unless told otherwise. */
export const DEFAULT_EGRESS_PORTS: readonly number[] = [80, 443];

/** `dns.promises.lookup` with every address of every family, in the resolver's order. */
export const defaultResolve: Resolve = async (host) =>
  (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export const defaultDial: Dial = (address, port) => connect({ host: address, port });

/** Where a request wants to go, as the proxy or web_fetch parsed it. */
export interface Target {
  /** Lower case, without a trailing dot or IPv6 brackets. */
  host: string;
  port: number;
}

/** The outcome of checking a target against the allowlist and the address rules. */
export type Verdict =
  | { ok: true; addresses: string[] }
  | {
      ok: false;
      /**
       * `held`: only the allowlist stands in the way, so a person's approval would let it
       * through. `refused`: never allowed. `allowed`: permitted, but the name did not resolve.
       */
      decision: 'held' | 'refused' | 'allowed';
      reason: string;
      /** HTTP status to answer with: 403 for held and refused, 502 for a failed lookup. */
      status: 403 | 502;
    };

export interface CheckOptions {
  /** Current allowlist: exact names and `*.example.com` wildcards (sub-domains only). */
  allowed: readonly string[];
  ports: readonly number[];
  resolve: Resolve;
  /** A lookup that takes longer fails the check (502). Default 10 000 ms. */
  resolveTimeoutMs?: number;
}

const DEFAULT_RESOLVE_TIMEOUT_MS = 10_000;

/** Normalises a host as a URL parser hands it over: lower case, no brackets, no trailing dot. */
export function normalizeHost(hostname: string): string {
  let host = hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * Parses a CONNECT request target (`host:port`, `[v6]:port`). Goes through the WHATWG URL
 * parser so numeric forms (`2130706433`, `0x7f.1`) come out as the IP literals they are.
 * Undefined when it is not a bare authority with an explicit port.
 */
export function parseAuthority(authority: string): Target | undefined {
  if (!/^[^/?#@\s]+:\d{1,5}$/.test(authority)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${authority}`);
  } catch {
    return undefined;
  }
  // The URL parser drops a port equal to the scheme's default (80 here).
  const port = url.port === '' ? 80 : Number(url.port);
  if (url.pathname !== '/' || url.search || url.hash) return undefined;
  return { host: normalizeHost(url.hostname), port };
}

/** The target of an http(s) URL, with its scheme's default port. */
export function targetOfUrl(url: URL): Target {
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { host: normalizeHost(url.hostname), port };
}

/**
 * Whether the allowlist admits `host`: an exact entry, or `*.example.com` for any sub-domain of
 * example.com (not example.com itself). Same rule as the policy's `egressAllowed`.
 */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = normalizeHost(host);
  return allowed.some((entry) => {
    const e = normalizeHost(entry);
    return e.startsWith('*.') ? h.endsWith(e.slice(1)) && h.length > e.length - 1 : h === e;
  });
}

/**
 * Decides whether a sandbox may reach `target`, in this order: IP literals and `localhost` are
 * refused, then ports outside `ports`, then names the policy could never approve; a name not
 * on the allowlist is held; an allowed name is resolved and refused if ANY address it resolves
 * to is forbidden (`forbiddenAddressReason`). On success the caller MUST connect to one of
 * the returned addresses, never to the name.
 */
export async function checkDestination(target: Target, options: CheckOptions): Promise<Verdict> {
  const { host, port } = target;
  const refused = (reason: string): Verdict => ({ ok: false, decision: 'refused', reason, status: 403 });
  if (host === '') return refused('the request names no host');
  if (isIP(host) !== 0 || host.includes('%')) return refused('an IP address is not allowed, only domain names');
  if (host === 'localhost' || host.endsWith('.localhost')) return refused('localhost is never reachable');
  if (!options.ports.includes(port)) {
    return refused(`port ${port} is not allowed (allowed: ${options.ports.join(', ')})`);
  }
  const problem = domainProblem(host);
  if (problem) return refused(`${JSON.stringify(host)} cannot be approved: ${problem}`);
  if (!hostAllowed(host, options.allowed)) {
    return { ok: false, decision: 'held', reason: 'not on the allowlist', status: 403 };
  }

  let addresses: string[];
  const timeoutMs = options.resolveTimeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  try {
    addresses = await Promise.race([
      options.resolve(host),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })), timeoutMs);
      }),
    ]);
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    return {
      ok: false,
      decision: 'allowed',
      reason: `could not resolve ${host}${typeof code === 'string' ? ` (${code})` : ''}`,
      status: 502,
    };
  } finally {
    clearTimeout(timer);
  }
  if (addresses.length === 0) {
    return { ok: false, decision: 'allowed', reason: `${host} has no addresses`, status: 502 };
  }
  for (const address of addresses) {
    const why = forbiddenAddressReason(address);
    if (why) return refused(`${host} resolves to ${address}, ${why}`);
  }
  return { ok: true, addresses };
}

/**
 * Connects to the first of `addresses` that accepts within `timeoutMs` each, through `dial`.
 * Rejects with the last error when none does.
 */
export async function connectChecked(
  addresses: readonly string[],
  port: number,
  dial: Dial,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ socket: Socket; address: string }> {
  let lastError: unknown = new Error('no address to connect to');
  for (const address of addresses) {
    signal?.throwIfAborted();
    try {
      return { socket: await connectOne(address, port, dial, timeoutMs, signal), address };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function connectOne(
  address: string,
  port: number,
  dial: Dial,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Socket> {
  const socket = await dial(address, port);
  if (!socket.connecting && !socket.destroyed) return socket;
  return await new Promise<Socket>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(socket);
    };
    const onConnect = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error(`connection to ${address}:${port} closed while connecting`));
    const onAbort = () => done(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer = setTimeout(
      () => done(new Error(`connecting to ${address}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (socket.destroyed) done(new Error(`connection to ${address}:${port} failed`));
  });
}

/** A short description of a connection error (`ECONNREFUSED`, a timeout…). */
export function errorReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
