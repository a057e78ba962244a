// The app image (scripts/build-app-image.sh): its size, and compiled JavaScript vs tsx at
// run time, in the same image, Node binary and node_modules.
//
// 1. Size of handoff-app:latest beside its base image (handoff-base:bookworm), and what
//    the difference is made of (Node, node_modules, dist/).
// 2. Cold start of `handoff bot`: from `docker run` to the first 200 from /readyz, with the
//    image's compiled dist/ (its entrypoint) and with tsx running the TypeScript sources
//    (src/ and bin/handoff.js of this checkout mounted read-only, tsx from the image's
//    node_modules); the ratio. Baseline: `docker run` of `node -e 0` in the same image.
// 3. Cold start of `handoff runner` (to its "runner started" log line), same two ways.
// 4. Idle RSS of the bot and the runner process (VmRSS of node, 10 s after ready), both ways.
//
// Containers use the host network and a redis-server on 127.0.0.1; nothing listens elsewhere.
// BENCH_RUNS (default 5) starts per variant.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startRedisServer } from '../src/storage/index.ts';
import { freePort } from '../test/helpers/bot.ts';
import { print, summary } from './stats.ts';

const run = promisify(execFile);
const runs = Number(process.env.BENCH_RUNS ?? 5);
const image = process.env.HANDOFF_APP_IMAGE ?? 'handoff-app:latest';
const baseImage = process.env.HANDOFF_BASE_IMAGE ?? 'handoff-base:bookworm';
const repo = new URL('../', import.meta.url).pathname;
/** A world-readable copy of src/ and bin/handoff.js for the tsx variant (the image's user is uid 10001). */
let sources = repo;
const idleMs = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Variant = 'compiled' | 'tsx';
type Role = 'bot' | 'runner';

const docker = async (...args: string[]) => (await run('docker', args, { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

async function sizes(): Promise<void> {
  const size = async (img: string) => Number(await docker('image', 'inspect', img, '--format', '{{.Size}}'));
  const app = await size(image);
  const base = await size(baseImage);
  const du = await docker(
    'run',
    '--rm',
    '--entrypoint',
    'du',
    image,
    '-sb',
    '/usr/local/bin/node',
    '/app/node_modules',
    '/app/dist',
  );
  console.log(`image ${image}: ${mb(app)} MiB; base ${baseImage}: ${mb(base)} MiB (+${mb(app - base)} MiB)`);
  for (const line of du.split('\n')) {
    const [bytes, path] = line.split('\t');
    console.log(`  ${path}: ${mb(Number(bytes))} MiB`);
  }
}

/** VmRSS (MB) of the node process under the container's tini, read from the host's /proc. */
async function nodeRss(container: string): Promise<number> {
  const tini = (await docker('inspect', container, '--format', '{{.State.Pid}}')).trim();
  const children = (await readFile(`/proc/${tini}/task/${tini}/children`, 'utf8')).trim().split(/\s+/);
  for (const pid of children) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    if (/^Name:\s+node$/m.test(status)) return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
  }
  throw new Error(`no node process under ${container}`);
}

async function start(
  role: Role,
  variant: Variant,
  redisUrl: string,
  dockerGid: string,
): Promise<{ startMs: number; rssMb: number }> {
  const port = await freePort();
  const name = `hf-bench-${role}-${variant}-${randomBytes(3).toString('hex')}`;
  const env = {
    REDIS_URL: redisUrl,
    HANDOFF_SIGNING_SECRET: randomBytes(24).toString('hex'),
    HANDOFF_HOST: '127.0.0.1',
    HANDOFF_PORT: String(port),
    HANDOFF_CONFIG: '/dev/null',
    LOG_LEVEL: 'info',
    HANDOFF_RUNNER_ID: name,
  };
  const args = ['run', '-d', '--name', name, '--network', 'host'];
  for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
  if (role === 'runner') args.push('-v', '/var/run/docker.sock:/var/run/docker.sock', '--group-add', dockerGid);
  if (variant === 'tsx')
    args.push(
      '-v',
      `${join(sources, 'src')}:/app/src:ro`,
      '-v',
      `${join(sources, 'bin/handoff.js')}:/app/bin/handoff.js:ro`,
      '--entrypoint',
      '/usr/bin/tini',
      image,
      '--',
      'node',
      '/app/bin/handoff.js',
      role,
    );
  else args.push(image, role);
  const t0 = performance.now();
  await docker(...args);
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ready =
        role === 'bot'
          ? await fetch(`http://127.0.0.1:${port}/readyz`)
              .then((r) => r.ok)
              .catch(() => false)
          : (await run('docker', ['logs', name], { maxBuffer: 16 * 1024 * 1024 })).stdout.includes('"runner started"');
      if (ready) break;
      if (Date.now() > deadline) {
        const logs = await run('docker', ['logs', '--tail', '30', name]);
        throw new Error(`${name} did not get ready:\n${logs.stdout}${logs.stderr}`);
      }
      await sleep(role === 'bot' ? 10 : 50);
    }
    const startMs = performance.now() - t0;
    await sleep(idleMs);
    return { startMs, rssMb: await nodeRss(name) };
  } finally {
    await docker('rm', '-f', name).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  await sizes();
  const dir = join(tmpdir(), `hf-bench-image-${randomBytes(3).toString('hex')}`);
  sources = await mkdtemp(join(tmpdir(), 'hf-bench-src-'));
  await cp(join(repo, 'src'), join(sources, 'src'), { recursive: true });
  await cp(join(repo, 'bin/handoff.js'), join(sources, 'bin/handoff.js'));
  await run('chmod', ['-R', 'a+rX', sources]);
  const redis = await startRedisServer({ dir });
  const dockerGid = (await run('stat', ['-c', '%g', '/var/run/docker.sock'])).stdout.trim();
  try {
    const baseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await docker('run', '--rm', '--network', 'host', '--entrypoint', 'node', image, '-e', '0');
      baseline.push(performance.now() - t0);
    }
    print('baseline: docker run node -e 0', 'ms', baseline);
    for (const role of ['bot', 'runner'] as const) {
      const results: Record<Variant, { startMs: number[]; rssMb: number[] }> = {
        compiled: { startMs: [], rssMb: [] },
        tsx: { startMs: [], rssMb: [] },
      };
      // Interleaved, so a slow moment on a shared machine hits both variants alike.
      for (let i = 0; i < runs; i++)
        for (const variant of ['compiled', 'tsx'] as const) {
          const r = await start(role, variant, redis.url, dockerGid);
          results[variant].startMs.push(r.startMs);
          results[variant].rssMb.push(r.rssMb);
        }
      const what = role === 'bot' ? 'docker run → /readyz 200' : 'docker run → "runner started"';
      for (const variant of ['compiled', 'tsx'] as const) {
        print(`${role} cold start (${what}), ${variant}`, 'ms', results[variant].startMs);
        print(`${role} idle RSS after ${idleMs / 1000} s, ${variant}`, 'MiB', results[variant].rssMb);
      }
      const ratio = summary(results.tsx.startMs).median / summary(results.compiled.startMs).median;
      const rss = summary(results.tsx.rssMb).median / summary(results.compiled.rssMb).median;
      console.log(
        `${role}: tsx / compiled = ${ratio.toFixed(2)}x start time (median), ${rss.toFixed(2)}x idle RSS (median)`,
      );
    }
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(sources, { recursive: true, force: true });
  }
}

await main();
