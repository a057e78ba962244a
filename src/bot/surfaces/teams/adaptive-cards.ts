import { z } from 'zod';
import { ErrorCodes, HandoffError, type StepStatus, type TrustLevel } from '../../../core/index.ts';
import {
  type ApprovalRequestView,
  type BriefView,
  briefHeadline,
  type ConnectionsView,
  type ConnectView,
  connectButtonLabel,
  connectionFacts,
  connectLines,
  type FileLink,
  followUpNoteText,
  formatDuration,
  formatTokens,
  formatUsd,
  type PlanView,
  type ProgressView,
  type QuestionView,
  type ResultView,
  reachLines,
  type ScheduleInfo,
  type ScheduleListView,
  type StatusView,
  type View,
  workstreamPlanLines,
  workstreamProgressLines,
} from '../../views.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** A top-level Adaptive Card (schema 1.5) as Teams receives it in an attachment. */
export interface AdaptiveCard extends JsonObject {
  type: 'AdaptiveCard';
  $schema: string;
  version: string;
  body: JsonObject[];
}

export interface CardOptions {
  /**
   * The person the card is rendered for (a Universal Actions refresh). `mayDecide`: they
   * may approve (the caller applies policy, self-approval included); `isRequester`: they
   * asked for the task and may always withdraw it or ask for changes.
   */
  viewer?: { id: string; mayDecide: boolean; isRequester: boolean };
  /**
   * People whose Teams client fetches their own version of an open plan card (at most 60,
   * Teams' limit). Without `viewer`, the card everyone else sees then has no buttons.
   * More than 60 ids are ignored: the card shows its buttons to everyone instead.
   */
  refreshUserIds?: string[];
  /** Shown on top, e.g. why a click was refused; the rest of the card stays as it was. */
  notice?: { text: string; tone: 'warning' | 'error' | 'good' };
  /** Who may approve, in words ("Ana or Bo"), for "Waiting for approval by …"; default "an approver". */
  waitingFor?: string;
  /**
   * On a Connect card or a list of connections answering one person's Connect click: the
   * sign-in page to open (Action.OpenUrl). Only ever in an invoke response, which Teams
   * shows to the clicker alone; never on a card posted for everyone.
   */
  signIn?: { url: string; title: string };
}

export const cardSchemaUrl = 'http://adaptivecards.io/schemas/adaptive-card.json';

/** What Teams allows, and what Handoff keeps to. */
export const cardLimits = {
  /** The card's JSON: Teams refuses messages over ~28 KB, and the activity around the card needs room too. */
  maxCardBytes: 24_000,
  /** Teams refreshes a card automatically for at most 60 people. */
  maxRefreshUserIds: 60,
  maxChanges: 2000,
  maxWhen: 300,
  maxRequest: 3000,
} as const;

/** The verbs of the Action.Execute buttons; `parseAction` accepts exactly these. */
export const cardVerbs = {
  planApprove: 'plan.approve',
  planDeny: 'plan.deny',
  planChanges: 'plan.changes',
  refresh: 'refresh',
  taskCancel: 'task.cancel',
  actionApprove: 'action.approve',
  actionDeny: 'action.deny',
  /** "Approve for the rest of this run" on a paused call's card. */
  actionGrantRun: 'action.grant_run',
  /** "Always allow in this channel" on a paused call's card. */
  actionGrantChannel: 'action.grant_channel',
  /** Revoke in the `grants` list. */
  grantRevoke: 'grant.revoke',
  /** Accept on a proposed fact for the channel's memory (result card, `memory` list). */
  memoryAccept: 'memory.accept',
  /** Dismiss on a proposed fact. */
  memoryDismiss: 'memory.dismiss',
  /** Forget on a remembered fact in the `memory` list. */
  memoryForget: 'memory.forget',
  taskSchedule: 'task.schedule',
  scheduleAct: 'schedule.act',
  /** Connect a per-user connector as the clicker (on a Connect card, or in their list). */
  connect: 'connection.connect',
  /** Disconnect one of the clicker's own connections. */
  disconnect: 'connection.disconnect',
  /** Show the clicker their own connections (the button of a `connections` answer in a shared conversation). */
  connections: 'connection.list',
} as const;

/** What a schedule's buttons do: the actions `Schedules.act` accepts. */
export const scheduleCardActions = ['pause', 'resume', 'run_now', 'edit', 'delete'] as const;

/** Ids of the inputs whose values Teams merges into the data of an Action.Execute. */
export const inputIds = {
  changes: 'changes',
  when: 'when',
  /** Per schedule: ids are unique within a card, and a list shows several schedules. */
  editWhen: (scheduleId: string) => `edit.when.${scheduleId}`,
  editRequest: (scheduleId: string) => `edit.request.${scheduleId}`,
} as const;

export function cardAttachment(card: AdaptiveCard): {
  contentType: 'application/vnd.microsoft.card.adaptive';
  content: AdaptiveCard;
} {
  return { contentType: 'application/vnd.microsoft.card.adaptive', content: card };
}

// ---------------------------------------------------------------------------------------
// Text

