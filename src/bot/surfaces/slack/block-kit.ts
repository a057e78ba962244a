import type { types } from '@slack/bolt';
import type { StepStatus, TrustLevel } from '../../../core/index.ts';
import { type FileLink, formatDuration, formatTokens, formatUsd, type PlanView, type View } from '../../views.ts';

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
} as const;

/** Callback ids of the modal, the message shortcut and the slash command. */
export const callbackIds = { changesModal: 'handoff_changes_modal', messageShortcut: 'handoff_message' } as const;

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
      blocks.push(header(`Plan v${view.version}`));
      blocks.push(section(`*Requested by* ${escapeMrkdwn(view.requester)}\n${escapeMrkdwn(view.summary)}`));
      blocks.push(context(view.demo ? demoNote : `model ${escapeMrkdwn(view.model)}`));
      if (view.changes) blocks.push(...changesBlocks(view.changes, view.version));
      // At most 20 steps (PlanDraftSchema), one section each: with the two blocks above, within the 50-block limit.
      view.steps.forEach((step, i) => {
        const detail = step.detail ? `\n${escapeMrkdwn(step.detail)}` : '';
        blocks.push(section(`*${i + 1}. ${escapeMrkdwn(step.title)}*  ${levelBadge[step.level]}${detail}`));
      });
      const deliverables = view.deliverables.map((d) => `• ${escapeMrkdwn(d.name)} (${d.type})`).join('\n');
      blocks.push(section(`*Deliverables*\n${deliverables}`));
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
        blocks.push(context(`${words[view.state]}${who}${when}`));
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
      break;
    }
  }
  return { text: truncate(text, blockKitLimits.maxTextChars), blocks: blocks.slice(0, blockKitLimits.maxBlocks) };
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
  const asked = changes.requestedBy
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

/** App Home: the person's recent tasks and the plans waiting for their approval. */
export function homeView(input: { mine: HomeTask[]; waiting: HomeTask[] }): Record<string, unknown> {
  const line = (t: HomeTask) =>
    `• ${escapeMrkdwn(truncate(t.request.replace(/\s+/g, ' '), 120))} — \`${t.state.replace(/_/g, ' ')}\` · ${slackDate(t.updatedAt)}${t.permalink ? ` · <${t.permalink}|open thread>` : ''}`;
  const listBlocks = (title: string, tasks: HomeTask[], empty: string): KnownBlock[] => [
    header(title),
    ...(tasks.length === 0 ? [section(empty)] : chunkLines(tasks.map(line)).map(section)),
  ];
  const blocks = [
    ...listBlocks('Waiting for your approval', input.waiting, 'Nothing is waiting for you.'),
    { type: 'divider' } as KnownBlock,
    ...listBlocks('Your recent tasks', input.mine, 'No tasks yet: mention @handoff in a channel with what you need.'),
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
