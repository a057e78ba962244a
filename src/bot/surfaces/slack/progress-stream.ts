import type { types, webApi } from '@slack/bolt';
import type { ConversationRef, StepStatus } from '../../../core/index.ts';
import type { Logger } from '../../../observability/index.ts';
import type { StateStore } from '../../../storage/index.ts';
import { formatDuration, type ProgressView } from '../../views.ts';
import { renderBlocks } from './block-kit.ts';
import { type EditLimiter, slackErrorCode } from './rate-limit.ts';

type WebClient = webApi.WebClient;

/** A progress reference that names a Slack stream (`stream:{channel}:{ts}`) rather than a message. */
export const streamRefPrefix = 'stream:';

/** Slack's limits for streaming chunks: task and plan fields are capped at 256 characters. */
export const streamLimits = { maxFieldChars: 256, maxMarkdownChars: 12_000 } as const;

/** A task update as `chat.appendStream` takes it (`@slack/types` `TaskUpdateChunk`). */
export interface TaskUpdateChunk {
  type: 'task_update';
  id: string;
  title: string;
  status: 'pending' | 'in_progress' | 'complete' | 'error';
  details?: string;
  output?: string;
}
export interface PlanUpdateChunk {
  type: 'plan_update';
  title: string;
}
export interface MarkdownTextChunk {
  type: 'markdown_text';
  text: string;
}
export interface BlocksChunk {
  type: 'blocks';
  blocks: types.KnownBlock[];
}
export type StreamChunk = TaskUpdateChunk | PlanUpdateChunk | MarkdownTextChunk | BlocksChunk;

/**
 * Slack errors that mean the stream is over (it outlived Slack's limit of about five
 * minutes, or someone stopped it): the next update starts a fresh stream.
 */
const streamEndedErrors: ReadonlySet<string> = new Set(['message_not_in_streaming_state', 'stopped_by_user']);

export interface ProgressStreamsOptions {
  client: WebClient;
  logger: Logger;
  state: StateStore;
  /** Spaces the appends of one stream (one per interval, newest state wins, 429 honoured). */
  limiter: EditLimiter;
  /** With no new progress, the stream gets an append with the elapsed time this often. */
  heartbeatMs: number;
  /**
   * A stream is replaced by a fresh one (replaying every step) after this long: Slack ends
   * a stream about five minutes after it started, whatever is appended to it.
   */
  maxStreamAgeMs: number;
  /** Errors after which nothing can be posted in the thread (the surface logs and audits them). */
  isUndeliverable: (err: unknown) => boolean;
  /**
   * Called when streaming turns out not to be available for a task after its stream was
   * started: the surface posts the edited-in-place message instead and returns its ref.
   */
  fallBack: (conversation: ConversationRef, view: ProgressView) => Promise<string>;
}

interface Stream {
  conversation: ConversationRef;
  channel: string;
  ts: string;
  taskId: string;
  startedAt: number;
  title: string;
  /** The newest view and when it arrived (the heartbeat moves its elapsed time on). */
  latest: ProgressView;
  latestAt: number;
  /** What Slack shows per step, as last sent successfully. */
  sent: Array<TaskUpdateChunk['status'] | undefined>;
  sentActivity?: string;
  stopped: boolean;
  heartbeat?: NodeJS.Timeout;
  /** Set once the task fell back to a message: later updates go there. */
  fallbackRef?: string;
}

/**
 * Slack's native progress display for a run: a stream in the task's thread
 * (`chat.startStream` with `task_display_mode: plan`) with a `plan_update` carrying the
 * plan's summary and the elapsed time and one `task_update` per step, appended to as the
 * run moves (`chat.appendStream`) and stopped when it ends (`chat.stopStream`).
 *
 * Where streaming is not available (an error on start or on a later append other than
 * "the stream is over"), the task falls back to the edited-in-place message for good.
 * That choice lives in memory and in the task's `progress` message ref, which is replaced
 * by the fallback message's ref, so every bot sees it.
 */
export class ProgressStreams {
  private readonly streams = new Map<string, Stream>();
  /** Tasks whose progress is a message because streaming failed for them (in memory). */
  private readonly fallbackTasks = new Set<string>();

  constructor(private readonly options: ProgressStreamsOptions) {}

  static isStreamRef(ref: string): boolean {
    return ref.startsWith(streamRefPrefix);
  }

  /** Whether this task already fell back to the edited message. */
  fellBack(taskId: string): boolean {
    return this.fallbackTasks.has(taskId);
  }

