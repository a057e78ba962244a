import { convert } from 'html-to-text';
import { z } from 'zod';
import type { ThreadContextInput } from '../../thread-context.ts';
import type { ClientCredentials } from './teams-auth.ts';
import { graphScope } from './teams-files.ts';

/** Graph's largest `$top` for channel messages and their replies. */
const pageSize = 50;
/** Most pages read of one thread's replies (50 each); the gateway keeps the newest within its caps. */
const maxPages = 20;

/**
 * One chatMessage as Graph returns it, the fields read here. Untrusted: anything else in it
 * is ignored, and a message that does not fit is skipped rather than failing the read.
 */
const ChatMessageSchema = z.object({
  id: z.string().max(200),
  replyToId: z.string().max(200).nullish(),
  messageType: z.string().max(100).nullish(),
  createdDateTime: z.string().max(64).nullish(),
  deletedDateTime: z.string().max(64).nullish(),
  from: z
    .object({
      user: z
        .object({ id: z.string().max(200).nullish(), displayName: z.string().max(500).nullish() })
        .passthrough()
        .nullish(),
      application: z
        .object({ id: z.string().max(200).nullish(), displayName: z.string().max(500).nullish() })
        .passthrough()
        .nullish(),
    })
    .passthrough()
    .nullish(),
  body: z
    .object({ contentType: z.string().max(20).nullish(), content: z.string().max(1_000_000).nullish() })
    .passthrough()
    .nullish(),
});
type ChatMessage = z.infer<typeof ChatMessageSchema>;

const PageSchema = z.object({
  value: z.array(z.unknown()).max(1000),
  '@odata.nextLink': z.string().max(4096).nullish(),
});

export interface TeamsContextOptions {
  /** Microsoft Graph's base URL and the bot's own (app-only) credentials. */
  graph: { url: string; credentials: Pick<ClientCredentials, 'token'> };
  /** The team's Microsoft 365 group id (`channelData.team.aadGroupId`): Graph names teams by it. */
  teamId: string;
  /** The channel's id (`19:…@thread.tacv2`). */
  channelId: string;
  /** The thread's root message id, when the mention is a reply; without it, the channel's recent posts are read. */
  rootId?: string;
  /** The mention's own message id: it and anything after it are left out. */
  mentionId: string;
  /** Most channel posts read; a thread is read whole, up to 1,000 replies. The gateway caps both. */
  maxMessages: number;
  /** The bot's Microsoft App ID: messages from it (its cards and answers) are left out. */
  botAppId: string;
  /** How long the whole read may take, every page together (default 15 s). */
  timeoutMs?: number;
}

/** Why Graph would not give the messages; its words go on the plan card. */
class GraphContextError extends Error {}

/**
 * Reads the earlier messages of a Teams channel thread (its root and replies) or, for a
 * top-level mention, the channel's recent posts, through Microsoft Graph with the bot's
 * app-only token (the team must have consented to `ChannelMessage.Read.Group`). Follows
 * `@odata.nextLink`, turns HTML bodies into plain text, leaves out the bot's own messages,
 * deleted messages and system events, and labels other apps. Never throws: a refusal (403
 * without consent), a missing thread or a timeout comes back as `error` so the request goes
 * ahead without context.
 */
