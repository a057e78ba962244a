/**
 * Handoff as a company runs it, on one machine: `handoff bot` and `handoff runner` as
 * separate OS processes (each in its own process group, so a SIGKILL takes all of it)
 * sharing one Redis, one data dir and one signing secret, with people signed in to the
 * console through per-person links. For the fault suite and the failover benchmark.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { ConsoleClient } from './console-client.ts';

const cli = new URL('../../bin/handoff.js', import.meta.url).pathname;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ClusterProc {
  role: 'bot' | 'runner';
  /** `bot-0`, `runner-1`… */
  base: string;
  /** A runner's id in the audit trail for its current life (`runner-1-g4`); a bot's base name. */
  name: string;
  port?: number;
  child?: ChildProcess;
  alive: boolean;
  /** Set while this process is being stopped on purpose (not restarted). */
  stopping?: boolean;
}

/** A console user's session, sent as a signed-in browser sends it. */
export class SessionClient extends ConsoleClient {
  constructor(
    url: string,
    private readonly cookie: string,
  ) {
    super(url, 'ignored');
  }
  protected override headers() {
    return { cookie: this.cookie };
  }
}

export class Cluster {
  readonly procs: ClusterProc[] = [];
  readonly env: Record<string, string>;
  private generation = 0;
  /** Restart every process that exits, as a process manager would (until stopAll/killAll). */
  private supervising = false;
  private restartDelay: () => number = () => 1000;

  private constructor(
    env: Record<string, string>,
    private readonly log: (line: string) => void,
  ) {
    this.env = env;
  }

  /** Starts `bots` bots and `runners` runners on `redisUrl`, all sharing `dataDir`. */
  static async start(options: {
    bots: number;
    runners: number;
    redisUrl: string;
    dataDir: string;
    env?: Record<string, string>;
    log?: (line: string) => void;
    /** Restart a process that exits (killed, or failed to start while Redis was down) after this many ms. */
    supervise?: () => number;
  }): Promise<Cluster> {
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      REDIS_URL: options.redisUrl,
      HANDOFF_DATA_DIR: options.dataDir,
      HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
      HANDOFF_CONSOLE_SIGNIN: 'tokens',
      LOG_LEVEL: process.env.CLUSTER_LOG_LEVEL ?? 'error',
      ...options.env,
    };
    const cluster = new Cluster(env, options.log ?? (() => undefined));
    for (let i = 0; i < options.bots; i++)
      cluster.procs.push({ role: 'bot', base: `bot-${i}`, name: `bot-${i}`, port: await freePort(), alive: false });
    for (let i = 0; i < options.runners; i++)
      cluster.procs.push({ role: 'runner', base: `runner-${i}`, name: `runner-${i}`, alive: false });
    if (options.supervise) {
      cluster.supervising = true;
      cluster.restartDelay = options.supervise;
    }
    for (const p of cluster.procs) await cluster.start(p);
    return cluster;
  }

  get bots(): ClusterProc[] {
    return this.procs.filter((p) => p.role === 'bot');
  }

  get runners(): ClusterProc[] {
    return this.procs.filter((p) => p.role === 'runner');
  }

  botUrl(p: ClusterProc): string {
    return `http://127.0.0.1:${p.port}`;
  }

  /** (Re)starts a process; a bot is ready once /healthz answers. */
  async start(p: ClusterProc): Promise<void> {
    p.stopping = false;
    this.generation++;
    p.name = p.role === 'runner' ? `${p.base}-g${this.generation}` : p.base;
    const child = spawn(process.execPath, [cli, p.role], {
      env: {
        ...this.env,
        ...(p.port ? { HANDOFF_PORT: String(p.port) } : {}),
        ...(p.role === 'runner' ? { HANDOFF_RUNNER_ID: p.name } : {}),
      },
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.child = child;
    p.alive = true;
    child.stderr!.on('data', (d: Buffer) => {
      const line = d.toString().trim();
      if (line && /"level":(50|60)|Error/.test(line)) this.log(`[${p.name}] ${line.slice(0, 300)}`);
    });
    child.once('exit', () => {
      if (p.child !== child) return;
      p.alive = false;
      if (this.supervising && !p.stopping)
        setTimeout(() => {
          if (this.supervising && !p.stopping && p.child === child) void this.start(p);
        }, this.restartDelay());
    });
    if (p.port) {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const up = await fetch(`${this.botUrl(p)}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (up) break;
        await sleep(200);
      }
    }
  }

  /** SIGKILL to the process's group: no shutdown, no cleanup, as when a machine dies. */
  kill(p: ClusterProc): void {
    try {
      if (p.child?.pid) process.kill(-p.child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    p.alive = false;
  }

  /** SIGTERM to the group, then SIGKILL if it has not exited within 15 s. */
  async stop(p: ClusterProc): Promise<void> {
    p.stopping = true;
    if (!p.alive || !p.child?.pid) return;
    const exited = new Promise((r) => p.child!.once('exit', r));
    try {
      process.kill(-p.child.pid, 'SIGTERM');
    } catch {
      return;
    }
    await Promise.race([exited, sleep(15_000)]);
    this.kill(p);
  }

  async stopAll(): Promise<void> {
    this.supervising = false;
    await Promise.all(this.procs.map((p) => this.stop(p)));
  }

  killAll(): void {
    this.supervising = false;
    for (const p of this.procs) this.kill(p);
  }

  /** Adds a console user with `handoff console add-user` and signs them in; returns the session cookie. */
  async signIn(name: string): Promise<string> {
    const bot = this.bots[0]!;
    const out = await new Promise<string>((resolve, reject) => {
      let text = '';
      const c = spawn(process.execPath, [cli, 'console', 'add-user', name], {
        env: { ...this.env, HANDOFF_PUBLIC_URL: this.botUrl(bot) },
      });
      c.stdout.on('data', (d) => {
        text += d;
      });
      c.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`add-user ${name} failed`))));
    });
    const link = /(http:\/\/\S+\?token=\S+)/.exec(out)?.[1];
    if (!link) throw new Error(`no sign-in link for ${name}: ${out}`);
    const res = await fetch(link, { redirect: 'manual' });
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.startsWith('handoff_session='));
    if (!cookie) throw new Error(`signing ${name} in gave no session`);
    return cookie;
  }

  client(p: ClusterProc, cookie: string): SessionClient {
    return new SessionClient(this.botUrl(p), cookie);
  }
}
