import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { type RunningHandoff, type StartOptions, startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';

export interface TestBot extends RunningHandoff {
  url: string;
  dataDir: string;
}

/**
 * Starts `handoff bot` in-process on a free loopback port against `redisUrl` (no Docker:
 * nothing runs tasks), with its own data dir, removed on close.
 */
export async function startTestBot(
  redisUrl: string,
  env: Record<string, string> = {},
  options: Omit<Partial<StartOptions>, 'config' | 'mode'> = {},
): Promise<TestBot> {
  const dataDir = await mkdtemp(join(tmpdir(), 'handoff-bot-'));
  try {
    const config = loadConfig({
      env: {
        REDIS_URL: redisUrl,
        HANDOFF_PORT: '0',
        HANDOFF_DATA_DIR: dataDir,
        HANDOFF_SIGNING_SECRET: randomBytes(32).toString('hex'),
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
        ...env,
      },
      file: '/dev/null',
    });
    const running = await startHandoff({
      config,
      mode: 'bot',
      logger: createLogger(config.logLevel, 'handoff-test'),
      ...options,
    });
    return {
      ...running,
      url: running.url!,
      dataDir,
      close: async () => {
        await running.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * POSTs `prefix` and then `totalBytes` of filler with chunked transfer encoding (no
 * Content-Length), generated as it is sent and never held in memory, until the server
 * answers. Resolves with the answer and how much was sent by then. A server that has not
 * answered after `giveUpAfterBytes` is treated as reading it all: the request is aborted
 * and `status` is 0 (so a regression fails the test without filling this machine's memory).
 */
export function postChunked(
  url: string,
  headers: Record<string, string>,
  prefix: Buffer,
  totalBytes: number,
  giveUpAfterBytes = 256 * 1024 * 1024,
): Promise<{ status: number; body: string; sentBytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } });
    const filler = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    let answered = false;
    const pump = () => {
      while (!answered && sent < totalBytes) {
        if (sent > giveUpAfterBytes) {
          answered = true;
          req.destroy();
          resolve({ status: 0, body: 'no answer before the whole body was read', sentBytes: sent });
          return;
        }
        sent += filler.length;
        if (!req.write(filler)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body, sentBytes: sent });
      });
      res.on('error', reject);
    });
    // Writing on after the server closed its side fails (EPIPE, ECONNRESET): only an error
    // before any answer fails the request.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    sent += prefix.length;
    if (req.write(prefix)) pump();
    else req.once('drain', pump);
  });
}

/** Samples this process's RSS until stopped; returns the largest increase over the start, in bytes. */
export function watchRss(everyMs = 20): { stop(): number } {
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak - start;
    },
  };
}

/** A port free on 127.0.0.1 right now (for a server whose URL must be known before it starts). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
