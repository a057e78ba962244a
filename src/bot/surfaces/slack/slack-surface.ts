import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { webApi } from '@slack/bolt';
import type { Redis } from 'ioredis';
import { type Artifact, type ChannelRef, type ConversationRef, ErrorCodes, HandoffError } from '../../../core/index.ts';
import { type Logger, throttledLog } from '../../../observability/index.ts';
import type { ArtifactStore, AuditLog, StateStore } from '../../../storage/index.ts';
import type { ChatSurface, PersonInfo } from '../../chat-surface.ts';
import type { View } from '../../views.ts';
import { renderBlocks } from './block-kit.ts';
import { AssistantStatus, ProgressStreams } from './progress-stream.ts';
import {
  EditLimiter,
  isRateLimited,
  type RateGate,
  RedisRateGate,
  retryAfterMs,
  slackErrorCode,
} from './rate-limit.ts';

type WebClient = webApi.WebClient;

/**
 * Slack errors after which posting to that message or thread can never succeed: the
 * channel or message is gone, or the bot was removed. They are logged and audited, and
 * the call returns normally so a run never fails or retries forever because of them.
 */
export const undeliverableErrors: ReadonlySet<string> = new Set([
  'channel_not_found',
  'not_in_channel',
  'message_not_found',
  'is_archived',
  'thread_not_found',
  'cant_update_message',
  'edit_window_closed',
  'restricted_action',
]);

/**
 * Slack's answers to chat.postMessage when the bot cannot post a new message in a channel,
 * in words for the schedule's owner. A brief's channel refusing it pauses the schedule.
 */
export const channelRefusals: Readonly<Record<string, string>> = Object.freeze({
  not_in_channel: 'the bot is not a member of the channel',
  channel_not_found: 'the channel does not exist or the bot cannot see it',
  is_archived: 'the channel is archived',
  restricted_action: 'a workspace setting does not let the bot post there',
  restricted_action_read_only_channel: 'the channel is read-only',
  restricted_action_thread_only_channel: 'the channel takes replies in threads only',
  ekm_access_denied: 'administrators suspended posting there',
  no_permission: 'the bot has no permission to post there',
  team_access_not_granted: 'the bot has no access to that workspace',
});

/** Slack's answers to a DM that can never be delivered: logged, not retried. */
const undeliverableDms: ReadonlySet<string> = new Set([
  'channel_not_found',
  'user_not_found',
  'user_disabled',
  'messages_tab_disabled',
  'cannot_dm_bot',
  'not_in_channel',
  'restricted_action',
]);

/** A message reference for a post that could not be made: later edits of it are skipped. */
const lostPrefix = 'lost:';

export interface SlackSurfaceOptions {
  client: WebClient;
  logger: Logger;
  state: StateStore;
  store: ArtifactStore;
  audit?: AuditLog;
  /** Deliverables up to this size are uploaded into the thread; larger ones are posted as links. */
  maxUploadBytes: number;
  /** At most one edit per message per this interval (Slack allows about one per second). */
  minEditIntervalMs?: number;
  /** The longest `Retry-After` honoured before a post gives up (the notify job retries it later). */
  maxRetryAfterMs?: number;
  /** Attempts of one call that keeps answering 429. */
  maxRateLimitedAttempts?: number;
  /**
   * While a run is in progress and no newer progress arrives, the progress message is
   * re-sent this often with the elapsed time moved on: a visible sign of life.
   */
  heartbeatMs?: number;
  /**
   * Show a run's progress with Slack's native plan display (a chat stream with task
   * updates) where the workspace supports it; otherwise, or when false, a message edited
   * in place. Default true.
   */
  nativeProgress?: boolean;
  /** A progress stream is replaced by a fresh one after this long (Slack ends streams after about 5 minutes). */
  maxStreamAgeMs?: number;
  /** Set the assistant "is working…" status under the thread where available. Default true. */
  assistantStatus?: boolean;
  /**
   * Shares the edit interval and every `Retry-After` with all bots through Redis (keys
   * `hf:slack:rl:…`, expiring with the interval or Retry-After). Without it they hold
   * within this process only: enough for a single bot.
   */
  redis?: Redis;
}

