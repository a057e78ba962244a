import {
  type ConversationRef,
  ErrorCodes,
  HandoffError,
  type Identity,
  type StoredFile,
  type Task,
  transition,
} from '../core/index.ts';
import { type Logger, traceOf } from '../observability/index.ts';
import type { Queues } from '../queue/index.ts';
import { type ArtifactStore, type AuditLog, copyStoredFiles, type StateStore } from '../storage/index.ts';
import type { ChatSurface } from './chat-surface.ts';
import { maxChangeRequestChars } from './revise.ts';
import { type StatusView, statusView } from './views.ts';

/** What became of a reply in a task's thread (`Gateway.reply`). */
export type ReplyOutcome =
  /** The answer to the agent's open question. */
  | 'answered'
  /** Delivered to the running agent at its next turn. */
  | 'delivered'
  /** A follow-up: the task is planned again from what it delivered. */
  | 'follow_up'
  /** Not taken; the thread was told why (once per person and task state). */
  | 'told'
  /** Not for Handoff (no task here, or an empty message). */
  | 'ignored';

export interface FollowUpDeps {
  state: StateStore;
  queues: Queues;
  audit: AuditLog;
  store: ArtifactStore;
  logger: Logger;
  surfaceFor: (name: string) => ChatSurface;
  /** The requester or an approver (`Gateway.maySteer`). */
  maySteer: (task: Task, who: Identity) => Promise<boolean>;
}

/** How long a notice to one person about one task state is not repeated. */
const noticeQuietMs = 86_400_000;

/** The words that start a new task, for a notice. */
function startAgain(surface: ConversationRef['surface']): string {
  // In the console a message in a thread is always a reply; a new task starts in the channel.
  return surface === 'web'
    ? 'To start a new task, mention @handoff with what you need in the channel.'
    : 'To start a new task, mention @handoff with what you need (in this thread or in the channel).';
}

/** Whether a reply in the task's thread now is a follow-up: it delivered, and it is no schedule or brief. */
export function takesFollowUps(task: Pick<Task, 'state' | 'schedule' | 'brief'>): boolean {
  return task.state === 'succeeded' && !task.schedule && !task.brief;
}

/**
 * Replies in a task's thread when no run is live: a follow-up after a delivery, or a
 * clear answer why nothing happens (still planning, waiting for approval, ended,
 * expired, or not someone who may follow up).
 */
export class FollowUps {
  constructor(private readonly deps: FollowUpDeps) {}

  /**
   * A reply in the thread of `task`, whose run is not live. From the requester or an
   * approver after a delivery it is a follow-up; anything else gets a notice.
   */
  async reply(task: Task, by: Identity, text: string): Promise<ReplyOutcome> {
    const may = await this.deps.maySteer(task, by);
    if (takesFollowUps(task)) {
      if (!may) {
        return this.notice(
          task.conversation,
          task,
          by,
          `Only ${task.requester.name} (who asked) or an approver can follow up on this task. To start a task of your own, mention @handoff in the channel.`,
        );
      }
      return this.start(task, by, text);
    }
    switch (task.state) {
      case 'requested':
      case 'planning':
        return this.notice(
          task.conversation,
          task,
          by,
          'The plan is being drafted; your reply is not added to it. Once the plan card is posted, use Request changes on it to change the plan.',
        );
      case 'awaiting_approval':
        return this.notice(
          task.conversation,
          task,
          by,
          may
            ? 'The plan waits for approval; your reply is not added to it. To change the plan, use Request changes on the plan card.'
            : 'The plan waits for approval; replies here do not change it.',
        );
      default: {
        const what = task.schedule
          ? 'This task set up a schedule; manage it with the schedules command.'
          : task.brief
            ? 'This is a scheduled brief; it is not continued in its thread.'
            : `This task was ${task.state.replace(/_/g, ' ')}: nothing more runs in it.`;
        return this.notice(task.conversation, task, by, `${what} ${startAgain(task.conversation.surface)}`);
      }
    }
  }

  /**
   * A reply in a thread whose task's records have expired (its tombstone is left). Returns
   * 'ignored' when the thread never had a task.
   */
  async expired(conversation: ConversationRef, by: Identity): Promise<ReplyOutcome> {
    const { surface, channel, thread } = conversation;
    const taskId = await this.deps.state.endedTaskForThread(surface, channel, thread);
    if (!taskId) return 'ignored';
    return this.notice(
      conversation,
      { id: taskId },
      by,
      `The task in this thread has expired: its records and files were removed after the retention period, so it cannot be continued. ${startAgain(conversation.surface)}`,
    );
  }

