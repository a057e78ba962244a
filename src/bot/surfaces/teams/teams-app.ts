import { Readable } from 'node:stream';
import type { Activity } from '@microsoft/agents-activity';
import {
  type AuthConfiguration,
  type AuthProvider,
  CloudAdapter,
  type Connections,
  OutboundHostValidator,
  type TurnContext,
} from '@microsoft/agents-hosting';
import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  asHandoffError,
  type ConversationRef,
  ErrorCodes,
  HandoffError,
  type Identity,
  isTerminal,
  runIsLive,
  splitScheduleMessage,
  type Task,
} from '../../../core/index.ts';
import type { Logger, Metrics } from '../../../observability/index.ts';
import type { ArtifactStore, AuditLog } from '../../../storage/index.ts';
import { channelSettingsCommand, parseSettingsCommand } from '../../channel-settings.ts';
import { takesFollowUps } from '../../follow-up.ts';
import type { HandoffInbound } from '../../inbound.ts';
import { Inbox } from '../../inbox.ts';
import type { RefusedFile } from '../../incoming-file.ts';
import { payloadTooLarge, readRequestWithin } from '../../read-body.ts';
import {
  defaultThreadContextMessages,
  refersToEarlierMessages,
  type ThreadContextInput,
} from '../../thread-context.ts';
import { asUnavailable } from '../../unavailable.ts';
import type { View } from '../../views.ts';
import {
  type AdaptiveCard,
  type CardOptions,
  cardAttachment,
  cardVerbs,
  connectionsPromptCard,
  parseAction,
  renderCard,
  type TeamsAction,
} from './adaptive-cards.ts';
import { grantsCard } from './grants-card.ts';
import { memoryCard } from './memory-card.ts';
import { ClientCredentials, HostAllowlist, TeamsAuthError, TeamsTokenValidator } from './teams-auth.ts';
import { botFrameworkScope, type PacingOptions, TeamsConnector } from './teams-connector.ts';
import { mentionsBot, readTeamsContext } from './teams-context.ts';
import { downloadTeamsFiles, fileAttachments, inEntraGroups, type TeamsAttachment } from './teams-files.ts';
import {
  activityFrom,
  deliveryId,
  queueWithinMs,
  serviceUrlMatchesClaim,
  teamsInboxStream,
  teamsSeenPrefix,
  teamsSeenTtlSeconds,
  withoutContent,
} from './teams-inbox.ts';
import { type TeamsConversation, TeamsStore } from './teams-store.ts';
import { type ConsentContext, conversationIdFor, TeamsSurface } from './teams-surface.ts';

export interface TeamsOptions {
  appId: string;
  appPassword: string;
  tenantId?: string;
  openIdMetadataUrl: string;
  tokenEndpoint?: string;
  serviceUrlAllowlist: readonly string[];
  fileHosts: readonly string[];
  /** Microsoft Graph base URL, when Graph is enabled (channel files, approver groups). */
  graphUrl?: string;
  redis: Redis;
  retentionMs: number;
  store: ArtifactStore;
  audit?: AuditLog;
  logger: Logger;
  limits: {
    maxInputBytes: number;
    maxFilesPerRequest: number;
    maxUploadBytes: number;
    /** Most earlier messages read for a channel mention's thread context (default 30; 0: none read). */
    threadContextMessages?: number;
  };
  pacing?: PacingOptions;
  /** Counts every Bot Connector call and 429 (/metrics). */
  metrics?: Metrics;
  heartbeatMs?: number;
  /** Messages this bot works on at once after acknowledging them (`HANDOFF_INBOUND_CONCURRENCY`). Default 8. */
  inboundConcurrency?: number;
  /** How long to wait for more messages to start with one taken (`HANDOFF_INBOUND_BATCH_MS`). Default 0. */
  inboundBatchMs?: number;
}

export interface TeamsIntegration {
  surface: TeamsSurface;
  /** Serves `POST /api/messages`; mount it on the bot's HTTP app before other routes. */
  routes: Hono;
  /** Starts taking activities, with the way in (the gateway). */
  start(inbound: HandoffInbound): void;
  /** Whether an Entra user is in one of the Entra groups (Graph); false without Graph. */
  inApproverGroup(who: Identity, groups: readonly string[]): Promise<boolean>;
  close(): Promise<void>;
}

/** The largest activity accepted (Teams activities are a few KB; cards with inputs a little more). */
const maxActivityBytes = 256 * 1024;

/** The fields every activity must carry before anything else is looked at. */
const EnvelopeSchema = z.object({
  type: z.string().min(1).max(64),
  channelId: z.string().max(64),
  serviceUrl: z.string().max(2048),
  conversation: z.object({ id: z.string().min(1).max(1024) }).passthrough(),
  from: z.object({ id: z.string().min(1).max(400) }).passthrough(),
});

/** The Bot Framework's default tenant for multi-tenant bots' tokens. */
const botFrameworkTenant = 'botframework.com';

/**
 * Microsoft Teams on the Microsoft 365 Agents SDK: `POST /api/messages` checks each
 * request's token, then the SDK's CloudAdapter turns it into a TurnContext for `onTurn`.
 * Every reply goes through the TeamsConnector (allowlisted, paced), so the same code posts
 * inside a turn and later (a result, a brief).
 */
