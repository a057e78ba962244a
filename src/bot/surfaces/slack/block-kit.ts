import type { types } from '@slack/bolt';
import type { StepStatus, TrustLevel } from '../../../core/index.ts';
import {
  type BriefView,
  briefHeadline,
  connectButtonLabel,
  connectionFacts,
  connectLines,
  type FileLink,
  followUpNoteText,
  formatDuration,
  formatTokens,
  formatUsd,
  type PlanView,
  reachLines,
  type ScheduleInfo,
  type ScheduleListView,
  type View,
  workstreamPlanLines,
  workstreamProgressLines,
} from '../../views.ts';
import { memoryProposalBlocks } from './channel-settings-slack.ts';
import { grantActionIds } from './grants-blocks.ts';

type KnownBlock = types.KnownBlock;

/** Slack's limits for a message: 50 blocks, 3,000 characters per text object. */
export const blockKitLimits = { maxBlocks: 50, maxTextChars: 3000, maxHeaderChars: 150, maxButtonText: 75 } as const;

/** Action ids of the interactive elements; each is unique within one message. */
export const actionIds = {
  approve: 'handoff_approve',
  deny: 'handoff_deny',
  requestChanges: 'handoff_request_changes',
  cancel: 'handoff_cancel',
  actionApprove: 'handoff_action_approve',
  actionDeny: 'handoff_action_deny',
  /** "Schedule…" on a result: opens the modal that asks when. */
  scheduleResult: 'handoff_schedule_result',
  /** "Connect <title>" on a Connect card: the sign-in link comes back to the clicker alone. */
  connect: 'handoff_connect',
  /** The link button of that private answer: Slack opens the URL and also reports the click. */
  connectOpen: 'handoff_connect_open',
} as const;

/** What the buttons of a person's list of connections do. */
export type ConnectionButtonAction = 'connect' | 'disconnect';

/**
 * Action ids of the buttons in a list of connections: `handoff_connection_<action>_<n>`,
 * numbered because an action id is unique within one message.
 */
export const connectionActionPattern = /^handoff_connection_(connect|disconnect)_\d+$/;

/** What a Connect or Disconnect button carries: the task (on a Connect card) and the connector. */
export interface ConnectButtonValue {
  taskId?: string;
  connector: string;
}

/** Parses a Connect or Disconnect button's value; undefined when it is not one of ours. */
export function decodeConnectValue(raw: unknown): ConnectButtonValue | undefined {
  if (typeof raw !== 'string' || raw.length > 500) return undefined;
  try {
    const v = JSON.parse(raw) as { t?: unknown; c?: unknown };
    if (typeof v.c !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,29}$/.test(v.c)) return undefined;
    if (v.t !== undefined && (typeof v.t !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(v.t))) return undefined;
    return { connector: v.c, ...(typeof v.t === 'string' ? { taskId: v.t } : {}) };
  } catch {
    return undefined;
  }
}

/** Slack's longest button URL. */
const maxButtonUrl = 3000;

/**
 * The private answer to Connect (an ephemeral message): what to do, and a button that opens
 * the sign-in page. Only the person who pressed Connect ever gets this.
 */
export function connectLinkMessage(answer: { title: string; message: string; authorizationUrl: string }): SlackMessage {
  const blocks: KnownBlock[] = [section(`:electric_plug: ${escapeMrkdwn(answer.message)}`)];
  if (answer.authorizationUrl.length <= maxButtonUrl) {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: actionIds.connectOpen,
          text: plain(`Open the ${answer.title} sign-in page`, blockKitLimits.maxButtonText),
          url: answer.authorizationUrl,
          style: 'primary',
        },
      ],
    });
  } else {
    blocks.push(section(`<${answer.authorizationUrl.replace(/[<>|]/g, encodeURIComponent)}|Open the sign-in page>`));
  }
  return { text: truncate(answer.message, blockKitLimits.maxTextChars), blocks };
}

/** What the buttons of a schedule do (`ScheduleListView`, App Home). */
export const scheduleActions = ['pause', 'resume', 'run_now', 'edit', 'delete'] as const;
export type ScheduleButtonAction = (typeof scheduleActions)[number];

/**
 * Action ids of a schedule's buttons: `handoff_schedule_<action>_<n>`, numbered because an
 * action id is unique within one message and a list shows several schedules.
 */
export const scheduleActionPattern = new RegExp(`^handoff_schedule_(${scheduleActions.join('|')})_\\d+$`);

function scheduleActionId(action: ScheduleButtonAction, index: number): string {
  return `handoff_schedule_${action}_${index}`;
}

/** Callback ids of the modals, the message shortcut and the slash command. */
export const callbackIds = {
  changesModal: 'handoff_changes_modal',
  messageShortcut: 'handoff_message',
  /** "When?" for a finished task's request (the Schedule… button). */
  scheduleModal: 'handoff_schedule_modal',
  /** A schedule's new time, or request (Edit). */
  scheduleEditModal: 'handoff_schedule_edit_modal',
} as const;

/** What an Approve / Deny / Request changes button carries: the exact plan it is about. */
export interface PlanButtonValue {
  taskId: string;
  version: number;
  hash: string;
}

export interface SlackMessage {
  /** Notification and accessibility fallback. */
  text: string;
  blocks: KnownBlock[];
}

export interface RenderOptions {
  /** Deliverables that were uploaded into the thread (listed by name, not linked). */
  uploaded?: readonly string[];
}

const demoNote = 'demo model — scripted sample, no AI involved; set ANTHROPIC_API_KEY to use Claude';