/** Drops control characters and bidi overrides (which can make text read differently than it is). */
function clean(text: string): string {
  let out = '';
  for (const ch of text.replace(/\r\n?/g, '\n')) {
    const c = ch.codePointAt(0)!;
    if (ch === '\t') out += ' ';
    else if ((c < 32 && ch !== '\n') || c === 127 || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
      continue;
    else out += ch;
  }
  return out;
}

/** Cuts text to `max` characters, marking the cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${Array.from(text.slice(0, Math.max(0, max - 1))).join('')}…`;
}

/**
 * Escapes Adaptive Card markdown (TextBlock, Fact title and value): emphasis, links,
 * lists, headings, quotes, tables, HTML and the {{DATE()}} functions, so text people or
 * models wrote shows as written and cannot become a link or formatting.
 */
export function escapeCardMarkdown(text: string): string {
  return clean(text)
    .split('\n')
    .map((line) =>
      line
        .replace(/[\\`*_[\]<>#|~&{]/g, '\\$&')
        .replace(/^(\s*)([-+=])/, '$1\\$2')
        .replace(/^(\s*\d+)([.)])/, '$1\\$2'),
    )
    .join('\n');
}

/** Untrusted text on one line: whitespace collapsed, cut, escaped. */
function inline(text: string, max: number): string {
  return escapeCardMarkdown(truncate(clean(text).replace(/\s+/g, ' ').trim(), max));
}

/** Untrusted text that may have lines: cut, escaped, each line its own paragraph (markdown needs a blank line). */
function para(text: string, max: number): string {
  return truncate(clean(text).trim(), max)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map(escapeCardMarkdown)
    .join('\n\n');
}

/** Plain words for notifications: no markup, one line. */
function plainLine(text: string, max: number): string {
  return truncate(clean(text).replace(/\s+/g, ' ').trim(), max);
}

/**
 * A time each reader sees in their own zone and format (Teams' DATE and TIME functions,
 * TextBlock only). The functions take no fractional seconds.
 */
function cardTime(iso: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return inline(iso, 40);
  const t = new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return `{{DATE(${t}, SHORT)}} {{TIME(${t})}}`;
}

/** An absolute http(s) URL fit for a link or Action.OpenUrl; undefined otherwise. */
function safeUrl(url: string): string | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
    return u.href.replace(/\(/g, '%28').replace(/\)/g, '%29');
  } catch {
    return undefined;
  }
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

/** "XLSX" from the file name, else the media type. */
function fileType(f: FileLink): string {
  const ext = /\.([A-Za-z0-9]{1,8})$/.exec(f.name)?.[1];
  return ext ? ext.toUpperCase() : f.mediaType;
}

const demoNote = escapeCardMarkdown(
  '⚠️ Demo model — scripted sample, no AI involved; set ANTHROPIC_API_KEY to use Claude',
);

const levelBadge: Record<TrustLevel, string> = {
  autonomous: 'autonomous',
  batched: 'batched',
  watched: '👀 watched',
  forbidden: '⛔ forbidden',
};

const stepIcon: Record<StepStatus, string> = {
  pending: '⚪',
  running: '⏳',
  done: '✅',
  failed: '❌',
  skipped: '➖',
};

const howToSchedule = escapeCardMarkdown(
  'To create one, mention Handoff with a time and what to post, e.g. "every Monday 9:00 Europe/Berlin: the weekly sales summary".',
);

// ---------------------------------------------------------------------------------------
// Elements

type El = JsonObject;

/** `text` is card markdown: whatever came from outside MUST have gone through `inline`/`para`. */
function tb(text: string, extra: JsonObject = {}): El {
  return { type: 'TextBlock', text, wrap: true, ...extra };
}
const subtle = (text: string, extra: JsonObject = {}): El =>
  tb(text, { isSubtle: true, size: 'Small', spacing: 'Small', ...extra });
const heading = (text: string): El => tb(text, { size: 'Large', weight: 'Bolder' });
const facts = (pairs: Array<[string, string]>, extra: JsonObject = {}): El => ({
  type: 'FactSet',
  facts: pairs.map(([title, value]) => ({ title, value })),
  ...extra,
});

function execute(title: string, verb: string, data: JsonObject, style?: 'positive' | 'destructive'): El {
  return { type: 'Action.Execute', title, verb, data, ...(style ? { style } : {}) };
}

function showCard(title: string, body: El[], actions: El[]): El {
  return { type: 'Action.ShowCard', title, card: { type: 'AdaptiveCard', body, actions } };
}

const encoder = new TextEncoder();
const bytes = (v: JsonValue): number => encoder.encode(JSON.stringify(v)).length;

/**
 * Renders at most `maxItems` items, while their JSON fits `budget` bytes, and counts the
 * rest in a closing line: Teams refuses a card over its size limit outright.
 */
function fitItems<T>(
  items: readonly T[],
  render: (item: T, index: number) => El[],
  budget: number,
  more: (n: number) => string,
  maxItems = 50,
): El[] {
  const out: El[] = [];
  let used = 0;
  for (let i = 0; i < items.length; i++) {
    const els = render(items[i]!, i);
    const size = bytes(els);
    const reserve = i < items.length - 1 ? 160 : 0;
    // A card is read on a phone too: past a few dozen entries a count says more than a list.
    if (i >= maxItems || used + size + reserve > budget) {
      out.push(subtle(more(items.length - i)));
      break;
    }
    out.push(...els);
    used += size;
  }
  return out;
}

/** A FactSet of the pairs that fit `budget` bytes, and a line counting the rest. */
function fitFacts(pairs: Array<[string, string]>, budget: number, more: (n: number) => string): El[] {
  const shown: Array<[string, string]> = [];
  let used = 0;
  for (const [i, pair] of pairs.entries()) {
    const size = bytes(pair) + 20;
    if (used + size + (i < pairs.length - 1 ? 160 : 0) > budget) break;
    shown.push(pair);
    used += size;
  }
  const out = shown.length > 0 ? [facts(shown)] : [];
  if (shown.length < pairs.length) out.push(subtle(more(pairs.length - shown.length)));
  return out;
}

function finish(body: El[], actions: El[] = [], extra: JsonObject = {}): AdaptiveCard {
  const card: AdaptiveCard = {
    type: 'AdaptiveCard',
    $schema: cardSchemaUrl,
    version: '1.5',
    msteams: { width: 'Full' },
    body,
    ...(actions.length > 0 ? { actions } : {}),
    ...extra,
  };
  if (bytes(card) <= cardLimits.maxCardBytes) return card;
  // The budgets below keep cards within the limit; should one not, its buttons survive.
  return {
    ...card,
    body: [...body.slice(0, 2), subtle('Parts of this card were left out to fit the size limit of Teams.')],
  };
}

/** Room left for the lists of a card once its fixed parts are counted. */
function roomFor(...fixed: JsonValue[]): number {
  const overhead = 400;
  return Math.max(2000, cardLimits.maxCardBytes - overhead - fixed.reduce<number>((n, v) => n + bytes(v), 0));
}

function noticeBlock(notice: NonNullable<CardOptions['notice']>): El {
  const color = notice.tone === 'error' ? 'Attention' : notice.tone === 'warning' ? 'Warning' : 'Good';
  return tb(para(notice.text, 1000), { color, weight: 'Bolder' });
}

// ---------------------------------------------------------------------------------------
// Cards

/** Renders a surface-neutral view as an Adaptive Card 1.5 with Universal Actions, within Teams' limits. */
export function renderCard(view: View, options: CardOptions = {}): AdaptiveCard {
  const top = options.notice ? [noticeBlock(options.notice)] : [];
  switch (view.kind) {
    case 'status':
      return statusCard(view, top);
    case 'plan':
      return planCard(view, options, top);
    case 'progress':
      return progressCard(view, top);
    case 'approval':
      return approvalCard(view, top);
    case 'question':
      return questionCard(view, top);
    case 'result':
      return resultCard(view, top);
    case 'brief':
      return briefCard(view, top);
    case 'schedules':
      return schedulesCard(view, top);
    case 'connect':
      return connectCard(view, options, top);
    case 'connections':
      return connectionsCard(view, options, top);
  }
}

/** The sign-in part of a card answering one person's Connect: a line and the Open button. */
function signInParts(signIn: CardOptions['signIn']): { body: El[]; actions: El[] } {
  const url = signIn ? safeUrl(signIn.url) : undefined;
  if (!signIn || !url) return { body: [], actions: [] };
  return {
    body: [subtle('This sign-in link is for you alone: it works once, for a few minutes.')],
    actions: [{ type: 'Action.OpenUrl', title: plainLine(`Open the ${signIn.title} sign-in page`, 80), url }],
  };
}

/** The Connect card: what the requester can connect, and the button that starts it for whoever presses it. */
function connectCard(view: ConnectView, options: CardOptions, top: El[]): AdaptiveCard {
  const [head = '', ...rest] = connectLines(view);
  const icon = view.state === 'connected' ? '✅' : view.state === 'declined' ? '🚫' : '🔌';
  const signIn = signInParts(options.signIn);
  const body: El[] = [
    ...top,
    tb(`${icon} **${inline(head, 400)}**`),
    ...rest.map((l) => subtle(para(l, 800))),
    ...signIn.body,
  ];
  if (view.demo) body.push(subtle(demoNote));
  const actions: El[] = [...signIn.actions];
  if (view.state !== 'connected') {
    actions.push(
      execute(
        plainLine(connectButtonLabel(view.title), 80),
        cardVerbs.connect,
        { taskId: view.taskId, connector: view.connector },
        'positive',
      ),
    );
  }
  return finish(body, actions);
}

/** A person's own connections, each with Disconnect or Connect. */
function connectionsCard(view: ConnectionsView, options: CardOptions, top: El[]): AdaptiveCard {
  const signIn = signInParts(options.signIn);
  const head: El[] = [...top, heading('Your connections'), ...signIn.body];
  if (view.items.length === 0) {
    head.push(tb('No connector here acts as each person, so there is nothing to connect.'));
    return finish(head, signIn.actions);
  }
  const tail = [subtle('Handoff uses these services as you, for your own requests. Only you see this list.')];
  const items = fitItems(
    view.items,
    (item) => [
      {
        type: 'Container',
        separator: true,
        items: [
          tb(`**${inline(item.title, 100)}** · ${item.connected ? '✅ connected' : '➖ not connected'}`),
          subtle(inline(connectionFacts(item), 300), { spacing: 'None' }),
          {
            type: 'ActionSet',
            actions: [
              item.connected
                ? execute('Disconnect', cardVerbs.disconnect, { connector: item.connector }, 'destructive')
                : execute(plainLine(connectButtonLabel(item.title), 80), cardVerbs.connect, {
                    connector: item.connector,
                  }),
            ],
          },
        ],
      },
    ],
    roomFor(head, tail),
    (n) => `…and ${n} more not shown.`,
    25,
  );
  return finish([...head, ...items, ...tail], signIn.actions);
}

/**
 * The answer to `connections` where others read along (a channel, a group chat): a button
 * each person presses to see their own list, which Teams shows to them alone.
 */
export function connectionsPromptCard(): AdaptiveCard {
  return finish(
    [tb('Your connections are yours alone: press the button to see and manage them here, in a card only you see.')],
    [execute('Show my connections', cardVerbs.connections, {})],
  );
}

function statusCard(view: StatusView, top: El[]): AdaptiveCard {
  const body = [
    ...top,
    tb(`${view.tone === 'error' ? '⚠️ ' : ''}${para(view.text, 3000)}`, {
      color: view.tone === 'error' ? 'Attention' : 'Default',
    }),
  ];
  if (view.demo && view.tone !== 'error') body.push(subtle(demoNote));
  return finish(body);
}

type PlanButtons = 'all' | 'withdraw' | 'none';

function planCard(view: PlanView, options: CardOptions, top: El[]): AdaptiveCard {
  const open = !view.decision;
  const ids = options.refreshUserIds ?? [];
  const refreshIds = ids.length > 0 && ids.length <= cardLimits.maxRefreshUserIds ? ids : undefined;
  let buttons: PlanButtons = 'none';
  if (open) {
    if (options.viewer) buttons = options.viewer.mayDecide ? 'all' : options.viewer.isRequester ? 'withdraw' : 'none';
    else buttons = refreshIds ? 'none' : 'all';
  }

  const head: El[] = [...top];
  if (view.schedule) head.push(scheduleInfoBlock(view.schedule));
  head.push(heading(`Plan v${view.version}`));
  head.push(tb(`**Requested by** ${inline(view.requester, 100)}`, { spacing: 'Small' }));
  head.push(tb(para(view.summary, 1500)));
  head.push(view.demo ? tb(demoNote, { color: 'Warning', size: 'Small' }) : subtle(`model ${inline(view.model, 80)}`));
  if (view.context) head.push(subtle(inline(view.context, 300)));
  if (view.channelNote) head.push(subtle(`📌 ${inline(view.channelNote, 200)}`));

  const budget = view.demo
    ? 'no model cost (demo model)'
    : `about ${view.budget.estimatedTokens.toLocaleString('en-US')} tokens (${formatUsd(view.budget.estimatedCostUsd)})`;
  const tail: El[] = [
    ...(view.reach
      ? [
          tb('**Beyond its files**'),
          ...reachLines(view.reach).map((l) => tb(`• ${inline(l, 1000)}`, { spacing: 'None' })),
        ]
      : []),
    ...(view.workstreams
      ? (({ heading, lines }) => [
          tb(`**${inline(heading, 200)}**`),
          ...lines.map((l) => tb(`• ${inline(l, 600)}`, { spacing: 'None' })),
        ])(workstreamPlanLines(view.workstreams))
      : []),
    subtle(`Budget: ${budget}; cap ${formatUsd(view.budget.maxCostUsd)}, ${view.budget.maxWallTimeMin} min wall time`),
  ];

  const actions: El[] = [];
  const data = { taskId: view.taskId, version: view.version, hash: view.hash };
  if (view.decision) {
    tail.push(tb(planDecisionLine(view.decision), { separator: true }));
  } else {
    const waiting: string[] = [];
    if (view.votes && view.votes.needed > 1) {
      const names = view.votes.names.length > 0 ? inline(view.votes.names.join(', '), 300) : 'nobody yet';
      waiting.push(`Approvals: ${names} (${view.votes.names.length} of ${view.votes.needed})`);
    }
    if (view.expiresAt) waiting.push(`expires ${cardTime(view.expiresAt)}`);
    if (buttons !== 'all') {
      tail.push(
        tb(`⏳ Waiting for approval by ${options.waitingFor ? inline(options.waitingFor, 300) : 'an approver'}`, {
          separator: true,
        }),
      );
    }
    if (waiting.length > 0) tail.push(subtle(waiting.join(' · ')));
    if (buttons === 'withdraw') {
      tail.push(subtle('You asked for this: you may withdraw the request or ask for changes.'));
    }
    // Teams refreshes the card by itself only for the people it lists: anyone else (an
    // approver the bot has not met yet) asks for their own version with this button.
    if (buttons === 'none' && !options.viewer && refreshIds) {
      actions.push(
        execute('Approve or deny…', cardVerbs.refresh, { kind: 'plan', taskId: view.taskId, version: view.version }),
      );
    }
    const canApprove = buttons === 'all' && view.blockers.length === 0;
    if (canApprove) {
      actions.push(execute('Approve', cardVerbs.planApprove, data, 'positive'));
      const watched = view.steps.filter((s) => s.level === 'watched');
      if (watched.length > 0) {
        tail.push(
          subtle(
            `👀 Watched steps pause for an approver during the run: ${inline(watched.map((s) => s.title).join('; '), 300)}`,
          ),
        );
      }
    }
    if (buttons !== 'none') {
      actions.push(
        execute(buttons === 'withdraw' ? 'Withdraw request' : 'Deny', cardVerbs.planDeny, data, 'destructive'),
        showCard(
          'Request changes',
          [
            tb(`What should plan v${view.version} do differently? Handoff drafts a new version.`),
            {
              type: 'Input.Text',
              id: inputIds.changes,
              label: 'Changes',
              isMultiline: true,
              maxLength: cardLimits.maxChanges,
              isRequired: true,
              errorMessage: 'Say what should change.',
              placeholder: 'e.g. also add a chart of the totals',
            },
          ],
          [execute('Send', cardVerbs.planChanges, data)],
        ),
      );
    }
  }
  const extra: JsonObject =
    open && refreshIds
      ? {
          refresh: {
            action: {
              type: 'Action.Execute',
              verb: cardVerbs.refresh,
              data: { kind: 'plan', taskId: view.taskId, version: view.version },
            },
            userIds: [...refreshIds],
          },
        }
      : {};

  // The lists share what is left: blockers first (why Approve is missing), then the rest.
  let room = roomFor(head, tail, actions, extra);
  const blockers: El[] = [];
  if (view.blockers.length > 0) {
    blockers.push(tb('⛔ **This plan cannot be approved**', { color: 'Attention' }));
    blockers.push(
      ...fitItems(
        view.blockers,
        (b) => [tb(inline(b, 400), { color: 'Attention', spacing: 'None' })],
        Math.min(2000, room / 6),
        (n) => `…and ${n} more reasons`,
      ),
    );
    room -= bytes(blockers);
  }
  const changes = view.changes ? changesBlocks(view.changes, view.version, Math.min(4000, room / 4)) : [];
  room -= bytes(changes);
  const deliverables: El[] = [tb('**Deliverables**')];
  if (view.deliverables.length === 0) deliverables.push(subtle('none'));
  else
    deliverables.push(
      ...fitFacts(
        view.deliverables.map((d) => [inline(d.name, 120), d.type.toUpperCase()]),
        Math.min(2500, room / 5),
        (n) => `…and ${n} more files`,
      ),
    );
  room -= bytes(deliverables);
  const steps: El[] = [tb('**Steps**')];
  steps.push(
    ...fitItems(
      view.steps,
      (s, i) => [
        tb(`**${i + 1}. ${inline(s.title, 200)}** · ${levelBadge[s.level]}`, { spacing: 'Small' }),
        ...(s.detail ? [subtle(para(s.detail, 400), { spacing: 'None' })] : []),
      ],
      room - 200,
      (n) => `…and ${n} more steps`,
    ),
  );

  return finish([...head, ...changes, ...steps, ...deliverables, ...blockers, ...tail], actions, extra);
}

function planDecisionLine(decision: NonNullable<PlanView['decision']>): string {
  const who = decision.by ? ` by ${inline(decision.by, 100)}` : '';
  const when = cardTime(decision.at);
  switch (decision.outcome) {
    case 'approved':
      return `✅ Approved${who} · ${when}`;
    case 'denied':
      return `🚫 Denied${who} · ${when}`;
    case 'cancelled':
      return `➖ Cancelled${who} · ${when}`;
    case 'expired':
      return `⌛ Expired: nobody approved in time · ${when}`;
    case 'superseded':
      return decision.by
        ? `✏️ Changes requested${who} · ${when}; a new version follows`
        : `✏️ Superseded by a newer version · ${when}`;
  }
}

/** "Revised after Ben asked: …" and what changed since the previous version, whole lines only. */
function changesBlocks(changes: NonNullable<PlanView['changes']>, version: number, budget: number): El[] {
  const { diff } = changes;
  const lines: string[] = [];
  if (diff.summaryChanged) lines.push('✏️ Summary reworded');
  for (const s of diff.steps) {
    const title = inline(s.title, 200);
    if (s.kind === 'added') lines.push(`➕ **${title}**`);
    else if (s.kind === 'removed') lines.push(`➖ ~~${title}~~`);
    else if (s.kind === 'changed')
      lines.push(`🔄 **${title}**: ${inline(s.before ?? '', 300)} → ${inline(s.after ?? '', 300)}`);
  }
  for (const f of diff.deliverables.added) lines.push(`➕ file ${inline(f, 120)}`);
  for (const f of diff.deliverables.removed) lines.push(`➖ file ~~${inline(f, 120)}~~`);
  for (const sentence of diff.envelope) lines.push(`⚠️ ${inline(sentence, 300)}`);
  if (lines.length === 0) lines.push('Same steps, files and limits as before.');
  const asked = changes.followUp
    ? `✏️ **Follow-up from ${inline(changes.requestedBy, 100)}:** “${inline(changes.text, 600)}” ${inline(followUpNoteText(changes.followUp), 400)}`
    : changes.requestedBy
      ? `✏️ **Revised after ${inline(changes.requestedBy, 100)} asked:** “${inline(changes.text, 600)}”`
      : '✏️ **Revised plan**';
  return [
    {
      type: 'Container',
      style: 'emphasis',
      items: [
        tb(asked),
        tb(`**Changes since v${version - 1}**`, { spacing: 'Small' }),
        ...fitItems(
          lines,
          (l) => [tb(l, { spacing: 'None' })],
          Math.max(800, budget - 600),
          (n) => `…and ${n} more changes`,
        ),
      ],
    },
  ];
}

function listOrNone(items: readonly string[], none: string): string {
  return items.length > 0 ? inline(items.join(', '), 400) : none;
}

/** The schedule part of a standing plan's card, shown above the plan. */
function scheduleInfoBlock(info: ScheduleInfo): El {
  const e = info.envelope;
  const when: Array<[string, string]> = [
    ['Time zone', `${inline(info.tz, 60)} (${inline(info.tzSource, 100)})`],
    ['Next runs', info.nextRuns.length > 0 ? inline(info.nextRuns.slice(0, 5).join(' · '), 400) : 'none'],
    ['Owner', inline(info.owner, 100)],
    ['Posts in', inline(info.target, 80)],
  ];
  if (info.scheduleId) when.push(['Schedule', inline(info.scheduleId, 100)]);
  const cap = e.monthlyCapUsd !== undefined ? `; the channel's monthly cap is ${formatUsd(e.monthlyCapUsd)}` : '';
  const catchUp =
    info.catchUp === 'latest'
      ? 'If Handoff is down at a run time, the latest missed run is made up once it is back.'
      : 'Runs missed while Handoff is down are skipped.';
  return {
    type: 'Container',
    style: 'accent',
    items: [
      tb(`📅 **Scheduled brief: ${inline(info.words, 200)}**`, { size: 'Medium' }),
      facts(when),
      ...(info.replaces
        ? [tb(`🔄 Approving this replaces schedule ${inline(info.replaces, 100)}`, { color: 'Warning' })]
        : []),
      tb('**Every run stays within this plan:**'),
      facts([
        ['Tools', listOrNone(e.tools, 'none')],
        ['Connectors', listOrNone(e.connectors, 'none')],
        ['Files it may deliver', listOrNone(e.deliverableTypes, 'none')],
        ['Budget', `up to ${formatUsd(e.maxCostUsdPerRun)} and ${e.maxWallTimeMin} min per run${cap}`],
      ]),
      subtle(`${catchUp} Approving starts the schedule; nothing runs now. Each brief is a new message in the channel.`),
    ],
  };
}

function progressCard(view: ProgressView, top: El[]): AdaptiveCard {
  const title = view.cancellable ? 'Working…' : 'Run finished';
  const stats = `${formatDuration(view.elapsedMs)} elapsed${view.demo ? '' : ` · ${formatTokens(view.usage)} tokens`}`;
  const head: El[] = [...top, tb(`**${title}**`, { size: 'Medium' }), subtle(stats, { spacing: 'None' })];
  if (view.demo) head.push(tb(demoNote, { color: 'Warning', size: 'Small' }));
  const tail: El[] = [];
  if (view.workstreams?.length) {
    tail.push(tb('**Workstreams**'));
    for (const l of workstreamProgressLines(view.workstreams))
      tail.push(tb(`• ${inline(l, 200)}`, { spacing: 'None' }));
  }
  if (view.activity) tail.push(subtle(inline(view.activity, 300)));
  if (view.outputTail) {
    // The end of the output is what matters: keep its last lines.
    const lines = clean(view.outputTail).split('\n').slice(-12).join('\n');
    const kept = lines.length > 1500 ? `…${lines.slice(lines.length - 1499)}` : lines;
    tail.push(tb(para(kept, 1500), { fontType: 'Monospace', size: 'Small', isSubtle: true }));
  }
  const actions = view.cancellable
    ? [execute('Cancel', cardVerbs.taskCancel, { taskId: view.taskId }, 'destructive')]
    : [];
  const steps = fitItems(
    view.steps,
    (s, i) => [tb(`${stepIcon[s.status]} ${i + 1}. ${inline(s.title, 200)}`, { spacing: 'None' })],
    roomFor(head, tail, actions),
    (n) => `…and ${n} more steps`,
  );
  return finish([...head, ...steps, ...tail], actions);
}

function approvalCard(view: ApprovalRequestView, top: El[]): AdaptiveCard {
  const what = inline(view.action.replace(/_/g, ' '), 100);
  const head: El[] = [
    ...top,
    tb(`✋ **Approval needed** — ${what} (${levelBadge[view.trust]})`, { size: 'Medium' }),
    tb(para(view.reason, 1000)),
    subtle(`Tool: ${inline(view.tool, 100)}`, { spacing: 'None' }),
  ];
  if (view.demo) head.push(tb(demoNote, { color: 'Warning', size: 'Small' }));
  const tail: El[] = [];
  const actions: El[] = [];
  if (view.state === 'pending') {
    tail.push(subtle(`Waits until ${cardTime(view.expiresAt)}; then the run stops.`, { separator: true }));
    const data = { taskId: view.taskId, approvalId: view.approvalId };
    actions.push(
      execute('Approve', cardVerbs.actionApprove, data, 'positive'),
      execute('Deny', cardVerbs.actionDeny, data, 'destructive'),
    );
    if (view.grantOptions?.run)
      actions.push(execute('Approve for the rest of this run', cardVerbs.actionGrantRun, data));
    if (view.grantOptions?.channel)
      actions.push(execute('Always allow in this channel', cardVerbs.actionGrantChannel, data));
  } else {
    const who = view.decidedBy ? ` by ${inline(view.decidedBy, 100)}` : '';
    const when = view.decidedAt ? ` · ${cardTime(view.decidedAt)}` : '';
    const words: Record<typeof view.state, string> = {
      approved: '✅ Approved',
      denied: '🚫 Denied',
      expired: '⌛ Expired: nobody decided in time',
      stopped: '➖ The run ended before a decision',
    };
    const granted =
      view.grantedScope === 'run'
        ? ' for the rest of this run'
        : view.grantedScope === 'channel'
          ? ' and always allowed in this channel'
          : '';
    tail.push(tb(`${words[view.state]}${granted}${who}${when}`, { separator: true }));
  }
  const details = fitItems(
    view.details.slice(0, 10),
    (d) => [
      tb(`**${inline(d.label, 100)}**`, { spacing: 'Small' }),
      tb(para(d.value, 1500), { fontType: 'Monospace', size: 'Small', spacing: 'None' }),
    ],
    roomFor(head, tail, actions),
    (n) => `…and ${n} more details`,
  );
  if (view.details.length > 10) details.push(subtle(`…and ${view.details.length - 10} more details`));
  return finish([...head, ...details, ...tail], actions);
}

function questionCard(view: QuestionView, top: El[]): AdaptiveCard {
  const foot = view.answeredBy
    ? `Answered by ${inline(view.answeredBy, 100)}.`
    : view.expiresAt
      ? `Reply in this thread to answer. The question stays open until ${cardTime(view.expiresAt)}, then the agent goes on without an answer.`
      : 'Reply in this thread to answer.';
  const body = [...top, tb('❓ **The agent asks:**'), tb(para(view.question, 4000)), subtle(foot)];
  if (view.demo) body.push(tb(demoNote, { color: 'Warning', size: 'Small' }));
  return finish(body);
}

/** One file: name, type, size, until when its link works, and a button that opens it. */
function fileBlock(f: FileLink): El {
  const url = safeUrl(f.url);
  const meta = `${inline(fileType(f), 60)} · ${formatSize(f.size)} · ${
    url ? `link valid until ${cardTime(f.expiresAt)}` : 'no link available'
  }`;
  return {
    type: 'ColumnSet',
    spacing: 'Small',
    columns: [
      {
        type: 'Column',
        width: 'stretch',
        items: [tb(`📄 **${inline(f.name, 120)}**`), subtle(meta, { spacing: 'None' })],
      },
      ...(url
        ? [
            {
              type: 'Column',
              width: 'auto',
              verticalContentAlignment: 'Center',
              items: [{ type: 'ActionSet', actions: [{ type: 'Action.OpenUrl', title: 'Download', url }] }],
            },
          ]
        : []),
    ],
  };
}

function resultCard(view: ResultView, top: El[]): AdaptiveCard {
  const head =
    view.status === 'succeeded' ? '✅ **Done**' : view.status === 'cancelled' ? '➖ **Cancelled**' : '❌ **Failed**';
  const body: El[] = [
    ...top,
    tb(view.reason ? `${head}: ${para(view.reason, 1000)}` : head, {
      size: 'Medium',
      ...(view.status === 'failed' ? { color: 'Attention' } : {}),
    }),
  ];
  if (view.summary) body.push(tb(para(view.summary, 3000)));
  if (view.memoryProposals?.length) body.push(...memoryProposalBlocks(view.memoryProposals));
  const cost = view.demo ? 'demo model, no cost' : `${formatTokens(view.usage)} tokens · ${formatUsd(view.costUsd)}`;
  const tail: El[] = [subtle(`Took ${formatDuration(view.durationMs)} · ${cost}`, { separator: true })];
  if (view.demo) tail.push(tb(demoNote, { color: 'Warning', size: 'Small' }));
  const actions: El[] = [];
  if (view.schedulable && view.status === 'succeeded') {
    actions.push(
      showCard(
        'Schedule…',
        [
          tb(
            'Run this request again on a schedule, with the same files. Handoff drafts a standing plan for approval; each run posts its brief as a new message in this channel.',
          ),
          {
            type: 'Input.Text',
            id: inputIds.when,
            label: 'When?',
            placeholder: 'every weekday at 9:00',
            maxLength: cardLimits.maxWhen,
            isRequired: true,
            errorMessage: 'Say when, e.g. "every weekday at 9:00".',
          },
          subtle('e.g. "every Monday 9:00 Europe/Berlin", "on the 1st of each month at 8:00"'),
        ],
        [execute('Propose', cardVerbs.taskSchedule, { taskId: view.taskId })],
      ),
    );
  }
  const files = fitItems(
    view.files,
    (f) => [fileBlock(f)],
    roomFor(body, tail, actions),
    (n) => `…and ${n} more files`,
  );
  return finish([...body, ...files, ...tail], actions);
}

/**
 * "Remember for this channel?" with Accept and Dismiss, per open proposal (at most 5, as
 * the agent proposes at most 5 a run). Shown to everyone; a click by anyone but an approver
 * of the channel is refused on the clicker's card.
 */
export function memoryProposalBlocks(proposals: ReadonlyArray<{ id: string; text: string }>): JsonObject[] {
  return proposals.slice(0, 5).map((p) => ({
    type: 'Container',
    separator: true,
    items: [
      tb(`💡 Remember for this channel? “${inline(p.text, 600)}”`),
      {
        type: 'ActionSet',
        actions: [
          execute('Accept', cardVerbs.memoryAccept, { proposalId: p.id }, 'positive'),
          execute('Dismiss', cardVerbs.memoryDismiss, { proposalId: p.id }),
        ],
      },
    ],
  }));
}

/** One tick's message: "preparing…", then the brief itself, or what failed and what to do. */
function briefCard(view: BriefView, top: El[]): AdaptiveCard {
  const head: El[] = [...top, heading(inline(view.title, 150))];
  const when = [`📅 ${inline(view.date, 100)}`];
  if (view.manual) when.push('run by hand (Run now)');
  if (view.late) when.push(`⏳ ${inline(view.late, 100)}`);
  head.push(subtle(when.join(' · '), { spacing: 'None' }));
  let content: El[] = [];
  switch (view.state) {
    case 'running':
      head.push(tb('⏳ Preparing this brief… it appears here when it is ready.'));
      break;
    case 'posted':
      if (view.body) content = markdownBlocks(view.body);
      else if (view.summary) head.push(tb(para(view.summary, 3000)));
      break;
    case 'nothing_new':
      head.push(tb('💤 **Nothing new** since the last brief.'));
      if (view.summary) head.push(subtle(para(view.summary, 1000)));
      break;
    case 'failed':
      head.push(
        tb(`❌ **This brief failed:** ${para(view.reason ?? 'the run did not finish', 1000)}`, { color: 'Attention' }),
      );
      if (view.advice) head.push(tb(para(view.advice, 1000)));
      break;
    case 'cancelled':
      head.push(tb(`➖ **Cancelled**${view.reason ? `: ${para(view.reason, 1000)}` : ''}`));
      break;
  }
  if (view.paused) {
    head.push(
      tb(`⏸️ **The schedule is paused:** ${inline(view.paused, 400)}. Resume it from the channel's schedules.`, {
        color: 'Warning',
      }),
    );
  }
  const foot = [`Scheduled brief of ${inline(view.owner, 100)}`, inline(view.scheduleId, 100)];
  foot.push(view.demo ? demoNote : 'manage it from the channel’s schedules; ask questions in the thread');
  const tail = [subtle(foot.join(' · '), { separator: true })];
  // Files first: the body is cut to fit, the links are what the brief delivers.
  const fileLinks =
    view.state === 'running'
      ? []
      : fitItems(
          view.files,
          (f) => [fileBlock(f)],
          Math.min(8000, roomFor(head, tail) / 2),
          (n) => `…and ${n} more files`,
        );
  const shown = fitItems(
    content,
    (el) => [el],
    roomFor(head, tail, fileLinks),
    () => '…the brief is cut here to fit; the full text is in its file.',
  );
  return finish([...head, ...shown, ...fileLinks, ...tail]);
}

/**
 * Markdown (a brief, written by a model from data it read) as card markdown: headings and
 * **bold** bold, *italic* italic, lists kept, http(s) links kept; everything else escaped.
 * Returns paragraphs of at most ~2,000 characters, one TextBlock each.
 */
function markdownBlocks(markdown: string): El[] {
  const source = truncate(clean(markdown), 20_000);
  const out: string[] = [];
  let inFence = false;
  for (const raw of source.split('\n')) {
    if (/^\s*```/.test(raw)) {
      inFence = !inFence;
      continue;
    }
    if (inFence) {
      if (raw.trim()) out.push(escapeCardMarkdown(raw.trim()));
      continue;
    }
    const line = raw.trimEnd();
    if (!line.trim()) {
      out.push('');
      continue;
    }
    const head = /^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    const item = /^\s*[-*+]\s+(.*)$/.exec(line);
    const numbered = /^\s*(\d{1,3})[.)]\s+(.*)$/.exec(line);
    const quote = /^\s*>\s?(.*)$/.exec(line);
    if (head) out.push(`**${inlineMarkdown(head[1]!.replace(/\*\*/g, ''))}**`);
    else if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) out.push('───');
    else if (item) out.push(`- ${inlineMarkdown(item[1]!)}`);
    else if (numbered) out.push(`${numbered[1]}. ${inlineMarkdown(numbered[2]!)}`);
    else if (quote) out.push(`│ ${inlineMarkdown(quote[1]!)}`);
    else out.push(inlineMarkdown(line.trim()));
  }
  // List items stay together (one newline); anything else is its own paragraph.
  const isItem = (l: string) => /^(- |\d{1,3}\. )/.test(l);
  const paragraphs: string[] = [];
  for (let i = 0; i < out.length; i++) {
    const l = out[i]!;
    if (!l) continue;
    const prev = out[i - 1];
    if (paragraphs.length > 0 && prev && isItem(prev) && isItem(l)) paragraphs[paragraphs.length - 1] += `\n${l}`;
    else paragraphs.push(l);
  }
  const blocks: string[] = [];
  let current = '';
  for (const p of paragraphs) {
    const next = current ? `${current}\n\n${p}` : p;
    if (next.length > 2000 && current) {
      blocks.push(current);
      current = p;
    } else current = next;
  }
  if (current) blocks.push(current);
  return blocks.map((b) => tb(b));
}

/** Emphasis and http(s) links; the text around and inside them escaped. */
function inlineMarkdown(text: string): string {
  const token =
    /!?\[([^\]]+)\]\(([^)\s]+)\)|\*\*(.+?)\*\*|__(.+?)__|(?<![*\w])\*(?!\s)([^*]+?)\*(?![*\w])|~~(.+?)~~|`([^`]+)`/g;
  let out = '';
  let last = 0;
  for (const m of text.matchAll(token)) {
    out += escapeCardMarkdown(text.slice(last, m.index));
    last = m.index + m[0].length;
    const [, label, url, bold1, bold2, italic, struck, code] = m;
    if (label !== undefined) {
      const href = safeUrl(url ?? '');
      out += href ? `[${escapeCardMarkdown(label)}](${href})` : escapeCardMarkdown(label);
    } else if (bold1 !== undefined || bold2 !== undefined) out += `**${escapeCardMarkdown(bold1 ?? bold2 ?? '')}**`;
    else if (italic !== undefined) out += `_${escapeCardMarkdown(italic)}_`;
    else if (struck !== undefined) out += `~~${escapeCardMarkdown(struck)}~~`;
    else out += escapeCardMarkdown(code ?? '');
  }
  return out + escapeCardMarkdown(text.slice(last));
}

function schedulesCard(view: ScheduleListView, top: El[]): AdaptiveCard {
  const head: El[] = [...top, heading('Schedules in this channel')];
  if (view.items.length === 0) {
    head.push(tb(`No schedules here yet. ${howToSchedule}`));
    if (view.demo) head.push(tb(demoNote, { color: 'Warning', size: 'Small' }));
    return finish(head);
  }
  const tail = [subtle(`Times are in each schedule's zone. ${view.demo ? demoNote : howToSchedule}`)];
  const items = fitItems(
    view.items,
    (item) => [scheduleItemBlock(item)],
    roomFor(head, tail),
    (n) => `…and ${n} more schedules not shown.`,
    25,
  );
  return finish([...head, ...items, ...tail]);
}

/** One schedule: what, when, whose and how it went; then its buttons. */
function scheduleItemBlock(item: ScheduleListView['items'][number]): El {
  const lines: El[] = [
    tb(`**${inline(item.request, 300)}**`),
    subtle(`${inline(item.words, 200)} (${inline(item.tz, 60)}) · owner ${inline(item.owner, 100)}`, {
      spacing: 'None',
    }),
    tb(
      item.status === 'paused'
        ? `⏸️ Paused${item.pausedReason ? `: ${inline(item.pausedReason, 400)}` : ''}`
        : `✅ Active${item.nextRun ? ` · next run ${inline(item.nextRun, 100)}` : ''}`,
      { size: 'Small', spacing: 'None' },
    ),
  ];
  if (item.lastResult) lines.push(subtle(`Last brief: ${inline(item.lastResult, 400)}`, { spacing: 'None' }));
  lines.push(subtle(`Schedule ${inline(item.id, 100)}`, { spacing: 'None' }));
  const act = (action: (typeof scheduleCardActions)[number]) => ({ scheduleId: item.id, action });
  const actions: El[] = [
    item.status === 'paused'
      ? execute('Resume', cardVerbs.scheduleAct, act('resume'), 'positive')
      : execute('Pause', cardVerbs.scheduleAct, act('pause')),
    execute('Run now', cardVerbs.scheduleAct, act('run_now')),
    showCard(
      'Edit…',
      [
        tb(
          'Its owner may change when it runs. A new request drafts a new plan that needs approval; until then the schedule keeps its plan. Leave a field empty to keep it.',
        ),
        {
          type: 'Input.Text',
          id: inputIds.editWhen(item.id),
          label: 'When',
          placeholder: 'every weekday at 9:00',
          maxLength: cardLimits.maxWhen,
        },
        {
          type: 'Input.Text',
          id: inputIds.editRequest(item.id),
          label: 'Request',
          placeholder: 'What it should post instead',
          isMultiline: true,
          maxLength: cardLimits.maxRequest,
        },
      ],
      [execute('Save', cardVerbs.scheduleAct, act('edit'))],
    ),
    // A confirmation step, as there is no confirm dialog on a card.
    showCard(
      'Delete…',
      [
        tb(
          `“${inline(item.request, 200)}” (${inline(item.words, 100)}) will not run again. Briefs already posted stay.`,
        ),
      ],
      [execute('Delete', cardVerbs.scheduleAct, act('delete'), 'destructive')],
    ),
  ];
  return { type: 'Container', separator: true, spacing: 'Medium', items: [...lines, { type: 'ActionSet', actions }] };
}

// ---------------------------------------------------------------------------------------
// Notification text

/** A short plain-text line for the activity's `text`/`summary` (notifications, screen readers). */
export function messageText(view: View): string {
  let text: string;
  switch (view.kind) {
    case 'status':
      text = view.text;
      break;
    case 'plan':
      text = `Plan v${view.version} for ${view.requester}: ${view.summary}`;
      if (view.schedule) text = `Schedule (${view.schedule.words}) — ${text}`;
      break;
    case 'progress': {
      const done = view.steps.filter((s) => s.status === 'done').length;
      text = `${view.cancellable ? 'Working…' : 'Run finished'} (${done} of ${view.steps.length} steps done)`;
      break;
    }
    case 'approval':
      text = `Approval needed: ${view.action.replace(/_/g, ' ')} (${view.tool})`;
      break;
    case 'question':
      text = `Question: ${view.question}`;
      break;
    case 'result': {
      const head = view.status === 'succeeded' ? 'Done' : view.status === 'cancelled' ? 'Cancelled' : 'Failed';
      const more = view.reason ?? view.summary;
      text = more ? `${head}: ${more}` : head;
      break;
    }
    case 'brief':
      text = briefHeadline(view);
      break;
    case 'schedules':
      text =
        view.items.length === 0
          ? 'No schedules in this channel'
          : `${view.items.length} schedule${view.items.length === 1 ? '' : 's'} in this channel`;
      break;
    case 'connect':
      text = connectLines(view)[0] ?? connectButtonLabel(view.title);
      break;
    case 'connections':
      text = `Your connections: ${view.items.filter((i) => i.connected).length} of ${view.items.length} connected`;
      break;
  }
  return plainLine(text, 300);
}

// ---------------------------------------------------------------------------------------
// Actions coming back

const IdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/, 'an id of letters, digits, _ and -');
const HashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a sha-256 hash in hex');
const VersionSchema = z.number().int().min(1).max(1_000_000);
/** Typed into a card: at most `max` characters (Input.Text enforces it; more means the data was forged). */
const typedText = (max: number) =>
  z
    .string()
    .max(max)
    .transform((s) => s.trim())
    .pipe(z.string().min(1));
const optionalText = (max: number) =>
  z
    .string()
    .max(max)
    .optional()
    .transform((s) => s?.trim() || undefined);

const planFields = { taskId: IdSchema, version: VersionSchema, hash: HashSchema };
const ConnectorNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,29}$/, 'a connector name');

/** A click on a card (or Teams asking for a card's personal version), by verb. */
export const TeamsActionSchema = z.discriminatedUnion('verb', [
  z.object({ verb: z.literal(cardVerbs.planApprove), ...planFields }),
  z.object({ verb: z.literal(cardVerbs.planDeny), ...planFields }),
  z.object({ verb: z.literal(cardVerbs.planChanges), ...planFields, changes: typedText(cardLimits.maxChanges) }),
  z.object({
    verb: z.literal(cardVerbs.refresh),
    kind: z.literal('plan'),
    taskId: IdSchema,
    version: VersionSchema,
    /** `automatic` when Teams refreshes on its own as the card comes into view. */
    trigger: z.enum(['manual', 'automatic']).default('manual'),
  }),
  z.object({ verb: z.literal(cardVerbs.taskCancel), taskId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.actionApprove), taskId: IdSchema, approvalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.actionDeny), taskId: IdSchema, approvalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.actionGrantRun), taskId: IdSchema, approvalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.actionGrantChannel), taskId: IdSchema, approvalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.grantRevoke), grantId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.memoryAccept), proposalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.memoryDismiss), proposalId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.memoryForget), factId: IdSchema }),
  z.object({ verb: z.literal(cardVerbs.taskSchedule), taskId: IdSchema, when: typedText(cardLimits.maxWhen) }),
  z.object({
    verb: z.literal(cardVerbs.scheduleAct),
    scheduleId: IdSchema,
    action: z.enum(scheduleCardActions),
    /** For edit: the new rule, when one was typed. */
    when: optionalText(cardLimits.maxWhen),
    /** For edit: a new request, when one was typed (needs a new approval). */
    text: optionalText(cardLimits.maxRequest),
  }),
  z.object({ verb: z.literal(cardVerbs.connect), connector: ConnectorNameSchema, taskId: IdSchema.optional() }),
  z.object({ verb: z.literal(cardVerbs.disconnect), connector: ConnectorNameSchema }),
  z.object({ verb: z.literal(cardVerbs.connections) }),
]);
export type TeamsAction = z.infer<typeof TeamsActionSchema>;