export function createTeams(options: TeamsOptions): TeamsIntegration {
  const { logger } = options;
  const allowlist = new HostAllowlist(options.serviceUrlAllowlist);
  const fileHosts = new HostAllowlist(options.fileHosts);
  const credentials = new ClientCredentials({
    tokenEndpoint:
      options.tokenEndpoint ??
      `https://login.microsoftonline.com/${options.tenantId ?? botFrameworkTenant}/oauth2/v2.0/token`,
    clientId: options.appId,
    clientSecret: options.appPassword,
  });
  const graph = options.graphUrl ? { url: options.graphUrl, credentials } : undefined;
  const validator = new TeamsTokenValidator({ appId: options.appId, openIdMetadataUrl: options.openIdMetadataUrl });
  const connector = new TeamsConnector({
    credentials,
    allowlist,
    ...(options.pacing ? { pacing: options.pacing } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const teamsStore = new TeamsStore(options.redis, options.retentionMs);
  const surface = new TeamsSurface({
    connector,
    store: teamsStore,
    logger,
    maxUploadBytes: options.limits.maxUploadBytes,
    ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
  });

  const adapter = new CloudAdapter(
    { clientId: options.appId, ...(options.tenantId ? { tenantId: options.tenantId } : {}) } as AuthConfiguration,
    undefined,
    undefined,
    { validateServiceUrl: true },
    // The SDK's own outbound check, on top of ours: only the allowlisted hosts.
    new OutboundHostValidator({
      enabled: true,
      includeDefaultMicrosoftHosts: false,
      hosts: options.serviceUrlAllowlist.map((h) => (h.includes('://') ? new URL(h).hostname : h)),
    }),
  );
  // The bot's tokens come from TEAMS_TOKEN_ENDPOINT (client credentials), for every cloud.
  adapter.connectionManager = connections(credentials, options.appId);
  adapter.onTurnError = async (_context, error) => {
    logger.warn({ err: asHandoffError(error).message }, 'teams: a turn failed');
  };

  let inbound: HandoffInbound | undefined;
  const background = new Set<Promise<unknown>>();
  /** Work after the answer: started once the current request's response is on its way. */
  const later = (what: string, work: () => Promise<unknown>) => {
    const p = new Promise<void>((r) => setImmediate(r))
      .then(work)
      .catch((err) => logger.warn({ err: asHandoffError(err).message }, `teams: ${what} failed`))
      .finally(() => background.delete(p));
    background.add(p);
  };

  const routes = new Hono();
  routes.post('/api/messages', async (c) => {
    const raw = await readRequestWithin(c.req.raw, c.env, maxActivityBytes);
    if (!raw) return payloadTooLarge('activity too large', true);
    const text = raw.toString('utf8');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return c.json({ error: 'the body is not JSON' }, 400);
    }
    const envelope = EnvelopeSchema.safeParse(body);
    if (!envelope.success) return c.json({ error: 'not an activity' }, 400);
    let claims: Record<string, unknown>;
    try {
      claims = await validator.validate(c.req.header('authorization'), envelope.data);
    } catch (err) {
      if (!(err instanceof TeamsAuthError))
        logger.error({ err: asHandoffError(err).message }, 'teams: cannot check tokens');
      else logger.warn({ reason: err.message }, 'teams: request refused');
      return c.json({ error: 'unauthorized' }, 401);
    }
    if (!allowlist.allows(envelope.data.serviceUrl)) {
      logger.warn({ serviceUrl: hostOf(envelope.data.serviceUrl) }, 'teams: serviceUrl not on the allowlist');
      return c.json({ error: 'serviceUrl not allowed' }, 403);
    }
    if (envelope.data.channelId !== 'msteams') return c.json({ error: 'only Microsoft Teams is served here' }, 400);
    if (!inbound) return c.json({ error: 'starting' }, 503);
    if (envelope.data.type === 'message') {
      const answer = await queueMessage(text, body as Record<string, unknown>, claims);
      if (answer) return answer;
    }
    const res = new ResponseShim();
    const headers: Record<string, string> = {};
    c.req.raw.headers.forEach((v, k) => {
      headers[k] = v;
    });
    try {
      await adapter.process(
        { body: body as Record<string, unknown>, headers, method: 'POST', user: claims },
        res,
        (context) => onTurn(context),
      );
    } catch (err) {
      logger.warn({ err: asHandoffError(err).message }, 'teams: activity refused');
      return c.json({ error: 'bad activity' }, 400);
    }
    return new Response(res.body === undefined ? null : JSON.stringify(res.body), {
      status: res.statusCode,
      headers: res.body === undefined ? {} : { 'content-type': 'application/json' },
    });
  });

  /**
   * A message's whole answer (the SDK's for a message: 200, no body) once it is queued, or a
   * retry of one queued before; undefined when it is to be handled in the request instead
   * (Redis did not take it in time, or the sender expects the replies in the answer). The
   * refusals are CloudAdapter's own. Only the activity is queued, never the token or claims.
   */
  const queueMessage = async (text: string, body: Record<string, unknown>, claims: Record<string, unknown>) => {
    let a: Activity;
    try {
      a = activityFrom(body);
    } catch (err) {
      logger.warn({ err: asHandoffError(err).message }, 'teams: activity refused');
      return new Response(JSON.stringify({ error: 'bad activity' }), {
        status: 400,
        headers: { 'content-type': 'application/json' },
      });
    }
    if (a.deliveryMode === 'expectReplies') return undefined;
    if (!serviceUrlMatchesClaim(claims, a.serviceUrl)) return new Response(null, { status: 400 });
    // A channel message that does not mention Handoff is queued without its words.
    const payload = place(a).saved?.type === 'channel' && !mentionsBot(a) ? JSON.stringify(withoutContent(body)) : text;
    const outcome = await inbox.acceptWithin(deliveryId(a), payload, queueWithinMs).catch((err: unknown) => {
      logger.warn({ err: (err as Error)?.message }, 'teams: could not queue a message; handling it here');
      return 'direct' as const;
    });
    if (outcome === 'direct') return undefined;
    if (outcome === 'full') {
      logger.warn({}, 'teams: message refused, too many waiting');
      return new Response(JSON.stringify({ error: 'too many messages waiting; retry later' }), {
        status: 503,
        headers: { 'content-type': 'application/json' },
      });
    }
    return new Response(null, { status: 200 });
  };

  /** A queued message, taken by this bot's inbox worker: what a message's turn does. */
  const onQueued = async (raw: string) => {
    const a = activityFrom(JSON.parse(raw) as Record<string, unknown>);
    const where = place(a);
    try {
      await remember(a, where);
      await onMessage(a, where);
    } catch (err) {
      logger.warn({ err: asHandoffError(err).message }, 'teams: a message failed');
    }
  };

  const inbox = new Inbox({
    redis: options.redis,
    stream: teamsInboxStream,
    seenPrefix: teamsSeenPrefix,
    seenTtlSeconds: teamsSeenTtlSeconds,
    concurrency: options.inboundConcurrency ?? 8,
    batchMs: options.inboundBatchMs ?? 0,
    logger,
    handle: onQueued,
  });

  /** One authenticated activity. Messages are answered after the HTTP response; invokes within it. */
  const onTurn = async (context: TurnContext) => {
    const a = context.activity;
    const where = place(a);
    // A message is handled here when the inbox did not take it within a second; the inbox
    // may still queue it once Redis answers. Whichever marks the delivery first handles it.
    if (a.type === 'message' && !(await firstDelivery(a))) return;
    await remember(a, where);
    if (a.type === 'message') {
      const snapshot = a;
      later('a message', () => onMessage(snapshot, where));
      return;
    }
    if (a.type === 'invoke') {
      const result = await onInvoke(a, where).catch((err) => invokeError(err));
      await context.sendActivity({ type: 'invokeResponse', value: result } as unknown as Activity);
    }
  };

  const firstDelivery = async (a: Activity): Promise<boolean> =>
    (await options.redis.set(`${teamsSeenPrefix}${deliveryId(a)}`, '1', 'EX', teamsSeenTtlSeconds, 'NX')) === 'OK';

  /** Keeps what later replies need: the conversation's endpoint, and the person's Teams id and zone. */
  const remember = async (a: Activity, where: Place) => {
    if (!where.saved) return;
    await teamsStore.saveConversation(where.channel, where.saved);
    const aad = a.from?.aadObjectId;
    if (aad && a.from?.id) {
      await teamsStore.savePerson(aad, {
        id: a.from.id,
        name: (a.from.name ?? '').slice(0, 200),
        serviceUrl: a.serviceUrl!,
        ...(where.saved.tenantId ? { tenantId: where.saved.tenantId } : {}),
        ...(validZone(a.localTimezone) ? { tz: a.localTimezone } : {}),
        ...(where.saved.type === 'personal' ? { chatId: where.saved.conversationId } : {}),
      });
    }
  };

  const say = (conversation: ConversationRef, text: string, tone: 'info' | 'error' = 'info') =>
    surface.post(conversation, { kind: 'status', text, tone, demo: false } as View);

  const onMessage = async (a: Activity, where: Place) => {
    // With ChannelMessage.Read.Group consented, Teams delivers every channel message: only
    // those that mention Handoff are for it (their words are neither read nor kept).
    if (where.saved?.type === 'channel' && !mentionsBot(a)) return;
    const gateway = inbound!;
    const who = identityOf(a);
    const text = cleanText(a.text ?? '');
    const files = fileAttachments(a.attachments as TeamsAttachment[] | undefined);
    if (!who) {
      await say(
        where.conversation,
        'Handoff needs your Microsoft Entra ID identity, which Teams did not send.',
        'error',
      );
      return;
    }
    // A message in a task's thread (or, in a chat, while its newest task is live) reaches that task.
    const current = await threadTask(gateway, where);
    // In a channel thread whose task ended for good (denied, failed, …), a message starts a new task.
    const ended = current && isTerminal(current.state) && !takesFollowUps(current);
    if (current && !ended && (where.saved?.type === 'channel' || runIsLive(current.state))) {
      // While a run is live only the requester and approvers reach the agent; otherwise the
      // gateway answers (a follow-up after the delivery, or why the reply is not taken).
      if (runIsLive(current.state) && !(await gateway.maySteer(current, who))) return;
      if (text) await gateway.reply(current.conversation, who, text);
      return;
    }
    if (/^help$/i.test(text) || (!text && files.length === 0)) {
      await say(where.conversation, helpText);
      return;
    }
    if (/^schedules$/i.test(text)) {
      await surface.post(
        where.conversation,
        await gateway.schedules.list({ surface: 'teams', channel: where.channel }),
      );
      return;
    }
    if (/^connections$/i.test(text)) {
      await listConnections(gateway, where, who);
      return;
    }
    // `memory` and `instructions`: the list as a card, with Forget / Accept / Dismiss for approvers.
    const listing = files.length === 0 ? parseSettingsCommand(text) : undefined;
    if (where.saved && listing && (listing.kind === 'memory' || (!listing.text && !listing.clear))) {
      try {
        const view = await gateway.channelSettings.view(settingsChannel(where), who);
        await connector.send(where.saved.serviceUrl, conversationIdFor(where.saved, where.conversation.thread), {
          type: 'message',
          summary: 'Channel instructions and memory',
          attachments: [cardAttachment(memoryCard(view))],
        } as Partial<Activity>);
      } catch (err) {
        await say(where.conversation, asUnavailable(err).message, 'error');
      }
      return;
    }
    // `instructions …`, `memory`, `remember that …`, `forget|accept|dismiss <id>`: the channel's settings.
    const settings =
      files.length === 0
        ? await channelSettingsCommand(gateway.channelSettings, { surface: 'teams', channel: where.channel }, who, text)
        : undefined;
    if (settings) {
      await say(where.conversation, settings.text, settings.tone);
      return;
    }
    if (/^grants$/i.test(text)) {
      // The channel's standing grants, for its approvers, each with Revoke.
      try {
        const grants = await gateway.listGrants(
          {
            surface: 'teams',
            ...(where.conversation.workspace ? { workspace: where.conversation.workspace } : {}),
            channel: where.channel,
          },
          who,
        );
        if (where.saved)
          await connector.send(where.saved.serviceUrl, conversationIdFor(where.saved, where.conversation.thread), {
            type: 'message',
            summary: 'Standing grants',
            attachments: [cardAttachment(grantsCard(grants))],
          } as Partial<Activity>);
      } catch (err) {
        await say(where.conversation, asUnavailable(err).message, 'error');
      }
      return;
    }
    await submit(
      where.conversation,
      who,
      text,
      a.attachments as TeamsAttachment[] | undefined,
      a.localTimezone,
      await channelContext(a, where, text),
    );
  };

  /**
   * The earlier messages a channel mention takes along (Graph): its thread's, or for a
   * top-level post saying "this"/"that"/"above", the channel's. Chats take none.
   */
  const channelContext = async (a: Activity, where: Place, text: string): Promise<ThreadContextInput | undefined> => {
    const maxMessages = options.limits.threadContextMessages ?? defaultThreadContextMessages;
    if (where.saved?.type !== 'channel' || maxMessages <= 0 || splitScheduleMessage(text)) return undefined;
    const inThread = where.conversation.thread !== a.id;
    if (!inThread && !refersToEarlierMessages(text)) return undefined;
    const source = inThread ? 'thread' : 'channel';
    const data = (a.channelData ?? {}) as { team?: { aadGroupId?: string }; channel?: { id?: string } };
    const teamId = data.team?.aadGroupId;
    if (!graph) return { source, messages: [], error: 'Microsoft Graph is not enabled here (TEAMS_GRAPH_ENABLED)' };
    if (!teamId || !/^[0-9a-f-]{36}$/i.test(teamId) || !data.channel?.id || !a.id)
      return { source, messages: [], error: 'Teams did not send the team’s group id' };
    return readTeamsContext({
      graph,
      teamId,
      channelId: data.channel.id,
      ...(inThread ? { rootId: where.conversation.thread } : {}),
      mentionId: a.id,
      maxMessages,
      botAppId: options.appId,
    });
  };

  /**
   * `connections`: a person's own connections. In their personal chat the list itself;
   * where others read along, a button whose answer Teams shows to the clicker alone.
   */
  const listConnections = async (gateway: HandoffInbound, where: Place, who: Identity) => {
    let list: View;
    try {
      list = await gateway.connections('teams', who);
    } catch (err) {
      await say(where.conversation, asUnavailable(err).message, 'error');
      return;
    }
    if (where.saved?.type === 'personal') {
      await surface.post(where.conversation, list);
      return;
    }
    if (!where.saved) return;
    await connector.send(where.saved.serviceUrl, conversationIdFor(where.saved, where.conversation.thread), {
      type: 'message',
      summary: 'Your connections',
      attachments: [cardAttachment(connectionsPromptCard())],
    } as Partial<Activity>);
  };

  /**
   * Connect, Disconnect and "Show my connections": the answer is a card only the clicker
   * sees (the invoke response), so a sign-in link and a person's list go to them alone.
   */
  const connectionCard = async (a: Activity, who: Identity, action: TeamsAction): Promise<AdaptiveCard> => {
    const gateway = inbound!;
    let notice: CardOptions['notice'];
    let signIn: CardOptions['signIn'];
    try {
      if (action.verb === cardVerbs.connect) {
        const answer = await gateway.connect({
          connector: action.connector,
          by: who,
          surface: 'teams',
          ...(action.taskId ? { taskId: action.taskId } : {}),
        });
        notice = { text: answer.message, tone: 'good' };
        if (answer.status === 'needs_authorization') signIn = { url: answer.authorizationUrl, title: answer.title };
      } else if (action.verb === cardVerbs.disconnect) {
        notice = {
          text: await gateway.disconnect({ connector: action.connector, by: who, surface: 'teams' }),
          tone: 'good',
        };
      }
    } catch (err) {
      const e = asUnavailable(err);
      notice = { text: e.message, tone: 'error' };
    }
    const options: CardOptions = { ...(notice ? { notice } : {}), ...(signIn ? { signIn } : {}) };
    // A Connect card stays what it was for everyone else; the clicker's copy gains the link.
    const stored = a.replyToId ? await teamsStore.view(a.replyToId) : undefined;
    if (stored?.kind === 'connect') return renderCard(stored, options);
    const list = await gateway.connections('teams', who).catch(() => undefined);
    if (list) return renderCard(list, options);
    return renderCard(
      { kind: 'status', text: notice?.text ?? 'Done.', tone: notice?.tone === 'error' ? 'error' : 'info', demo: false },
      {},
    );
  };

  /** A new request (or a schedule proposal), its files fetched, answered in its thread at once. */
  const submit = async (
    conversation: ConversationRef,
    who: Identity,
    text: string,
    attachments: TeamsAttachment[] | undefined,
    zone: string | undefined,
    /** Earlier messages of the channel thread or channel (not for a schedule proposal). */
    context?: ThreadContextInput,
  ) => {
    const gateway = inbound!;
    const { accepted, refused } = await downloadTeamsFiles(attachments ?? [], {
      maxBytes: options.limits.maxInputBytes,
      maxFiles: options.limits.maxFilesPerRequest,
      fileHosts,
      ...(graph ? { graph } : {}),
    });
    if (refused.length > 0) await say(conversation, notUsed(refused));
    const scheduled = splitScheduleMessage(text);
    let task: Task;
    try {
      task = scheduled
        ? await gateway.schedules.propose({
            conversation,
            requester: who,
            when: scheduled.when,
            text: scheduled.request,
            files: accepted,
            ...(validZone(zone) ? { requesterTz: zone } : {}),
          })
        : await gateway.submitRequest({
            conversation,
            requester: who,
            text,
            files: accepted,
            ...(context ? { context } : {}),
          });
    } catch (err) {
      for (const f of accepted) if (f.body instanceof Readable) f.body.destroy();
      await say(conversation, `Not taken: ${asUnavailable(err).message}`, 'error');
      return;
    }
    if (conversation.thread !== '-' && (await teamsStore.conversation(conversation.channel))?.type !== 'channel')
      await teamsStore.setChatThread(conversation.channel, conversation.thread);
    await gateway.acknowledge(task);
  };

  const threadTask = async (gateway: HandoffInbound, where: Place): Promise<Task | undefined> => {
    if (where.saved?.type === 'channel') return gateway.taskInThread(where.conversation);
    const thread = await teamsStore.chatThread(where.channel);
    return thread ? gateway.taskInThread({ ...where.conversation, thread }) : undefined;
  };

  const onInvoke = async (a: Activity, where: Place): Promise<{ status: number; body?: unknown }> => {
    const who = identityOf(a);
    if (!who) throw new HandoffError(ErrorCodes.notApprover, 'Teams did not send your Microsoft Entra ID identity');
    switch (a.name) {
      case 'adaptiveCard/action':
        return execute(a, where, who, parseAction(a.value));
      case 'fileConsent/invoke':
        later('a file upload', () => consent(a, where, who));
        return { status: 200 };
      case 'composeExtension/submitAction':
        return messageAction(a, where, who);
      default:
        return { status: 200, body: {} };
    }
  };

  /** A click on a card (Action.Execute). The answer is the card as the clicker should now see it. */
  const execute = async (a: Activity, where: Place, who: Identity, action: TeamsAction) => {
    if (
      action.verb === cardVerbs.connect ||
      action.verb === cardVerbs.disconnect ||
      action.verb === cardVerbs.connections
    ) {
      const card = await connectionCard(a, who, action);
      return { status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card } };
    }
    const gateway = inbound!;
    const cardRef = a.replyToId ?? '';
    const conversation = where.conversation;
    let notice: CardOptions['notice'];
    try {
      const words = await act(gateway, action, who, where);
      if (words) notice = { text: words, tone: 'good' };
    } catch (err) {
      const e = asUnavailable(err);
      notice = { text: e.message, tone: e.code === ErrorCodes.staleApproval ? 'warning' : 'error' };
    }
    const view = cardRef ? await teamsStore.view(cardRef) : undefined;
    // A click on a `memory` list (not a stored view): the list drawn again as the clicker now sees it.
    const settings =
      !view && memoryVerbs.has(action.verb)
        ? await gateway.channelSettings.view(settingsChannel(where), who).catch(() => undefined)
        : undefined;
    const card = settings
      ? memoryCard(settings, notice)
      : view
        ? await surface.card(conversation, view, {
            viewer: await viewerOf(gateway, view, who, conversation),
            ...(notice ? { notice } : {}),
          })
        : renderCard({
            kind: 'status',
            text: notice?.text ?? 'Done.',
            tone: notice?.tone === 'good' ? 'info' : 'error',
            demo: false,
          });
    return { status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card } };
  };

  const act = async (
    gateway: HandoffInbound,
    action: TeamsAction,
    who: Identity,
    where: Place,
  ): Promise<string | undefined> => {
    switch (action.verb) {
      case 'refresh':
        return undefined;
      // Answered with a card of their own (connectionCard).
      case 'connection.connect':
      case 'connection.disconnect':
      case 'connection.list':
        return undefined;
      case 'plan.approve':
      case 'plan.deny':
        return gateway.decide({
          taskId: action.taskId,
          planVersion: action.version,
          planHash: action.hash,
          by: who,
          outcome: action.verb === 'plan.approve' ? 'approved' : 'denied',
          surface: 'teams',
        });
      case 'plan.changes':
        return gateway.requestChanges({
          taskId: action.taskId,
          planVersion: action.version,
          planHash: action.hash,
          by: who,
          text: action.changes,
          surface: 'teams',
        });
      case 'task.cancel':
        return gateway.cancel(action.taskId, who, 'teams');
      case 'action.approve':
      case 'action.deny':
        return gateway.decideAction({
          taskId: action.taskId,
          approvalId: action.approvalId,
          by: who,
          outcome: action.verb === 'action.approve' ? 'approved' : 'denied',
          surface: 'teams',
        });
      // Authorised exactly like Approve; the gateway refuses a grant the card did not offer.
      case 'action.grant_run':
      case 'action.grant_channel':
        return gateway.decideAction({
          taskId: action.taskId,
          approvalId: action.approvalId,
          by: who,
          outcome: 'approved',
          surface: 'teams',
          grant: action.verb === 'action.grant_run' ? 'run' : 'channel',
        });
      case 'grant.revoke':
        return gateway.revokeGrant({ id: action.grantId, by: who, surface: 'teams' });
      // Authorised as on Slack: the channel's approvers; the first click wins, a stale one is refused.
      case 'memory.accept':
      case 'memory.dismiss':
        return gateway.channelSettings.decideProposal({
          proposalId: action.proposalId,
          by: who,
          outcome: action.verb === 'memory.accept' ? 'accept' : 'dismiss',
          surface: 'teams',
        });
      case 'memory.forget':
        return gateway.channelSettings.forget(settingsChannel(where), who, action.factId);
      case 'task.schedule': {
        await gateway.schedules.proposeFrom({ taskId: action.taskId, when: action.when, by: who, surface: 'teams' });
        return 'A standing plan is being drafted in this thread.';
      }
      case 'schedule.act': {
        // A new request needs a new approval: its plan card gets a post of its own in the
        // channel, opened only once the schedule's checks passed.
        let opened: ConversationRef | undefined;
        const openThread = async (): Promise<ConversationRef> => {
          const target = {
            surface: 'teams' as const,
            channel: where.channel,
            ...(where.conversation.workspace ? { workspace: where.conversation.workspace } : {}),
          };
          const root = await surface.postToChannel(target, {
            kind: 'status',
            text: `${who.name} proposes a new request for schedule ${action.scheduleId}: ${(action.text ?? '').slice(0, 300)}`,
            tone: 'info',
            demo: false,
          });
          opened = { ...target, thread: root };
          return opened;
        };
        try {
          return await gateway.schedules.act({
            scheduleId: action.scheduleId,
            action: action.action,
            by: who,
            from: { surface: 'teams', channel: where.channel },
            ...(action.when ? { when: action.when } : {}),
            ...(action.text ? { text: action.text, openThread } : {}),
          });
        } catch (err) {
          // Refused after the post was opened: nothing is left behind.
          if (opened) await surface.remove(opened).catch(() => undefined);
          throw err;
        }
      }
    }
  };

  /** How a card looks to one person: whether they may decide, and whether it is their own request. */
  const viewerOf = async (gateway: HandoffInbound, view: View, who: Identity, conversation: ConversationRef) => {
    const task =
      'taskId' in view && typeof view.taskId === 'string' ? await gateway.task(view.taskId, 'teams') : undefined;
    const isRequester = task?.requester.id === who.id;
    const mayDecide = await gateway.isApprover(task?.conversation ?? conversation, who).catch(() => false);
    return { id: who.id, mayDecide, isRequester };
  };

  /** "Hand off…" on a message: that message and its files become a new request in its thread. */
  const messageAction = async (a: Activity, where: Place, who: Identity) => {
    const value = MessageActionSchema.safeParse(a.value);
    if (!value.success) throw new HandoffError(ErrorCodes.invalidInput, 'this action came without its message');
    const { messagePayload, data } = value.data;
    const quoted = cleanText(messagePayload.body?.content ?? '').slice(0, 8000);
    const asked = (data?.request ?? '').trim();
    const author = messagePayload.from?.user?.displayName;
    const text = [
      asked || 'Handle the request in this message.',
      `\n\nThe message${author ? ` from ${author}` : ''}:\n${quoted}`,
    ]
      .join('')
      .trim();
    const root =
      where.saved?.type === 'channel'
        ? (messagePayload.replyToId ?? messagePayload.id ?? where.conversation.thread)
        : (a.id ?? '-');
    const conversation = { ...where.conversation, thread: root };
    later('a message action', () =>
      submit(conversation, who, text, messagePayload.attachments ?? undefined, a.localTimezone),
    );
    return { status: 200, body: {} };
  };

  /** A FileConsent answer: on accept, the deliverable goes to the upload URL Teams gave, then a file card. */
  const consent = async (a: Activity, where: Place, who: Identity) => {
    const value = ConsentSchema.safeParse(a.value);
    if (!value.success || !where.saved) return;
    const { action, context, uploadInfo } = value.data;
    const task = await inbound!.task(context.taskId, 'teams');
    const cardRef = a.replyToId;
    const conversationId = conversationIdFor(where.saved, '-');
    const replace = async (text: string) => {
      if (cardRef)
        await connector
          .update(where.saved!.serviceUrl, conversationId, cardRef, { type: 'message', text } as Partial<Activity>)
          .catch(() => undefined);
    };
    if (!task || task.requester.id !== who.id) return;
    const artifact = task.artifacts.find((f) => f.name === context.name);
    if (action === 'decline' || !artifact) {
      await replace(`${context.name}: not uploaded. The link on the result card still works until it expires.`);
      return;
    }
    if (!uploadInfo || !fileHosts.allows(uploadInfo.uploadUrl)) {
      await replace(`${context.name}: Teams offered an upload place Handoff does not send files to.`);
      return;
    }
    await upload(uploadInfo.uploadUrl, await options.store.get(artifact.key), artifact.size);
    await options.audit
      ?.append({
        type: 'artifact.delivered',
        taskId: task.id,
        actor: who.id,
        data: {
          surface: 'teams',
          name: artifact.name,
          sha256: artifact.sha256,
          size: artifact.size,
          via: 'file_consent',
        },
      })
      .catch(() => undefined);
    await connector.send(where.saved.serviceUrl, conversationId, {
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.teams.card.file.info',
          contentUrl: uploadInfo.contentUrl,
          name: uploadInfo.name,
          content: { uniqueId: uploadInfo.uniqueId, fileType: uploadInfo.fileType },
        },
      ],
    } as Partial<Activity>);
    await replace(`${context.name}: uploaded to your OneDrive.`);
  };

  let inboxStarted: Promise<void> | undefined;
  const integration: TeamsIntegration = {
    surface,
    routes,
    start(gateway) {
      inbound = gateway;
      surface.attach(gateway);
      // Until the worker runs, messages wait in Redis (or another bot takes them).
      inboxStarted = inbox
        .start()
        .catch((err: unknown) =>
          logger.error({ err: asHandoffError(err).message }, 'teams: cannot read queued messages'),
        );
    },
    async inApproverGroup(who, groups) {
      if (!graph) return false;
      return inEntraGroups(who.id, groups, graph);
    },
    async close() {
      await inboxStarted;
      await inbox.stop();
      surface.close();
      await Promise.allSettled([...background]);
    },
  };
  return integration;
}