const levelBadge: Record<TrustLevel, string> = {
  autonomous: '`autonomous`',
  batched: '`batched`',
  watched: ':eyes: `watched`',
  forbidden: ':no_entry: `forbidden`',
};

const stepIcon: Record<StepStatus, string> = {
  pending: ':white_circle:',
  running: ':hourglass_flowing_sand:',
  done: ':white_check_mark:',
  failed: ':x:',
  skipped: ':heavy_minus_sign:',
};

/** Slack's mrkdwn control characters; everything people or models wrote goes through this. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Cuts text to `max` characters, marking the cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** Keeps the end of a long output (the tail is what matters), marking the cut. */
function keepTail(text: string, max: number): string {
  if (text.length <= max) return text;
  return `…${text.slice(text.length - max + 1)}`;
}

const mrkdwn = (text: string) => ({ type: 'mrkdwn' as const, text: truncate(text, blockKitLimits.maxTextChars) });
const plain = (text: string, max: number = blockKitLimits.maxTextChars) => ({
  type: 'plain_text' as const,
  text: truncate(text, max),
  emoji: true,
});
const section = (text: string): KnownBlock => ({ type: 'section', text: mrkdwn(text) });
const context = (text: string): KnownBlock => ({ type: 'context', elements: [mrkdwn(text)] });
const header = (text: string): KnownBlock => ({ type: 'header', text: plain(text, blockKitLimits.maxHeaderChars) });

/** `<!date^…>` shows a time in each reader's own time zone, with the ISO time as fallback. */
function slackDate(iso: string): string {
  const seconds = Math.floor(Date.parse(iso) / 1000);
  if (!Number.isFinite(seconds)) return escapeMrkdwn(iso);
  return `<!date^${seconds}^{date_short_pretty} at {time}|${escapeMrkdwn(iso)}>`;
}

