import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { ConsoleClient } from './console-client.ts';

const run = promisify(execFile);
const repoRoot = new URL('../../', import.meta.url).pathname;
export const composeFile = join(repoRoot, 'docker-compose.yml');
export const appImage = process.env.HANDOFF_APP_IMAGE ?? 'handoff-app:latest';
export const sandboxImage = process.env.HANDOFF_SANDBOX_IMAGE ?? 'handoff-sandbox:latest';
/** The base the compose file's Redis image is built from (the registry-free one by default). */
export const baseImage = process.env.HANDOFF_BASE_IMAGE ?? 'handoff-base:bookworm';
/** uid of the app image's `handoff` user: it owns the data dir. */
const appUid = 10001;

/** `docker compose` (v2) when the plugin is there, else `docker-compose` (1.29); undefined when neither is. */
export async function composeCommand(): Promise<string[] | undefined> {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    try {
      await run(cmd[0]!, [...cmd.slice(1), 'version'], { timeout: 20_000 });
      return cmd;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Whether the stack can be brought up here, and if not, why (the test fails or skips with it). */
export async function composeAvailability(): Promise<{ ok: true; command: string[] } | { ok: false; reason: string }> {
  const docker = new Dockerode();
  try {
    await docker.ping();
  } catch (err) {
    return { ok: false, reason: `the Docker engine is not reachable (${(err as Error).message})` };
  }
  const command = await composeCommand();
  if (!command)
    return {
      ok: false,
      reason: 'neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)',
    };
  for (const [image, how] of [
    [appImage, 'npm run image:build'],
    [sandboxImage, 'npm run sandbox:build'],
    [baseImage, 'npm run sandbox:build (it makes the registry-free base)'],
  ] as const) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      return { ok: false, reason: `the image ${image} is missing (run \`${how}\`)` };
    }
  }
  return { ok: true, command };
}

/** A console client that signs in with a person's bearer token (`handoff console add-user`). */
export class BearerClient extends ConsoleClient {
  constructor(
    url: string,
    private readonly token: string,
    name: string,
  ) {
    super(url, name);
  }
  protected override headers() {
    return { authorization: `Bearer ${this.token}` };
  }
}

export interface ComposeStack {
  project: string;
  /** Host path mounted at the same path in bots and runners. */
  dataDir: string;
  /** Bot URLs on 127.0.0.1 (bot-1, bot-2). */
  botUrls: string[];
  redisPort: number;
  redisPassword: string;
  /** HANDOFF_RUNNER_ID of runner-N is `${runnerPrefix}-runner-N` (also the label on its sandboxes). */
  runnerPrefix: string;
  /** Runs `docker compose …` (or docker-compose) for this project; resolves with its stdout. */
  compose(args: string[], timeoutMs?: number): Promise<string>;
  /** A Redis client on the published port. */
  redis(): Redis;
  /** `handoff console add-user NAME` inside bot-1; resolves with the person's bearer token. */
  addUser(name: string): Promise<string>;
  /** Waits until each bot answers /readyz. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Logs of every service (for a failure report). */
  logs(): Promise<string>;
  /** `down -v`, the data dir, and every sandbox its runners left. Idempotent. */
  down(): Promise<void>;
}

/**
 * Writes an env file with fresh secrets and free loopback ports and returns the stack's
 * controls; nothing is started until `compose(['up', …])`. `services` limits what `up`
 * would start when the caller passes them.
 */
