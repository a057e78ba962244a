import type { webApi } from '@slack/bolt';
import type { ThreadContextInput } from '../../thread-context.ts';

/** Most pages read of one thread or channel (200 messages each). */
const maxPages = 10;
const pageSize = 200;

/** One message as `conversations.replies` / `conversations.history` return it. */
interface SlackMessage {
  type?: string;
  subtype?: string;
  ts?: string;
  user?: string;
  bot_id?: string;
  username?: string;
  bot_profile?: { name?: string };
  text?: string;
}

export interface SlackContextOptions {
  channel: string;
  /** The thread the mention is in; without it, the channel's recent messages are read. */
  threadTs?: string;
  /** The mention's own ts: only messages before it are read. */
  beforeTs: string;
  /** Most channel messages read; a thread is read whole, up to 2,000 messages. The gateway caps both. */
  maxMessages: number;
  /** Handoff's own user and bot ids: its messages are left out. */
  self: { userId?: string; botId?: string };
  /** Display name of a Slack user (cached users.info). */
  nameOf(userId: string): Promise<string>;
}

/**
 * Reads the earlier messages of a thread (`conversations.replies`) or a channel
 * (`conversations.history`) before a mention, following Slack's pagination cursor. Leaves
 * out Handoff's own messages (its cards and answers) and system messages (joins, topic
 * changes). Never throws: a Slack error (a missing history scope, the bot not in the
 * channel) comes back as `error` so the request goes ahead without context.
 */
export async function readSlackContext(
  client: webApi.WebClient,
  options: SlackContextOptions,
): Promise<ThreadContextInput> {
  const source = options.threadTs ? 'thread' : 'channel';
  try {
    const raw = options.threadTs ? await replies(client, options) : await history(client, options);
    const wanted = raw
      .filter((m) => m.ts !== undefined && Number(m.ts) < Number(options.beforeTs))
      .filter((m) => !m.subtype || ['file_share', 'bot_message', 'thread_broadcast', 'me_message'].includes(m.subtype))
      .filter((m) => !(m.user && m.user === options.self.userId) && !(m.bot_id && m.bot_id === options.self.botId))
      .filter((m) => (m.text ?? '').trim() !== '')
      // All that was read goes in: the gateway keeps the newest and counts what it left out.
      .sort((a, b) => Number(a.ts) - Number(b.ts));
    const messages: ThreadContextInput['messages'] = [];
    for (const m of wanted) {
      const bot = !m.user || m.subtype === 'bot_message';
      const author = bot
        ? m.bot_profile?.name || m.username || 'an app'
        : await options.nameOf(m.user!).catch(() => m.user!);
      messages.push({
        author,
        ...(bot ? { bot: true } : {}),
        at: new Date(Number(m.ts) * 1000).toISOString(),
        text: slackText(m.text ?? ''),
      });
    }
    return { source, messages };
  } catch (err) {
    return { source, messages: [], error: slackContextError(err) };
  }
}

async function replies(client: webApi.WebClient, o: SlackContextOptions): Promise<SlackMessage[]> {
  const out: SlackMessage[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const res = await client.conversations.replies({
      channel: o.channel,
      ts: o.threadTs!,
      limit: pageSize,
      ...(cursor ? { cursor } : {}),
    });
    out.push(...((res.messages ?? []) as SlackMessage[]));
    cursor = res.response_metadata?.next_cursor || undefined;
    if (!res.has_more || !cursor) break;
  }
  return out;
}

async function history(client: webApi.WebClient, o: SlackContextOptions): Promise<SlackMessage[]> {
  const out: SlackMessage[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages && out.length < o.maxMessages; page++) {
    const res = await client.conversations.history({
      channel: o.channel,
      latest: o.beforeTs,
      inclusive: false,
      limit: Math.min(pageSize, Math.max(o.maxMessages - out.length, 1)),
      ...(cursor ? { cursor } : {}),
    });
    out.push(...((res.messages ?? []) as SlackMessage[]));
    cursor = res.response_metadata?.next_cursor || undefined;
    if (!res.has_more || !cursor) break;
  }
  return out;
}

/** Slack's markup as plain text: mentions, channel links, links and entities. */
export function slackText(text: string): string {
  return text
    .replace(/<@([UW][A-Z0-9]+)(?:\|([^>]+))?>/g, (_m, id: string, label?: string) => `@${label ?? id}`)
    .replace(/<#(C[A-Z0-9]+)(?:\|([^>]*))?>/g, (_m, id: string, label?: string) => `#${label || id}`)
    .replace(/<!(here|channel|everyone)(?:\|[^>]*)?>/g, '@$1')
    .replace(/<(https?:[^|>]+)\|([^>]+)>/g, '$2 ($1)')
    .replace(/<(https?:[^>]+)>/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Why Slack would not give the messages, in words for the plan card. */
function slackContextError(err: unknown): string {
  const data = (err as { data?: { error?: string; needed?: string } }).data;
  const code = data?.error;
  if (code === 'missing_scope')
    return `Slack refused (missing_scope; the app needs ${data?.needed ?? 'channels:history, groups:history, im:history and mpim:history'})`;
  if (code === 'not_in_channel' || code === 'channel_not_found')
    return `Slack refused (${code}; invite Handoff to the channel)`;
  if (code) return `Slack refused (${code.slice(0, 60)})`;
  return 'Slack could not be reached';
}