function fileLine(f: FileLink, uploaded: ReadonlySet<string>): string {
  const size = formatSize(f.size);
  if (uploaded.has(f.name)) return `:page_facing_up: *${escapeMrkdwn(f.name)}* (${size}) — uploaded above`;
  const expires = slackDate(f.expiresAt);
  return `:link: <${f.url.replace(/[<>|]/g, encodeURIComponent)}|${escapeMrkdwn(f.name)}> (${size}) — link valid until ${expires}`;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

export function encodeButtonValue(value: PlanButtonValue): string {
  return JSON.stringify({ t: value.taskId, v: value.version, h: value.hash });
}

/** Parses a button value from a click; undefined when it is not one of ours. */
export function decodeButtonValue(raw: unknown): PlanButtonValue | undefined {
  if (typeof raw !== 'string' || raw.length > 2000) return undefined;
  try {
    const v = JSON.parse(raw) as { t?: unknown; v?: unknown; h?: unknown };
    if (typeof v.t !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(v.t)) return undefined;
    if (typeof v.v !== 'number' || !Number.isInteger(v.v) || v.v < 1) return undefined;
    if (typeof v.h !== 'string' || !/^[0-9a-f]{64}$/.test(v.h)) return undefined;
    return { taskId: v.t, version: v.v, hash: v.h };
  } catch {
    return undefined;
  }
}

/** Renders a surface-neutral view as a Block Kit message within Slack's limits. */
export function renderBlocks(view: View, options: RenderOptions = {}): SlackMessage {
  const blocks: KnownBlock[] = [];
  let text: string;
  switch (view.kind) {
    case 'status': {
      text = view.text;
      blocks.push(section(`${view.tone === 'error' ? ':warning: ' : ''}${escapeMrkdwn(view.text)}`));
      if (view.demo && view.tone !== 'error') blocks.push(context(demoNote));
      break;
    }
    case 'question': {
      text = `Question: ${view.question}`;
      blocks.push(section(`:question: *The agent asks:*\n${escapeMrkdwn(view.question)}`));
      blocks.push(
        context(
          view.answeredBy
            ? `Answered by ${escapeMrkdwn(view.answeredBy)}.`
            : view.expiresAt
              ? `Reply in this thread to answer. The question stays open until ${view.expiresAt.replace('T', ' ').slice(0, 16)} UTC, then the agent goes on without an answer.`
              : 'Reply in this thread to answer.',
        ),
      );
      break;
    }
    case 'plan': {
      text = `Plan v${view.version} for ${view.requester}: ${view.summary}`;
      if (view.schedule) {
        text = `Schedule (${view.schedule.words}) — ${text}`;
        blocks.push(...scheduleInfoBlocks(view.schedule));
      }
      blocks.push(header(`Plan v${view.version}`));
      blocks.push(section(`*Requested by* ${escapeMrkdwn(view.requester)}\n${escapeMrkdwn(view.summary)}`));
      // The thread-context and channel-settings notes share this block: no extra block toward Slack's 50.
      const used = view.context ? `\n:speech_balloon: ${escapeMrkdwn(view.context)}` : '';
      const follows = view.channelNote ? `\n:pushpin: ${escapeMrkdwn(view.channelNote)}` : '';
      blocks.push(context(`${view.demo ? demoNote : `model ${escapeMrkdwn(view.model)}`}${used}${follows}`));
      if (view.changes) blocks.push(...changesBlocks(view.changes, view.version));
      // At most 20 steps (PlanDraftSchema), one section each: with the two blocks above, within the 50-block limit.
      view.steps.forEach((step, i) => {
        const detail = step.detail ? `\n${escapeMrkdwn(step.detail)}` : '';
        blocks.push(section(`*${i + 1}. ${escapeMrkdwn(step.title)}*  ${levelBadge[step.level]}${detail}`));
      });
      const deliverables = view.deliverables.map((d) => `• ${escapeMrkdwn(d.name)} (${d.type})`).join('\n');
      blocks.push(section(`*Deliverables*\n${deliverables}`));
      if (view.reach) {
        const lines = reachLines(view.reach).map((l) => `• ${escapeMrkdwn(l)}`);
        blocks.push(section(`*Beyond its files*\n${lines.join('\n')}`.slice(0, blockKitLimits.maxTextChars)));
      }
      if (view.workstreams) {
        const fanOut = workstreamPlanLines(view.workstreams);
        const lines = fanOut.lines.map((l) => `• ${escapeMrkdwn(l)}`);
        blocks.push(
          section(`*${escapeMrkdwn(fanOut.heading)}*\n${lines.join('\n')}`.slice(0, blockKitLimits.maxTextChars)),
        );
      }
      const budget = view.demo
        ? 'no model cost (demo model)'
        : `about ${view.budget.estimatedTokens.toLocaleString('en-US')} tokens (${formatUsd(view.budget.estimatedCostUsd)})`;
      blocks.push(
        context(
          `Budget: ${budget}; cap ${formatUsd(view.budget.maxCostUsd)}, ${view.budget.maxWallTimeMin} min wall time`,
        ),
      );
      if (view.blockers.length > 0) {
        blocks.push(
          section(`:no_entry: *This plan cannot be approved*\n${view.blockers.map(escapeMrkdwn).join('\n')}`),
        );
      }
      if (view.decision) {
        blocks.push(context(decisionLine(view.decision)));
      } else {
        const waiting: string[] = [];
        if (view.votes && view.votes.needed > 1) {
          const names = view.votes.names.map(escapeMrkdwn).join(', ') || 'nobody yet';
          waiting.push(`Approvals: ${names} (${view.votes.names.length} of ${view.votes.needed})`);
        }
        if (view.expiresAt) waiting.push(`expires ${slackDate(view.expiresAt)}`);
        if (waiting.length > 0) blocks.push(context(waiting.join(' · ')));
        blocks.push(planActions(view));
      }
      break;
    }
    case 'progress': {
      text = view.cancellable ? 'Working…' : 'Run finished';
      const stats = `${formatDuration(view.elapsedMs)} elapsed${view.demo ? ' · demo model' : ` · ${formatTokens(view.usage)} tokens`}`;
      blocks.push(section(`*${view.cancellable ? 'Working…' : 'Run finished'}*  ${stats}`));
      const steps = view.steps.map((s, i) => `${stepIcon[s.status]} ${i + 1}. ${escapeMrkdwn(s.title)}`).join('\n');
      if (steps) blocks.push(section(steps));
      if (view.workstreams?.length)
        blocks.push(
          section(
            `*Workstreams*\n${workstreamProgressLines(view.workstreams)
              .map((l) => `• ${escapeMrkdwn(l)}`)
              .join('\n')}`,
          ),
        );
      if (view.activity) blocks.push(context(escapeMrkdwn(view.activity)));
      if (view.outputTail) {
        // The fence and escaping add characters: keep the end of the output within the limit.
        const budget = blockKitLimits.maxTextChars - 8;
        let tail = escapeMrkdwn(view.outputTail.replace(/```/g, "'''"));
        tail = keepTail(tail, budget);
        blocks.push(section(`\`\`\`${tail}\`\`\``));
      }
      if (view.cancellable) {
        blocks.push({
          type: 'actions',
          elements: [
            {
              type: 'button',
              action_id: actionIds.cancel,
              text: plain('Cancel', blockKitLimits.maxButtonText),
              style: 'danger',
              value: JSON.stringify({ t: view.taskId }),
              confirm: {
                title: plain('Cancel this run?', 100),
                text: plain('The run stops within seconds; files already delivered stay.'),
                confirm: plain('Cancel the run', 30),
                deny: plain('Keep running', 30),
              },
            },
          ],
        });
      }
      break;
    }
    case 'approval': {
      text = `Approval needed: ${view.action.replace(/_/g, ' ')} (${view.tool})`;
      blocks.push(
        section(
          `:raised_hand: *Approval needed* — ${escapeMrkdwn(view.action.replace(/_/g, ' '))} (${levelBadge[view.trust]})\n${escapeMrkdwn(view.reason)}`,
        ),
      );
      for (const d of view.details.slice(0, 10)) {
        const value = truncate(d.value.replace(/```/g, "'''"), blockKitLimits.maxTextChars - d.label.length - 20);
        blocks.push(section(`*${escapeMrkdwn(d.label)}*\n\`\`\`${escapeMrkdwn(value)}\`\`\``));
      }
      if (view.state === 'pending') {
        blocks.push(context(`Waits until ${slackDate(view.expiresAt)}; then the run stops.`));
        const value = JSON.stringify({ t: view.taskId, a: view.approvalId });
        blocks.push({
          type: 'actions',
          elements: [
            {
              type: 'button',
              action_id: actionIds.actionApprove,
              text: plain('Approve', blockKitLimits.maxButtonText),
              style: 'primary',
              value,
            },
            {
              type: 'button',
              action_id: actionIds.actionDeny,
              text: plain('Deny', blockKitLimits.maxButtonText),
              style: 'danger',
              value,
            },
            ...(view.grantOptions?.run
              ? [
                  {
                    type: 'button' as const,
                    action_id: grantActionIds.grantRun,
                    text: plain('Approve for the rest of this run', blockKitLimits.maxButtonText),
                    value,
                  },
                ]
              : []),
            ...(view.grantOptions?.channel
              ? [
                  {
                    type: 'button' as const,
                    action_id: grantActionIds.grantChannel,
                    text: plain('Always allow in this channel', blockKitLimits.maxButtonText),
                    value,
                  },
                ]
              : []),
          ],
        });
      } else {
        const who = view.decidedBy ? ` by ${escapeMrkdwn(view.decidedBy)}` : '';
        const when = view.decidedAt ? ` · ${slackDate(view.decidedAt)}` : '';
        const words: Record<typeof view.state, string> = {
          approved: ':white_check_mark: Approved',
          denied: ':no_entry_sign: Denied',
          expired: ':hourglass: Expired: nobody decided in time',
          stopped: ':heavy_minus_sign: The run ended before a decision',
        };
        const granted =
          view.grantedScope === 'run'
            ? ' for the rest of this run'
            : view.grantedScope === 'channel'
              ? ' and always allowed in this channel'
              : '';
        blocks.push(context(`${words[view.state]}${granted}${who}${when}`));
      }
      break;
    }
    case 'result': {
      const uploaded = new Set(options.uploaded ?? []);
      const head =
        view.status === 'succeeded'
          ? ':white_check_mark: *Done*'
          : view.status === 'cancelled'
            ? ':heavy_minus_sign: *Cancelled*'
            : ':x: *Failed*';
      text = view.status === 'succeeded' ? 'Done' : view.status === 'cancelled' ? 'Cancelled' : 'Failed';
      blocks.push(section(view.reason ? `${head}: ${escapeMrkdwn(view.reason)}` : head));
      if (view.summary) blocks.push(section(escapeMrkdwn(view.summary)));
      // Files beyond what fits are summarised in one line rather than breaking the message.
      const room = blockKitLimits.maxBlocks - blocks.length - 3;
      const lines = view.files.map((f) => fileLine(f, uploaded));
      for (const line of lines.slice(0, room)) blocks.push(section(line));
      if (lines.length > room) blocks.push(context(`…and ${lines.length - room} more files`));
      const cost = view.demo
        ? 'demo model, no cost'
        : `${formatTokens(view.usage)} tokens · ${formatUsd(view.costUsd)}`;
      blocks.push(context(`Took ${formatDuration(view.durationMs)} · ${cost}`));
      if (view.schedulable && view.status === 'succeeded') {
        blocks.push({
          type: 'actions',
          elements: [
            {
              type: 'button',
              action_id: actionIds.scheduleResult,
              text: plain('Schedule…', blockKitLimits.maxButtonText),
              value: JSON.stringify({ t: view.taskId }),
            },
          ],
        });
      }
      if (view.memoryProposals?.length) blocks.push(...memoryProposalBlocks(view.memoryProposals));
      break;
    }
    case 'brief': {
      text = briefHeadline(view);
      blocks.push(...briefBlocks(view));
      break;
    }
    case 'connect': {
      const [head = '', ...rest] = connectLines(view);
      text = head;
      const icon =
        view.state === 'connected'
          ? ':white_check_mark:'
          : view.state === 'declined'
            ? ':no_entry_sign:'
            : ':electric_plug:';
      blocks.push(section(`${icon} *${escapeMrkdwn(head)}*`));
      for (const line of rest) blocks.push(context(escapeMrkdwn(line)));
      if (view.state !== 'connected') {
        blocks.push({
          type: 'actions',
          block_id: `connect_${view.connector}`,
          elements: [
            {
              type: 'button',
              action_id: actionIds.connect,
              text: plain(connectButtonLabel(view.title), blockKitLimits.maxButtonText),
              style: 'primary',
              value: JSON.stringify({ t: view.taskId, c: view.connector }),
            },
          ],
        });
      }
      break;
    }
    case 'connections': {
      text =
        view.items.length === 0
          ? 'No connector here acts as each person'
          : `Your connections: ${view.items.filter((i) => i.connected).length} of ${view.items.length} connected`;
      blocks.push(header('Your connections'));
      if (view.items.length === 0) {
        blocks.push(section('No connector here acts as each person, so there is nothing to connect.'));
        break;
      }
      // One section with its button per connection, after the header and before the closing line.
      const room = blockKitLimits.maxBlocks - 2;
      view.items.slice(0, room).forEach((item, i) => {
        const state = item.connected ? ':white_check_mark: connected' : ':heavy_minus_sign: not connected';
        const action: ConnectionButtonAction = item.connected ? 'disconnect' : 'connect';
        blocks.push({
          type: 'section',
          text: mrkdwn(`*${escapeMrkdwn(item.title)}* · ${state}\n${escapeMrkdwn(connectionFacts(item))}`),
          accessory: {
            type: 'button',
            action_id: `handoff_connection_${action}_${i}`,
            text: plain(item.connected ? 'Disconnect' : connectButtonLabel(item.title), blockKitLimits.maxButtonText),
            value: JSON.stringify({ c: item.connector }),
            ...(item.connected
              ? {
                  style: 'danger' as const,
                  confirm: {
                    title: plain(`Disconnect ${item.title}?`, 100),
                    text: plain(
                      truncate(
                        `Handoff removes your ${item.title} access and asks ${item.title} to revoke it. Your requests that need it ask you to connect again.`,
                        300,
                      ),
                      300,
                    ),
                    confirm: plain('Disconnect', 30),
                    deny: plain('Keep it', 30),
                    style: 'danger' as const,
                  },
                }
              : {}),
          },
        });
      });
      blocks.push(
        context(
          view.items.length > room
            ? `…and ${view.items.length - room} more not shown.`
            : 'Only you see this. Handoff uses these services as you, for your own requests.',
        ),
      );
      break;
    }
    case 'schedules': {
      text =
        view.items.length === 0
          ? 'No schedules in this channel'
          : `${view.items.length} schedule${view.items.length === 1 ? '' : 's'} in this channel`;
      blocks.push(header('Schedules in this channel'));
      if (view.items.length === 0) {
        blocks.push(section(`No schedules here yet. ${howToSchedule}`));
        break;
      }
      // Two blocks per schedule, after the header and before the closing line.
      const room = Math.floor((blockKitLimits.maxBlocks - 2) / 2);
      blocks.push(...view.items.slice(0, room).flatMap((item, i) => scheduleItemBlocks(item, i)));
      blocks.push(
        context(
          view.items.length > room
            ? `…and ${view.items.length - room} more schedules not shown.`
            : `Times are in each schedule's zone. ${view.demo ? demoNote : howToSchedule}`,
        ),
      );
      break;
    }
  }
  return { text: truncate(text, blockKitLimits.maxTextChars), blocks: blocks.slice(0, blockKitLimits.maxBlocks) };
}

const howToSchedule =
  'Create one with `/handoff schedule "every weekday at 9:00" <what to post>`, or mention @handoff with `every Monday 9:00 Europe/Berlin: <what to post>`.';

/** A channel id as a link to the channel; anything else as plain text. */
function channelMention(id: string): string {
  return /^[CG][A-Z0-9]{1,40}$/.test(id) ? `<#${id}>` : escapeMrkdwn(id);
}

function listOrNone(items: readonly string[], none: string): string {
  return items.length > 0 ? items.map(escapeMrkdwn).join(', ') : none;
}

/** The schedule part of a standing plan's card, shown above the plan. */
function scheduleInfoBlocks(info: ScheduleInfo): KnownBlock[] {
  const e = info.envelope;
  const when = [
    `:calendar: *Scheduled brief: ${escapeMrkdwn(info.words)}*`,
    `*Time zone:* ${escapeMrkdwn(info.tz)} (${escapeMrkdwn(info.tzSource)})`,
    `*Next runs:* ${info.nextRuns.map(escapeMrkdwn).join(' · ') || 'none'}`,
    `*Owner:* ${escapeMrkdwn(info.owner)} · *Posts in:* ${channelMention(info.target)}`,
  ];
  if (info.scheduleId) when.push(`*Schedule:* \`${escapeMrkdwn(info.scheduleId)}\``);
  if (info.replaces)
    when.push(`:arrows_counterclockwise: Approving this replaces schedule \`${escapeMrkdwn(info.replaces)}\``);
  const cap = e.monthlyCapUsd !== undefined ? `; the channel's monthly cap is ${formatUsd(e.monthlyCapUsd)}` : '';
  const envelope = [
    '*Every run stays within this plan:*',
    `• Tools: ${listOrNone(e.tools, 'none')}`,
    `• Connectors: ${listOrNone(e.connectors, 'none')}`,
    `• Files it may deliver: ${listOrNone(e.deliverableTypes, 'none')}`,
    `• Budget: up to ${formatUsd(e.maxCostUsdPerRun)} and ${e.maxWallTimeMin} min per run${cap}`,
  ];
  const catchUp =
    info.catchUp === 'latest'
      ? 'If Handoff is down at a run time, the latest missed run is made up once it is back.'
      : 'Runs missed while Handoff is down are skipped.';
  return [
    section(when.join('\n')),
    section(envelope.join('\n')),
    context(`${catchUp} Approving starts the schedule; nothing runs now. Each brief is a new message in the channel.`),
    { type: 'divider' },
  ];
}

/** One tick's message: "preparing…", then the brief itself, or what failed and what to do. */
function briefBlocks(view: BriefView): KnownBlock[] {
  const blocks: KnownBlock[] = [header(view.title)];
  const when = [`:calendar: ${escapeMrkdwn(view.date)}`];
  if (view.manual) when.push('run by hand (Run now)');
  if (view.late) when.push(`:hourglass: ${escapeMrkdwn(view.late)}`);
  blocks.push(context(when.join(' · ')));
  switch (view.state) {
    case 'running':
      blocks.push(section(':hourglass_flowing_sand: Preparing this brief… it appears here when it is ready.'));
      break;
    case 'posted':
      if (view.body) blocks.push(...chunkText(markdownToMrkdwn(view.body)).map(section));
      else if (view.summary) blocks.push(section(escapeMrkdwn(view.summary)));
      break;
    case 'nothing_new':
      blocks.push(section(':zzz: *Nothing new* since the last brief.'));
      if (view.summary) blocks.push(context(escapeMrkdwn(truncate(view.summary, 1000))));
      break;
    case 'failed':
      blocks.push(section(`:x: *This brief failed:* ${escapeMrkdwn(view.reason ?? 'the run did not finish')}`));
      if (view.advice) blocks.push(section(escapeMrkdwn(view.advice)));
      break;
    case 'cancelled':
      blocks.push(section(`:heavy_minus_sign: *Cancelled*${view.reason ? `: ${escapeMrkdwn(view.reason)}` : ''}`));
      break;
  }
  if (view.paused) {
    blocks.push(
      section(
        `:double_vertical_bar: *The schedule is paused:* ${escapeMrkdwn(view.paused)}. Resume it with \`/handoff schedules\`.`,
      ),
    );
  }
  // Links only: a brief's files are not uploaded, its message carries them.
  const room = blockKitLimits.maxBlocks - blocks.length - 2;
  const lines = view.state === 'running' ? [] : view.files.map((f) => fileLine(f, new Set()));
  if (lines.length > 0) {
    const chunks = chunkLines(lines);
    for (const chunk of chunks.slice(0, room)) blocks.push(section(chunk));
    if (chunks.length > room) blocks.push(context('…and more files'));
  }
  const foot = [`Scheduled brief of ${escapeMrkdwn(view.owner)}`, `\`${escapeMrkdwn(view.scheduleId)}\``];
  foot.push(view.demo ? demoNote : 'manage it with `/handoff schedules`; ask questions in the thread');
  blocks.push(context(foot.join(' · ')));
  return blocks;
}

/** A schedule as a list shows it (the channel's list, App Home). */
export type ScheduleItem = ScheduleListView['items'][number] & {
  /** The channel it posts in, shown where the list spans channels (App Home). */
  channel?: string;
};

/** What a schedule's button carries: which schedule it acts on. */
export function encodeScheduleValue(scheduleId: string): string {
  return JSON.stringify({ s: scheduleId });
}

/** The schedule id of a click; undefined when it is not one of ours. */
export function decodeScheduleValue(raw: unknown): string | undefined {
  if (typeof raw !== 'string' || raw.length > 500) return undefined;
  try {
    const v = JSON.parse(raw) as { s?: unknown };
    return typeof v.s === 'string' && /^[A-Za-z0-9_-]{1,100}$/.test(v.s) ? v.s : undefined;
  } catch {
    return undefined;
  }
}

/** Two blocks per schedule: what, when, whose and how it went; then its buttons. */
function scheduleItemBlocks(item: ScheduleItem, index: number): KnownBlock[] {
  const lines = [`*${escapeMrkdwn(truncate(item.request, 300))}*`];
  const where = item.channel ? ` · in ${channelMention(item.channel)}` : '';
  lines.push(`${escapeMrkdwn(item.words)} (${escapeMrkdwn(item.tz)}) · owner ${escapeMrkdwn(item.owner)}${where}`);
  lines.push(
    item.status === 'paused'
      ? `:double_vertical_bar: Paused${item.pausedReason ? `: ${escapeMrkdwn(truncate(item.pausedReason, 400))}` : ''}`
      : `:white_check_mark: Active${item.nextRun ? ` · next run ${escapeMrkdwn(item.nextRun)}` : ''}`,
  );
  if (item.lastResult) lines.push(`Last brief: ${escapeMrkdwn(truncate(item.lastResult, 400))}`);
  lines.push(`\`${escapeMrkdwn(item.id)}\``);
  const value = encodeScheduleValue(item.id);
  const button = (action: ScheduleButtonAction, label: string, extra: Partial<types.Button> = {}): types.Button => ({
    type: 'button',
    action_id: scheduleActionId(action, index),
    text: plain(label, blockKitLimits.maxButtonText),
    value,
    ...extra,
  });
  return [
    section(lines.join('\n')),
    {
      type: 'actions',
      block_id: `schedule_${index}`,
      elements: [
        item.status === 'paused' ? button('resume', 'Resume', { style: 'primary' }) : button('pause', 'Pause'),
        button('run_now', 'Run now'),
        button('edit', 'Edit'),
        button('delete', 'Delete', {
          style: 'danger',
          confirm: {
            title: plain('Delete this schedule?', 100),
            text: plain(
              truncate(`"${item.request}" (${item.words}) will not run again. Briefs already posted stay.`, 300),
              300,
            ),
            confirm: plain('Delete', 30),
            deny: plain('Keep it', 30),
            style: 'danger',
          },
        }),
      ],
    },
  ];
}

/** The modal behind "Schedule…": when should this request run again? */
export function scheduleModal(taskId: string, channel: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: callbackIds.scheduleModal,
    private_metadata: JSON.stringify({ t: taskId, c: channel }),
    title: plain('Schedule this', 24),
    submit: plain('Propose', 24),
    close: plain('Cancel', 24),
    blocks: [
      section(
        'Run this request again on a schedule, with the same files. Handoff drafts a standing plan for approval; each run posts its brief as a new message in this channel.',
      ),
      {
        type: 'input',
        block_id: 'when',
        label: plain('When?', 100),
        element: {
          type: 'plain_text_input',
          action_id: 'text',
          max_length: 300,
          min_length: 3,
          placeholder: plain('every weekday at 9:00', 150),
        },
        hint: plain('e.g. "every Monday 9:00 Europe/Berlin", "on the 1st of each month at 8:00"', 2000),
      },
    ],
  };
}