export async function prepareComposeStack(command: string[], ports: number[]): Promise<ComposeStack> {
  const id = randomBytes(4).toString('hex');
  const project = `hfc${id}`;
  // Short: sandbox sockets are made under it (a unix socket path is at most ~100 bytes).
  const dataDir = `/tmp/hfc-${id}`;
  await mkdir(dataDir, { recursive: true });
  await chown(dataDir, appUid, appUid).catch(() => chmod(dataDir, 0o777));
  const [bot1, bot2, redisPort] = ports as [number, number, number];
  const redisPassword = randomBytes(18).toString('hex');
  const runnerPrefix = project;
  const dockerGid = (await run('stat', ['-c', '%g', '/var/run/docker.sock'])).stdout.trim();
  // Outside the data dir, which the containers see.
  const envFile = `${dataDir}.env`;
  await writeFile(
    envFile,
    [
      `REDIS_PASSWORD=${redisPassword}`,
      `HANDOFF_SIGNING_SECRET=${randomBytes(24).toString('hex')}`,
      `HANDOFF_DATA_DIR=${dataDir}`,
      `DOCKER_GID=${dockerGid}`,
      `HANDOFF_PUBLIC_URL=http://127.0.0.1:${bot1}`,
      `HANDOFF_BOT_1_PORT=${bot1}`,
      `HANDOFF_BOT_2_PORT=${bot2}`,
      `HANDOFF_REDIS_PORT=${redisPort}`,
      `HANDOFF_RUNNER_PREFIX=${runnerPrefix}`,
      `HANDOFF_APP_IMAGE=${appImage}`,
      `HANDOFF_SANDBOX_IMAGE=${sandboxImage}`,
      `HANDOFF_BASE_IMAGE=${baseImage}`,
      `LOG_LEVEL=${process.env.LOG_LEVEL ?? 'info'}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const base = [...command.slice(1), '--env-file', envFile, '-p', project, '-f', composeFile];
  // The compose CLI reads variables from its environment before the env file: keep ours out.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(HANDOFF_|REDIS_|ANTHROPIC_|SLACK_|TEAMS_|DOCKER_GID)/.test(k)),
  );
  const compose = async (args: string[], timeoutMs = 300_000) =>
    (
      await run(command[0]!, [...base, ...args], {
        cwd: repoRoot,
        env,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      })
    ).stdout;
  const botUrls = [`http://127.0.0.1:${bot1}`, `http://127.0.0.1:${bot2}`];
  let downed = false;
  return {
    project,
    dataDir,
    botUrls,
    redisPort,
    redisPassword,
    runnerPrefix,
    compose,
    redis: () => new Redis({ host: '127.0.0.1', port: redisPort, password: redisPassword, lazyConnect: false }),
    async addUser(name) {
      const out = await compose([
        'exec',
        '-T',
        'bot-1',
        'node',
        '/app/bin/handoff-dist.js',
        'console',
        'add-user',
        name,
      ]);
      const token = /[?&]token=(hfc_[A-Za-z0-9_-]{43})/.exec(out)?.[1];
      if (!token) throw new Error(`console add-user printed no sign-in link:\n${out}`);
      return token;
    },
    async waitReady(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (const url of botUrls) {
        for (;;) {
          const ok = await fetch(`${url}/readyz`)
            .then((r) => r.ok)
            .catch(() => false);
          if (ok) break;
          if (Date.now() > deadline) throw new Error(`${url}/readyz did not answer 200 within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    async logs() {
      return compose(['logs', '--no-color', '--tail', '80'], 60_000).catch((err) => `(no logs: ${err.message})`);
    },
    async down() {
      if (downed) return;
      downed = true;
      await compose(['down', '-v', '--remove-orphans', '--timeout', '20'], 180_000).catch((err) =>
        console.error(`[compose] down -v failed for ${project}: ${(err as Error).message}`),
      );
      // Sandboxes are made by the runners on the host's engine, outside the project.
      const docker = new Dockerode();
      for (const n of [1, 2]) {
        const left = await docker
          .listContainers({ all: true, filters: { label: [`org.handoff.runner=${runnerPrefix}-runner-${n}`] } })
          .catch(() => []);
        for (const c of left)
          await docker
            .getContainer(c.Id)
            .remove({ force: true, v: true })
            .catch(() => undefined);
      }
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
      await rm(envFile, { force: true }).catch(() => undefined);
    },
  };
}
