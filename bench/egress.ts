// Egress proxy cost: a 100 MiB download over loopback straight from the server and through the
// proxy (client → unix socket → proxy → server) as a sandbox's traffic goes, in alternating
// rounds: once as a plain-HTTP request the proxy relays, once inside a CONNECT tunnel (the path
// of all HTTPS traffic; the tunnelled bytes are plain HTTP here, so TLS cost is left out). Then
// time to first byte of a small request on a fresh connection (and tunnel) each way. Server and
// proxy run in child processes of their own (this file, started with --server / --proxy), so
// the client's figures are not slowed by sharing their event loop. The socat hop inside a
// sandbox is not part of this.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  get,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startEgressProxy } from '../src/runner/egress/index.ts';
import { print, summary } from './stats.ts';

const MiB = 1024 * 1024;
const totalBytes = Number(process.env.BENCH_EGRESS_BYTES ?? 100 * MiB);
const rounds = Number(process.env.BENCH_EGRESS_ROUNDS ?? 5);
const latencySamples = Number(process.env.BENCH_EGRESS_LATENCY_SAMPLES ?? 200);
const HOST = 'bench.example.com';
/** A documentation address standing for the server; the proxy's dial maps it to 127.0.0.1. */
const ADDRESS = '203.0.113.10';

const role = process.argv[2];
if (role === '--server') await serve();
else if (role === '--proxy') await proxy(Number(process.argv[3]), process.argv[4]!);
else await main();

/** Child: the upstream server on 127.0.0.1. `/big` streams totalBytes, `/small` two bytes. */
async function serve(): Promise<void> {
  const chunk = Buffer.alloc(MiB, 0x61);
  const server = createHttpServer((req, res) => {
    if (req.url !== '/big') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 2 });
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': totalBytes });
    let sent = 0;
    const pump = () => {
      while (sent < totalBytes) {
        const part = chunk.subarray(0, Math.min(chunk.length, totalBytes - sent));
        sent += part.length;
        if (!res.write(part)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: (server.address() as { port: number }).port }));
  });
  exitWithParent(() => server.close());
}

/** Child: the egress proxy on a unix socket, allowing only HOST, which it dials on 127.0.0.1. */
async function proxy(serverPort: number, socketPath: string): Promise<void> {
  const egress = await startEgressProxy({
    socketPath,
    allowed: () => [HOST],
    resolve: async (host) => (host === HOST ? [ADDRESS] : []),
    dial: (address, port) => {
      // 443 too, for the tunnel: the server speaks plain HTTP on both.
      if (address !== ADDRESS || (port !== 80 && port !== 443)) {
        throw new Error(`bench dial: ${address}:${port} is not mapped`);
      }
      return connect(serverPort, '127.0.0.1');
    },
  });
  console.log(JSON.stringify({ ready: true }));
  exitWithParent(() => void egress.close());
}

/** A child exits when the parent closes its stdin (or dies): nothing outlives the benchmark. */
function exitWithParent(stop: () => void): void {
  process.stdin.resume();
  process.stdin.on('end', () => {
    stop();
    process.exit(0);
  });
}

async function startChild(args: string[]): Promise<{ child: ChildProcess; first: Record<string, unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bench child ${args[0]} exited early (code ${code})`)));
  });
  return { child, first: JSON.parse(first) as Record<string, unknown> };
}

/** How the client reaches the server. */
type Path =
  | { kind: 'direct'; port: number }
  | { kind: 'relay'; socketPath: string }
  | { kind: 'tunnel'; socketPath: string };

async function request(path: Path, urlPath: string): Promise<IncomingMessage> {
  // A new connection each time: no agent (with `createConnection` and no agent, Node uses the
  // given socket; `agent: false` would make a connection of its own instead).
  let options: RequestOptions;
  if (path.kind === 'direct') options = { agent: false, host: '127.0.0.1', port: path.port, path: urlPath };
  else if (path.kind === 'relay') {
    options = { agent: false, socketPath: path.socketPath, path: `http://${HOST}${urlPath}` };
  } else {
    const socket = await tunnel(path.socketPath);
    options = { path: urlPath, createConnection: () => socket };
  }
  return await new Promise((resolve, reject) => {
    const req = get({ ...options, headers: { Host: HOST } }, resolve);
    req.on('error', reject);
  });
}