  /**
   * The follow-up itself: the files of the delivered version (inputs as the run left them,
   * then its deliverables, which win a name clash) are copied to the task's inputs for the
   * next version, the task goes back to planning with the reply as the change the next plan
   * version answers, and that version is queued. The card of the new version shows the diff.
   */
  private async start(task: Task, by: Identity, text: string): Promise<ReplyOutcome> {
    const { state, queues, audit, store, logger } = this.deps;
    if (text.length > maxChangeRequestChars) {
      return this.notice(
        task.conversation,
        task,
        by,
        `A follow-up can be at most ${maxChangeRequestChars} characters; say it in fewer words.`,
        'error',
        false,
      );
    }
    const fromVersion = task.planVersion;
    const version = fromVersion + 1;
    const checkpoint = task.runId ? await state.getCheckpoint(task.runId, { messages: false }) : undefined;
    const inputs = checkpoint?.workspace?.inputs ?? task.inputs;
    const delivered = new Set(task.artifacts.map((a) => a.name.toLowerCase()));
    const carried: StoredFile[] = [
      ...inputs.filter((f) => !delivered.has(f.name.toLowerCase())),
      ...task.artifacts.map(({ name, mediaType, size, sha256, key }) => ({ name, mediaType, size, sha256, key })),
    ];
    let copies: StoredFile[];
    try {
      copies = await copyStoredFiles(store, carried, `tasks/${task.id}/in/v${version}`);
    } catch (err) {
      await store.deletePrefix(`tasks/${task.id}/in/v${version}/`).catch(() => undefined);
      // A store that is down is an outage (the surface says so); a missing file is retention.
      if (!(err instanceof HandoffError && err.code === ErrorCodes.notFound)) throw err;
      logger.info({ taskId: task.id }, 'follow-up: the delivered files are gone');
      return this.notice(
        task.conversation,
        task,
        by,
        `The files of this task are no longer kept, so it cannot be continued. ${startAgain(task.conversation.surface)}`,
        'error',
      );
    }
    const at = new Date();
    let after: Task;
    try {
      ({ after } = await state.updateTask(task.id, (t) => {
        if (t.state !== 'succeeded' || t.planVersion !== fromVersion) {
          throw new HandoffError(
            ErrorCodes.staleApproval,
            'a follow-up of this task is already being planned; use Request changes on its plan card',
          );
        }
        const next = transition(t, 'planning', at, {
          inputs: copies,
          artifacts: [],
          votes: [],
          followUps: [...(t.followUps ?? []), { fromVersion, by, text, at: at.toISOString() }],
          changeRequests: [...(t.changeRequests ?? []), { version: fromVersion, by, text, at: at.toISOString() }],
        });
        // What belonged to the delivered run; the next one records its own.
        delete next.runId;
        delete next.decision;
        delete next.failure;
        delete next.resultSummary;
        delete next.cancelRequestedBy;
        delete next.approvalExpiresAt;
        return next;
      }));
    } catch (err) {
      await store.deletePrefix(`tasks/${task.id}/in/v${version}/`).catch(() => undefined);
      if (err instanceof HandoffError && err.code === ErrorCodes.staleApproval)
        return this.notice(task.conversation, task, by, err.message, 'info', false);
      throw err;
    }
    await state.reviveTaskRecords(after);
    await audit.append({
      type: 'task.follow_up',
      taskId: task.id,
      actor: by.id,
      data: {
        fromVersion,
        version,
        length: text.length,
        inputs: copies.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size })),
      },
    });
    try {
      await queues.enqueuePlan({ taskId: task.id, version, ...traceOf(task.trace) });
    } catch (err) {
      await state
        .updateTask(task.id, (t) =>
          t.state === 'planning'
            ? transition(t, 'failed', new Date(), {
                failure: { code: ErrorCodes.queueUnavailable, message: 'the follow-up plan could not be queued' },
              })
            : t,
        )
        .catch(() => undefined);
      throw err;
    }
    const names = copies.map((f) => f.name).join(', ');
    const surface = this.deps.surfaceFor(task.conversation.surface);
    const ref = await surface
      .post(
        task.conversation,
        statusView(
          task,
          `Follow-up from ${by.name}: drafting plan version ${version}, starting from ${names || 'no files'}…`,
        ),
      )
      .catch((err) => {
        logger.warn({ err, taskId: task.id }, 'follow-up: could not post the status');
        return undefined;
      });
    if (ref) await state.setMessageRef(task.id, 'status', ref);
    return 'follow_up';
  }

  /** Tells the thread why a reply was not taken: once per person, task and state (`firstNotice`). */
  private async notice(
    conversation: ConversationRef,
    task: Pick<Task, 'id'> & Partial<Pick<Task, 'state' | 'demo'>>,
    by: Identity,
    text: string,
    tone: StatusView['tone'] = 'info',
    once = true,
  ): Promise<ReplyOutcome> {
    const key = `${task.id}:${task.state ?? 'gone'}:${conversation.surface}:${by.id}`;
    if (once && !(await this.deps.state.firstNotice(key, noticeQuietMs))) return 'told';
    const view: StatusView = statusView({ demo: task.demo ?? false }, text, tone);
    await this.deps.surfaceFor(conversation.surface).post(conversation, view);
    return 'told';
  }
}