/** Where an activity happened, as Handoff names it. */
interface Place {
  conversation: ConversationRef;
  /** `<team id>/<channel id>` for a team channel; the chat's id otherwise. */
  channel: string;
  saved?: TeamsConversation;
}

function place(a: Activity): Place {
  const data = (a.channelData ?? {}) as { team?: { id?: string }; channel?: { id?: string }; tenant?: { id?: string } };
  const tenantId = data.tenant?.id ?? (a.conversation as { tenantId?: string } | undefined)?.tenantId;
  const [base = '', root] = (a.conversation?.id ?? '').split(';messageid=');
  const type = a.conversation?.conversationType;
  const botId = a.recipient?.id ?? '';
  const common = { serviceUrl: a.serviceUrl ?? '', ...(tenantId ? { tenantId } : {}), botId };
  if (type === 'channel' || data.channel?.id) {
    const channelId = data.channel?.id ?? base;
    const teamId = data.team?.id ?? channelId;
    const channel = `${teamId}/${channelId}`;
    const thread = root ?? a.replyToId ?? a.id ?? '-';
    return {
      channel,
      conversation: { surface: 'teams', channel, thread, ...(tenantId ? { workspace: tenantId } : {}) },
      saved: { ...common, conversationId: channelId, type: 'channel' },
    };
  }
  const kind = type === 'personal' ? 'personal' : 'groupChat';
  return {
    channel: base,
    conversation: {
      surface: 'teams',
      channel: base,
      thread: a.id ?? '-',
      ...(tenantId ? { workspace: tenantId } : {}),
    },
    saved: { ...common, conversationId: base, type: kind },
  };
}

