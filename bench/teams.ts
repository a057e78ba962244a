// Teams surface figure: `POST /api/messages` ack latency (p50/p95/p99) at 50, 100 and 200
// requests a second of signed Teams activities sent from a separate process (open loop), for
// `handoff bot` with Teams on and, side by side, a bare Microsoft 365 Agents SDK app that only
// acks. The figure is the ratio of the two (target ≤ 1.5×). The fake Entra ID and Bot Connector
// run in a process of their own (bench/lib/teams-fakes.ts), as the real ones are remote.
// Everything listens on 127.0.0.1.
//
//   BENCH_TEAMS_RATES=50,100,200 BENCH_TEAMS_ROUNDS=3 BENCH_TEAMS_SECONDS=5 BENCH_TEAMS_WARMUP=2
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AuthConfiguration,
  type AuthProvider,
  CloudAdapter,
  type Connections,
  OutboundHostValidator,
  type WebResponse,
} from '@microsoft/agents-hosting';
import { Redis } from 'ioredis';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { startRedisServer } from '../src/storage/index.ts';
import {
  type ChannelTokenOptions,
  type FakeEntra,
  type SendOptions,
  type TeamsActivity,
  TeamsSender,
  teamsChannel,
  teamsGroupChat,
  teamsTeam,
  teamsUser,
} from '../test/fakes/teams-server.ts';
import { startTestBot } from '../test/helpers/bot.ts';
import type { LoadPlan, LoadResult } from './lib/open-loop.ts';
import type { ChannelTokensRequest, FakesReady } from './lib/teams-fakes.ts';

