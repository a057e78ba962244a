import { pino } from 'pino';

export type Logger = pino.Logger;

/** Keys whose values never reach a log line, wherever they appear in a logged object. */
const redactPaths = [
  'apiKey',
  'token',
  'secret',
  'password',
  'authorization',
  'signingSecret',
  'consoleToken',
  'anthropicApiKey',
  '*.apiKey',
  '*.token',
  '*.secret',
  '*.password',
  '*.authorization',
  '*.signingSecret',
  '*.consoleToken',
  '*.anthropicApiKey',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(level: string, name = 'handoff'): Logger {
  return pino({ name, level, redact: { paths: redactPaths, censor: '[redacted]' } });
}

/**
 * Logs at most one message per `intervalMs` (with a count of what was skipped): for
 * errors a component repeats on every reconnect while a dependency is down.
 */
export function throttledLog(log: (count: number, err: unknown) => void, intervalMs = 30_000): (err: unknown) => void {
  let last = 0;
  let skipped = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      skipped += 1;
      return;
    }
    last = now;
    log(skipped, err);
    skipped = 0;
  };
}