  /** The message ref that replaced this stream after a fallback, if any. */
  fallbackRefOf(ref: string): string | undefined {
    return this.streams.get(ref)?.fallbackRef;
  }

  /**
   * Starts the stream for a run's first progress view. Returns its ref, or undefined when
   * streaming is not available here (the caller posts the message instead; the task is
   * remembered). Undeliverable and other errors are thrown for the caller to handle.
   */
  async start(conversation: ConversationRef, view: ProgressView): Promise<string | undefined> {
    const title = await this.planTitle(view.taskId);
    const stream: Stream = {
      conversation,
      channel: conversation.channel,
      ts: '',
      taskId: view.taskId,
      startedAt: Date.now(),
      title,
      latest: view,
      latestAt: Date.now(),
      sent: [],
      stopped: false,
    };
    try {
      // Through the limiter, so the first append also waits its interval after the start.
      await this.options.limiter.submit(limiterKey(stream), () => this.open(stream));
    } catch (err) {
      if (this.options.isUndeliverable(err) || !isUnsupported(err)) throw err;
      this.rememberFallback(view.taskId, err);
      return undefined;
    }
    const ref = refOf(stream);
    this.streams.set(ref, stream);
    if (!view.cancellable) {
      await this.update(conversation, ref, view);
    } else {
      this.armHeartbeat(ref, stream);
    }
    return ref;
  }

  /**
   * Queues the newest view for the stream: appended at most once per interval, or the
   * stream stopped when the view is final (not cancellable). Returns once queued for a
   * running view; a final view waits until the stream is stopped.
   */
  async update(conversation: ConversationRef, ref: string, view: ProgressView): Promise<void> {
    let stream = this.streams.get(ref);
    if (!stream) {
      // Another bot started this stream, or this one restarted: pick it up from its ref.
      const [channel, ts] = splitStreamRef(ref, conversation.channel);
      const title = await this.planTitle(view.taskId);
      // Another update for this ref may have picked it up meanwhile.
      stream = this.streams.get(ref) ?? {
        conversation,
        channel,
        ts,
        taskId: view.taskId,
        startedAt: Date.now(),
        title,
        latest: view,
        latestAt: Date.now(),
        sent: [],
        stopped: false,
      };
      this.streams.set(ref, stream);
    }
    if (stream.stopped) return;
    stream.latest = view;
    stream.latestAt = Date.now();
    const final = !view.cancellable;
    if (final) this.clearHeartbeat(stream);
    const delivered = this.options.limiter.submit(limiterKey(stream), () => this.flush(stream));
    if (final) {
      await delivered.catch((err) => this.onFailure(stream, err));
      return;
    }
    delivered.catch((err) => this.onFailure(stream, err));
    this.armHeartbeat(ref, stream);
  }

  close(): void {
    for (const s of this.streams.values()) this.clearHeartbeat(s);
    this.streams.clear();
  }

  /**
   * Sends what changed since the last append, or stops the stream when the newest view is
   * final. It reads the newest state when it runs, so a coalesced or retried send is never stale.
   */
  private async flush(stream: Stream): Promise<void> {
    if (stream.stopped || stream.fallbackRef) return;
    const final = !stream.latest.cancellable;
    const { client } = this.options;
    const now = Date.now();
    if (!final && now - stream.startedAt >= this.options.maxStreamAgeMs) {
      await this.rollOver(stream);
      return;
    }
    const view = stream.latest;
    const elapsedMs = view.elapsedMs + (final ? 0 : now - stream.latestAt);
    const { chunks, statuses, activity } = stepChunks(view, stream.sent, stream.sentActivity, final);
    const all: StreamChunk[] = [planChunk(stream.title, elapsedMs, final), ...chunks];
    try {
      if (final) {
        await client.chat.stopStream({ channel: stream.channel, ts: stream.ts, chunks: all });
        stream.stopped = true;
        this.forget(stream);
      } else {
        // A 429 goes back to the limiter, which sends the newest state after its Retry-After.
        await client.chat.appendStream({ channel: stream.channel, ts: stream.ts, chunks: all });
      }
    } catch (err) {
      const code = slackErrorCode(err);
      if (code && streamEndedErrors.has(code)) {
        if (final) {
          // The stream is over already; the run's end is shown by the result message.
          stream.stopped = true;
          this.forget(stream);
          return;
        }
        await this.rollOver(stream, true);
        return;
      }
      throw err;
    }
    stream.sent = statuses;
    stream.sentActivity = activity;
  }

