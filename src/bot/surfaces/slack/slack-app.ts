import { Readable } from 'node:stream';
import { App, type Logger as BoltLogger, LogLevel, type RespondFn, SocketModeReceiver, webApi } from '@slack/bolt';
import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { PlanPolicy } from '../../../approvals/index.ts';
import {
  type ChannelRef,
  type ConversationRef,
  ErrorCodes,
  HandoffError,
  type Identity,
  isTerminal,
  rememberedFact,
  runIsLive,
  type Schedule,
  splitScheduleMessage,
  type Task,
} from '../../../core/index.ts';
import type { Logger, Metrics } from '../../../observability/index.ts';
import { inboxStreams, type Queues } from '../../../queue/index.ts';
import type { ArtifactStore, AuditLog, StateStore } from '../../../storage/index.ts';
import { takesFollowUps } from '../../follow-up.ts';
import type { HandoffInbound } from '../../inbound.ts';
import { Inbox } from '../../inbox.ts';
import { scheduleItem } from '../../schedules.ts';
import {
  defaultThreadContextMessages,
  refersToEarlierMessages,
  type ThreadContextInput,
} from '../../thread-context.ts';
import { asUnavailable } from '../../unavailable.ts';
import type { StatusView } from '../../views.ts';
import { countingSlackFetch } from './api-metrics.ts';
import { mentionApprovers, SlackUserGroups } from './approvers.ts';
import {
  actionIds,
  callbackIds,
  changesModal,
  connectionActionPattern,
  connectLinkMessage,
  decodeButtonValue,
  decodeConnectValue,
  decodeScheduleValue,
  type HomeTask,
  homeView,
  type PlanButtonValue,
  renderBlocks,
  type ScheduleButtonAction,
  type ScheduleItem,
  scheduleActionPattern,
  scheduleEditModal,
  scheduleModal,
} from './block-kit.ts';
import {
  channelSettingsMessage,
  decodeMemoryValue,
  memoryActionIds,
  memoryProposalBlocks,
  parseSettingsCommand,
  type SettingsCommand,
} from './channel-settings-slack.ts';
import { defaultInputExtensions, downloadSlackFiles, type SlackFile } from './files-in.ts';
import { grantActionIds, grantsBlocks, parseRevokeValue, revokeGrantActionPattern } from './grants-blocks.ts';
import { HonoReceiver } from './hono-receiver.ts';
import { readSlackContext } from './slack-context.ts';
import { describe, SlackSurface } from './slack-surface.ts';

export interface SlackOptions {
  /** `xoxb-…`; never logged. */
  botToken: string;
  /** Verifies requests to `/slack/events` (HTTP mode). */
  signingSecret?: string;
  /** `xapp-…`: Socket Mode, no public URL needed. Takes precedence over HTTP when set. */
  appToken?: string;
  /** Web API base URL, ending in `/` (tests point it at a local fake). */
  apiUrl?: string;
  /** Counts every Web API call and 429 (/metrics). */
  metrics?: Metrics;
  /**
   * Read by the way out only (message references, plans and uploads the surface edits);
   * tasks come in through `HandoffInbound`, never from here.
   */
  state: StateStore;
  store: ArtifactStore;
  audit: AuditLog;
  /** @deprecated Not read: the Slack surface queues nothing itself. */
  queues: Queues;
  /** @deprecated Not read: who may act, and on what terms, is decided behind `HandoffInbound`. */
  policy: PlanPolicy;
  /** For de-duplicating Slack's retried events and sharing rate limits across bots. */
  redis: Redis;
  logger: Logger;
  limits: {
    /** Largest input file downloaded from Slack. */
    maxInputBytes: number;
    maxFilesPerRequest: number;
    /** Deliverables up to this size are uploaded into the thread; larger ones are linked. */
    maxUploadBytes: number;
    /** Most earlier messages read for a mention's thread context (default 30; 0: none read). */
    threadContextMessages?: number;
  };
  /** Slack's native plan display for progress (default true); false keeps the edited message. */
  nativeProgress?: boolean;
  /** Events this bot works on at once after acknowledging them (HTTP mode). Default 8. */
  inboundConcurrency?: number;
  /** How long to wait for more events to start with one taken (`HANDOFF_INBOUND_BATCH_MS`). Default 0. */
  inboundBatchMs?: number;
}

export interface SlackIntegration {
  surface: SlackSurface;
  /**
   * Slack user-group membership (cached `usergroups.users.list`), for the gateway's
   * approver check: who may approve is decided there, from policy and SLACK_APPROVERS.
   */
  userGroups: SlackUserGroups;
  /** Serves `POST /slack/events` (HTTP mode); mount it on the bot's HTTP app before other routes. */
  routes?: Hono;
  /**
   * Registers the listeners, which hand what people do to `inbound` (the way in), and
   * checks the token with auth.test.
   */
  start(inbound: HandoffInbound): Promise<void>;
  close(): Promise<void>;
}

const eventDedupeTtlSeconds = 60 * 60;
/** Events acknowledged and waiting for a bot to work on them (HTTP mode). */
export const slackInboxStream = inboxStreams.slack;
/** Set on the listener context of an event the inbox already de-duplicated. */
const deduplicatedProperty = 'handoffDeduplicated';
const nameCacheTtlMs = 10 * 60_000;

/**
 * The Slack app: Bolt 5 with either a receiver on the bot's HTTP server or Socket Mode,
 * and the Slack surface that renders views. Every listener acknowledges first and then
 * does the work, so Slack always gets its answer within 3 seconds.
 */
