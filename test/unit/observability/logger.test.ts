import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/index.ts';

function capture(scrubText?: boolean) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = createLogger('debug', 'test', { destination, ...(scrubText === undefined ? {} : { scrubText }) });
  return { logger, text: () => lines.join('') };
}

const email = 'dana.lee@example.com';
const key = 'sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789';
const card = '4111 1111 1111 1111';

it('keeps personal data and secrets out of log lines: message, fields, nested values and errors', () => {
  const { logger, text } = capture();
  const err = new Error(`upload for ${email} failed with key ${key}`);
  logger.warn(
    { err, request: { text: `pay with ${card}`, tags: [email] }, taskId: 't_abc123' },
    `request from ${email}`,
  );
  const out = text();
  expect(out).not.toContain(email);
  expect(out).not.toContain(key);
  expect(out).not.toContain('4111 1111');
  expect(out).toContain('[redacted:email]');
  expect(out).toContain('[redacted:secret]');
  // What is not sensitive stays readable, and errors keep their shape.
  const line = JSON.parse(out.trim()) as { taskId: string; err: { type: string; message: string; stack: string } };
  expect(line.taskId).toBe('t_abc123');
  expect(line.err.type).toBe('Error');
  expect(line.err.message).toContain('upload for [redacted:email] failed');
  expect(line.err.stack).not.toContain(key);
});

it('drops secret-named fields entirely', () => {
  const { logger, text } = capture();
  logger.info({ token: 'xoxb-123', headers: { authorization: 'Bearer abc' } }, 'connected');
  expect(text()).not.toContain('xoxb-123');
  expect(text()).not.toContain('Bearer abc');
});

it('can be switched off for debugging on a trusted machine', () => {
  const { logger, text } = capture(false);
  logger.info(`request from ${email}`);
  expect(text()).toContain(email);
});
