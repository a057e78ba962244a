import { randomUUID } from 'node:crypto';
import { Activity } from '@microsoft/agents-activity';
import { inboxStreams } from '../../../queue/index.ts';

/** Teams messages acknowledged and waiting for a bot to work on them. */
export const teamsInboxStream = inboxStreams.teams;
/** Key prefix of the markers that drop a message delivered again (same activity, same conversation). */
export const teamsSeenPrefix = 'hf:teams:seen:';
/** How long a delivered message is remembered: Teams retries within minutes. */
export const teamsSeenTtlSeconds = 60 * 60;
/** How long the answer waits for Redis to take a message before it is handled in the request. */
export const queueWithinMs = 1000;

/**
 * An activity as the Agents SDK's CloudAdapter builds it from a request body (its wire
 * compatibility step, then `Activity.fromObject`), so a queued message is handled as the
 * same object an in-request turn sees. Throws as the SDK does on a malformed activity.
 */
export function activityFrom(body: Record<string, unknown>): Activity {
  const relatesTo = body.relatesTo as Record<string, unknown> | undefined;
  if (relatesTo && typeof relatesTo === 'object' && relatesTo.bot !== undefined) {
    const { bot, ...rest } = relatesTo;
    body = { ...body, relatesTo: { ...rest, agent: bot } };
  }
  return Activity.fromObject(body);
}

/**
 * The CloudAdapter's check of an activity's serviceUrl against the token's `serviceurl`
 * claim (on with `validateServiceUrl`): false when both are URLs of different hosts, or
 * when either cannot be read.
 */
export function serviceUrlMatchesClaim(claims: Record<string, unknown>, serviceUrl: string | undefined): boolean {
  const claim = claims.serviceurl;
  if (!serviceUrl || typeof claim !== 'string') return true;
  const host = (url: string) => {
    try {
      return new URL(url).hostname.toLowerCase();
    } catch {
      return undefined;
    }
  };
  const a = host(claim);
  const b = host(serviceUrl);
  return a !== undefined && a === b;
}

/**
 * What identifies one message across Teams' deliveries of it: its activity id in its
 * conversation. Without an id nothing can be recognised again, so it is never a duplicate.
 */
export function deliveryId(activity: Activity): string {
  return activity.id ? `${activity.conversation?.id ?? ''}|${activity.id}` : `none|${randomUUID()}`;
}

/**
 * A channel message that does not mention the bot, as it is queued: what remembering the
 * conversation and the person needs, without its words, files or mentions (they are
 * neither read nor kept).
 */
export function withoutContent(body: Record<string, unknown>): Record<string, unknown> {
  const { text: _t, attachments: _a, entities: _e, value: _v, speak: _s, summary: _m, ...rest } = body;
  return rest;
}