/** A CONNECT tunnel to HOST:443 through the proxy. */
function tunnel(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, method: 'CONNECT', path: `${HOST}:443`, agent: false });
    req.on('connect', (res: IncomingMessage, socket: Socket) => {
      if (res.statusCode === 200) resolve(socket);
      else reject(new Error(`CONNECT answered ${res.statusCode}`));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Downloads `/big`; MiB/s. */
async function download(path: Path): Promise<number> {
  const started = performance.now();
  const res = await request(path, '/big');
  let bytes = 0;
  for await (const chunk of res) bytes += (chunk as Buffer).length;
  const seconds = (performance.now() - started) / 1000;
  if (res.statusCode !== 200 || bytes !== totalBytes) {
    throw new Error(`download got status ${res.statusCode} and ${bytes} of ${totalBytes} bytes`);
  }
  return bytes / MiB / seconds;
}

/** Time from starting a small request on a new connection to its response head; µs. */
async function firstByte(path: Path): Promise<number> {
  const started = performance.now();
  const res = await request(path, '/small');
  const micros = (performance.now() - started) * 1000;
  res.resume();
  await new Promise((resolve) => res.on('end', resolve));
  return micros;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'handoff-bench-egress-'));
  const children: ChildProcess[] = [];
  try {
    const server = await startChild(['--server']);
    children.push(server.child);
    const port = Number(server.first.port);
    const socketPath = join(dir, 'proxy.sock');
    children.push((await startChild(['--proxy', String(port), socketPath])).child);

    const paths: Array<{ name: string; path: Path }> = [
      { name: 'direct (client → 127.0.0.1 server)', path: { kind: 'direct', port } },
      { name: 'proxy relay (client → unix socket → proxy → server)', path: { kind: 'relay', socketPath } },
      { name: 'proxy tunnel (CONNECT, then the same hops)', path: { kind: 'tunnel', socketPath } },
    ];

    // One of each first, so no path pays for warming up.
    for (const { path } of paths) await download(path);
    const throughput = paths.map((): number[] => []);
    const latency = paths.map((): number[] => []);
    for (let i = 0; i < rounds; i++) {
      for (const [j, { path }] of paths.entries()) throughput[j]!.push(await download(path));
    }
    for (let i = 0; i < latencySamples; i++) {
      for (const [j, { path }] of paths.entries()) latency[j]!.push(await firstByte(path));
    }

    console.log(
      `egress: ${(totalBytes / MiB).toFixed(0)} MiB download × ${rounds} rounds, paths alternating; ` +
        `${latencySamples} small requests per path, each on a new connection`,
    );
    for (const [j, { name }] of paths.entries()) print(`download ${name}`, 'MiB/s', throughput[j]!);
    for (const [j, { name }] of paths.entries()) print(`time to first byte ${name}`, 'µs', latency[j]!);
    const directMiBs = summary(throughput[0]!).median;
    const directUs = summary(latency[0]!).median;
    for (const [j, { name }] of paths.entries()) {
      if (j === 0) continue;
      const ratio = summary(throughput[j]!).median / directMiBs;
      const added = summary(latency[j]!).median - directUs;
      console.log(
        `egress: ${name.split(' (')[0]}: throughput ${ratio.toFixed(2)} × direct, ` +
          `time to first byte +${added.toFixed(0)} µs (medians)`,
      );
    }
  } finally {
    for (const child of children) {
      child.stdin?.end();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      if (child.exitCode === null) await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  }
}
