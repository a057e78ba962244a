import type { ConversationRef } from '../../../core/index.ts';
import type { ChatSurface } from '../../chat-surface.ts';
import type { View } from '../../views.ts';
import type { ConsoleStore } from './console-store.ts';
import { renderHtml } from './render-html.ts';

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
}