/** The verbs of the channel-memory buttons (result cards and the `memory` list). */
const memoryVerbs: ReadonlySet<string> = new Set([
  cardVerbs.memoryAccept,
  cardVerbs.memoryDismiss,
  cardVerbs.memoryForget,
]);

/** The channel whose settings a message or click is about: where it happened (authenticated), never its data. */
function settingsChannel(where: Place): { surface: 'teams'; channel: string; workspace?: string } {
  return {
    surface: 'teams',
    channel: where.channel,
    ...(where.conversation.workspace ? { workspace: where.conversation.workspace } : {}),
  };
}

/** The person, always from the authenticated activity: their Entra object id, never words in the text. */
function identityOf(a: Activity): Identity | undefined {
  const aad = a.from?.aadObjectId;
  if (!aad || !/^[0-9a-f-]{36}$/i.test(aad)) return undefined;
  return { id: aad.toLowerCase(), name: (a.from?.name ?? 'someone').slice(0, 200) };
}

/** The request as typed: the bot's mention removed, HTML tags dropped, entities decoded. */
export function cleanText(text: string): string {
  return text
    .replace(/<at>[^<]*<\/at>/i, '')
    .replace(/<at>([^<]*)<\/at>/gi, '$1')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/p>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

const zones = new Map<string, boolean>();

/** Whether `tz` is an IANA zone this runtime knows (remembered: activities repeat them). */
function validZone(tz: string | undefined): tz is string {
  if (!tz || tz.length > 100) return false;
  let known = zones.get(tz);
  if (known === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      known = true;
    } catch {
      known = false;
    }
    if (zones.size < 1000) zones.set(tz, known);
  }
  return known;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(not a URL)';
  }
}