/**
 * The modal behind a schedule's Edit. Its owner changes the time (prefilled with the rule
 * they typed) or the request; anyone else who may change it proposes a new request only.
 * A new request drafts a new plan that needs approval.
 */
export function scheduleEditModal(
  item: { id: string; when?: string; request?: string },
  meta: { channel?: string; home?: boolean; owner: boolean },
): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: callbackIds.scheduleEditModal,
    private_metadata: JSON.stringify({
      s: item.id,
      ...(meta.channel ? { c: meta.channel } : {}),
      h: meta.home === true,
    }),
    title: plain('Edit schedule', 24),
    submit: plain('Save', 24),
    close: plain('Cancel', 24),
    blocks: [
      {
        type: 'input',
        block_id: 'when',
        optional: !meta.owner,
        label: plain('When', 100),
        element: {
          type: 'plain_text_input',
          action_id: 'when',
          max_length: 300,
          ...(item.when ? { initial_value: truncate(item.when, 300) } : {}),
          placeholder: plain('every weekday at 9:00', 150),
        },
        ...(meta.owner
          ? {}
          : { hint: plain("Only the schedule's owner can change its time; leave this empty.", 2000) }),
      },
      {
        type: 'input',
        block_id: 'request',
        optional: true,
        label: plain('Request', 100),
        element: {
          type: 'plain_text_input',
          action_id: 'request',
          multiline: true,
          max_length: 3000,
          ...(item.request ? { initial_value: truncate(item.request, 3000) } : {}),
        },
        hint: plain(
          meta.owner
            ? 'Changing what it does drafts a new plan that needs approval; until then the schedule keeps its plan.'
            : 'A new request drafts a new plan that needs approval; until then the schedule keeps its plan.',
          2000,
        ),
      },
    ],
  };
}