const rates = (process.env.BENCH_TEAMS_RATES ?? '50,100,200').split(',').map(Number);
const rounds = Number(process.env.BENCH_TEAMS_ROUNDS ?? 3);
const seconds = Number(process.env.BENCH_TEAMS_SECONDS ?? 5);
const warmupSec = Number(process.env.BENCH_TEAMS_WARMUP ?? 2);
const target = 1.5;
const tokenPoolSize = 32;
const seedTasks = 32;

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const loadScript = fileURLToPath(new URL('./lib/open-loop.ts', import.meta.url));
const fakesScript = fileURLToPath(new URL('./lib/teams-fakes.ts', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Stopping everything, whatever happens: normal end, an error, Ctrl-C.

const cleanups: Array<() => unknown> = [];
const children = new Set<ChildProcess>();
let stopping: Promise<void> | undefined;

function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const child of children) child.kill('SIGTERM');
    for (const cleanup of cleanups.reverse()) {
      await Promise.resolve()
        .then(cleanup)
        .catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    }
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the bot, Redis, the fakes and the load…`);
    setTimeout(() => process.exit(130), 20_000).unref();
    void stopAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// The fakes (Entra ID, Bot Connector, Graph, Teams files) in a process of their own.

interface FakesProcess {
  ready: FakesReady;
  /** Channel tokens signed by the fake Entra (genuine unless `options` says otherwise). */
  channelTokens(count: number, options?: Partial<ChannelTokenOptions>): Promise<string[]>;
  /** sendToConversation calls the Bot Connector fake has received so far. */
  posts(): Promise<number>;
  /** What the Bot Connector fake received, for error messages. */
  describe(): Promise<string>;
  /** A sender playing the Teams channel towards `botUrl`; its tokens come from the fakes process. */
  sender(botUrl: string): TeamsSender;
  /** Stops the process (stdin closed, SIGTERM; SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
}

async function startFakesProcess(): Promise<FakesProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', fakesScript], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      child.stdin?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      child.stdout?.destroy();
    })();
    return stopped;
  };
  const ready = await new Promise<FakesReady>((resolve, reject) => {
    let out = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`the fakes process ${why}`));
    };
    const timer = setTimeout(() => fail('did not start within 30 s'), 30_000);
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited with ${signal ?? code} before it was ready`));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, nl)) as FakesReady);
      } catch (err) {
        reject(new Error(`the fakes process printed something else than its settings: ${(err as Error).message}`));
      }
    });
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  child.once('exit', (code, signal) => {
    if (!stopped && !stopping) console.error(`the fakes process exited with ${signal ?? code} during the run`);
  });

  const call = async (path: string, init?: RequestInit): Promise<Response> => {
    const res = await fetch(`${ready.controlUrl}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`the fakes process answered ${res.status} to ${path}: ${await res.text()}`);
    return res;
  };
  const channelTokens = async (count: number, options: Partial<ChannelTokenOptions> = {}): Promise<string[]> => {
    const body: ChannelTokensRequest = { count, options };
    const res = await call('/channel-tokens', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return ((await res.json()) as { tokens: string[] }).tokens;
  };
  // TeamsSender only asks its Entra for channel tokens: those are signed across the boundary.
  const entra: Pick<FakeEntra, 'channelToken'> = {
    channelToken: async (options) => (await channelTokens(1, options))[0]!,
  };
  return {
    ready,
    channelTokens,
    posts: async () => ((await (await call('/posts')).json()) as { posts: number }).posts,
    describe: async () => (await call('/describe')).text(),
    sender: (botUrl) =>
      new TeamsSender({
        botUrl,
        appId: ready.appId,
        entra: entra as FakeEntra,
        serviceUrl: ready.connectorUrl,
        tenantId: ready.tenantId,
      }),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// The traffic: real Teams activity shapes, a fixed mix, every request signed.

type Kind = 'reply' | 'request' | 'personal' | 'help';

/** Every 25 activities: 20 thread replies, 3 new channel requests, 1 personal-chat request, 1 "help". */
const pattern: Kind[] = Array.from({ length: 25 }, (_, i): Kind => {
  if (i === 4 || i === 12 || i === 20) return 'request';
  if (i === 8) return 'personal';
  if (i === 16) return 'help';
  return 'reply';
});

const people = ['Ana Silva', 'Ben Okafor', 'Chloé Martin', 'Dev Patel', 'Eva Novak', 'Farid Haddad'].flatMap((n) => [
  teamsUser(n),
  teamsUser(`${n} Jr`),
]);
const finance = teamsTeam('Finance');
const support = teamsTeam('Support');
const channels = [
  { team: finance, channel: teamsChannel(finance, 'General') },
  { team: finance, channel: teamsChannel(finance, 'Reports') },
  { team: support, channel: teamsChannel(support, 'General') },
  { team: support, channel: teamsChannel(support, 'Escalations') },
];
const chats = Array.from({ length: 8 }, (_, i) => teamsGroupChat(`Project ${i + 1}`));
const requests = [
  'summarise last week’s support tickets by product into a spreadsheet',
  'draft the monthly finance report from the attached ledger export',
  'compare Q3 and Q4 sales by region and chart the difference',
  'list the open escalations older than five days with their owners',
  'turn the meeting notes in this thread into action items per person',
];
const replies = [
  'please use the EMEA numbers only',
  'also add a column for the account manager',
  'keep it under one page',
  'the deadline is Friday noon',
  'ignore the test accounts',
  'can you split it by quarter?',
];

interface SeedTask {
  team: (typeof channels)[number]['team'];
  channel: (typeof channels)[number]['channel'];
  requester: (typeof people)[number];
  teammate: (typeof people)[number];
  root: string;
}

/** `count` activities in the mix, with the headers Teams sends, each with a pre-signed token. */
function buildRequests(
  sender: TeamsSender,
  tasks: SeedTask[],
  tokens: string[],
  count: number,
): { requests: LoadPlan['requests']; posts: number } {
  const out: LoadPlan['requests'] = [];
  let posts = 0;
  for (let n = 0; n < count; n++) {
    const kind = pattern[n % pattern.length]!;
    const from = people[n % people.length]!;
    let activity: TeamsActivity;
    if (kind === 'reply') {
      const task = tasks[(n * 7) % tasks.length]!;
      activity = sender.channelMention({
        team: task.team,
        channel: task.channel,
        from: n % 4 === 3 ? task.teammate : task.requester,
        text: replies[n % replies.length]!,
        replyToRoot: task.root,
      });
    } else if (kind === 'request') {
      const where = channels[n % channels.length]!;
      activity = sender.channelMention({ ...where, from, text: requests[n % requests.length]! });
    } else if (kind === 'personal') {
      activity = sender.personalMessage({ from, text: requests[n % requests.length]! });
    } else {
      activity = sender.groupChatMention({ chat: chats[n % chats.length]!, from, text: 'help' });
    }
    if (kind !== 'reply') posts += 1;
    out.push({
      body: JSON.stringify(activity),
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'Microsoft-SkypeBotApi (Microsoft-BotFramework 3.0)',
        'x-ms-conversation-id': activity.conversation.id,
        'x-ms-tenant-id': activity.conversation.tenantId,
        authorization: `Bearer ${tokens[n % tokens.length]}`,
      },
    });
  }
  return { requests: out, posts };
}

// ---------------------------------------------------------------------------------------------
// The baseline: the Agents SDK's own per-request work, and nothing of Handoff's.

/**
 * A node:http server whose `/api/messages` reads the body, parses it, checks the bearer token
 * with jose (RS256 signature against the JWKS named by the same OpenID metadata, issuer,
 * audience = app id, expiry, and the `serviceurl` claim = the activity's serviceUrl), then runs
 * `CloudAdapter.process` (built as Handoff builds it: serviceUrl validation, outbound host
 * allowlist) with a turn handler that does nothing. The adapter's tokens come from the fake
 * Entra token endpoint (client credentials, cached per scope).
 */
async function startBaseline(fakes: FakesReady): Promise<{ url: string; close(): Promise<void> }> {
  const appId = fakes.appId;
  const metadata = (await (await fetch(fakes.openIdMetadataUrl)).json()) as { issuer: string; jwks_uri: string };
  const keys = createRemoteJWKSet(new URL(metadata.jwks_uri));

  const cache = new Map<string, { token: string; until: number }>();
  const pending = new Map<string, Promise<string>>();
  const token = (scope: string): Promise<string> => {
    const cached = cache.get(scope);
    if (cached && cached.until > Date.now()) return Promise.resolve(cached.token);
    let p = pending.get(scope);
    if (!p) {
      p = (async () => {
        const res = await fetch(fakes.tokenEndpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: appId,
            client_secret: fakes.appPassword,
            scope,
          }),
        });
        const body = (await res.json()) as { access_token?: string; expires_in?: number };
        if (!res.ok || !body.access_token) throw new Error(`the token endpoint answered ${res.status}`);
        cache.set(scope, { token: body.access_token, until: Date.now() + (body.expires_in ?? 3600) * 500 });
        return body.access_token;
      })().finally(() => pending.delete(scope));
      pending.set(scope, p);
    }
    return p;
  };
  const scopeOf = (scope: string) => (scope.endsWith('/.default') ? scope : `${scope.replace(/\/+$/, '')}/.default`);
  const unsupported = async (): Promise<string> => {
    throw new Error('not used');
  };
  const provider: AuthProvider = {
    connectionSettings: { clientId: appId } as AuthConfiguration,
    getAccessToken: (async (a: AuthConfiguration | string, b?: string) =>
      token(
        scopeOf(typeof a === 'string' ? a : (b ?? 'https://api.botframework.com')),
      )) as AuthProvider['getAccessToken'],
    getAgenticApplicationToken: unsupported,
    getAgenticInstanceToken: unsupported,
    getAgenticUserToken: unsupported,
    acquireTokenOnBehalfOf: unsupported as AuthProvider['acquireTokenOnBehalfOf'],
  };
  const connections: Connections = {
    getConnection: () => provider,
    getDefaultConnection: () => provider,
    getTokenProvider: () => provider,
    getTokenProviderFromActivity: () => provider,
    getDefaultConnectionConfiguration: () => ({ clientId: appId }) as AuthConfiguration,
  };
  const adapter = new CloudAdapter(
    { clientId: appId, tenantId: fakes.tenantId } as AuthConfiguration,
    undefined,
    undefined,
    { validateServiceUrl: true },
    new OutboundHostValidator({ enabled: true, includeDefaultMicrosoftHosts: false, hosts: ['127.0.0.1'] }),
  );
  adapter.connectionManager = connections;

  const answer = (res: ServerResponse, status: number): void => {
    res.writeHead(status).end();
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST' || req.url !== '/api/messages') return answer(res, 404);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 256 * 1024) return answer(res, 413);
      chunks.push(chunk);
    }
    let body: { serviceUrl?: unknown } & Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return answer(res, 400);
    }
    const bearer = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer) return answer(res, 401);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(bearer, keys, {
        issuer: metadata.issuer,
        audience: appId,
        algorithms: ['RS256'],
        clockTolerance: 300,
        requiredClaims: ['exp'],
      }));
    } catch {
      return answer(res, 401);
    }
    const norm = (u: unknown) => (typeof u === 'string' ? u.toLowerCase().replace(/\/+$/, '') : undefined);
    if (!norm(claims.serviceurl) || norm(claims.serviceurl) !== norm(body.serviceUrl)) return answer(res, 401);
    await adapter.process(
      { body, headers: req.headers, method: 'POST', user: claims },
      new NodeWebResponse(res),
      async () => {},
    );
    if (!res.writableEnded) res.end();
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => (res.headersSent ? res.destroy() : answer(res, 500)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The SDK's response interface over a node:http response. */
class NodeWebResponse implements WebResponse {
  constructor(private readonly res: ServerResponse) {}
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get writableEnded(): boolean {
    return this.res.writableEnded;
  }
  status(code: number): this {
    this.res.statusCode = code;
    return this;
  }
  setHeader(name: string, value: string): this {
    this.res.setHeader(name, value);
    return this;
  }
  send(body?: unknown): this {
    this.res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    return this;
  }
  end(): this {
    if (!this.res.writableEnded) this.res.end();
    return this;
  }
}

// ---------------------------------------------------------------------------------------------
// Running one phase: a fresh load process, its JSON back.

let planSeq = 0;

async function runLoad(dir: string, plan: LoadPlan, onStart: () => void): Promise<LoadResult> {
  const file = join(dir, `plan-${planSeq++}.json`);
  await writeFile(file, JSON.stringify(plan));
  const child = spawn(process.execPath, ['--import', 'tsx', loadScript, file], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('message', onStart);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => children.delete(child));
  await rm(file, { force: true });
  if (code !== 0) throw new Error(`the load process exited with ${code}`);
  return JSON.parse(out) as LoadResult;
}

/** Nearest-rank percentile, as bench/stats.ts computes median and p95. */
function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Side {
  latencies: number[];
  non200: number;
  warmupNon200: number;
  statuses: Record<string, number>;
  maxLagMs: number;
  minRate: number;
}

const emptySide = (): Side => ({
  latencies: [],
  non200: 0,
  warmupNon200: 0,
  statuses: {},
  maxLagMs: 0,
  minRate: Number.POSITIVE_INFINITY,
});

function add(side: Side, r: LoadResult): void {
  side.latencies.push(...r.latencies);
  for (const [status, n] of Object.entries(r.statuses)) {
    side.statuses[status] = (side.statuses[status] ?? 0) + n;
    if (status !== '200') side.non200 += n;
  }
  for (const [status, n] of Object.entries(r.warmupStatuses)) if (status !== '200') side.warmupNon200 += n;
  side.maxLagMs = Math.max(side.maxLagMs, r.maxLagMs);
  side.minRate = Math.min(side.minRate, r.achievedRate);
}

function phaseLine(label: string, r: LoadResult, extra = ''): string {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const non200 = Object.entries(r.statuses)
    .filter(([s]) => s !== '200')
    .reduce((n, [, c]) => n + c, 0);
  return `  ${label.padEnd(22)} p50=${percentile(sorted, 0.5).toFixed(1)} p95=${percentile(sorted, 0.95).toFixed(1)} p99=${percentile(sorted, 0.99).toFixed(1)} ms  n=${sorted.length} non-200=${non200} sent at ${r.achievedRate.toFixed(1)}/s${extra}`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const began = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-teams-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis = await startRedisServer({ dir: join(dir, 'redis') });
  cleanups.push(() => redis.stop());
  const fakes = await startFakesProcess();
  cleanups.push(() => fakes.stop());
  const remote = fakes.ready;
  const bot = await startTestBot(redis.url, {
    TEAMS_APP_ID: remote.appId,
    TEAMS_APP_PASSWORD: remote.appPassword,
    TEAMS_TENANT_ID: remote.tenantId,
    TEAMS_OPENID_METADATA_URL: remote.openIdMetadataUrl,
    TEAMS_TOKEN_ENDPOINT: remote.tokenEndpoint,
    TEAMS_SERVICE_URL_ALLOWLIST: new URL(remote.connectorUrl).origin,
    TEAMS_FILE_HOSTS: new URL(remote.filesUrl).origin,
  });
  cleanups.push(() => bot.close());
  const baseline = await startBaseline(remote);
  cleanups.push(() => baseline.close());
  const handoffUrl = `${bot.url}/api/messages`;
  const sender = fakes.sender(bot.url);
  const posts = () => fakes.posts();
  /** Polls the Bot Connector fake until it has received `count` posts; throws after `timeoutMs`. */
  const waitForPosts = async (count: number, timeoutMs: number, what: string): Promise<void> => {
    const deadline = performance.now() + timeoutMs;
    while ((await posts()) < count) {
      if (performance.now() >= deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${await fakes.describe()}`);
      await sleep(25);
    }
  };
  const stats = new Redis(redis.url);
  cleanups.push(() => stats.disconnect());
  const redisCommands = async () =>
    Number(/total_commands_processed:(\d+)/.exec(await stats.info('stats'))?.[1] ?? Number.NaN);

  // Genuine channel tokens, signed before anything is timed; each valid for the whole run.
  const tokens = await fakes.channelTokens(tokenPoolSize, { appId: remote.appId, serviceUrl: remote.connectorUrl });
  if (tokens.length !== tokenPoolSize) throw new Error(`the fakes process signed ${tokens.length} tokens`);

  // The tasks whose threads get the replies: real requests, acknowledged in their threads.
  const tasks: SeedTask[] = [];
  for (let j = 0; j < seedTasks; j++) {
    const where = channels[j % channels.length]!;
    const requester = people[j % people.length]!;
    const activity = sender.channelMention({ ...where, from: requester, text: requests[j % requests.length]! });
    const res = await sender.send(activity);
    if (res.status !== 200) throw new Error(`seeding a task was answered ${res.status}`);
    tasks.push({ ...where, requester, teammate: people[(j + 5) % people.length]!, root: activity.id });
  }
  await waitForPosts(seedTasks, 30_000, 'the seed tasks’ acknowledgements');

  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(
    `teams ack latency: ${availableParallelism()} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version} ${process.platform}/${process.arch}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} before the run`,
  );
  console.log(
    `  load: a separate process (bench/lib/open-loop.ts), open loop (request i due at i/rate, latency from when it was due to the end of the answer), keep-alive node:http agent, loopback`,
  );
  console.log(
    `  sent: signed Teams message activities, RS256 channel tokens from a pool of ${tokenPoolSize} signed before timing; every 25:`,
  );
  console.log(
    `    20 (80%) replies mentioning the bot in the threads of ${seedTasks} existing channel tasks (3 of 4 from the requester, 1 from a teammate);`,
  );
  console.log(
    `         the tasks are still planning (no runner): Handoff finds the thread’s task and who may steer it, posts nothing`,
  );
  console.log(
    `     3 (12%) new channel posts mentioning the bot: a task each (stored, audited, planning job queued, "Planning…" posted in its thread)`,
  );
  console.log(`     1 (4%)  personal-chat requests: a task each, likewise`);
  console.log(`     1 (4%)  group-chat "help" (8 chats): the help text posted`);
  console.log(`    no invokes (card clicks are answered inside the response and need a plan, i.e. a runner)`);
  console.log(
    `  handoff:  \`handoff bot\` (no runner) in this process, Teams on, its own redis-server, fake Entra ID + Bot Connector in their own process;`,
  );
  console.log(
    `            token check, serviceUrl allowlist, CloudAdapter.process, conversation/person saved, then the 200; replies go out after it (paced)`,
  );
  console.log(
    `  baseline: node:http in this process; per request: read + JSON.parse the body, jose jwtVerify (RS256 via the JWKS of the same OpenID metadata,`,
  );
  console.log(
    `            issuer, audience = app id, expiry) + serviceurl claim = activity serviceUrl, then CloudAdapter.process (serviceUrl validation,`,
  );
  console.log(
    `            outbound host allowlist, connector client with a cached client-credentials token from the same fake Entra) with an empty turn handler`,
  );
  console.log(
    `  per rate: ${rounds} rounds of handoff then baseline (A B A B), each ${warmupSec} s warm-up (left out) + ${seconds} s measured; after 3 s untimed per side at the first rate; setup took ${((performance.now() - began) / 1000).toFixed(1)} s`,
  );

  // Both sides refuse what the Bot Framework says to refuse, or the comparison means nothing.
  const forgeries: Array<[string, SendOptions]> = [
    ['no token', { token: null }],
    ['forged signature', { tokenOptions: { signWith: 'rogue' } }],
    ['expired', { tokenOptions: { expiresInSec: -3600 } }],
    ['other audience', { tokenOptions: { audience: '11111111-2222-4333-8444-555555555555' } }],
    ['other issuer', { tokenOptions: { issuer: 'https://sts.example.com/' } }],
    ['other serviceurl', { tokenOptions: { serviceUrl: 'https://smba.trafficmanager.net/emea/' } }],
  ];
  const refusals: Record<string, string[]> = {};
  for (const [name, s] of [
    ['handoff', sender],
    ['baseline', fakes.sender(baseline.url)],
  ] as const) {
    const got: string[] = [];
    for (const [what, options] of forgeries) {
      const res = await s.send(s.personalMessage({ from: people[0]!, text: 'help' }), options);
      got.push(`${what} ${res.status}`);
      if (res.status !== 401 && name === 'baseline')
        throw new Error(`the baseline took a token it should refuse: ${what}`);
    }
    refusals[name] = got;
  }
  const allRefused = Object.values(refusals).every((g) => g.every((s) => s.endsWith(' 401')));
  console.log(
    allRefused
      ? `  both sides answer 401 to: ${forgeries.map(([w]) => w).join(', ')}`
      : `  token refusals: ${JSON.stringify(refusals)}`,
  );

  /** One timed run against one side; for Handoff, also waits until its replies are all out. */
  const phase = async (name: 'handoff' | 'baseline', rate: number, warm: number, measured: number) => {
    const { requests: built, posts: expected } = buildRequests(
      sender,
      tasks,
      tokens,
      Math.round(rate * (warm + measured)),
    );
    const before = await posts();
    const commandsBefore = await redisCommands();
    let elu = performance.eventLoopUtilization();
    const r = await runLoad(
      dir,
      {
        url: name === 'handoff' ? handoffUrl : baseline.url,
        rate,
        warmupSec: warm,
        seconds: measured,
        requests: built,
      },
      () => {
        elu = performance.eventLoopUtilization();
      },
    );
    // How busy this process (the server side) was while the load ran.
    let extra = `; this process busy ${(100 * performance.eventLoopUtilization(elu).utilization).toFixed(0)}%`;
    if (name === 'handoff') {
      // Handoff's answers after the ack: waited for, so the baseline runs on a quiet process.
      const ended = performance.now();
      const want = before + expected;
      const deadline = ended + 60_000;
      let now = await posts();
      while (now < want && performance.now() < deadline) {
        await sleep(50);
        now = await posts();
      }
      const outAfter = performance.now() - ended;
      const late = now < want ? ` (${want - now} missing after 60 s)` : '';
      const commands = ((await redisCommands()) - commandsBefore) / built.length;
      extra += `, ${commands.toFixed(1)} Redis commands per activity; ${now - before} replies posted, all out ${(outAfter / 1000).toFixed(1)} s after the last answer${late}`;
    }
    await sleep(300);
    return { r, extra };
  };

  // JIT and connection warm-up for both sides, not counted.
  for (const name of ['handoff', 'baseline'] as const) {
    const { r } = await phase(name, rates[0] ?? 50, 0, 3);
    const non200 = Object.entries(r.statuses).filter(([s]) => s !== '200');
    if (non200.length > 0)
      console.log(`  warm-up of ${name}: non-200 answers ${JSON.stringify(Object.fromEntries(non200))}`);
  }

  const table: Array<{ rate: number; handoff: Side; baseline: Side }> = [];
  for (const rate of rates) {
    const sides = { handoff: emptySide(), baseline: emptySide() };
    console.log(`\n  ${rate}/s:`);
    for (let round = 1; round <= rounds; round++) {
      for (const name of ['handoff', 'baseline'] as const) {
        const { r, extra } = await phase(name, rate, warmupSec, seconds);
        add(sides[name], r);
        console.log(phaseLine(`${name} round ${round}`, r, extra));
      }
    }
    table.push({ rate, ...sides });
  }

  const f = (v: number) => v.toFixed(1).padStart(8);
  const x = (v: number) => `${v.toFixed(2)}×`.padStart(8);
  console.log(`\nteams /api/messages ack latency, ms (${rounds} × ${seconds} s measured per side and rate)`);
  console.log(
    `  ${'rate'.padEnd(8)}${'side'.padEnd(10)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'p99'.padStart(8)}${'n'.padStart(7)}  non-200`,
  );
  for (const { rate, handoff, baseline } of table) {
    const h = [...handoff.latencies].sort((a, b) => a - b);
    const b = [...baseline.latencies].sort((a, b) => a - b);
    const q = (s: number[]) => [0.5, 0.95, 0.99].map((p) => percentile(s, p)) as [number, number, number];
    const [h50, h95, h99] = q(h);
    const [b50, b95, b99] = q(b);
    const errors = (s: Side) =>
      `${s.non200}${s.non200 > 0 ? ` ${JSON.stringify(s.statuses)}` : ''}${s.warmupNon200 > 0 ? ` (+${s.warmupNon200} in warm-up)` : ''}`;
    console.log(
      `  ${`${rate}/s`.padEnd(8)}${'handoff'.padEnd(10)}${f(h50)}${f(h95)}${f(h99)}${String(h.length).padStart(7)}  ${errors(handoff)}`,
    );
    console.log(
      `  ${''.padEnd(8)}${'baseline'.padEnd(10)}${f(b50)}${f(b95)}${f(b99)}${String(b.length).padStart(7)}  ${errors(baseline)}`,
    );
    const r50 = h50 / b50;
    const r95 = h95 / b95;
    console.log(
      `  ${''.padEnd(8)}${'ratio'.padEnd(10)}${x(r50)}${x(r95)}${x(h99 / b99)}         within ${target}× at p50: ${r50 <= target ? 'yes' : 'no'}, p95: ${r95 <= target ? 'yes' : 'no'}`,
    );
    const lag = Math.max(handoff.maxLagMs, baseline.maxLagMs);
    const slowest = Math.min(handoff.minRate, baseline.minRate);
    if (lag > 5 || slowest < rate * 0.98)
      console.log(`  ${''.padEnd(18)}(sender: up to ${lag.toFixed(1)} ms late, slowest run ${slowest.toFixed(1)}/s)`);
  }
  console.log(
    `\n  total ${((performance.now() - began) / 1000).toFixed(0)} s; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end (the figures are only as quiet as this machine was)`,
  );
}

try {
  await main();
} finally {
  await stopAll();
}