function notUsed(refused: readonly RefusedFile[]): string {
  return `Not used:\n${refused.map((f) => `• ${f.name}: ${f.reason}`).join('\n')}`;
}

const helpText = [
  'Mention Handoff with what you need done, and attach the files it needs.',
  'It drafts a plan; an approver approves it on the card; the result comes back here.',
  'Say “every weekday at 9:00: …” to ask for a scheduled brief, or “schedules” to list this channel’s.',
  'Say “connections” to see and manage the services Handoff uses as you.',
  'Say “grants” to list this channel’s standing grants (approvers can revoke them there).',
  'Say “instructions” or “memory” to see this channel’s standing instructions and memory; approvers set them with “instructions <text>” and “remember that …”.',
  'Reply in a task’s thread (mentioning Handoff) to steer it or answer its questions.',
].join('\n');

/** The error answer of an invoke (Universal Actions' error type), in plain words. */
function invokeError(err: unknown): { status: number; body: unknown } {
  const e = asUnavailable(err);
  const status = e.code === ErrorCodes.invalidInput ? 400 : e.code === ErrorCodes.notApprover ? 403 : 500;
  return {
    status: 200,
    body: {
      statusCode: status,
      type: 'application/vnd.microsoft.error',
      value: {
        code: status === 400 ? 'BadRequest' : status === 403 ? 'Forbidden' : 'InternalError',
        message: e.message,
      },
    },
  };
}