/**
 * Markdown as Slack mrkdwn, reasonably: headings and **bold** become *bold*, *italic*
 * _italic_, [text](url) a link, list markers bullets, ~~struck~~ ~struck~. Code spans and
 * fences are kept as they are; everything is escaped for Slack first.
 */
export function markdownToMrkdwn(markdown: string): string {
  const parts = escapeMrkdwn(markdown.replace(/\r\n?/g, '\n')).split(/(```[\s\S]*?```)/g);
  return parts
    .map((part, i) => (i % 2 === 1 ? part : part.split('\n').map(convertLine).join('\n')))
    .join('')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function convertLine(line: string): string {
  const heading = /^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
  if (heading) return `*${inline(heading[1]!).replace(/\*/g, '')}*`;
  if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) return '───';
  const item = /^(\s*)[-*+]\s+(.*)$/.exec(line);
  if (item) return `${item[1]!.replace(/\t/g, '    ')}• ${inline(item[2]!)}`;
  const quote = /^\s*&gt;\s?(.*)$/.exec(line);
  if (quote) return `&gt; ${inline(quote[1]!)}`;
  return inline(line);
}

/** Emphasis and links outside `code` spans. */
function inline(text: string): string {
  return text
    .split(/(`[^`]+`)/g)
    .map((part, i) => {
      if (i % 2 === 1) return part;
      return part
        .replace(
          /!?\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g,
          (_m, label: string, url: string) =>
            `<${url.replace(/[<>|]/g, encodeURIComponent)}|${label.replace(/[|]/g, '/')}>`,
        )
        .replace(
          /\*\*(.+?)\*\*|__(.+?)__/g,
          (_m, a: string | undefined, b: string | undefined) => `\uE000${a ?? b}\uE000`,
        )
        .replace(/(^|[^*\w])\*(?!\s)([^*]+?)\*(?!\w)/g, '$1_$2_')
        .replace(/~~(.+?)~~/g, '~$1~')
        .replace(/\uE000/g, '*');
    })
    .join('');
}

/** Splits mrkdwn into texts within the section limit, at line breaks where possible. */
function chunkText(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  let current = '';
  for (const line of lines) {
    for (let rest = line; ; ) {
      const piece = rest.slice(0, blockKitLimits.maxTextChars);
      rest = rest.slice(piece.length);
      const next = current ? `${current}\n${piece}` : piece;
      if (next.length > blockKitLimits.maxTextChars) {
        out.push(current);
        current = piece;
      } else current = next;
      if (!rest) break;
    }
  }
  if (current.trim()) out.push(current);
  return out.filter((c) => c.trim().length > 0);
}

/** "Revised after Ben asked: …" and the diff against the previous version, as two blocks within the text limit. */
function changesBlocks(changes: NonNullable<PlanView['changes']>, version: number): KnownBlock[] {
  const { diff } = changes;
  const lines: string[] = [];
  if (diff.summaryChanged) lines.push(':pencil2: Summary reworded');
  for (const s of diff.steps) {
    const title = escapeMrkdwn(truncate(s.title, 200));
    if (s.kind === 'added') lines.push(`:heavy_plus_sign: *${title}*`);
    else if (s.kind === 'removed') lines.push(`:heavy_minus_sign: ~${title}~`);
    else if (s.kind === 'changed')
      lines.push(
        `:arrows_counterclockwise: *${title}*: ${escapeMrkdwn(truncate(s.before ?? '', 300))} → ${escapeMrkdwn(truncate(s.after ?? '', 300))}`,
      );
  }
  for (const f of diff.deliverables.added) lines.push(`:heavy_plus_sign: file ${escapeMrkdwn(f)}`);
  for (const f of diff.deliverables.removed) lines.push(`:heavy_minus_sign: file ~${escapeMrkdwn(f)}~`);
  for (const sentence of diff.envelope) lines.push(`:warning: ${escapeMrkdwn(sentence)}`);
  if (lines.length === 0) lines.push('Same steps, files and limits as before.');
  // Whole lines only: what does not fit is counted, never cut mid-way.
  const head = `*Changes since v${version - 1}*`;
  const room = blockKitLimits.maxTextChars - head.length - 40;
  const shown: string[] = [];
  let used = 0;
  for (const line of lines) {
    if (used + line.length + 1 > room) break;
    shown.push(line);
    used += line.length + 1;
  }
  const more = lines.length - shown.length;
  const diffText = `${head}\n${shown.join('\n')}${more > 0 ? `\n…and ${more} more changes` : ''}`;
  const asked = changes.followUp
    ? `:pencil2: *Follow-up from ${escapeMrkdwn(changes.requestedBy)}:* “${escapeMrkdwn(truncate(changes.text, 2000))}”\n${escapeMrkdwn(truncate(followUpNoteText(changes.followUp), 500))}`
    : changes.requestedBy
      ? `:pencil2: *Revised after ${escapeMrkdwn(changes.requestedBy)} asked:* “${escapeMrkdwn(truncate(changes.text, 2000))}”`
      : ':pencil2: *Revised plan*';
  return [section(asked), section(diffText)];
}

function decisionLine(decision: NonNullable<Extract<View, { kind: 'plan' }>['decision']>): string {
  const who = decision.by ? ` by ${escapeMrkdwn(decision.by)}` : '';
  const when = slackDate(decision.at);
  switch (decision.outcome) {
    case 'approved':
      return `:white_check_mark: Approved${who} · ${when}`;
    case 'denied':
      return `:no_entry_sign: Denied${who} · ${when}`;
    case 'cancelled':
      return `:heavy_minus_sign: Cancelled${who} · ${when}`;
    case 'expired':
      return `:hourglass: Expired: nobody approved in time · ${when}`;
    case 'superseded':
      return decision.by
        ? `:pencil2: Changes requested${who} · ${when}; a new version follows`
        : `:pencil2: Superseded by a newer version · ${when}`;
  }
}

function planActions(view: Extract<View, { kind: 'plan' }>): KnownBlock {
  const value = encodeButtonValue({ taskId: view.taskId, version: view.version, hash: view.hash });
  const watched = view.steps.filter((s) => s.level === 'watched');
  const elements: types.Button[] = [];
  if (view.blockers.length === 0) {
    elements.push({
      type: 'button',
      action_id: actionIds.approve,
      text: plain('Approve', blockKitLimits.maxButtonText),
      style: 'primary',
      value,
      ...(watched.length > 0
        ? {
            confirm: {
              title: plain('Approve a plan with watched steps?', 100),
              text: plain(
                truncate(
                  `These steps pause for an approver during the run: ${watched.map((s) => s.title).join('; ')}`,
                  300,
                ),
                300,
              ),
              confirm: plain('Approve', 30),
              deny: plain('Back', 30),
              style: 'primary',
            },
          }
        : {}),
    });
  }
  elements.push(
    {
      type: 'button',
      action_id: actionIds.deny,
      text: plain('Deny', blockKitLimits.maxButtonText),
      style: 'danger',
      value,
    },
    {
      type: 'button',
      action_id: actionIds.requestChanges,
      text: plain('Request changes', blockKitLimits.maxButtonText),
      value,
    },
  );
  return { type: 'actions', block_id: `plan_${view.version}`, elements };
}

/** The modal in which an approver types the change they want. */
export function changesModal(value: PlanButtonValue, channel: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: callbackIds.changesModal,
    private_metadata: JSON.stringify({ ...JSON.parse(encodeButtonValue(value)), c: channel }),
    title: plain('Request changes', 24),
    submit: plain('Send', 24),
    close: plain('Cancel', 24),
    blocks: [
      section(`What should plan v${value.version} do differently? Handoff drafts a new version.`),
      {
        type: 'input',
        block_id: 'changes',
        label: plain('Changes', 2000),
        element: { type: 'plain_text_input', action_id: 'text', multiline: true, max_length: 2000, min_length: 3 },
      },
    ],
  };
}

export interface HomeTask {
  id: string;
  request: string;
  state: string;
  updatedAt: string;
  permalink?: string;
}

/**
 * App Home: the person's recent tasks, the plans waiting for their approval, and the
 * schedules they own with their buttons. `notice` is the answer to their last click there,
 * as mrkdwn: the caller MUST escape what people or models wrote in it.
 */
export function homeView(input: {
  mine: HomeTask[];
  waiting: HomeTask[];
  schedules?: ScheduleItem[];
  notice?: string;
}): Record<string, unknown> {
  const line = (t: HomeTask) =>
    `• ${escapeMrkdwn(truncate(t.request.replace(/\s+/g, ' '), 120))} — \`${t.state.replace(/_/g, ' ')}\` · ${slackDate(t.updatedAt)}${t.permalink ? ` · <${t.permalink}|open thread>` : ''}`;
  const listBlocks = (title: string, tasks: HomeTask[], empty: string): KnownBlock[] => [
    header(title),
    ...(tasks.length === 0 ? [section(empty)] : chunkLines(tasks.map(line)).map(section)),
  ];
  const schedules = input.schedules ?? [];
  // App Home allows 100 blocks: the task lists take at most ~10, each schedule two.
  const shown = schedules.slice(0, 30);
  const blocks: KnownBlock[] = [
    ...(input.notice ? [section(`:information_source: ${input.notice}`), { type: 'divider' } as KnownBlock] : []),
    ...listBlocks('Waiting for your approval', input.waiting, 'Nothing is waiting for you.'),
    { type: 'divider' } as KnownBlock,
    ...listBlocks('Your recent tasks', input.mine, 'No tasks yet: mention @handoff in a channel with what you need.'),
    { type: 'divider' } as KnownBlock,
    header('Your schedules'),
    ...(shown.length === 0
      ? [section(`You own no schedules. ${howToSchedule}`)]
      : shown.flatMap((item, i) => scheduleItemBlocks(item, i))),
    ...(schedules.length > shown.length
      ? [context(`…and ${schedules.length - shown.length} more: see \`/handoff schedules\` in their channels.`)]
      : []),
  ];
  return { type: 'home', blocks: blocks.slice(0, 100) };
}

/** Joins lines into texts of at most 3,000 characters each. */
function chunkLines(lines: string[]): string[] {
  const chunks: string[] = [];
  let current = '';
  for (const l of lines) {
    const next = current ? `${current}\n${l}` : l;
    if (next.length > blockKitLimits.maxTextChars && current) {
      chunks.push(current);
      current = truncate(l, blockKitLimits.maxTextChars);
    } else {
      current = truncate(next, blockKitLimits.maxTextChars);
    }
  }
  if (current) chunks.push(current);
  return chunks;
}