/**
 * Slack as a chat surface: Block Kit messages in the task's thread, edited in place. A
 * run's progress is a native progress stream where Slack allows it (`progress-stream.ts`),
 * decided here so the gateway only ever posts and updates views.
 */
export class SlackSurface implements ChatSurface {
  readonly name = 'slack' as const;
  private readonly limiter: EditLimiter;
  private readonly maxRetryAfterMs: number;
  private readonly maxAttempts: number;
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private readonly streams: ProgressStreams;
  private readonly native: boolean;
  private readonly status: AssistantStatus | undefined;
  private readonly gate: RateGate | undefined;

  constructor(private readonly options: SlackSurfaceOptions) {
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    this.maxAttempts = options.maxRateLimitedAttempts ?? 4;
    this.gate = options.redis ? new RedisRateGate(options.redis) : undefined;
    this.limiter = new EditLimiter({
      minIntervalMs: options.minEditIntervalMs ?? 1000,
      maxRetryAfterMs: this.maxRetryAfterMs,
      maxAttempts: this.maxAttempts,
      ...(this.gate ? { gate: this.gate, onGateError: (err: unknown) => this.gateFailed(err) } : {}),
    });
    this.native = options.nativeProgress !== false;
    // Built even when native progress is off, so a stream begun before the switch still ends cleanly.
    this.streams = new ProgressStreams({
      client: options.client,
      logger: options.logger,
      state: options.state,
      // Streams and messages have distinct refs, so one limiter spaces both.
      limiter: this.limiter,
      heartbeatMs: options.heartbeatMs ?? 10_000,
      maxStreamAgeMs: options.maxStreamAgeMs ?? 240_000,
      isUndeliverable: (err) => undeliverableErrors.has(slackErrorCode(err) ?? ''),
      fallBack: async (conversation, view) => {
        const ref = await this.postMessage(conversation, view);
        if (view.cancellable) this.startHeartbeat(conversation, ref, view, Date.now());
        return ref;
      },
    });
    if (options.assistantStatus !== false) {
      this.status = new AssistantStatus({ client: options.client, logger: options.logger });
    }
  }

  async post(conversation: ConversationRef, view: View): Promise<string> {
    this.trackStatus(conversation, view);
    if (view.kind === 'progress' && this.native && !this.streams.fellBack(view.taskId)) {
      try {
        const ref = await this.streams.start(conversation, view);
        if (ref) return ref;
      } catch (err) {
        if (await this.swallowUndeliverable(err, conversation, 'post', view.taskId)) {
          return `${lostPrefix}${conversation.channel}:${conversation.thread}`;
        }
        throw err;
      }
    }
    return this.postMessage(conversation, view);
  }

  private async postMessage(conversation: ConversationRef, view: View): Promise<string> {
    const uploaded = view.kind === 'result' ? await this.deliverFiles(conversation, view.taskId) : [];
    try {
      const res = await this.send(conversation.channel, renderBlocks(view, { uploaded }), conversation.thread);
      return `${res.channel ?? conversation.channel}:${res.ts}`;
    } catch (err) {
      if (await this.swallowUndeliverable(err, conversation, 'post', taskIdOf(view))) {
        return `${lostPrefix}${conversation.channel}:${conversation.thread}`;
      }
      throw err;
    }
  }

  /** One chat.postMessage of rendered blocks, in a thread or at the top of a channel (or a DM). */
  private send(channel: string, message: ReturnType<typeof renderBlocks>, thread?: string) {
    return this.withRetryAfter('chat.postMessage', () =>
      this.options.client.chat.postMessage({
        channel,
        ...(thread ? { thread_ts: thread } : {}),
        text: message.text,
        blocks: message.blocks,
        unfurl_links: false,
        unfurl_media: false,
      }),
    );
  }

