import type { ApprovalClick } from '../approvals/index.ts';
import type {
  ChannelRef,
  ConversationRef,
  Grant,
  GrantScope,
  Identity,
  ScheduleDraft,
  StoredFile,
  Surface,
  Task,
} from '../core/index.ts';
import type { ChannelSettingsInbound } from './channel-settings.ts';
import type { ReplyOutcome } from './follow-up.ts';
import type { IncomingFile } from './incoming-file.ts';
import type { Schedules } from './schedules.ts';
import type { ThreadContextInput } from './thread-context.ts';
import type { ConnectionsView } from './views.ts';

/** A new request as a surface hands it in. */
export interface RequestInput {
  conversation: ConversationRef;
  /** Who asked: always the identity the surface authenticated, never words in the text. */
  requester: Identity;
  text: string;
  files: IncomingFile[];
  /** Set when the request proposes a schedule (its plan becomes the standing plan). */
  schedule?: ScheduleDraft;
  /** Files already stored (a request made again from an earlier task's): copied, not uploaded. */
  copyInputs?: StoredFile[];
  /**
   * The earlier messages of the thread (or channel) the request was made in, as the surface
   * read them; the gateway validates, caps and redacts them. Untrusted data.
   */
  context?: ThreadContextInput;
}

/**
 * What pressing Connect gave the person who pressed it. `authorizationUrl` is theirs alone:
 * a surface shows it only to them (the console's action answer, a Slack ephemeral
 * message, a Teams invoke response), never on a card others see.
 */
export type ConnectAnswer =
  | { status: 'connected'; title: string; message: string }
  | { status: 'needs_authorization'; title: string; message: string; authorizationUrl: string };

/** The scheduled-brief operations a surface offers its people. */
export type ScheduleInbound = Pick<
  Schedules,
  'readTiming' | 'propose' | 'proposeFrom' | 'ownedSchedule' | 'ownedBy' | 'list' | 'act'
>;

/**
 * The way in: everything a surface may ask of Handoff when people act in chat. A surface
 * authenticates the person and the platform, turns clicks and messages into these calls,
 * and shows the words they return (or the HandoffError they throw) to that person. It
 * reads no store and decides no policy itself: every rule lives behind this contract.
 * Each call names the surface it comes from, and a task of another surface is not found.
 */
export interface HandoffInbound {
  /** Checks a request, stores its files, creates the task and queues its planning. */
  submitRequest(input: RequestInput): Promise<Task>;
  /** Posts the immediate answer under a new request. */
  acknowledge(task: Task): Promise<void>;
  /** Approve or Deny on a plan card. */
  decide(click: ApprovalClick & { surface: Surface }): Promise<string>;
  /** Approve or Deny on a paused call's card. */
  decideAction(click: {
    taskId: string;
    approvalId: string;
    by: Identity;
    outcome: 'approved' | 'denied';
    surface: Surface;
    /** "Approve for the rest of this run" (`run`) or "Always allow in this channel" (`channel`), with Approve. */
    grant?: GrantScope;
  }): Promise<string>;
  /** A channel's live standing grants; for its approvers only. */
  listGrants(channel: ChannelRef, who: Identity): Promise<Grant[]>;
  /** Revokes a standing grant (an approver where it applies); returns the words to show. */
  revokeGrant(input: { id: string; by: Identity; surface: Surface }): Promise<string>;
  cancel(taskId: string, by: Identity, surface: Surface): Promise<string>;
  /** "Request changes" on a plan card, with what should change. */
  requestChanges(input: {
    taskId: string;
    planVersion: number;
    planHash?: string;
    by: Identity;
    text: string;
    surface: Surface;
  }): Promise<string>;
  /**
   * A message in a task's thread; whether it reaches the agent, starts a follow-up or gets
   * a notice in the thread is decided here (surfaces hand in every reply in a task's thread,
   * and, outside a live run, replies of anyone).
   */
  reply(conversation: ConversationRef, by: Identity, text: string): Promise<ReplyOutcome>;
  /** A task by id as `surface` may see it; undefined for another surface's task. */
  task(taskId: string, surface: Surface): Promise<Task | undefined>;
  /** The task a thread belongs to, if any. */
  taskInThread(conversation: ConversationRef): Promise<Task | undefined>;
  /** A person's recent tasks on a surface, newest first. */
  tasksOf(surface: Surface, personId: string, limit: number): Promise<Task[]>;
  /** Plans on a surface waiting for `who`'s approval (where approvers are named), newest first. */
  awaitingApprovalBy(surface: Surface, who: Identity, limit: number): Promise<Task[]>;
  /** Whether `who` may approve in a conversation (self-approval not considered). */
  isApprover(conversation: ConversationRef, who: Identity): Promise<boolean>;
  /** The requester or an approver: who may steer a task, ask for changes, or cancel it. */
  maySteer(task: Task, who: Identity): Promise<boolean>;
  /** The approvers a conversation's policy names; undefined when anyone there may approve. */
  approversFor(conversation: ConversationRef): { users: readonly string[]; groups: readonly string[] } | undefined;
  readonly schedules: ScheduleInbound;
  /** Channel instructions and memory: set, listed, remembered, forgotten, accepted. */
  readonly channelSettings: ChannelSettingsInbound;
  /**
   * "Connect <title>" on a Connect card (`taskId`) or in a person's list of connections:
   * starts connecting a per-user connector as `by`, the person who pressed it, and never
   * as anyone else. Throws a HandoffError when no per-user connector is set up.
   */
  connect(click: { connector: string; by: Identity; surface: Surface; taskId?: string }): Promise<ConnectAnswer>;
  /** `who`'s own per-user connections on `surface`: every per-user connector, connected or not. */
  connections(surface: Surface, who: Identity): Promise<ConnectionsView>;
  /**
   * Disconnects `by`'s own connection: removed here at once, revoked at the service where
   * it offers that. Returns the words to show them.
   */
  disconnect(input: { connector: string; by: Identity; surface: Surface }): Promise<string>;
}