export function createSlack(options: SlackOptions): SlackIntegration {
  const { logger } = options;
  const clientOptions: webApi.WebClientOptions = {
    ...(options.apiUrl ? { slackApiUrl: options.apiUrl } : {}),
    // 429s come back to us (SlackSurface and the edit limiter honour Retry-After with a
    // bound) instead of the WebClient's default: pause and retry for up to ~30 minutes.
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 2, factor: 2, minTimeout: 500, maxTimeout: 3000, randomize: true },
    timeout: 30_000,
    logger: boltLogger(logger),
    ...(options.metrics ? { fetch: countingSlackFetch(options.metrics) } : {}),
  };
  const client = new webApi.WebClient(options.botToken, clientOptions);
  const surface = new SlackSurface({
    client,
    logger,
    state: options.state,
    store: options.store,
    audit: options.audit,
    maxUploadBytes: options.limits.maxUploadBytes,
    ...(options.nativeProgress === undefined ? {} : { nativeProgress: options.nativeProgress }),
    // Edit spacing and Retry-After hold across every bot.
    redis: options.redis,
  });
  const userGroups = new SlackUserGroups(client);

  let receiver: HonoReceiver | undefined;
  let inbox: Inbox | undefined;
  let app: App;
  if (options.appToken) {
    // Built here rather than by App so its WebSocket client uses the same API URL
    // (apps.connections.open) as everything else.
    const socket = new SocketModeReceiver({
      appToken: options.appToken,
      logger: boltLogger(logger),
      installerOptions: { clientOptions: { ...(options.apiUrl ? { slackApiUrl: options.apiUrl } : {}) } },
    });
    app = new App({
      token: options.botToken,
      receiver: socket,
      socketMode: true,
      clientOptions,
      logger: boltLogger(logger),
      deferInitialization: true,
      // No listener reads Bolt's conversation context: not kept, not looked up per event.
      convoStore: false,
    });
  } else {
    if (!options.signingSecret) {
      throw new HandoffError(ErrorCodes.config, 'SLACK_SIGNING_SECRET is required for the HTTP receiver');
    }
    inbox = new Inbox({
      redis: options.redis,
      stream: slackInboxStream,
      seenPrefix: 'hf:slack:seen:event:',
      seenTtlSeconds: eventDedupeTtlSeconds,
      concurrency: options.inboundConcurrency ?? 8,
      batchMs: options.inboundBatchMs ?? 0,
      logger,
      // Bolt acknowledges events itself; the HTTP answer went out when the event was queued.
      handle: (raw) =>
        app.processEvent({
          body: JSON.parse(raw) as Record<string, unknown>,
          ack: async () => undefined,
          customProperties: { [deduplicatedProperty]: true },
        }),
    });
    receiver = new HonoReceiver({ signingSecret: options.signingSecret, logger, inbox });
    app = new App({
      token: options.botToken,
      receiver,
      clientOptions,
      logger: boltLogger(logger),
      deferInitialization: true,
      // No listener reads Bolt's conversation context: not kept, not looked up per event.
      convoStore: false,
    });
  }

  const routes = receiver ? new Hono() : undefined;
  if (routes && receiver) {
    const r = receiver;
    routes.post('/slack/events', (c) => r.handle(c));
  }

  const apiHost = options.apiUrl ? new URL(options.apiUrl).host : undefined;
  const fileHosts = ['files.slack.com', ...(apiHost ? [apiHost] : [])];
  const names = new Map<string, { name: string; at: number }>();
  let botUserId: string | undefined;
  let botId: string | undefined;

  const nameOf = async (userId: string, fallback?: string): Promise<string> => {
    const cached = names.get(userId);
    if (cached && Date.now() - cached.at < nameCacheTtlMs) return cached.name;
    try {
      const res = await client.users.info({ user: userId });
      const name = res.user?.profile?.display_name || res.user?.real_name || res.user?.name || fallback || userId;
      if (names.size > 10_000) names.clear();
      names.set(userId, { name: name.slice(0, 200), at: Date.now() });
      return name.slice(0, 200);
    } catch {
      return fallback || userId;
    }
  };
  const identity = async (userId: string, fallback?: string): Promise<Identity> => ({
    id: userId,
    name: await nameOf(userId, fallback),
  });

  /** True the first time an event id is seen (Slack retries with X-Slack-Retry-Num). */
  const firstDelivery = async (key: string): Promise<boolean> =>
    (await options.redis.set(`hf:slack:seen:${key}`, '1', 'EX', eventDedupeTtlSeconds, 'NX')) === 'OK';
  /** An event's first delivery: the inbox already de-duplicated it (HTTP), or it is checked here (Socket Mode). */
  const firstEvent = async (body: unknown, context: Record<string, unknown>): Promise<boolean> =>
    context[deduplicatedProperty] === true || firstDelivery(`event:${(body as { event_id: string }).event_id}`);
  /**
   * True the first time a command, shortcut or click with this trigger id arrives. The HTTP
   * receiver already ignores a replayed signature; this also covers a delivery signed again
   * (or redelivered over Socket Mode). Without a trigger id, or with Redis unreachable, the
   * request is handled (and then fails on Redis like everything else).
   */
  const firstTrigger = async (triggerId: unknown): Promise<boolean> =>
    typeof triggerId !== 'string' || triggerId === ''
      ? true
      : firstDelivery(`trigger:${triggerId.slice(0, 200)}`).catch(() => true);

  const postInThread = async (channel: string, thread: string, text: string) => {
    await client.chat
      .postMessage({ channel, thread_ts: thread, text, unfurl_links: false })
      .catch((err) => logger.warn({ err: describe(err), channel }, 'slack: could not post in the thread'));
  };

  const ephemeral = async (channel: string, user: string, text: string, thread?: string, blocks?: unknown[]) => {
    await client.chat
      .postEphemeral({
        channel,
        user,
        text,
        ...(thread ? { thread_ts: thread } : {}),
        ...(blocks ? { blocks: blocks as never } : {}),
      })
      .catch((err) => logger.warn({ err: describe(err), channel }, 'slack: could not post an ephemeral message'));
  };

  const cleanText = (text: string): string =>
    text
      .replace(botUserId ? new RegExp(`<@${botUserId}(\\|[^>]*)?>`, 'g') : /^$/, '')
      .replace(/<(https?:[^|>]+)\|([^>]+)>/g, '$2 ($1)')
      .replace(/<(https?:[^>]+)>/g, '$1')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&')
      .trim();

  /**
   * A new request from a mention, a DM, the message shortcut or the slash command. With
   * `when` it proposes a schedule instead (its plan becomes the standing plan); a refusal
   * of a schedule (the rule, the channel's policy) goes to the person alone.
   */
  const submit = async (
    inbound: HandoffInbound,
    input: {
      channel: string;
      thread: string;
      team?: string;
      userId: string;
      userName?: string;
      text: string;
      files: readonly SlackFile[];
      when?: string;
      /** Earlier messages of the thread or channel (not for a schedule proposal). */
      context?: ThreadContextInput;
    },
  ) => {
    const conversation: ConversationRef = {
      surface: 'slack',
      channel: input.channel,
      thread: input.thread,
      ...(input.team ? { workspace: input.team } : {}),
    };
    const { accepted, refused } = await downloadSlackFiles(input.files, {
      token: options.botToken,
      limits: {
        maxBytes: options.limits.maxInputBytes,
        maxFiles: options.limits.maxFilesPerRequest,
        extensions: defaultInputExtensions,
      },
      allowedHosts: fileHosts,
    });
    if (refused.length > 0) {
      await postInThread(
        input.channel,
        input.thread,
        `Not used:\n${refused.map((f) => `• ${escapeText(f.name)}: ${escapeText(f.reason)}`).join('\n')}`,
      );
    }
    let task: Task;
    try {
      const requester = await identity(input.userId, input.userName);
      task =
        input.when === undefined
          ? await inbound.submitRequest({
              conversation,
              requester,
              text: input.text,
              files: accepted,
              ...(input.context ? { context: input.context } : {}),
            })
          : await inbound.schedules.propose({
              conversation,
              requester,
              when: input.when,
              text: input.text,
              files: accepted,
            });
    } catch (err) {
      for (const f of accepted) if (f.body instanceof Readable) f.body.destroy();
      if (input.when !== undefined) {
        await ephemeral(input.channel, input.userId, refusalText(err, logger), input.thread);
        return;
      }
      const e = asUnavailable(err);
      if (e.code === 'handoff_internal') logger.error({ err: describe(err) }, 'slack: request failed');
      const words =
        e.code === 'handoff_internal' ? 'something went wrong on our side; the error was logged' : e.message;
      await postInThread(input.channel, input.thread, `:warning: ${escapeText(words)}`);
      return;
    }
    await inbound
      .acknowledge(task)
      .catch((err) => logger.warn({ err: describe(err), taskId: task.id }, 'slack: could not acknowledge'));
  };

  /** The task a Slack click names; not found when it is missing or another surface's. */
  const slackTask = async (inbound: HandoffInbound, taskId: string): Promise<Task> => {
    const task = await inbound.task(taskId, 'slack');
    if (!task) throw new HandoffError(ErrorCodes.notFound, `no task ${taskId}`);
    return task;
  };

  /** The gateway's refusal wording, for the checks made here before a dialog opens. */
  const notApproverText = (inbound: HandoffInbound, task: Task) => {
    const approvers = inbound.approversFor(task.conversation);
    return `You are not an approver here; ask ${approvers ? mentionApprovers(approvers) : 'someone else in this channel'}.`;
  };

  /** A message in a task's thread from the requester or an approver reaches the agent. */
  const maybeReply = async (
    inbound: HandoffInbound,
    channel: string,
    thread: string,
    userId: string,
    text: string,
    mentioned = false,
  ) => {
    const conversation: ConversationRef = { surface: 'slack', channel, thread };
    const task = await inbound.taskInThread(conversation);
    // A mention in the thread of a task that ended for good (or expired) starts a new task there.
    if (mentioned && (!task || (isTerminal(task.state) && !takesFollowUps(task)))) return false;
    const by = await identity(userId);
    // While a run is live only the requester and approvers reach the agent; otherwise the gateway answers.
    if (task && runIsLive(task.state) && !(await inbound.maySteer(task, by))) return true;
    const outcome = await inbound.reply(conversation, by, cleanText(text));
    return task !== undefined || outcome !== 'ignored';
  };

  /** "remember that …": acknowledged in the thread; a proposal carries Accept / Dismiss for approvers. */
  const remember = async (
    inbound: HandoffInbound,
    channel: string,
    thread: string,
    team: string | undefined,
    userId: string,
    fact: string,
  ) => {
    try {
      const by = await identity(userId);
      const where = { surface: 'slack' as const, channel, ...(team ? { workspace: team } : {}) };
      const outcome = await inbound.channelSettings.remember(where, by, fact);
      const words = escapeText(outcome.message);
      await client.chat.postMessage({
        channel,
        thread_ts: thread,
        text: words,
        ...(outcome.status === 'proposed'
          ? {
              blocks: [
                { type: 'section', text: { type: 'mrkdwn', text: words } },
                ...memoryProposalBlocks([outcome.proposal]),
              ] as never,
            }
          : {}),
        unfurl_links: false,
      });
    } catch (err) {
      await postInThread(channel, thread, `:warning: ${refusalText(err, logger)}`);
    }
  };

  const register = (inbound: HandoffInbound) => {
    app.error(async (err) => {
      logger.error({ err: describe(err) }, 'slack: listener error');
    });

    app.event('app_mention', async ({ event, body, context: boltContext }) => {
      const e = event as typeof event & { files?: SlackFile[]; team?: string };
      if (!e.user) return;
      try {
        if (!(await firstEvent(body, boltContext))) return;
        if (e.thread_ts && (await maybeReply(inbound, e.channel, e.thread_ts, e.user, e.text, true))) return;
        const text = cleanText(e.text);
        // "@handoff remember that …" goes to the channel's memory: no task.
        const fact = e.files?.length ? undefined : rememberedFact(text);
        if (fact !== undefined) {
          await remember(inbound, e.channel, e.thread_ts ?? e.ts, e.team, e.user, fact);
          return;
        }
        // "@handoff every Monday 9:00 Europe/Berlin: post the sales brief" proposes a schedule.
        const scheduled = splitScheduleMessage(text);
        // A mention in a thread (not a task's) or pointing "above": the earlier messages go along.
        const maxContext = options.limits.threadContextMessages ?? defaultThreadContextMessages;
        const context =
          !scheduled && maxContext > 0 && (e.thread_ts || refersToEarlierMessages(text))
            ? await readSlackContext(client, {
                channel: e.channel,
                ...(e.thread_ts ? { threadTs: e.thread_ts } : {}),
                beforeTs: e.ts,
                maxMessages: maxContext,
                self: { ...(botUserId ? { userId: botUserId } : {}), ...(botId ? { botId } : {}) },
                nameOf: (id) => nameOf(id),
              })
            : undefined;
        await submit(inbound, {
          channel: e.channel,
          thread: e.thread_ts ?? e.ts,
          ...(e.team ? { team: e.team } : {}),
          userId: e.user,
          text: scheduled ? scheduled.request : text,
          files: e.files ?? [],
          ...(scheduled ? { when: scheduled.when } : {}),
          ...(context ? { context } : {}),
        });
      } catch (err) {
        await reportFailure(err, e.channel, e.thread_ts ?? e.ts);
      }
    });

    app.event('message', async ({ event, body, context: boltContext }) => {
      const m = event as unknown as {
        subtype?: string;
        bot_id?: string;
        user?: string;
        text?: string;
        ts: string;
        thread_ts?: string;
        channel: string;
        channel_type?: string;
        files?: SlackFile[];
        team?: string;
      };
      if ((m.subtype && m.subtype !== 'file_share') || m.bot_id || !m.user) return;
      const text = m.text ?? '';
      // In channels a mention arrives as app_mention too; that listener handles it.
      if (m.channel_type !== 'im' && botUserId && text.includes(`<@${botUserId}`)) return;
      try {
        if (!(await firstEvent(body, boltContext))) return;
        if (m.thread_ts && (await maybeReply(inbound, m.channel, m.thread_ts, m.user, text))) return;
        if (m.channel_type === 'im' && !m.thread_ts) {
          await submit(inbound, {
            channel: m.channel,
            thread: m.ts,
            ...(m.team ? { team: m.team } : {}),
            userId: m.user,
            text: cleanText(text),
            files: m.files ?? [],
          });
        }
      } catch (err) {
        await reportFailure(err, m.channel, m.thread_ts ?? m.ts);
      }
    });

    app.shortcut(callbackIds.messageShortcut, async ({ shortcut, ack }) => {
      await ack();
      if (!(await firstTrigger(shortcut.trigger_id))) return;
      const s = shortcut as unknown as {
        user: { id: string; name?: string };
        channel: { id: string };
        team?: { id?: string };
        message: { ts: string; thread_ts?: string; text?: string; files?: SlackFile[]; user?: string };
      };
      const thread = s.message.thread_ts ?? s.message.ts;
      try {
        const author = s.message.user ? ` (message from ${await nameOf(s.message.user)})` : '';
        await submit(inbound, {
          channel: s.channel.id,
          thread,
          ...(s.team?.id ? { team: s.team.id } : {}),
          userId: s.user.id,
          ...(s.user.name ? { userName: s.user.name } : {}),
          text: `Handle this message${author}:\n${cleanText(s.message.text ?? '') || '(no text; see the files)'}`,
          files: s.message.files ?? [],
        });
      } catch (err) {
        await reportFailure(err, s.channel.id, thread);
      }
    });

    app.command('/handoff', async ({ command, ack, respond }) => {
      const text = cleanText(command.text ?? '');
      if (!text) {
        await ack({ response_type: 'ephemeral', text: usageText });
        return;
      }
      const sub = parseCommand(text);
      if (sub.kind === 'usage') {
        await ack({ response_type: 'ephemeral', text: sub.text });
        return;
      }
      await ack();
      if (!(await firstTrigger(command.trigger_id))) return;
      /** Only the person sees it; the response URL works even where the bot is not a member. */
      const tell = async (words: string, blocks?: unknown[]) => {
        try {
          await client.chat.postEphemeral({
            channel: command.channel_id,
            user: command.user_id,
            text: words,
            ...(blocks ? { blocks: blocks as never } : {}),
          });
        } catch {
          await respond({
            response_type: 'ephemeral',
            text: words,
            ...(blocks ? { blocks: blocks as never } : {}),
          }).catch((err) => logger.warn({ err: describe(err) }, 'slack: could not answer /handoff'));
        }
      };
      if (sub.kind === 'schedules') {
        try {
          const message = renderBlocks(await inbound.schedules.list({ surface: 'slack', channel: command.channel_id }));
          await tell(message.text, message.blocks);
        } catch (err) {
          await tell(refusalText(err, logger));
        }
        return;
      }
      if (sub.kind === 'schedule') {
        await proposeFromCommand(inbound, command, sub, tell);
        return;
      }
      if (sub.kind === 'grants') {
        // The channel's standing grants, for its approvers, each with a Revoke button.
        try {
          const by = await identity(command.user_id, command.user_name);
          const where = {
            surface: 'slack' as const,
            ...(command.team_id ? { workspace: command.team_id } : {}),
            channel: command.channel_id,
          };
          const message = grantsBlocks(command.channel_id, await inbound.listGrants(where, by));
          await tell(message.text, message.blocks);
        } catch (err) {
          await tell(refusalText(err, logger));
        }
        return;
      }
      if (sub.kind === 'connections') {
        try {
          const by = await identity(command.user_id, command.user_name);
          const message = renderBlocks(await inbound.connections('slack', by));
          await tell(message.text, message.blocks);
        } catch (err) {
          await tell(refusalText(err, logger));
        }
        return;
      }
      if (sub.kind === 'instructions' || sub.kind === 'memory') {
        try {
          const by = await identity(command.user_id, command.user_name);
          const where = { surface: 'slack' as const, channel: command.channel_id, workspace: command.team_id };
          const settings = inbound.channelSettings;
          if (sub.kind === 'instructions' && sub.clear)
            await tell(escapeText(await settings.clearInstructions(where, by)));
          else if (sub.kind === 'instructions' && sub.text)
            await tell(escapeText(await settings.setInstructions(where, by, sub.text)));
          else {
            const message = channelSettingsMessage(await settings.view(where, by));
            await tell(message.text, message.blocks);
          }
        } catch (err) {
          await tell(refusalText(err, logger));
        }
        return;
      }
      try {
        // The request becomes a message in the channel; its thread is the task's thread.
        const root = await client.chat.postMessage({
          channel: command.channel_id,
          text: `<@${command.user_id}> handed off: ${escapeText(text)}`,
          unfurl_links: false,
        });
        if (!root.ts) return;
        await submit(inbound, {
          channel: command.channel_id,
          thread: root.ts,
          team: command.team_id,
          userId: command.user_id,
          userName: command.user_name,
          text,
          files: [],
        });
      } catch (err) {
        logger.warn({ err: describe(err) }, 'slack: /handoff failed');
        // The response URL works even where the bot is not a member, unlike chat.postEphemeral.
        await respond({ response_type: 'ephemeral', text: notMemberText }).catch(() => undefined);
      }
    });

    registerSchedules(inbound);
    registerConnections(inbound);

    /** A button click: ack at once, parse its value, call the gateway, answer privately. */
    const onButton = <V>(
      actionId: string | RegExp,
      parse: (raw: unknown) => V | undefined,
      run: (value: V, by: Identity) => Promise<string | undefined>,
    ) =>
      app.action(actionId, async ({ ack, body, action }) => {
        await ack();
        const b = body as {
          user: { id: string; name?: string };
          trigger_id?: string;
          channel?: { id: string };
          message?: { thread_ts?: string };
        };
        if (!(await firstTrigger(b.trigger_id))) return;
        const channel = b.channel?.id ?? '';
        const thread = b.message?.thread_ts;
        const value = parse((action as { value?: unknown }).value);
        if (!value) {
          await ephemeral(channel, b.user.id, 'This button is not one Handoff recognises.', thread);
          return;
        }
        try {
          // The gateway decides who may act (policy, SLACK_APPROVERS, user groups); a refusal is shown below.
          const words = await run(value, await identity(b.user.id, b.user.name));
          if (words) await ephemeral(channel, b.user.id, words, thread);
        } catch (err) {
          await ephemeral(channel, b.user.id, refusalText(err, logger), thread);
        }
      });

    for (const outcome of ['approved', 'denied'] as const) {
      onButton(outcome === 'approved' ? actionIds.approve : actionIds.deny, decodeButtonValue, async (v, by) => {
        await inbound.decide({
          taskId: v.taskId,
          planVersion: v.version,
          planHash: v.hash,
          by,
          outcome,
          surface: 'slack',
        });
        return undefined;
      });
      onButton(
        outcome === 'approved' ? actionIds.actionApprove : actionIds.actionDeny,
        (raw) => {
          const v = parseJson(raw) as { t?: unknown; a?: unknown } | undefined;
          return typeof v?.t === 'string' && typeof v.a === 'string' && v.t.length <= 64 && v.a.length <= 128
            ? { taskId: v.t, approvalId: v.a }
            : undefined;
        },
        async (v, by) => {
          await inbound.decideAction({ ...v, by, outcome, surface: 'slack' });
          return undefined;
        },
      );
    }

    // "Approve for the rest of this run" / "Always allow in this channel": authorised exactly like Approve.
    for (const grant of ['run', 'channel'] as const) {
      onButton(
        grant === 'run' ? grantActionIds.grantRun : grantActionIds.grantChannel,
        (raw) => {
          const v = parseJson(raw) as { t?: unknown; a?: unknown } | undefined;
          return typeof v?.t === 'string' && typeof v.a === 'string' && v.t.length <= 64 && v.a.length <= 128
            ? { taskId: v.t, approvalId: v.a }
            : undefined;
        },
        (v, by) => inbound.decideAction({ ...v, by, outcome: 'approved', surface: 'slack', grant }),
      );
    }
    onButton(revokeGrantActionPattern, parseRevokeValue, (id, by) => inbound.revokeGrant({ id, by, surface: 'slack' }));

    onButton(
      actionIds.cancel,
      (raw) => {
        const v = parseJson(raw) as { t?: unknown } | undefined;
        return typeof v?.t === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v.t) ? v.t : undefined;
      },
      (taskId, by) => inbound.cancel(taskId, by, 'slack'),
    );

    // Channel memory: Forget in `/handoff memory`, Accept / Dismiss on proposed facts.
    onButton(memoryActionIds.forget, decodeMemoryValue, (v, by) =>
      v.channel
        ? inbound.channelSettings.forget({ surface: 'slack', channel: v.channel }, by, v.id)
        : Promise.resolve('This button is not one Handoff recognises.'),
    );
    for (const outcome of ['accept', 'dismiss'] as const)
      onButton(memoryActionIds[outcome], decodeMemoryValue, (v, by) =>
        inbound.channelSettings.decideProposal({ proposalId: v.id, by, outcome, surface: 'slack' }),
      );

    app.action(actionIds.requestChanges, async ({ ack, body, action }) => {
      await ack();
      const b = body as {
        user: { id: string };
        trigger_id?: string;
        channel?: { id: string };
        message?: { thread_ts?: string };
      };
      const channel = b.channel?.id ?? '';
      const value = decodeButtonValue((action as { value?: unknown }).value);
      if (!value || !b.trigger_id) {
        await ephemeral(channel, b.user.id, 'This button is not one Handoff recognises.', b.message?.thread_ts);
        return;
      }
      try {
        const task = await slackTask(inbound, value.taskId);
        // The requester or an approver (as the gateway decides it) may ask for changes to a plan.
        if (!(await inbound.maySteer(task, await identity(b.user.id)))) {
          await ephemeral(channel, b.user.id, notApproverText(inbound, task), b.message?.thread_ts);
          return;
        }
        await client.views.open({ trigger_id: b.trigger_id, view: changesModal(value, channel) as never });
      } catch (err) {
        await ephemeral(channel, b.user.id, refusalText(err, logger), b.message?.thread_ts);
      }
    });

    app.view(callbackIds.changesModal, async ({ ack, body, view }) => {
      const text = String(
        (view.state.values as Record<string, Record<string, { value?: string | null }>>).changes?.text?.value ?? '',
      ).trim();
      if (text.length < 3) {
        await ack({ response_action: 'errors', errors: { changes: 'Say what should change.' } });
        return;
      }
      await ack();
      let meta: (PlanButtonValue & { channel: string }) | undefined;
      try {
        const raw = JSON.parse(view.private_metadata) as { c?: unknown };
        const decoded = decodeButtonValue(view.private_metadata);
        if (decoded && typeof raw.c === 'string') meta = { ...decoded, channel: raw.c };
      } catch {
        meta = undefined;
      }
      if (!meta) return;
      const userId = body.user.id;
      try {
        const task = await slackTask(inbound, meta.taskId);
        const by = await identity(userId, body.user.name);
        if (!(await inbound.maySteer(task, by))) {
          await ephemeral(meta.channel, userId, notApproverText(inbound, task), task.conversation.thread);
          return;
        }
        // The gateway re-renders the old card: no buttons, and who asked for changes.
        await inbound.requestChanges({
          taskId: meta.taskId,
          planVersion: meta.version,
          planHash: meta.hash,
          by,
          text,
          surface: 'slack',
        });
        await postInThread(
          task.conversation.channel,
          task.conversation.thread,
          `${escapeText(by.name)} asked for changes: “${escapeText(text)}”. Drafting plan version ${meta.version + 1}…`,
        );
      } catch (err) {
        await ephemeral(meta.channel, userId, refusalText(err, logger));
      }
    });

    app.event('app_home_opened', async ({ event, body, context: boltContext }) => {
      if (!(await firstEvent(body, boltContext))) return;
      const e = event as { user: string; tab?: string };
      if (e.tab && e.tab !== 'home') return;
      await publishHome(inbound, e.user);
    });
  };

  const status = (text: string): StatusView => ({ kind: 'status', text, tone: 'info', demo: false });

  const deleteMessage = async (channel: string, ts: string) => {
    await client.chat
      .delete({ channel, ts })
      .catch((err) => logger.warn({ err: describe(err), channel }, 'slack: could not delete a message'));
  };

  /**
   * `/handoff schedule "<when>" <request>`: the rule is checked before anything is posted,
   * then a top-level message in the channel gives the proposal a thread (a slash command
   * has no message of its own), and its plan card is drafted there. A refusal removes
   * that message again and is told to the person alone.
   */
  const proposeFromCommand = async (
    inbound: HandoffInbound,
    command: { channel_id: string; team_id?: string; user_id: string; user_name?: string },
    input: { when: string; request: string },
    tell: (words: string) => Promise<void>,
  ) => {
    const target: ChannelRef = {
      surface: 'slack',
      channel: command.channel_id,
      ...(command.team_id ? { workspace: command.team_id } : {}),
    };
    let requester: Identity;
    let root: string;
    try {
      requester = await identity(command.user_id, command.user_name);
      await inbound.schedules.readTiming({ target, requester, when: input.when });
      root = await surface.postToChannel(
        target,
        status(`${requester.name} proposes a schedule, ${input.when}: ${shorten(input.request, 300)}`),
      );
    } catch (err) {
      await tell(refusalOrNotMember(err, logger));
      return;
    }
    let task: Task;
    try {
      task = await inbound.schedules.propose({
        conversation: { ...target, thread: root },
        requester,
        when: input.when,
        text: input.request,
        files: [],
      });
    } catch (err) {
      await deleteMessage(target.channel, root);
      await tell(refusalText(err, logger));
      return;
    }
    await inbound
      .acknowledge(task)
      .catch((err) => logger.warn({ err: describe(err), taskId: task.id }, 'slack: could not acknowledge'));
  };

  /** App Home again, with `notice` (the answer to a click there, escaped mrkdwn) on top. */
  const publishHome = async (inbound: HandoffInbound, userId: string, notice?: string) => {
    try {
      const home = await homeFor(inbound, userId);
      await client.views.publish({
        user_id: userId,
        view: homeView({ ...home, ...(notice ? { notice } : {}) }) as never,
      });
    } catch (err) {
      logger.warn({ err: describe(err) }, 'slack: could not publish App Home');
    }
  };

  /** The channel's schedules, as the ephemeral list that a click came from shows them now. */
  const refreshList = async (inbound: HandoffInbound, channel: string, respond: RespondFn | undefined) => {
    if (!respond) return;
    try {
      const message = renderBlocks(await inbound.schedules.list({ surface: 'slack', channel }));
      await respond({
        response_type: 'ephemeral',
        replace_original: true,
        text: message.text,
        blocks: message.blocks as never,
      });
    } catch (err) {
      logger.debug({ err: describe(err), channel }, 'slack: could not refresh the schedule list');
    }
  };

  /** Buttons and modals of scheduled briefs: a schedule's buttons, Edit, and "Schedule…" on results. */
  const registerSchedules = (inbound: HandoffInbound) => {
    app.action(scheduleActionPattern, async ({ ack, body, action, respond }) => {
      await ack();
      const b = body as {
        user: { id: string; name?: string };
        trigger_id?: string;
        channel?: { id: string };
        container?: { type?: string; is_ephemeral?: boolean };
        view?: { type?: string };
      };
      if (!(await firstTrigger(b.trigger_id))) return;
      const a = action as { action_id?: string; value?: unknown };
      const what = scheduleActionPattern.exec(a.action_id ?? '')?.[1] as ScheduleButtonAction | undefined;
      const scheduleId = decodeScheduleValue(a.value);
      const home = b.container?.type === 'view' || b.view?.type === 'home';
      const channel = b.channel?.id;
      // The answer (mrkdwn, escaped) goes where the click came from: App Home shows it on top, a channel ephemerally.
      const answer = async (words: string, refresh: boolean) => {
        if (home) await publishHome(inbound, b.user.id, words);
        else if (channel) {
          await ephemeral(channel, b.user.id, words);
          if (refresh && b.container?.is_ephemeral) await refreshList(inbound, channel, respond);
        }
      };
      if (!what || !scheduleId) {
        await answer('This button is not one Handoff recognises.', false);
        return;
      }
      try {
        const by = await identity(b.user.id, b.user.name);
        if (what === 'edit') {
          if (!b.trigger_id) return;
          // The owner edits the exact rule and request; others may only propose a new request.
          const own = await inbound.schedules.ownedSchedule(scheduleId, b.user.id);
          const target = own?.target.channel ?? channel;
          await client.views.open({
            trigger_id: b.trigger_id,
            view: scheduleEditModal(
              { id: scheduleId, ...(own ? { when: own.timing.text, request: own.request } : {}) },
              { ...(target ? { channel: target } : {}), home, owner: own !== undefined },
            ) as never,
          });
          return;
        }
        await answer(
          escapeText(await inbound.schedules.act({ scheduleId, action: what, by, from: { surface: 'slack' } })),
          true,
        );
      } catch (err) {
        await answer(refusalText(err, logger), false);
      }
    });

    app.view(callbackIds.scheduleEditModal, async ({ ack, body, view }) => {
      const values = view.state.values as Record<string, Record<string, { value?: string | null }>>;
      const when = String(values.when?.when?.value ?? '').trim();
      const request = String(values.request?.request?.value ?? '').trim();
      if (!when && !request) {
        await ack({ response_action: 'errors', errors: { when: 'Say the new time, or change the request.' } });
        return;
      }
      await ack();
      const meta = parseJson(view.private_metadata) as { s?: unknown; c?: unknown; h?: unknown } | undefined;
      const scheduleId = decodeScheduleValue(JSON.stringify({ s: meta?.s }));
      if (!scheduleId) return;
      const channel = typeof meta?.c === 'string' ? meta.c : undefined;
      const userId = body.user.id;
      const answer = async (words: string) => {
        if (meta?.h === true) await publishHome(inbound, userId, words);
        else if (channel) await ephemeral(channel, userId, words);
      };
      try {
        const by = await identity(userId, body.user.name);
        const own = await inbound.schedules.ownedSchedule(scheduleId, userId);
        const newRequest = request && request !== own?.request ? request : undefined;
        const where = own?.target.channel ?? channel;
        let opened: ConversationRef | undefined;
        // A new request needs a new approval: its plan card gets a thread of its own, a new
        // message in the channel, opened by the gateway only once its checks passed.
        const openThread = async (): Promise<ConversationRef> => {
          if (!where) throw new HandoffError(ErrorCodes.invalidInput, 'edit the request from /handoff schedules');
          const target: ChannelRef = {
            surface: 'slack',
            channel: where,
            ...(own?.target.workspace ? { workspace: own.target.workspace } : {}),
          };
          const root = await surface.postToChannel(
            target,
            status(`${by.name} proposes a new request for schedule ${scheduleId}: ${shorten(newRequest ?? '', 300)}`),
          );
          opened = { ...target, thread: root };
          return opened;
        };
        try {
          const words = await inbound.schedules.act({
            scheduleId,
            action: 'edit',
            by,
            from: { surface: 'slack' },
            ...(when ? { when } : {}),
            ...(newRequest ? { text: newRequest, openThread } : {}),
          });
          await answer(escapeText(words));
        } catch (err) {
          // Refused after the thread was opened (the request itself): nothing is left behind.
          if (opened) await deleteMessage(opened.channel, opened.thread);
          throw err;
        }
      } catch (err) {
        await answer(refusalOrNotMember(err, logger));
      }
    });

    app.action(actionIds.scheduleResult, async ({ ack, body, action }) => {
      await ack();
      const b = body as {
        user: { id: string };
        trigger_id?: string;
        channel?: { id: string };
        message?: { thread_ts?: string };
      };
      const channel = b.channel?.id ?? '';
      const v = parseJson((action as { value?: unknown }).value) as { t?: unknown } | undefined;
      const taskId = typeof v?.t === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v.t) ? v.t : undefined;
      if (!taskId || !b.trigger_id || !channel) {
        await ephemeral(channel, b.user.id, 'This button is not one Handoff recognises.', b.message?.thread_ts);
        return;
      }
      try {
        await client.views.open({ trigger_id: b.trigger_id, view: scheduleModal(taskId, channel) as never });
      } catch (err) {
        await ephemeral(channel, b.user.id, refusalText(err, logger), b.message?.thread_ts);
      }
    });

    app.view(callbackIds.scheduleModal, async ({ ack, body, view }) => {
      const values = view.state.values as Record<string, Record<string, { value?: string | null }>>;
      const when = String(values.when?.text?.value ?? '').trim();
      if (when.length < 3) {
        await ack({ response_action: 'errors', errors: { when: 'Say when, e.g. "every weekday at 9:00".' } });
        return;
      }
      await ack();
      const meta = parseJson(view.private_metadata) as { t?: unknown; c?: unknown } | undefined;
      if (typeof meta?.t !== 'string' || typeof meta.c !== 'string') return;
      const userId = body.user.id;
      try {
        const by = await identity(userId, body.user.name);
        // Posts a new top-level message for the proposal; its plan card is drafted in that thread.
        await inbound.schedules.proposeFrom({ taskId: meta.t, when, by, surface: 'slack' });
      } catch (err) {
        const thread = (await inbound.task(meta.t, 'slack').catch(() => undefined))?.conversation.thread;
        await ephemeral(meta.c, userId, refusalOrNotMember(err, logger), thread);
      }
    });
  };

  /**
   * Connect on a Connect card or in `/handoff connections`, and Disconnect there. The
   * sign-in link goes to the clicker alone, in an ephemeral message; a list shown
   * ephemerally is replaced with its new state.
   */
  const registerConnections = (inbound: HandoffInbound) => {
    /** Connect as the clicker: their sign-in link, or "already connected", only to them. */
    const connect = async (
      channel: string,
      thread: string | undefined,
      user: { id: string; name?: string },
      value: { taskId?: string; connector: string },
    ) => {
      const answer = await inbound.connect({
        connector: value.connector,
        by: await identity(user.id, user.name),
        surface: 'slack',
        ...(value.taskId ? { taskId: value.taskId } : {}),
      });
      if (answer.status === 'connected') {
        await ephemeral(channel, user.id, escapeText(answer.message), thread);
        return;
      }
      const message = connectLinkMessage(answer);
      await ephemeral(channel, user.id, message.text, thread, message.blocks);
    };

    app.action(actionIds.connect, async ({ ack, body, action }) => {
      await ack();
      const b = body as {
        user: { id: string; name?: string };
        trigger_id?: string;
        channel?: { id: string };
        message?: { thread_ts?: string };
      };
      if (!(await firstTrigger(b.trigger_id))) return;
      const channel = b.channel?.id ?? '';
      const thread = b.message?.thread_ts;
      const value = decodeConnectValue((action as { value?: unknown }).value);
      if (!value?.taskId) {
        await ephemeral(channel, b.user.id, 'This button is not one Handoff recognises.', thread);
        return;
      }
      try {
        await connect(channel, thread, b.user, value);
      } catch (err) {
        await ephemeral(channel, b.user.id, refusalText(err, logger), thread);
      }
    });

    // The link button of the private answer: Slack opens the page; the click needs only an ack.
    app.action(actionIds.connectOpen, async ({ ack }) => {
      await ack();
    });

    app.action(connectionActionPattern, async ({ ack, body, action, respond }) => {
      await ack();
      const b = body as {
        user: { id: string; name?: string };
        trigger_id?: string;
        channel?: { id: string };
        container?: { is_ephemeral?: boolean };
      };
      if (!(await firstTrigger(b.trigger_id))) return;
      const a = action as { action_id?: string; value?: unknown };
      const what = connectionActionPattern.exec(a.action_id ?? '')?.[1];
      const value = decodeConnectValue(a.value);
      const channel = b.channel?.id ?? '';
      if (!what || !value) {
        await ephemeral(channel, b.user.id, 'This button is not one Handoff recognises.');
        return;
      }
      try {
        if (what === 'connect') {
          await connect(channel, undefined, b.user, { connector: value.connector });
          return;
        }
        const by = await identity(b.user.id, b.user.name);
        const words = await inbound.disconnect({ connector: value.connector, by, surface: 'slack' });
        await ephemeral(channel, b.user.id, escapeText(words));
        if (b.container?.is_ephemeral && respond) {
          const list = renderBlocks(await inbound.connections('slack', by));
          await respond({
            response_type: 'ephemeral',
            replace_original: true,
            text: list.text,
            blocks: list.blocks as never,
          }).catch((err) => logger.debug({ err: describe(err) }, 'slack: could not refresh the connections list'));
        }
      } catch (err) {
        await ephemeral(channel, b.user.id, refusalText(err, logger));
      }
    });
  };

  /** My recent tasks, the plans waiting for me and my schedules, as Handoff lists them on the way in. */
  const homeFor = async (
    inbound: HandoffInbound,
    userId: string,
  ): Promise<{ mine: HomeTask[]; waiting: HomeTask[]; schedules: ScheduleItem[] }> => {
    const toHome = (t: Task): HomeTask => ({ id: t.id, request: t.request, state: t.state, updatedAt: t.updatedAt });
    const mine = (await inbound.tasksOf('slack', userId, 15)).map(toHome);
    // Only where approvers are named and this person is one; never their own plans.
    const waiting = (await inbound.awaitingApprovalBy('slack', await identity(userId), 15)).map(toHome);
    const schedules = (await inbound.schedules.ownedBy('slack', userId))
      .filter((x) => x.status !== 'deleted')
      .sort((x, y) => x.createdAt.localeCompare(y.createdAt))
      .map(homeSchedule);
    return { mine, waiting, schedules };
  };

  const reportFailure = async (err: unknown, channel: string, thread: string) => {
    const e = asUnavailable(err);
    logger.warn({ err: describe(err), channel }, 'slack: could not handle a message');
    await postInThread(
      channel,
      thread,
      `:warning: ${escapeText(e.code === 'handoff_internal' ? 'something went wrong on our side; the error was logged' : e.message)}`,
    );
  };

  let started = false;
  return {
    surface,
    userGroups,
    ...(routes ? { routes } : {}),
    async start(inbound: HandoffInbound) {
      if (started) return;
      started = true;
      register(inbound);
      try {
        await app.init();
        const auth = await client.auth.test();
        botUserId = auth.user_id;
        botId = auth.bot_id;
      } catch (err) {
        const e = describe(err);
        throw new Error(`Slack refused the bot token (auth.test: ${e.slackError ?? e.message}); check SLACK_BOT_TOKEN`);
      }
      if (options.appToken) await app.start();
      await inbox?.start();
      logger.info({ mode: options.appToken ? 'socket' : 'http', botUserId }, 'slack: ready');
    },
    async close() {
      await inbox?.stop();
      surface.close();
      if (options.appToken && started) await app.stop().catch(() => undefined);
    },
  };
}

