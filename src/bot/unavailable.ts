import { asHandoffError, ErrorCodes, HandoffError } from '../core/index.ts';

/** Redis being down shows up as connection errors; people get a plain sentence instead. */
export function asUnavailable(err: unknown): HandoffError {
  const e = asHandoffError(err);
  if (
    e.code === 'handoff_internal' &&
    /ECONNREFUSED|Connection is closed|Stream isn't writeable|enableOfflineQueue|connect/i.test(e.message)
  ) {
    return new HandoffError(
      ErrorCodes.queueUnavailable,
      'Handoff cannot reach its database (Redis) right now; nothing was saved. Try again shortly.',
      { cause: err, retryable: true },
    );
  }
  return e;
}
