import type { Activity } from '@microsoft/agents-activity';
import type { ChannelRef, ConversationRef } from '../../../core/index.ts';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';
import type { Logger } from '../../../observability/index.ts';
import { formatBytes } from '../../../storage/index.ts';
import type { ChatSurface, PersonInfo } from '../../chat-surface.ts';
import type { HandoffInbound } from '../../inbound.ts';
import type { PlanView, View } from '../../views.ts';
import { type CardOptions, cardAttachment, messageText, renderCard } from './adaptive-cards.ts';
import { statusOf, type TeamsConnector } from './teams-connector.ts';
import type { TeamsConversation, TeamsStore } from './teams-store.ts';

export const fileConsentType = 'application/vnd.microsoft.teams.card.file.consent';

/** What a FileConsent card carries back on accept or decline (Teams returns it as sent). */
export interface ConsentContext {
  taskId: string;
  name: string;
}

/**
 * Where a Teams conversation's messages go: a channel's reply chain
 * (`<channel id>;messageid=<root>`), or the chat itself (chats have no reply chains).
 */
export function conversationIdFor(saved: TeamsConversation, thread: string): string {
  return saved.type === 'channel' && thread !== '-'
    ? `${saved.conversationId};messageid=${thread}`
    : saved.conversationId;
}

/**
 * Microsoft Teams as a chat surface: every view is an Adaptive Card 1.5 posted into the
 * task's reply chain (or chat) and replaced in place with `updateActivity`. A run's
 * progress card is edited at most once a second per conversation; while it runs, the
 * card is re-sent at least every 10 s with the elapsed time moved on, with a typing
 * indicator. In a personal chat, deliverables are offered with FileConsent cards.
 */
export class TeamsSurface implements ChatSurface {
  readonly name = 'teams' as const;
  private inbound?: HandoffInbound;
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private readonly heartbeatMs: number;

  constructor(
    private readonly options: {
      connector: TeamsConnector;
      store: TeamsStore;
      logger: Logger;
      /** How often a running task's progress card shows a sign of life (default 10 s). */
      heartbeatMs?: number;
      /** Deliverables up to this size are offered for upload in personal chats; larger ones stay links. */
      maxUploadBytes: number;
    },
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
  }

  /** The way in, for what a card must know of its viewers (approvers). Set once the gateway exists. */
  attach(inbound: HandoffInbound): void {
    this.inbound = inbound;
  }

  async post(conversation: ConversationRef, view: View): Promise<string> {
    const saved = await this.saved(conversation.channel);
    const conversationId = conversationIdFor(saved, conversation.thread);
    const id = await this.options.connector.send(
      saved.serviceUrl,
      conversationId,
      await this.activity(conversation, view),
    );
    await this.options.store.saveView(id, view);
    if (view.kind === 'progress' && view.cancellable) this.startHeartbeat(conversation, id, view);
    if (view.kind === 'result') await this.offerFiles(saved, view);
    return id;
  }

  async update(conversation: ConversationRef, ref: string, view: View): Promise<void> {
    const saved = await this.saved(conversation.channel);
    const conversationId = conversationIdFor(saved, conversation.thread);
    this.stopHeartbeat(ref);
    const activity = await this.activity(conversation, view);
    await this.options.store.saveView(ref, view);
    if (view.kind === 'progress') {
      // Not awaited by the gateway's event loop beyond the pacing: a slow edit must not hold other threads.
      if (view.cancellable) this.startHeartbeat(conversation, ref, view);
      await this.options.connector.update(saved.serviceUrl, conversationId, ref, activity, { progress: true });
      if (view.cancellable) await this.typing(saved, conversationId);
      return;
    }
    await this.options.connector.update(saved.serviceUrl, conversationId, ref, activity);
    if (view.kind === 'result') await this.offerFiles(saved, view);
  }