  /**
   * Replaces an old or ended stream with a fresh one that replays every step. The old one
   * is stopped with a pointer to the new one (best effort: it may be over already).
   */
  private async rollOver(stream: Stream, ended = false): Promise<void> {
    const { client, logger } = this.options;
    if (!ended) {
      await client.chat
        .stopStream({
          channel: stream.channel,
          ts: stream.ts,
          chunks: [{ type: 'markdown_text', text: '_Continued below._' }],
        })
        .catch((err) => logger.debug({ slackError: slackErrorCode(err) }, 'slack: stopping an old stream failed'));
    }
    stream.sent = [];
    stream.sentActivity = undefined;
    stream.startedAt = Date.now();
    await this.open(stream);
    const next = refOf(stream);
    this.streams.set(next, stream);
    // Every bot finds the current stream from the task's message ref.
    await this.options.state.setMessageRef(stream.taskId, 'progress', next).catch(() => undefined);
    logger.debug({ taskId: stream.taskId }, 'slack: progress continues in a new stream');
  }

  /** `chat.startStream` in the thread with the plan title and every step. */
  private async open(stream: Stream): Promise<void> {
    const { client } = this.options;
    const view = stream.latest;
    const recipient = await this.recipient(stream.conversation, view.taskId);
    const { chunks, statuses, activity } = stepChunks(view, [], undefined, false);
    const elapsedMs = view.elapsedMs + (Date.now() - stream.latestAt);
    // A 429 goes back to the limiter, which tries again after its Retry-After.
    const res = await client.chat.startStream({
      channel: stream.conversation.channel,
      thread_ts: stream.conversation.thread,
      task_display_mode: 'plan',
      ...recipient,
      chunks: [planChunk(stream.title, elapsedMs, false), ...chunks, ...cancelChunk(view)],
    });
    if (!res.ts) throw new Error('chat.startStream answered without a ts');
    stream.channel = res.channel ?? stream.conversation.channel;
    stream.ts = res.ts;
    stream.sent = statuses;
    stream.sentActivity = activity;
  }

  /**
   * Streams in channels need the user and team the stream is for; the task's requester
   * is that user. Both are sent in DMs too (harmless there).
   */
  private async recipient(
    conversation: ConversationRef,
    taskId: string,
  ): Promise<{ recipient_user_id?: string; recipient_team_id?: string }> {
    const task = await this.options.state.getTask(taskId).catch(() => undefined);
    const user = task?.requester.id;
    const team = conversation.workspace ?? (await this.teamId());
    return { ...(user ? { recipient_user_id: user } : {}), ...(team ? { recipient_team_id: team } : {}) };
  }

  private team: Promise<string | undefined> | undefined;
  private teamId(): Promise<string | undefined> {
    this.team ??= this.options.client.auth
      .test()
      .then((r) => r.team_id)
      .catch(() => undefined);
    return this.team;
  }

  private async planTitle(taskId: string): Promise<string> {
    const task = await this.options.state.getTask(taskId).catch(() => undefined);
    if (!task || task.planVersion < 1) return 'Working on it';
    const plan = await this.options.state.getPlan(taskId, task.planVersion).catch(() => undefined);
    return plan?.summary.trim() || 'Working on it';
  }

  /** A sign of life: with no append for `heartbeatMs`, append the elapsed time (or stop if the task ended). */
  private armHeartbeat(ref: string, stream: Stream): void {
    this.clearHeartbeat(stream);
    const timer = setTimeout(async () => {
      if (stream.heartbeat !== timer || stream.stopped || stream.fallbackRef) return;
      const task = await this.options.state.getTask(stream.taskId).catch(() => undefined);
      if (stream.heartbeat !== timer) return;
      stream.heartbeat = undefined;
      const running = task && ['queued', 'running', 'waiting_for_approval'].includes(task.state);
      if (!running) {
        // The run ended without a final progress view reaching this bot: stop the stream.
        const finalView = { ...stream.latest, cancellable: false };
        this.update(stream.conversation, ref, finalView).catch(() => undefined);
        return;
      }
      this.options.limiter
        .submit(limiterKey(stream), () => this.flush(stream))
        .catch((err) => this.onFailure(stream, err));
      this.armHeartbeat(ref, stream);
    }, this.options.heartbeatMs);
    timer.unref();
    stream.heartbeat = timer;
  }

  private clearHeartbeat(stream: Stream): void {
    if (stream.heartbeat) clearTimeout(stream.heartbeat);
    stream.heartbeat = undefined;
  }