  /**
   * A new top-level message in a channel (a brief, or the root of a proposal). The ts it
   * returns is both the reference to edit it (`update()` reads a bare ts as a message in
   * the conversation's channel) and the thread under it.
   */
  async postToChannel(target: ChannelRef, view: View): Promise<string> {
    try {
      const res = await this.send(target.channel, renderBlocks(view));
      if (!res.ts) throw new Error('Slack answered chat.postMessage without a ts');
      return res.ts;
    } catch (err) {
      const code = slackErrorCode(err);
      const words = code ? channelRefusals[code] : undefined;
      if (!words) throw err;
      this.options.logger.warn(
        { slackError: code, channel: target.channel },
        `slack: cannot post in the channel (${code})`,
      );
      throw new HandoffError(ErrorCodes.channelUnavailable, `${words} (Slack: ${code})`, { cause: err });
    }
  }

  /**
   * A direct message from the bot (it appears in the app's Messages tab): Slack accepts a
   * user id as the channel of chat.postMessage, so no conversations.open is needed. A
   * person who cannot be messaged is logged, not retried.
   */
  async notifyPerson(_target: ChannelRef, personId: string, view: View): Promise<void> {
    try {
      await this.send(personId, renderBlocks(view));
    } catch (err) {
      const code = slackErrorCode(err);
      if (!code || !undeliverableDms.has(code)) throw err;
      this.options.logger.warn(
        { slackError: code, user: personId },
        `slack: could not send a direct message (${code})`,
      );
    }
  }

  /** From users.info: whether the person is still in the workspace, and their profile's zone. */
  async person(_target: ChannelRef, personId: string): Promise<PersonInfo | undefined> {
    try {
      const res = await this.withRetryAfter('users.info', () => this.options.client.users.info({ user: personId }));
      if (!res.user) return undefined;
      return { active: res.user.deleted !== true, ...(res.user.tz ? { tz: res.user.tz } : {}) };
    } catch (err) {
      this.options.logger.debug({ err: describe(err), user: personId }, 'slack: users.info failed');
      return undefined;
    }
  }

  /**
   * Edits a message. Edits of one message are coalesced (only the newest pending view
   * is sent) and spaced by the edit interval. A progress edit returns once it is queued,
   * so a chatty run never holds up other notifications; every other edit waits until
   * Slack has it.
   */
  async update(conversation: ConversationRef, ref: string, view: View): Promise<void> {
    if (ref.startsWith(lostPrefix)) return;
    if (ProgressStreams.isStreamRef(ref)) {
      const moved = this.streams.fallbackRefOf(ref);
      if (moved) return this.update(conversation, moved, view);
      this.trackStatus(conversation, view);
      // Only progress views are ever stored under a stream ref.
      if (view.kind !== 'progress') return;
      return this.streams.update(conversation, ref, view);
    }
    this.trackStatus(conversation, view);
    this.stopHeartbeat(ref);
    const [channel, ts] = splitRef(ref, conversation.channel);
    const send = async () => {
      const uploaded = view.kind === 'result' ? await this.uploadedNames(view.taskId) : [];
      const message = renderBlocks(view, { uploaded });
      await this.options.client.chat.update({ channel, ts, text: message.text, blocks: message.blocks });
    };
    const delivered = this.limiter.submit(ref, send).catch(async (err) => {
      if (await this.swallowUndeliverable(err, conversation, 'update', taskIdOf(view))) return;
      throw err;
    });
    if (view.kind === 'progress') {
      delivered.catch((err) =>
        this.options.logger.warn({ err: describe(err), taskId: view.taskId }, 'slack: progress edit failed'),
      );
      if (view.cancellable) this.startHeartbeat(conversation, ref, view, Date.now());
      return;
    }
    await delivered;
  }

  /** Stops pending edits and heartbeats (shutdown). */
  close(): void {
    for (const timer of this.heartbeats.values()) clearTimeout(timer);
    this.heartbeats.clear();
    this.streams.close();
    this.limiter.close();
  }