  async postToChannel(target: ChannelRef, view: View): Promise<string> {
    const saved = await this.saved(target.channel);
    const activity = await this.activity({ ...target, thread: '-' }, view);
    try {
      if (saved.type !== 'channel') {
        const id = await this.options.connector.send(saved.serviceUrl, saved.conversationId, activity);
        await this.options.store.saveView(id, view);
        return id;
      }
      const created = await this.options.connector.createConversation(saved.serviceUrl, {
        isGroup: true,
        bot: { id: saved.botId },
        ...(saved.tenantId ? { tenantId: saved.tenantId } : {}),
        channelData: {
          channel: { id: saved.conversationId },
          ...(saved.tenantId ? { tenant: { id: saved.tenantId } } : {}),
        },
        activity,
      });
      const root = created.activityId ?? /;messageid=(.+)$/.exec(created.id)?.[1];
      if (!root) throw new HandoffError(ErrorCodes.channelUnavailable, 'Teams did not say where the post went');
      await this.options.store.saveView(root, view);
      return root;
    } catch (err) {
      throw unavailable(err, 'Handoff cannot post in this Teams channel: is the app still installed in the team?');
    }
  }

  async notifyPerson(target: ChannelRef, personId: string, view: View): Promise<void> {
    try {
      const person = await this.options.store.person(personId);
      if (!person) throw new Error('never seen in Teams');
      let chatId = person.chatId;
      if (!chatId) {
        const saved = await this.options.store.conversation(target.channel);
        const created = await this.options.connector.createConversation(person.serviceUrl, {
          isGroup: false,
          bot: { id: saved?.botId ?? '' },
          members: [{ id: person.id }],
          ...(person.tenantId ? { tenantId: person.tenantId, channelData: { tenant: { id: person.tenantId } } } : {}),
        });
        chatId = created.id;
        await this.options.store.savePerson(personId, { ...person, chatId });
      }
      await this.options.connector.send(
        person.serviceUrl,
        chatId,
        await this.activity({ ...target, thread: '-' }, view),
      );
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message, personId }, 'teams: could not message a person');
    }
  }

  async person(target: ChannelRef, personId: string): Promise<PersonInfo | undefined> {
    const known = await this.options.store.person(personId);
    const saved = await this.options.store.conversation(target.channel);
    if (!saved) return known?.tz ? { active: true, tz: known.tz } : undefined;
    try {
      const member = await this.options.connector.member(saved.serviceUrl, saved.conversationId, personId);
      return { active: member !== undefined, ...(known?.tz ? { tz: known.tz } : {}) };
    } catch {
      return known?.tz ? { active: true, tz: known.tz } : undefined;
    }
  }

  /** Deletes a message the bot posted (a post opened for a request that was then refused). */
  async remove(conversation: ConversationRef): Promise<void> {
    const saved = await this.saved(conversation.channel);
    await this.options.connector.remove(
      saved.serviceUrl,
      conversationIdFor(saved, conversation.thread),
      conversation.thread,
    );
  }

  /** The card as everyone sees it, or as one viewer sees it (a refresh or a click's answer). */
  async card(conversation: ConversationRef, view: View, options: CardOptions = {}) {
    if (view.kind !== 'plan' || options.viewer) return renderCard(view, options);
    return renderCard(view, { ...options, ...(await this.audience(conversation, view)) });
  }

  /** Stops heartbeats and pending edits (shutdown). */
  close(): void {
    for (const t of this.heartbeats.values()) clearTimeout(t);
    this.heartbeats.clear();
    this.options.connector.close();
  }

  /**
   * Who gets a personal version of an open plan card: where the policy names approvers by
   * id, the card everyone sees has no decision buttons, and Teams asks the bot for the
   * card of the requester and of each named approver it knows (at most 60).
   */
  private async audience(conversation: ConversationRef, view: PlanView): Promise<CardOptions> {
    const approvers = this.inbound?.approversFor(conversation);
    if (!approvers || approvers.groups.length > 0) return {};
    const ids = new Set<string>();
    const names: string[] = [];
    const task = await this.inbound?.task(view.taskId, 'teams');
    const requester = task ? await this.options.store.person(task.requester.id) : undefined;
    if (requester) ids.add(requester.id);
    for (const aad of approvers.users) {
      const p = await this.options.store.person(aad);
      if (p) ids.add(p.id);
      names.push(p?.name || aad);
    }
    const waitingFor = names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0];
    return {
      ...(ids.size > 0 ? { refreshUserIds: [...ids] } : {}),
      ...(waitingFor ? { waitingFor } : {}),
    };
  }

  private async activity(conversation: ConversationRef, view: View): Promise<Partial<Activity>> {
    const card = await this.card(conversation, view);
    const text = messageText(view);
    return {
      type: 'message',
      summary: text.slice(0, 200),
      attachments: [cardAttachment(card)],
    } as Partial<Activity>;
  }

  private async saved(channel: string): Promise<TeamsConversation> {
    const saved = await this.options.store.conversation(channel);
    if (!saved)
      throw new HandoffError(
        ErrorCodes.channelUnavailable,
        'Handoff has no record of this Teams conversation (mention it there once so it can answer)',
      );
    return saved;
  }

  /** In a personal chat, each deliverable small enough is offered once for upload into the person's OneDrive. */
  private async offerFiles(saved: TeamsConversation, view: View): Promise<void> {
    if (view.kind !== 'result' || saved.type !== 'personal') return;
    for (const f of view.files.slice(0, 10)) {
      if (f.size > this.options.maxUploadBytes) continue;
      if (!(await this.options.store.offerOnce(view.taskId, f.name))) continue;
      const context: ConsentContext = { taskId: view.taskId, name: f.name };
      await this.options.connector
        .send(saved.serviceUrl, saved.conversationId, {
          type: 'message',
          attachments: [
            {
              contentType: fileConsentType,
              name: f.name,
              content: {
                description: `${f.name} (${formatBytes(f.size)}), made by Handoff for your request`,
                sizeInBytes: f.size,
                acceptContext: context,
                declineContext: context,
              },
            },
          ],
        } as Partial<Activity>)
        .catch((err) =>
          this.options.logger.warn(
            { err: (err as Error).message, taskId: view.taskId },
            'teams: could not offer a file',
          ),
        );
    }
  }

  private startHeartbeat(conversation: ConversationRef, ref: string, view: View): void {
    if (view.kind !== 'progress') return;
    this.stopHeartbeat(ref);
    const started = Date.now() - view.elapsedMs;
    const beat = () => {
      const timer = setTimeout(async () => {
        if (this.heartbeats.get(ref) !== timer) return;
        try {
          const saved = await this.saved(conversation.channel);
          const conversationId = conversationIdFor(saved, conversation.thread);
          await this.typing(saved, conversationId);
          const next = { ...view, elapsedMs: Date.now() - started };
          await this.options.connector.update(
            saved.serviceUrl,
            conversationId,
            ref,
            await this.activity(conversation, next),
            {
              progress: true,
            },
          );
        } catch (err) {
          this.options.logger.debug({ err: (err as Error).message }, 'teams: heartbeat failed');
        }
        if (this.heartbeats.get(ref) === timer) beat();
      }, this.heartbeatMs);
      timer.unref();
      this.heartbeats.set(ref, timer);
    };
    beat();
  }

  private stopHeartbeat(ref: string): void {
    const timer = this.heartbeats.get(ref);
    if (timer) clearTimeout(timer);
    this.heartbeats.delete(ref);
  }

  private async typing(saved: TeamsConversation, conversationId: string): Promise<void> {
    await this.options.connector
      .send(saved.serviceUrl, conversationId, { type: 'typing' } as Partial<Activity>)
      .catch(() => undefined);
  }
}

/**
 * The bot may not post there (removed from the team, the channel gone): the schedule's own
 * words. Anything else (Teams down, a network error) is passed on as it is, to be retried.
 */
function unavailable(err: unknown, words: string): unknown {
  const gone = (err instanceof HandoffError && err.code === ErrorCodes.channelUnavailable) || statusOf(err) === 401;
  return gone ? new HandoffError(ErrorCodes.channelUnavailable, words, { cause: err }) : err;
}
