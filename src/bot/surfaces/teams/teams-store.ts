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

/** How long a record read or written here is taken as current without asking Redis again. */
const freshForMs = 60_000;
/** A record unchanged for this long is written again anyway, to move its expiry on. */
const rewriteAfterMs = 3_600_000;
const maxCached = 10_000;

/**
 * Teams conversations and people the bot has seen, in Redis (shared by every bot). Every
 * authenticated activity records them, so what this bot wrote or read lately is kept in
 * memory: an unchanged record is not written again for an hour, and a read within a
 * minute is answered from memory.
 */
export class TeamsStore {
  private readonly cache = new Map<string, { json: string; at: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly retentionMs: number,
  ) {}

  async saveConversation(channel: string, value: TeamsConversation): Promise<void> {
    await this.write(key.conversation(channel), JSON.stringify(value));
  }

  async conversation(channel: string): Promise<TeamsConversation | undefined> {
    return parse(TeamsConversationSchema, await this.read(key.conversation(channel)));
  }

  async savePerson(aadObjectId: string, value: TeamsPerson): Promise<void> {
    // Their 1:1 chat is kept when an activity from elsewhere does not name it.
    const earlier = value.chatId ? undefined : await this.person(aadObjectId);
    const merged = { ...value, ...(earlier?.chatId && !value.chatId ? { chatId: earlier.chatId } : {}) };
    await this.write(key.person(aadObjectId), JSON.stringify(merged));
  }

  async person(aadObjectId: string): Promise<TeamsPerson | undefined> {
    return parse(TeamsPersonSchema, await this.read(key.person(aadObjectId)));
  }

  private async write(k: string, json: string): Promise<void> {
    const known = this.cache.get(k);
    if (known && known.json === json && Date.now() - known.at < rewriteAfterMs) return;
    await this.redis.set(k, json, 'PX', this.retentionMs);
    this.remember(k, json);
  }

  private async read(k: string): Promise<string | null> {
    const known = this.cache.get(k);
    if (known && Date.now() - known.at < freshForMs) return known.json;
    const json = await this.redis.get(k);
    if (json !== null) this.remember(k, json);
    return json;
  }

  private remember(k: string, json: string): void {
    this.cache.delete(k);
    this.cache.set(k, { json, at: Date.now() });
    if (this.cache.size > maxCached) this.cache.delete(this.cache.keys().next().value!);
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
