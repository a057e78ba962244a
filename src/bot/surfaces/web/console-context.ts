import type { ThreadContextInput } from '../../thread-context.ts';
import type { ConsoleStore } from './console-store.ts';

/** Most console messages looked through for a request's context (the gateway caps again). */
const scanned = 500;

/**
 * The earlier messages of a console thread (`threadId`), or the channel's recent top-level
 * messages (no `threadId`), oldest first. Handoff's own messages (its cards and answers) are
 * left out. Never throws: when the history cannot be read the request goes ahead without it.
 */
export async function readConsoleContext(
  store: Pick<ConsoleStore, 'list'>,
  channel: string,
  threadId: string | undefined,
): Promise<ThreadContextInput> {
  const source = threadId ? 'thread' : 'channel';
  try {
    const all = await store.list(channel, scanned);
    const messages = all
      .filter((m) => !m.author.bot && (m.text ?? '').trim() !== '')
      .filter((m) => (threadId ? m.threadId === threadId : m.threadId === m.id))
      .map((m) => ({ author: m.author.name, at: m.ts, text: m.text ?? '' }));
    return { source, messages };
  } catch {
    return { source, messages: [], error: 'the console history could not be read' };
  }
}