const MessageActionSchema = z.object({
  commandId: z.string().max(64).nullish(),
  data: z
    .object({ request: z.string().max(4000).nullish() })
    .passthrough()
    .nullish(),
  messagePayload: z
    .object({
      id: z.string().max(200).nullish(),
      replyToId: z.string().max(200).nullish(),
      body: z
        .object({ content: z.string().max(100_000).nullish() })
        .passthrough()
        .nullish(),
      from: z
        .object({
          user: z
            .object({ displayName: z.string().max(200).nullish() })
            .passthrough()
            .nullish(),
        })
        .passthrough()
        .nullish(),
      attachments: z
        .array(
          z
            .object({
              contentType: z.string().max(200).nullish(),
              contentUrl: z.string().max(2048).nullish(),
              name: z.string().max(300).nullish(),
              content: z.unknown().nullish(),
            })
            .passthrough(),
        )
        .max(20)
        .nullish(),
    })
    .passthrough(),
});

const ConsentContextSchema: z.ZodType<ConsentContext> = z.object({
  taskId: z.string().min(1).max(100),
  name: z.string().min(1).max(300),
});

const ConsentSchema = z.object({
  action: z.enum(['accept', 'decline']),
  context: ConsentContextSchema,
  uploadInfo: z
    .object({
      uploadUrl: z.string().max(4096),
      contentUrl: z.string().max(4096),
      name: z.string().max(300),
      uniqueId: z.string().max(300).optional(),
      fileType: z.string().max(50).optional(),
    })
    .optional(),
});

