import { pino } from 'pino';
import { redact } from '../core/index.ts';
import { currentLogContext } from './log-context.ts';
import { traceLogFields } from './tracing.ts';

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

export interface LoggerOptions {
  /** Where lines go (default stdout); tests capture them here. */
  destination?: pino.DestinationStream;
  /**
   * Remove e-mails, phone numbers, card numbers, IBANs and secrets from every logged
   * string: the message, fields at any depth and error messages (default true).
   */
  scrubText?: boolean;
}

export function createLogger(level: string, name = 'handoff', options: LoggerOptions = {}): Logger {
  const scrubText = options.scrubText ?? true;
  return pino(
    {
      name,
      level,
      redact: { paths: redactPaths, censor: '[redacted]' },
      // The task and run a job processor is working on, on every line it writes (log-context.ts).
      mixin: () => ({ ...currentLogContext(), ...traceLogFields() }),
      ...(scrubText
        ? {
            formatters: { log: (obj: Record<string, unknown>) => scrub(obj) as Record<string, unknown> },
            hooks: {
              logMethod(args: Parameters<pino.LogFn>, method: pino.LogFn) {
                const clean = args.map((a) => (typeof a === 'string' ? redact(a).text : a)) as Parameters<pino.LogFn>;
                method.apply(this, clean);
              },
            },
          }
        : {}),
    },
    options.destination,
  );
}

/** Personal data and secrets out of a log record, wherever they sit; errors keep their shape. */
function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redact(value).text;
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    // Same prototype, so pino's error serializer still names the class; only the text changes.
    const copy = Object.create(Object.getPrototypeOf(value)) as Error & Record<string, unknown>;
    for (const [k, v] of Object.entries(value)) copy[k] = scrub(v, depth + 1);
    copy.message = redact(value.message).text;
    if (value.stack) copy.stack = redact(value.stack).text;
    return copy;
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, depth + 1)]));
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