const InvokeValueSchema = z.object({
  action: z.object({
    type: z.literal('Action.Execute'),
    verb: z.string().min(1).max(100),
    data: z.record(z.string(), z.unknown()).optional(),
  }),
  trigger: z.enum(['manual', 'automatic']).optional(),
});

const knownVerbs: ReadonlySet<string> = new Set(Object.values(cardVerbs));

function invalid(message: string, cause?: unknown): HandoffError {
  return new HandoffError(ErrorCodes.invalidInput, message, cause === undefined ? {} : { cause });
}

/**
 * Parses the `value` of an `adaptiveCard/action` invoke (`{ action: { type, verb, data },
 * trigger }`). Teams merges the card's input values into `data`, keyed by input id.
 * Throws a HandoffError (`handoff_invalid_input`) for anything else.
 */
export function parseAction(value: unknown): TeamsAction {
  const envelope = InvokeValueSchema.safeParse(value);
  if (!envelope.success) throw invalid('this is not a card action Handoff understands', envelope.error);
  const { verb, data = {} } = envelope.data.action;
  if (!knownVerbs.has(verb)) throw invalid(`unknown card action "${plainLine(verb, 40)}"`);
  // Typed values are read only where the verb takes them.
  const { when: _when, text: _text, ...fields }: Record<string, unknown> = data;
  if (verb === cardVerbs.taskSchedule) fields.when = data.when;
  if (verb === cardVerbs.scheduleAct && data.action === 'edit' && typeof data.scheduleId === 'string') {
    fields.when = data[inputIds.editWhen(data.scheduleId)];
    fields.text = data[inputIds.editRequest(data.scheduleId)];
  }
  const parsed = TeamsActionSchema.safeParse({ ...fields, trigger: envelope.data.trigger, verb });
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || 'data'))].join(', ');
    throw invalid(`the card action "${verb}" has missing or invalid fields: ${names}`, parsed.error);
  }
  return parsed.data;
}
