import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export interface EmbeddedRedis {
  url: string;
  /** Stops the server (it writes its AOF first). Idempotent. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts `redis-server` from PATH on loopback with AOF on and `noeviction`, as
 * `handoff dev` and the integration tests do. Throws with the install line when missing.
 */
export async function startRedisServer(options: {
  dir: string;
  port?: number;
  appendOnly?: boolean;
}): Promise<EmbeddedRedis> {
  await mkdir(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    options.dir,
    '--appendonly',
    options.appendOnly === false ? 'no' : 'yes',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--protected-mode',
    'yes',
    '--daemonize',
    'no',
  ];
  let child: ChildProcess;
  try {
    child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`cannot start redis-server: ${(err as Error).message}`);
  }
  const exited = new Promise<Error>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(
        err.code === 'ENOENT'
          ? new Error('redis-server is not installed: run `sudo apt-get install -y redis-server` or set REDIS_URL')
          : err,
      ),
    );
    child.once('exit', (code) => resolve(new Error(`redis-server exited with code ${code}`)));
  });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  const deadline = Date.now() + 10_000;
  try {
    for (;;) {
      const early = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
      if (early) throw early;
      try {
        await probe.connect();
        await probe.ping();
        break;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${url}`);
      }
    }
  } finally {
    probe.disconnect();
  }
  let stopping: Promise<void> | undefined;
  return {
    url,
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
      return stopping;
    },
  };
}
