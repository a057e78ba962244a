import type { Redis } from 'ioredis';
import { z } from 'zod';
import { newId } from '../../../core/index.ts';

export const ConsoleMessageSchema = z.object({
  id: z.string(),
  channel: z.string(),
  threadId: z.string(),
  author: z.object({ name: z.string(), bot: z.boolean() }),
  text: z.string().optional(),
  html: z.string().optional(),
  files: z.array(z.object({ name: z.string(), size: z.number() })).optional(),
  ts: z.string(),
  editedTs: z.string().optional(),
});
export type ConsoleMessage = z.infer<typeof ConsoleMessageSchema>;

const key = {
  list: (channel: string) => `hf:console:${channel}:ids`,
  msg: (id: string) => `hf:console:msg:${id}`,
};
/** Every bot instance relays this channel to its connected browsers. */
export const consoleEventsChannel = 'hf:console:events';

/** The web console's channel history in Redis, shared by every bot instance. */
export class ConsoleStore {
  private readonly maxMessages: number;
  /** Messages expire this long after they were last written (the task records' retention). */
  private readonly retentionMs: number;

  constructor(
    private readonly redis: Redis,
    options: { maxMessages?: number; retentionMs?: number } = {},
  ) {
    this.maxMessages = options.maxMessages ?? 2000;
    this.retentionMs = options.retentionMs ?? 30 * 86_400_000;
  }

  async add(message: Omit<ConsoleMessage, 'id' | 'ts'> & { id?: string }): Promise<ConsoleMessage> {
    const full: ConsoleMessage = { ...message, id: message.id ?? newId('m'), ts: new Date().toISOString() };
    await this.redis
      .multi()
      .set(key.msg(full.id), JSON.stringify(full), 'PX', this.retentionMs)
      .rpush(key.list(full.channel), full.id)
      .pexpire(key.list(full.channel), this.retentionMs)
      .ltrim(key.list(full.channel), -this.maxMessages, -1)
      .publish(consoleEventsChannel, JSON.stringify(full))
      .exec();
    return full;
  }

  async update(
    id: string,
    change: Partial<Pick<ConsoleMessage, 'text' | 'html'>>,
  ): Promise<ConsoleMessage | undefined> {
    const raw = await this.redis.get(key.msg(id));
    if (!raw) return undefined;
    const next: ConsoleMessage = {
      ...ConsoleMessageSchema.parse(JSON.parse(raw)),
      ...change,
      editedTs: new Date().toISOString(),
    };
    await this.redis
      .multi()
      .set(key.msg(id), JSON.stringify(next), 'PX', this.retentionMs)
      .publish(consoleEventsChannel, JSON.stringify(next))
      .exec();
    return next;
  }

  async get(id: string): Promise<ConsoleMessage | undefined> {
    const raw = await this.redis.get(key.msg(id));
    return raw ? ConsoleMessageSchema.parse(JSON.parse(raw)) : undefined;
  }

  async list(channel: string, limit = 500): Promise<ConsoleMessage[]> {
    const ids = await this.redis.lrange(key.list(channel), -limit, -1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map(key.msg));
    return raws.filter((r): r is string => r !== null).map((r) => ConsoleMessageSchema.parse(JSON.parse(r)));
  }
}
