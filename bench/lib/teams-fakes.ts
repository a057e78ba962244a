// The fake Entra ID and Bot Connector (with the fake Graph and Teams files) for bench/teams.ts,
// run as a process of their own, as the real services are remote: their work (answering the
// bot's posts and token requests) is not counted against the process being measured.
//
//   node --import tsx bench/lib/teams-fakes.ts
//
// Prints one JSON line on stdout (`FakesReady`) once everything listens, then serves until its
// parent goes away (stdin closed, or the parent pid changed) or it gets SIGTERM/SIGINT/SIGHUP.
// Besides the fakes it serves a small control endpoint on 127.0.0.1, for the parent only:
//
//   POST /channel-tokens  {count, options?}  → {tokens}: genuine channel tokens (or forgeries,
//                                              per ChannelTokenOptions) signed by the fake Entra
//   GET  /posts                              → {posts}: sendToConversation calls received
//   GET  /describe                           → text: what the Bot Connector fake received
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ChannelTokenOptions, startTeamsFakes, type TeamsFakes } from '../../test/fakes/teams-server.ts';

/** The one line printed on stdout when everything listens. */
export interface FakesReady {
  pid: number;
  appId: string;
  appPassword: string;
  tenantId: string;
  /** For TEAMS_OPENID_METADATA_URL. */
  openIdMetadataUrl: string;
  /** The fake Entra's v2 token endpoint of the bot's tenant (client credentials). */
  tokenEndpoint: string;
  /** The Bot Connector's URL: every activity's serviceUrl, and the token's `serviceurl` claim. */
  connectorUrl: string;
  filesUrl: string;
  graphUrl: string;
  /** `fakes.handoffEnv()`: the settings that point Handoff's Teams surface at these fakes. */
  handoffEnv: Record<string, string>;
  /** The control endpoint (above), no trailing slash. */
  controlUrl: string;
}

/** The body of `POST /channel-tokens`; appId and serviceUrl default to the fakes' own. */
export interface ChannelTokensRequest {
  count: number;
  options?: Partial<ChannelTokenOptions>;
}

const maxTokensPerRequest = 1024;

let fakes: TeamsFakes | undefined;
let control: ReturnType<typeof createServer> | undefined;
let stopping = false;

async function stop(code: number, why?: string): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (why) console.error(`teams-fakes: ${why}`);
    setTimeout(() => process.exit(code === 0 ? 1 : code), 5_000).unref();
    if (control) {
      control.closeAllConnections();
      await new Promise<void>((r) => control?.close(() => r()));
    }
    await fakes?.close().catch((err: unknown) => console.error(`teams-fakes: closing: ${(err as Error).message}`));
    process.exit(code);
  }
  return new Promise<never>(() => undefined);
}

// Never outlives its parent.
const parentPid = process.ppid;
process.stdin.on('end', () => void stop(0));
process.stdin.on('error', () => void stop(0));
process.stdin.resume();
setInterval(() => {
  if (process.ppid !== parentPid) void stop(0);
}, 500).unref();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void stop(0));

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res
    .writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    .end(text);
}

async function handle(f: TeamsFakes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/posts') {
    req.resume();
    const posts = f.connector.calls.filter((c) => c.operation === 'sendToConversation').length;
    return answer(res, 200, { posts });
  }
  if (req.method === 'GET' && path === '/describe') {
    req.resume();
    return answer(res, 200, f.connector.describe());
  }
  if (req.method === 'POST' && path === '/channel-tokens') {
    const { count = 1, options = {} } = (await readJson(req)) as Partial<ChannelTokensRequest>;
    if (!Number.isInteger(count) || count < 1 || count > maxTokensPerRequest)
      return answer(res, 400, { error: `count must be 1…${maxTokensPerRequest}` });
    const tokens = await Promise.all(
      Array.from({ length: count }, () =>
        f.entra.channelToken({ appId: f.appId, serviceUrl: f.connector.url, ...options }),
      ),
    );
    return answer(res, 200, { tokens });
  }
  req.resume();
  answer(res, 404, { error: `${req.method} ${path} is not served here` });
}

async function main(): Promise<void> {
  const f = await startTeamsFakes();
  fakes = f;
  if (stopping) return;
  const server = createServer((req, res) => {
    handle(f, req, res).catch((err: unknown) =>
      res.headersSent ? res.destroy() : answer(res, 500, { error: (err as Error).message }),
    );
  });
  control = server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const ready: FakesReady = {
    pid: process.pid,
    appId: f.appId,
    appPassword: f.appPassword,
    tenantId: f.tenantId,
    openIdMetadataUrl: f.entra.openIdMetadataUrl,
    tokenEndpoint: f.entra.tokenEndpoint(),
    connectorUrl: f.connector.url,
    filesUrl: f.files.url,
    graphUrl: f.graph.url,
    handoffEnv: f.handoffEnv(),
    controlUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((err: unknown) => void stop(1, (err as Error).message));