/**
 * Words for the person whose click was refused (ephemeral). Unknown errors are logged
 * and not shown.
 */
function refusalText(err: unknown, logger: Logger): string {
  const e = asUnavailable(err);
  if (e.code === 'handoff_internal') {
    logger.error({ err: describe(err) }, 'slack: action failed');
    return 'Something went wrong on our side; the error was logged.';
  }
  const text = e.message.charAt(0).toUpperCase() + e.message.slice(1);
  const escaped = escapeText(/[.!?]$/.test(text) ? text : `${text}.`);
  // "ask <@U…>, <!subteam^S…>": the gateway names approvers with mentionApprovers; keep those mentions live.
  return e.code === ErrorCodes.notApprover
    ? escaped.replace(/&lt;(@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+)&gt;/g, '<$1>')
    : escaped;
}

const usageText =
  'Usage: `/handoff <what you need done>` · `/handoff schedule "every weekday at 9:00" <what to post>` · `/handoff schedules` (this channel\'s schedules) · `/handoff connections` (the services Handoff uses as you) · `/handoff grants` (this channel\'s standing grants) · `/handoff instructions [text|clear]` · `/handoff memory`';

const scheduleUsageText =
  'Usage: `/handoff schedule "every weekday at 9:00" <what to post>` or `/handoff schedule every Monday 9:00 Europe/Berlin: <what to post>`. For a request that starts with the word "schedule", mention @handoff instead.';

