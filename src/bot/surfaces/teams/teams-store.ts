import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { View } from '../../views.ts';

/**
 * What the bot must remember to speak in a Teams conversation later (a result, a brief, a
 * direct message): the Bot Connector endpoint and the ids Teams gave it. Written from
 * authenticated activities only, so a serviceUrl here was claimed by a signed token.
 */
export const TeamsConversationSchema = z.object({
  serviceUrl: z.string().url(),
  tenantId: z.string().max(100).optional(),
  /** The conversation id without `;messageid=…` (a channel's id, or a chat's). */
  conversationId: z.string().min(1).max(400),
  type: z.enum(['channel', 'personal', 'groupChat']),
  /** The bot's id in Teams (`28:<app id>`). */
  botId: z.string().max(200),
});
export type TeamsConversation = z.infer<typeof TeamsConversationSchema>;

export const TeamsPersonSchema = z.object({
  /** Teams user id (`29:…`): the one refresh lists and 1:1 chats need. */
  id: z.string().min(1).max(400),
  name: z.string().max(200),
  serviceUrl: z.string().url(),
  tenantId: z.string().max(100).optional(),
  /** Their IANA time zone, as their Teams client reports it. */
  tz: z.string().max(100).optional(),
  /** Their personal chat with the bot, once one exists. */
  chatId: z.string().max(400).optional(),
});
export type TeamsPerson = z.infer<typeof TeamsPersonSchema>;

const key = {
  conversation: (channel: string) => `hf:teams:conv:${channel}`,
  person: (aadObjectId: string) => `hf:teams:person:${aadObjectId}`,
  chatThread: (channel: string) => `hf:teams:chat-thread:${channel}`,
  offered: (taskId: string) => `hf:teams:offered:${taskId}`,
  view: (activityId: string) => `hf:teams:view:${activityId}`,
};

/** Teams conversations and people the bot has seen, in Redis (shared by every bot). */
export class TeamsStore {
  constructor(
    private readonly redis: Redis,
    private readonly retentionMs: number,
  ) {}

  async saveConversation(channel: string, value: TeamsConversation): Promise<void> {
    await this.redis.set(key.conversation(channel), JSON.stringify(value), 'PX', this.retentionMs);
  }

  async conversation(channel: string): Promise<TeamsConversation | undefined> {
    return parse(TeamsConversationSchema, await this.redis.get(key.conversation(channel)));
  }

  async savePerson(aadObjectId: string, value: TeamsPerson): Promise<void> {
    const earlier = await this.person(aadObjectId);
    const merged = { ...value, ...(earlier?.chatId && !value.chatId ? { chatId: earlier.chatId } : {}) };
    await this.redis.set(key.person(aadObjectId), JSON.stringify(merged), 'PX', this.retentionMs);
  }

  async person(aadObjectId: string): Promise<TeamsPerson | undefined> {
    return parse(TeamsPersonSchema, await this.redis.get(key.person(aadObjectId)));
  }

  /** A chat has no reply chains: its newest task's thread is where a plain message goes. */
  async setChatThread(channel: string, thread: string): Promise<void> {
    await this.redis.set(key.chatThread(channel), thread, 'PX', this.retentionMs);
  }

  async chatThread(channel: string): Promise<string | undefined> {
    return (await this.redis.get(key.chatThread(channel))) ?? undefined;
  }

  /**
   * The view a card shows, by its activity id: a click is answered with the card as the
   * clicker should now see it, by whichever bot gets the click.
   */
  async saveView(activityId: string, view: View): Promise<void> {
    await this.redis.set(key.view(activityId), JSON.stringify(view), 'PX', this.retentionMs);
  }

  async view(activityId: string): Promise<View | undefined> {
    const raw = await this.redis.get(key.view(activityId));
    if (!raw) return undefined;
    try {
      const parsed = JSON.parse(raw) as View;
      return typeof parsed === 'object' && parsed && typeof parsed.kind === 'string' ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  /** Marks a deliverable as offered for upload; false when it already was (one offer per file). */
  async offerOnce(taskId: string, name: string): Promise<boolean> {
    const added = await this.redis.sadd(key.offered(taskId), name);
    await this.redis.pexpire(key.offered(taskId), this.retentionMs);
    return added === 1;
  }
}

function parse<T>(schema: z.ZodType<T>, raw: string | null): T | undefined {
  if (!raw) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
