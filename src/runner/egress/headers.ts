/**
 * Headers that describe one connection rather than the message (RFC 9110 §7.6.1), plus the
 * proxy's own: none of them is passed on in either direction. `Expect` is answered by the
 * proxy itself; `Host` is rewritten to the target.
 */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
]);

/**
 * The end-to-end headers of a message as a flat `[name, value, name, value…]` list (the form
 * `rawHeaders` has and `writeHead` accepts), without hop-by-hop and proxy headers and without
 * any header that `Connection` names as hop-by-hop.
 */
export function endToEndHeaders(rawHeaders: readonly string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const token of rawHeaders[i + 1]!.split(',')) named.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (NOT_FORWARDED.has(lower) || named.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** `host` or `host:port` as a Host header names the target (the port only when not the default). */
export function hostHeader(host: string, port: number, defaultPort: number): string {
  const name = host.includes(':') ? `[${host}]` : host;
  return port === defaultPort ? name : `${name}:${port}`;
}
