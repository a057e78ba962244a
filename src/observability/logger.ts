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