  private forget(stream: Stream): void {
    this.clearHeartbeat(stream);
    // Kept briefly so late updates for a stopped stream are dropped rather than restarting it.
    const later = setTimeout(() => {
      for (const [k, s] of this.streams) if (s === stream) this.streams.delete(k);
    }, 60_000);
    later.unref();
  }

  /**
   * A failed append or stop. "Not available here" moves the task to the edited message;
   * anything else (undeliverable, network, too many 429s) is logged and the stream is kept.
   */
  private async onFailure(stream: Stream, err: unknown): Promise<void> {
    const { logger } = this.options;
    if (this.options.isUndeliverable(err) || !isUnsupported(err) || stream.fallbackRef) {
      logger.warn(
        { slackError: slackErrorCode(err), taskId: stream.taskId },
        'slack: progress stream update failed; will retry with the next update',
      );
      return;
    }
    this.rememberFallback(stream.taskId, err);
    this.clearHeartbeat(stream);
    // Best effort, so the half-done stream does not look alive until Slack ends it.
    this.options.client.chat
      .stopStream({ channel: stream.channel, ts: stream.ts, markdown_text: '_Progress continues below._' })
      .catch(() => undefined);
    try {
      const messageRef = await this.options.fallBack(stream.conversation, stream.latest);
      stream.fallbackRef = messageRef;
      await this.options.state.setMessageRef(stream.taskId, 'progress', messageRef).catch(() => undefined);
    } catch (postErr) {
      logger.warn({ slackError: slackErrorCode(postErr), taskId: stream.taskId }, 'slack: fallback progress failed');
    }
  }

  private rememberFallback(taskId: string, err: unknown): void {
    this.fallbackTasks.add(taskId);
    this.options.logger.info(
      { slackError: slackErrorCode(err), taskId },
      'slack: native progress is not available here; using an edited message',
    );
  }
}

/** Errors meaning "streaming is not available here": any Slack platform error but the stream having ended. */
function isUnsupported(err: unknown): boolean {
  const code = slackErrorCode(err);
  return code !== undefined && !streamEndedErrors.has(code);
}

/**
 * The Cancel button, as on the edited message, under the plan (a `blocks` chunk). Blocks
 * in a stream cannot be taken back, so it stays after the run; a late click is answered
 * with "This task is already …" and changes nothing.
 */
function cancelChunk(view: ProgressView): BlocksChunk[] {
  if (!view.cancellable) return [];
  const actions = renderBlocks(view).blocks.filter((b) => b.type === 'actions');
  return actions.length > 0 ? [{ type: 'blocks', blocks: actions }] : [];
}

/** One limiter slot per task's stream: start, appends, roll-overs and stop are all spaced. */
function limiterKey(stream: Stream): string {
  return `progress-stream:${stream.taskId}`;
}

function refOf(stream: Stream): string {
  return `${streamRefPrefix}${stream.channel}:${stream.ts}`;
}

export function splitStreamRef(ref: string, fallbackChannel: string): [string, string] {
  const rest = ref.slice(streamRefPrefix.length);
  const i = rest.lastIndexOf(':');
  return i > 0 ? [rest.slice(0, i), rest.slice(i + 1)] : [fallbackChannel, rest];
}

const taskStatus: Record<StepStatus, TaskUpdateChunk['status']> = {
  pending: 'pending',
  running: 'in_progress',
  done: 'complete',
  failed: 'error',
  skipped: 'pending',
};

export function clip(text: string, max: number = streamLimits.maxFieldChars): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length <= max ? t : `${t.slice(0, max - 1)}…`;
}

/** The end of a text within the field limit (command output: the newest lines matter). */
export function clipTail(text: string, max: number = streamLimits.maxFieldChars): string {
  const t = text.trimEnd();
  return t.length <= max ? t : `…${t.slice(t.length - max + 1)}`;
}

function planChunk(title: string, elapsedMs: number, final: boolean): PlanUpdateChunk {
  const suffix = final ? ` · finished after ${formatDuration(elapsedMs)}` : ` · ${formatDuration(elapsedMs)} elapsed`;
  return { type: 'plan_update', title: `${clip(title, streamLimits.maxFieldChars - suffix.length)}${suffix}` };
}

/**
 * The task updates for what changed since `sent` (everything when `sent` is empty). A
 * step that went from pending to done between two appends is shown in progress first,
 * so the display never skips a state. The current activity goes in the running step's
 * `details` when it changed (Slack appends details, so only new activity is sent), and
 * the end of the output in a step's `output` when it completes.
 */