/** Uploads in chunks the way OneDrive upload sessions take them (multiples of 320 KiB). */
async function upload(url: string, body: Readable, size: number): Promise<void> {
  const chunkBytes = 320 * 1024 * 24;
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (last: boolean) => {
    if (pendingBytes === 0 && !(last && size === 0)) return;
    const chunk = Buffer.concat(pending, pendingBytes);
    const res = await fetch(url, {
      method: 'PUT',
      headers: {
        'content-length': String(chunk.length),
        'content-range': `bytes ${offset}-${offset + chunk.length - 1}/${size}`,
      },
      body: chunk,
      signal: AbortSignal.timeout(120_000),
      redirect: 'error',
    });
    if (!res.ok) throw new Error(`the upload was refused (${res.status})`);
    await res.arrayBuffer().catch(() => undefined);
    offset += chunk.length;
    pending = [];
    pendingBytes = 0;
  };
  for await (const part of body) {
    const buf = Buffer.isBuffer(part) ? part : Buffer.from(part as Uint8Array);
    let at = 0;
    while (at < buf.length) {
      const take = Math.min(chunkBytes - pendingBytes, buf.length - at);
      pending.push(buf.subarray(at, at + take));
      pendingBytes += take;
      at += take;
      if (pendingBytes === chunkBytes) await flush(false);
    }
  }
  await flush(true);
}

