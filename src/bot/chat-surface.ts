import type { ChannelRef, ConversationRef, Surface } from '../core/index.ts';
import type { View } from './views.ts';

/** What a surface knows of a person: whether they are still there, and their time zone. */
export interface PersonInfo {
  active: boolean;
  /** IANA time zone from their profile, when the surface has one. */
  tz?: string;
}

/**
 * The way out: a chat platform as the gateway sees it. Post a view into a thread, edit it
 * later. Surfaces render views their own way (Block Kit, Adaptive Cards, HTML) and never
 * import each other.
 */
export interface ChatSurface {
  readonly name: Surface;
  /** Posts a view into the conversation's thread; returns a reference to edit it later. */
  post(conversation: ConversationRef, view: View): Promise<string>;
  update(conversation: ConversationRef, ref: string, view: View): Promise<void>;
  /**
   * Posts a view as a new top-level message in a channel (a brief). The reference it
   * returns edits it and is also the thread under it. Throws a HandoffError with code
   * `handoff_channel_unavailable` when the bot cannot post there.
   */
  postToChannel(target: ChannelRef, view: View): Promise<string>;
  /** A direct message to a person (a schedule's owner); best effort where the surface has none. */
  notifyPerson(target: ChannelRef, personId: string, view: View): Promise<void>;
  /** Whether a person is still in the workspace, and their zone; undefined when it cannot tell. */
  person(target: ChannelRef, personId: string): Promise<PersonInfo | undefined>;
}