  /** "is working…" while a run's progress is shown; cleared with its final progress or result. */
  private trackStatus(conversation: ConversationRef, view: View): void {
    if (!this.status) return;
    let working: boolean;
    if (view.kind === 'progress') working = view.cancellable;
    else if (view.kind === 'result') working = false;
    else if (view.kind === 'brief' && view.state !== 'running') working = false;
    else return;
    this.status.set(conversation, working).catch(() => undefined);
  }

  /**
   * Re-sends a progress view with the elapsed time moved on, until newer progress, a
   * final view, or the end of the task. Only the bot that rendered the latest progress
   * keeps the heartbeat, so several bots never race on one message.
   */
  private startHeartbeat(
    conversation: ConversationRef,
    ref: string,
    view: Extract<View, { kind: 'progress' }>,
    since: number,
  ): void {
    const every = this.options.heartbeatMs ?? 10_000;
    const timer = setTimeout(async () => {
      const task = await this.options.state.getTask(view.taskId).catch(() => undefined);
      // Newer progress or a final view replaced this heartbeat meanwhile.
      if (this.heartbeats.get(ref) !== timer) return;
      this.heartbeats.delete(ref);
      if (!task || !['queued', 'running', 'waiting_for_approval'].includes(task.state)) return;
      const next = { ...view, elapsedMs: view.elapsedMs + (Date.now() - since) };
      const [channel, ts] = splitRef(ref, conversation.channel);
      this.limiter
        .submit(ref, async () => {
          const message = renderBlocks(next);
          await this.options.client.chat.update({ channel, ts, text: message.text, blocks: message.blocks });
        })
        .catch((err) => this.options.logger.debug({ err: describe(err) }, 'slack: heartbeat edit failed'));
      this.startHeartbeat(conversation, ref, view, since);
    }, every);
    timer.unref();
    this.heartbeats.set(ref, timer);
  }

  private stopHeartbeat(ref: string): void {
    const timer = this.heartbeats.get(ref);
    if (timer) clearTimeout(timer);
    this.heartbeats.delete(ref);
  }

  /**
   * Uploads the task's deliverables that fit the upload limit into the thread
   * (getUploadURLExternal → upload → completeUploadExternal). Each file is uploaded once:
   * a redelivered result event finds the marker and skips it.
   */
  private async deliverFiles(conversation: ConversationRef, taskId: string): Promise<string[]> {
    const { state, logger } = this.options;
    const task = await state.getTask(taskId);
    if (!task) return [];
    const names: string[] = [];
    for (const artifact of task.artifacts) {
      if (artifact.size > this.options.maxUploadBytes) continue;
      const slot = `upload:${artifact.sha256}:${artifact.name}`;
      if (await state.getMessageRef(taskId, slot)) {
        names.push(artifact.name);
        continue;
      }
      try {
        const fileId = await this.uploadStreamed(conversation, artifact);
        await state.setMessageRef(taskId, slot, fileId ?? 'uploaded');
        names.push(artifact.name);
      } catch (err) {
        if (await this.swallowUndeliverable(err, conversation, 'upload', taskId)) return names;
        // The result message still links the file, so nothing is lost.
        logger.warn({ err: describe(err), taskId, file: artifact.name }, 'slack: upload failed; posting a link');
      }
    }
    return names;
  }

  /**
   * One file, streamed from the artifact store to Slack's upload URL. filesUploadV2 would
   * read the whole file into memory first, so the three calls are made here instead.
   */
  private async uploadStreamed(conversation: ConversationRef, artifact: Artifact): Promise<string | undefined> {
    const { client, store } = this.options;
    const target = await this.withRetryAfter('files.getUploadURLExternal', () =>
      client.files.getUploadURLExternal({ filename: artifact.name, length: artifact.size }),
    );
    if (!target.upload_url || !target.file_id) throw new Error('Slack gave no upload URL');
    await streamTo(target.upload_url, await store.get(artifact.key), artifact.size);
    const done = await this.withRetryAfter('files.completeUploadExternal', () =>
      client.files.completeUploadExternal({
        files: [{ id: target.file_id!, title: artifact.name }],
        channel_id: conversation.channel,
        thread_ts: conversation.thread,
      }),
    );
    return (done.files as Array<{ id?: string }> | undefined)?.[0]?.id;
  }