/** The SDK's token source, replaced: the bot's own client-credentials tokens for every scope it asks. */
function connections(credentials: ClientCredentials, appId: string): Connections {
  const scopeOf = (scope: string) => (scope.endsWith('/.default') ? scope : `${scope.replace(/\/+$/, '')}/.default`);
  const unsupported = async (): Promise<string> => {
    throw new HandoffError(ErrorCodes.config, 'this Teams sign-in flow is not used by Handoff');
  };
  const provider: AuthProvider = {
    connectionSettings: { clientId: appId } as AuthConfiguration,
    getAccessToken: (async (a: AuthConfiguration | string, b?: string) =>
      credentials.token(
        scopeOf(typeof a === 'string' ? a : (b ?? botFrameworkScope)),
      )) as AuthProvider['getAccessToken'],
    getAgenticApplicationToken: unsupported,
    getAgenticInstanceToken: unsupported,
    getAgenticUserToken: unsupported,
    acquireTokenOnBehalfOf: unsupported as AuthProvider['acquireTokenOnBehalfOf'],
  };
  return {
    getConnection: () => provider,
    getDefaultConnection: () => provider,
    getTokenProvider: () => provider,
    getTokenProviderFromActivity: () => provider,
    getDefaultConnectionConfiguration: () => ({ clientId: appId }) as AuthConfiguration,
  };
}

/** The response object CloudAdapter.process writes to, turned into a fetch Response afterwards. */
class ResponseShim {
  statusCode = 200;
  body: unknown;
  headersSent = false;
  writableEnded = false;
  status(code: number): this {
    this.statusCode = code;
    return this;
  }
  setHeader(): this {
    return this;
  }
  send(body?: unknown): this {
    this.body = body;
    this.headersSent = true;
    return this;
  }
  end(): this {
    this.writableEnded = true;
    return this;
  }
}
