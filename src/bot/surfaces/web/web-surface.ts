import { type ChannelRef, type ConversationRef, ErrorCodes, HandoffError, newId } from '../../../core/index.ts';
import type { ChatSurface, PersonInfo } from '../../chat-surface.ts';
import type { View } from '../../views.ts';
import type { ConsoleStore } from './console-store.ts';
import { renderHtml } from './render-html.ts';

/** The names a console channel may have (the page and the routes use the same rule). */
export const consoleChannelPattern = /^[a-z0-9-]{1,40}$/;

/**
 * The console has no direct messages: what is meant for one person goes into a channel of
 * their own, `dm-<their id>`. The id is kept readable when it fits the channel pattern as
 * it is; otherwise a hash of the full id is added, so two people never share a channel.
 * The console page computes the same name (static/app.js `noticesChannelFor`): change both.
 */
export function noticesChannelFor(personId: string): string {
  const id = personId.replace(/^web:/, '');
  const slug = id
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (slug.length > 0 && slug === id && slug.length <= 37) return `dm-${slug}`;
  const head = slug.slice(0, 28).replace(/-+$/, '');
  return `dm-${head ? `${head}-` : ''}${fnv1a(personId)}`;
}

/** FNV-1a over UTF-16 code units, as 8 hex digits: a short, stable tag, not a secret. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** The web console as a chat surface: bot messages are cards in the console's threads. */
export class WebSurface implements ChatSurface {
  readonly name = 'web' as const;

  constructor(private readonly store: ConsoleStore) {}

  async post(conversation: ConversationRef, view: View): Promise<string> {
    const message = await this.store.add({
      channel: conversation.channel,
      threadId: conversation.thread,
      author: { name: 'handoff', bot: true },
      html: renderHtml(view),
    });
    return message.id;
  }

  async update(_conversation: ConversationRef, ref: string, view: View): Promise<void> {
    await this.store.update(ref, { html: renderHtml(view) });
  }

  async postToChannel(target: ChannelRef, view: View): Promise<string> {
    if (!consoleChannelPattern.test(target.channel))
      throw new HandoffError(ErrorCodes.channelUnavailable, `the console has no channel named ${target.channel}`);
    // A top-level message is the root of its own thread: its id is its thread.
    const id = newId('m');
    await this.store.add({
      id,
      channel: target.channel,
      threadId: id,
      author: { name: 'handoff', bot: true },
      html: renderHtml(view),
    });
    return id;
  }

  async notifyPerson(_target: ChannelRef, personId: string, view: View): Promise<void> {
    await this.postToChannel({ surface: 'web', channel: noticesChannelFor(personId) }, view);
  }

  /** The console keeps no directory of people (names are typed or come from sign-in). */
  async person(_target: ChannelRef, _personId: string): Promise<PersonInfo | undefined> {
    return undefined;
  }
}
