import type { ConversationRef, Surface } from '../core/index.ts';
import type { View } from './views.ts';

/**
 * A chat platform as the gateway sees it: post a view into a thread, edit it later.
 * Surfaces render views their own way and never import each other.
 */
export interface ChatSurface {
  readonly name: Surface;
  /** Posts a view into the conversation's thread; returns a reference to edit it later. */
  post(conversation: ConversationRef, view: View): Promise<string>;
  update(conversation: ConversationRef, ref: string, view: View): Promise<void>;
}