export function stepChunks(
  view: ProgressView,
  sent: ReadonlyArray<TaskUpdateChunk['status'] | undefined>,
  sentActivity: string | undefined,
  final: boolean,
): { chunks: TaskUpdateChunk[]; statuses: Array<TaskUpdateChunk['status']>; activity: string | undefined } {
  const chunks: TaskUpdateChunk[] = [];
  const statuses: Array<TaskUpdateChunk['status']> = [];
  const activity = view.activity ? clip(view.activity) : undefined;
  // A fan-out's workstreams follow the steps as tasks of their own (`ws-<id>`), in a fixed order.
  const rows = [
    ...view.steps,
    ...(view.workstreams ?? []).map((w) => ({
      title: `Workstream: ${w.title}`,
      status: (
        { queued: 'pending', running: 'running', done: 'done', failed: 'failed', cancelled: 'skipped' } as const
      )[w.state],
      wsId: w.id,
    })),
  ];
  for (const [i, step] of rows.entries()) {
    const before = sent[i];
    let status = taskStatus[step.status];
    // The final view marks unfinished steps "skipped" and may not repeat earlier results.
    if (step.status === 'skipped' && before === 'complete') status = 'complete';
    if (final && step.status === 'skipped' && before !== 'complete') status = 'error';
    statuses.push(status);
    const id = 'wsId' in step ? `ws-${step.wsId}` : `step-${i + 1}`;
    const title = clip(step.title || `Step ${i + 1}`);
    const base = { type: 'task_update' as const, id, title };
    if (before === 'pending' && (status === 'complete' || status === 'error')) {
      chunks.push({ ...base, status: 'in_progress' });
    }
    const newActivity = status === 'in_progress' && activity && activity !== sentActivity ? activity : undefined;
    if (status !== before || newActivity) {
      const chunk: TaskUpdateChunk = { ...base, status };
      if (newActivity) chunk.details = newActivity;
      if (final && step.status === 'skipped' && status === 'error') chunk.details = 'Not done: the run ended first';
      if ((status === 'complete' || status === 'error') && before !== status && view.outputTail && !final) {
        chunk.output = clipTail(view.outputTail);
      }
      chunks.push(chunk);
    }
  }
  return { chunks, statuses, activity };
}

export interface AssistantStatusOptions {
  client: WebClient;
  logger: Logger;
  /** Slack clears a status after two minutes without a message; it is set again this often while running. */
  refreshMs?: number;
}

/**
 * The assistant "is working…" status under the thread (`assistant.threads.setStatus`),
 * where the workspace offers it. The first error of any kind turns it off for that
 * workspace (in memory) without a word to the user: it is a nicety, not the progress.
 */
export class AssistantStatus {
  private readonly disabled = new Set<string>();
  private readonly lastSet = new Map<string, number>();
  private readonly refreshMs: number;

  constructor(private readonly options: AssistantStatusOptions) {
    this.refreshMs = options.refreshMs ?? 60_000;
  }

  private readonly queues = new Map<string, Promise<void>>();

  /**
   * Sets "is working…" (at most once per refresh interval per thread) or clears it. Calls
   * for one thread go out in order, so a clear never overtakes the set before it.
   */
  set(conversation: ConversationRef, working: boolean): Promise<void> {
    const key = `${conversation.channel}:${conversation.thread}`;
    const next = (this.queues.get(key) ?? Promise.resolve()).then(() => this.send(conversation, working));
    this.queues.set(key, next);
    next.finally(() => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    });
    return next;
  }

  private async send(conversation: ConversationRef, working: boolean): Promise<void> {
    const workspace = conversation.workspace ?? '-';
    if (this.disabled.has(workspace)) return;
    const key = `${conversation.channel}:${conversation.thread}`;
    const last = this.lastSet.get(key);
    if (working && last !== undefined && Date.now() - last < this.refreshMs) return;
    if (working) this.lastSet.set(key, Date.now());
    else this.lastSet.delete(key);
    try {
      await this.options.client.assistant.threads.setStatus({
        channel_id: conversation.channel,
        thread_ts: conversation.thread,
        status: working ? 'is working…' : '',
      });
    } catch (err) {
      this.disabled.add(workspace);
      this.lastSet.delete(key);
      this.options.logger.debug(
        { slackError: slackErrorCode(err), workspace },
        'slack: assistant status not available; not setting it in this workspace',
      );
    }
  }
}
