import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.ts';
import { type StartOptions, startHandoff } from '../../src/main.ts';
import { createLogger } from '../../src/observability/index.ts';

export interface TestHandoff {
  url: string;
  redisUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

/**
 * Starts `handoff dev` in-process for a test: its own redis-server, data dir and port,
 * the real Docker sandbox and the demo model unless the env says otherwise.
 */
export async function startDevHandoff(
  options: { env?: Record<string, string>; dataDir?: string } & Omit<Partial<StartOptions>, 'config' | 'mode'> = {},
): Promise<TestHandoff> {
  const { env = {}, dataDir: givenDir, ...rest } = options;
  // A given data dir outlives this instance (restart tests); a fresh one is removed on close.
  const dataDir = givenDir ?? (await mkdtemp(join(tmpdir(), 'handoff-test-')));
  const config = loadConfig({
    env: { HANDOFF_PORT: '0', HANDOFF_DATA_DIR: dataDir, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env },
    file: '/dev/null',
  });
  const running = await startHandoff({
    config,
    mode: 'dev',
    logger: createLogger(config.logLevel, 'handoff-test'),
    ...rest,
  });
  return {
    url: running.url!,
    redisUrl: running.redisUrl,
    dataDir,
    close: async () => {
      await running.close();
      if (!givenDir) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