export async function readTeamsContext(options: TeamsContextOptions): Promise<ThreadContextInput> {
  const source = options.rootId ? 'thread' : 'channel';
  try {
    const token = await options.graph.credentials.token(graphScope).catch(() => {
      throw new GraphContextError('the bot could not get a Microsoft Graph token');
    });
    const base = `${options.graph.url.replace(/\/+$/, '')}/v1.0/teams/${encodeURIComponent(options.teamId)}/channels/${encodeURIComponent(options.channelId)}/messages`;
    // One deadline for the whole read: a slow Graph delays the plan by at most this much.
    const deadline = AbortSignal.timeout(options.timeoutMs ?? 15_000);
    const get = (url: string) => graphGet(url, token, deadline);
    const raw: unknown[] = [];
    if (options.rootId) {
      const root = encodeURIComponent(options.rootId);
      raw.push(await get(`${base}/${root}`));
      let next: string | undefined = `${base}/${root}/replies?$top=${pageSize}`;
      for (let page = 0; page < maxPages && next; page++) {
        const body = PageSchema.parse(await get(next));
        raw.push(...body.value);
        next = sameOrigin(body['@odata.nextLink'], options.graph.url);
      }
    } else {
      // The mention itself is the newest post: one more than wanted.
      const wanted = options.maxMessages + 1;
      let next: string | undefined = `${base}?$top=${Math.min(pageSize, wanted)}`;
      for (let page = 0; page < maxPages && next && raw.length < wanted; page++) {
        const body = PageSchema.parse(await get(next));
        raw.push(...body.value);
        next = sameOrigin(body['@odata.nextLink'], options.graph.url);
      }
    }
    const mentionAt = idOrder(options.mentionId);
    const seen = new Set<string>();
    const kept: Array<ChatMessage & { order: number }> = [];
    for (const item of raw) {
      const parsed = ChatMessageSchema.safeParse(item);
      if (!parsed.success) continue;
      const m = parsed.data;
      if (seen.has(m.id) || m.id === options.mentionId) continue;
      seen.add(m.id);
      if (m.deletedDateTime || (m.messageType && m.messageType !== 'message')) continue;
      if (m.from?.application?.id && m.from.application.id.toLowerCase() === options.botAppId.toLowerCase()) continue;
      const order = m.createdDateTime ? Date.parse(m.createdDateTime) : idOrder(m.id);
      // Teams message ids are the post's time in ms: anything at or after the mention is left out.
      if (Number.isFinite(mentionAt) && idOrder(m.id) >= mentionAt) continue;
      kept.push({ ...m, order: Number.isFinite(order) ? order : 0 });
    }
    kept.sort((a, b) => a.order - b.order);
    const messages: ThreadContextInput['messages'] = [];
    for (const m of kept) {
      const text = plainText(m.body?.content ?? '', m.body?.contentType ?? 'text');
      if (text === '') continue;
      const app = !m.from?.user && m.from?.application;
      const author = app ? m.from?.application?.displayName || 'an app' : m.from?.user?.displayName || 'someone';
      messages.push({
        author,
        ...(app ? { bot: true } : {}),
        ...(m.createdDateTime ? { at: m.createdDateTime } : {}),
        text,
      });
    }
    return { source, messages };
  } catch (err) {
    return { source, messages: [], error: teamsContextError(err) };
  }
}

/** Whether a Teams message activity @mentions the bot (`recipient.id` in a mention entity). */
export function mentionsBot(activity: {
  entities?: ReadonlyArray<unknown> | null;
  recipient?: { id?: string | null } | null;
}): boolean {
  const botId = activity.recipient?.id;
  if (!botId) return false;
  return (activity.entities ?? []).some((e) => {
    const entity = e as { type?: unknown; mentioned?: { id?: unknown } };
    return entity?.type === 'mention' && entity.mentioned?.id === botId;
  });
}

/** A chatMessage body as plain text: HTML (mentions, lists, links) converted, whitespace tidied. */
export function plainText(content: string, contentType: string): string {
  const text =
    contentType.toLowerCase() === 'html'
      ? convert(content, {
          wordwrap: false,
          selectors: [
            { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
            { selector: 'img', format: 'skip' },
            { selector: 'attachment', format: 'skip' },
          ],
        })
      : content;
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

async function graphGet(url: string, token: string, signal: AbortSignal): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      signal,
      redirect: 'error',
    });
  } catch (err) {
    throw new GraphContextError(
      (err as Error).name === 'TimeoutError'
        ? 'Microsoft Graph did not answer in time'
        : 'Microsoft Graph could not be reached',
    );
  }
  if (!res.ok) {
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 403)
      throw new GraphContextError(
        'Microsoft Graph refused (403): a team owner must consent to ChannelMessage.Read.Group by adding or updating the Handoff app in this team',
      );
    if (res.status === 401) throw new GraphContextError('Microsoft Graph refused the bot’s token (401)');
    if (res.status === 404) throw new GraphContextError('Microsoft Graph cannot find this thread (404)');
    if (res.status === 429) throw new GraphContextError('Microsoft Graph is throttling the bot (429)');
    throw new GraphContextError(`Microsoft Graph answered ${res.status}`);
  }
  try {
    return await res.json();
  } catch {
    throw new GraphContextError(
      signal.aborted
        ? 'Microsoft Graph did not answer in time'
        : 'Microsoft Graph answered with something that is not JSON',
    );
  }
}

/** A next-page link, only when it points back at the same Graph origin (the token goes with it). */
function sameOrigin(link: string | null | undefined, graphUrl: string): string | undefined {
  if (!link) return undefined;
  try {
    return new URL(link).origin === new URL(graphUrl).origin ? link : undefined;
  } catch {
    return undefined;
  }
}

/** A Teams message id as a number (its post time in ms); NaN when it is not one. */
function idOrder(id: string): number {
  return /^\d{1,16}$/.test(id) ? Number(id) : Number.NaN;
}

function teamsContextError(err: unknown): string {
  if (err instanceof GraphContextError) return err.message;
  if (err instanceof z.ZodError) return 'Microsoft Graph answered in a shape Handoff does not read';
  return 'Microsoft Graph could not be read';
}