const notMemberText = 'Handoff could not post in this channel: invite it with `/invite @handoff` and try again.';

/** What to tell a person whose action was refused: how to invite the bot when it cannot post there. */
function refusalOrNotMember(err: unknown, logger: Logger): string {
  return err instanceof HandoffError && err.code === ErrorCodes.channelUnavailable
    ? notMemberText
    : refusalText(err, logger);
}

type SlashCommand =
  | { kind: 'request' }
  | { kind: 'schedules' }
  | { kind: 'connections' }
  | SettingsCommand
  | { kind: 'grants' }
  | { kind: 'schedule'; when: string; request: string }
  | { kind: 'usage'; text: string };

/**
 * What `/handoff …` asks for: `schedules` lists the channel's schedules; `connections` the
 * person's own connections; `schedule "<when>" <request>` (or `schedule <when>: <request>`,
 * or just `<when>: <request>`) proposes one; anything else is a request.
 */
export function parseCommand(text: string): SlashCommand {
  const trimmed = text.trim();
  if (/^schedules(\s+list)?$/i.test(trimmed)) return { kind: 'schedules' };
  if (/^connections(\s+list)?$/i.test(trimmed)) return { kind: 'connections' };
  const settings = parseSettingsCommand(trimmed);
  if (settings) return settings;
  if (/^grants(\s+list)?$/i.test(trimmed)) return { kind: 'grants' };
  const sub = /^schedule(?:\s+([\s\S]*))?$/i.exec(trimmed);
  if (sub) {
    const rest = (sub[1] ?? '').trim();
    const quoted = /^["“”]([^"“”]{1,300})["“”]\s*:?\s*([\s\S]*)$/.exec(rest);
    if (quoted) {
      const request = quoted[2]!.trim();
      return request
        ? { kind: 'schedule', when: quoted[1]!.trim(), request }
        : { kind: 'usage', text: scheduleUsageText };
    }
    const split = splitScheduleMessage(rest);
    return split ? { kind: 'schedule', ...split } : { kind: 'usage', text: scheduleUsageText };
  }
  const split = splitScheduleMessage(trimmed);
  return split ? { kind: 'schedule', ...split } : { kind: 'request' };
}

/** A schedule as App Home lists it: as in a channel's list, plus its channel. */
function homeSchedule(s: Schedule): ScheduleItem {
  return { ...scheduleItem(s), channel: s.target.channel };
}

function shorten(text: string, max: number): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Bolt and the WebClient log through pino; their messages never include tokens. */
function boltLogger(logger: Logger): BoltLogger {
  const child = logger.child({ component: 'slack-bolt' });
  let level: LogLevel = LogLevel.WARN;
  return {
    debug: (...msg: unknown[]) => child.debug(msg.map(String).join(' ')),
    info: (...msg: unknown[]) => child.info(msg.map(String).join(' ')),
    warn: (...msg: unknown[]) => child.warn(msg.map(String).join(' ')),
    error: (...msg: unknown[]) => child.error(msg.map(String).join(' ')),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

/** A button value we wrote as JSON; undefined for anything else. */
function parseJson(raw: unknown): unknown {
  if (typeof raw !== 'string' || raw.length > 2000) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