  private async uploadedNames(taskId: string): Promise<string[]> {
    const task = await this.options.state.getTask(taskId);
    if (!task) return [];
    const names: string[] = [];
    for (const a of task.artifacts) {
      if (await this.options.state.getMessageRef(taskId, `upload:${a.sha256}:${a.name}`)) names.push(a.name);
    }
    return names;
  }

  /**
   * Retries a call that answered 429 after its `Retry-After`, a bounded number of times.
   * With the shared gate, a 429 blocks `method` on every bot for its Retry-After, and each
   * call first waits out such a block (at most `maxRetryAfterMs`).
   */
  private async withRetryAfter<T>(method: string, call: () => Promise<T>): Promise<T> {
    const key = `method:${method}`;
    for (let attempt = 1; ; attempt++) {
      const blocked = this.gate ? await this.gate.blockedFor(key).catch((err) => this.gateFailed(err, 0)) : 0;
      if (blocked > 0) await sleep(Math.min(blocked, this.maxRetryAfterMs));
      try {
        return await call();
      } catch (err) {
        if (!isRateLimited(err)) throw err;
        const wait = retryAfterMs(err);
        await this.gate?.block(key, wait).catch((e) => this.gateFailed(e));
        if (attempt >= this.maxAttempts || wait > this.maxRetryAfterMs) throw err;
        // Waited here whether or not the gate took the block: an unreachable gate must not
        // turn Retry-After into an immediate retry. Blocks other bots set are waited out above.
        await sleep(wait);
      }
    }
  }

  /** The shared gate is unreachable: this bot keeps its own spacing (reported at most every 30 s). */
  private readonly gateError = throttledLog((skipped, err) =>
    this.options.logger.warn(
      { err: describe(err), skipped },
      'slack: shared rate limits unavailable; spacing calls per bot',
    ),
  );

  private gateFailed<T>(err: unknown, fallback?: T): T {
    this.gateError(err);
    return fallback as T;
  }

  private async swallowUndeliverable(
    err: unknown,
    conversation: ConversationRef,
    what: string,
    taskId: string | undefined,
  ): Promise<boolean> {
    const code = slackErrorCode(err);
    if (!code || !undeliverableErrors.has(code)) return false;
    this.options.logger.warn(
      { slackError: code, channel: conversation.channel, thread: conversation.thread, taskId },
      `slack: could not ${what} in the thread (${code}); the task goes on without it`,
    );
    if (taskId && this.options.audit) {
      await this.options.audit
        .append({
          type: 'chat.delivery_failed',
          taskId,
          data: { surface: 'slack', action: what, error: code, channel: conversation.channel },
        })
        .catch(() => undefined);
    }
    return true;
  }
}

function taskIdOf(view: View): string | undefined {
  return 'taskId' in view ? view.taskId : undefined;
}

function splitRef(ref: string, fallbackChannel: string): [string, string] {
  const i = ref.lastIndexOf(':');
  return i > 0 ? [ref.slice(0, i), ref.slice(i + 1)] : [fallbackChannel, ref];
}

/** POSTs `body` (exactly `length` bytes) to an upload URL without holding it in memory. */
async function streamTo(url: string, body: Readable, length: number): Promise<void> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  await new Promise<void>((resolve, reject) => {
    const req = send(target, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      timeout: 120_000,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`upload answered HTTP ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('upload timed out')));
    pipeline(body, req).catch(reject);
  });
}

/** An error as a short loggable object: Slack's error code and message, never request data or tokens. */
export function describe(err: unknown): { code?: string; slackError?: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  const slackError = slackErrorCode(err);
  return {
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(slackError ? { slackError } : {}),
    message:
      typeof e?.message === 'string' ? e.message.replace(/xox[a-z]-[A-Za-z0-9-]+/g, 'xox?-[redacted]') : String(err),
  };
}
