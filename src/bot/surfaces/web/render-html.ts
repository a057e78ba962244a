import { formatBytes } from '../../../storage/index.ts';
import {
  type ApprovalRequestView,
  type BriefView,
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
  reachLines,
  type ScheduleInfo,
  type ScheduleListView,
  type View,
  workstreamPlanLines,
  workstreamProgressLines,
} from '../../views.ts';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const levelText = { autonomous: 'autonomous', batched: 'batched', watched: 'watched', forbidden: 'forbidden' } as const;
const demoNote =
  '<p class="demo-note">demo model — scripted sample, no AI involved; set ANTHROPIC_API_KEY to use Claude</p>';

function time(iso: string): string {
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(iso.replace('T', ' ').slice(0, 16))} UTC</time>`;
}

/** Lines beyond this are summed up as "…and N more changes". */
const maxDiffLines = 30;

/** "Revised after Ana asked: …" and a compact diff against the previous version. */
function renderChanges(changes: NonNullable<PlanView['changes']>, version: number): string {
  const e = escapeHtml;
  const { diff } = changes;
  const lines: string[] = [];
  if (diff.summaryChanged) lines.push('<li class="diff-changed">Summary reworded</li>');
  for (const s of diff.steps) {
    if (s.kind === 'added')
      lines.push(
        `<li class="diff-added">+ <strong>${e(s.title)}</strong>${s.after ? ` <span class="muted">${e(s.after)}</span>` : ''}</li>`,
      );
    else if (s.kind === 'removed') lines.push(`<li class="diff-removed">− <del>${e(s.title)}</del></li>`);
    else if (s.kind === 'changed')
      lines.push(
        `<li class="diff-changed">~ <strong>${e(s.title)}</strong>: <del>${e(s.before ?? '')}</del> → <ins>${e(s.after ?? '')}</ins></li>`,
      );
  }
  for (const f of diff.deliverables.added) lines.push(`<li class="diff-added">+ file ${e(f)}</li>`);
  for (const f of diff.deliverables.removed) lines.push(`<li class="diff-removed">− file <del>${e(f)}</del></li>`);
  for (const sentence of diff.envelope) lines.push(`<li class="diff-envelope">${e(sentence)}</li>`);
  if (lines.length === 0) lines.push('<li class="muted">Same steps, files and limits as before.</li>');
  const shown = lines.slice(0, maxDiffLines);
  if (lines.length > maxDiffLines)
    shown.push(`<li class="muted">…and ${lines.length - maxDiffLines} more changes</li>`);
  const asked = changes.followUp
    ? `<p class="revision-note">Follow-up from ${e(changes.requestedBy)}: “${e(changes.text)}”</p><p class="follow-up-envelope">${e(followUpNoteText(changes.followUp))}</p>`
    : changes.requestedBy
      ? `<p class="revision-note">Revised after ${e(changes.requestedBy)} asked: “${e(changes.text)}”</p>`
      : `<p class="revision-note">Revised plan</p>`;
  return `<div class="revision">${asked}<p class="muted">Changes since v${version - 1}:</p><ul class="plan-diff">${shown.join('')}</ul></div>`;
}

/** Download links of a card's files, with their type, size and how long the link lasts. */
function fileList(files: FileLink[]): string {
  const e = escapeHtml;
  const items = files
    .map(
      (f) =>
        `<li><a href="${e(f.url)}" download="${e(f.name)}">${e(f.name)}</a> <span class="muted">${e((f.name.split('.').pop() ?? '').toUpperCase())} · ${formatBytes(f.size)} · link valid until ${time(f.expiresAt)}</span></li>`,
    )
    .join('');
  return items ? `<ul class="files">${items}</ul>` : '';
}

function listWords(items: string[], none: string): string {
  return items.length > 0 ? items.map(escapeHtml).join(', ') : none;
}

/** The schedule section on top of a standing plan's card: when, where, whose, and each run's limits. */
function renderScheduleInfo(s: ScheduleInfo): string {
  const e = escapeHtml;
  const env = s.envelope;
  const runs = s.nextRuns.map((r) => `<li>${e(r)}</li>`).join('');
  const cap = env.monthlyCapUsd !== undefined ? `; this channel's monthly cap ${formatUsd(env.monthlyCapUsd)}` : '';
  const catchUp =
    s.catchUp === 'latest'
      ? 'if Handoff was down at a run time, the latest missed run is made up once it is back'
      : 'missed runs are skipped';
  const rows = [
    ['Time zone', `${e(s.tz)} <span class="muted">(${e(s.tzSource)})</span>`],
    ['Next runs', runs ? `<ul class="next-runs">${runs}</ul>` : '<span class="muted">none</span>'],
    ['Owner', e(s.owner)],
    ['Posts to', `#${e(s.target)} <span class="muted">(each brief as a new message)</span>`],
    ['Tools', listWords(env.tools, 'none')],
    ['Connectors', listWords(env.connectors, 'none')],
    ['File types', listWords(env.deliverableTypes, 'none')],
    ['Each run', `up to ${formatUsd(env.maxCostUsdPerRun)} and ${env.maxWallTimeMin} min${cap}`],
    ['Missed runs', e(catchUp)],
    ...(s.replaces
      ? [
          [
            'Replaces',
            `schedule ${e(s.replaces)} <span class="muted">(it keeps its current plan until this is approved)</span>`,
          ],
        ]
      : []),
    ...(s.scheduleId ? [['Schedule', e(s.scheduleId)]] : []),
  ];
  const dl = rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('');
  return `<section class="schedule-info"${s.scheduleId ? ` data-schedule="${e(s.scheduleId)}"` : ''}><h3>Schedule: ${e(s.words)}</h3><p class="muted">Approving this plan starts the schedule: every run follows this plan, within these limits, without asking again.</p><dl class="details">${dl}</dl></section>`;
}

/** Private-use characters stand in for escaped characters and code spans while emphasis is read. */
const holdStart = 0xe000;

/** One line of markdown as HTML: backslash escapes, `code`, **bold** and _italic_; everything escaped. */
function inlineMarkdown(text: string): string {
  const held: string[] = [];
  const hold = (html: string) => {
    held.push(html);
    return String.fromCharCode(holdStart + held.length - 1);
  };
  let s = text
    .replace(/[\ue000-\uf8ff]/g, '')
    // Escapes first: an escaped backtick never opens a code span.
    .replace(/\\([\\`*_[\]{}()<>#+\-.!|~])/g, (_m, c: string) => hold(escapeHtml(c)))
    .replace(/`([^`]+)`/g, (_m, code: string) => hold(`<code>${escapeHtml(code)}</code>`));
  s = escapeHtml(s)
    // Contents without tags, so the tags added here always nest properly.
    .replace(/\*\*([^<>*]+?)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w*])\*([^<>*\s](?:[^<>*]*?[^<>*\s])?)\*(?![\w*])/g, '$1<em>$2</em>')
    .replace(/(^|[^\w])_([^<>_\s](?:[^<>_]*?[^<>_\s])?)_(?!\w)/g, '$1<em>$2</em>');
  return s.replace(/[\ue000-\uf8ff]/g, (c) => held[c.charCodeAt(0) - holdStart] ?? '');
}

/**
 * A brief's markdown, shown in the message: headings, bullet and numbered lists, paragraphs,
 * and inline emphasis. No links, images or raw HTML: the files are linked below it.
 */
export function renderMarkdown(markdown: string, options: { skipTitle?: boolean } = {}): string {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let list: 'ul' | 'ol' | undefined;
  let para: string[] = [];
  let skipTitle = options.skipTitle ?? false;
  const flushPara = () => {
    if (para.length > 0) out.push(`<p>${para.join('<br>')}</p>`);
    para = [];
  };
  const closeList = () => {
    if (list) out.push(`</${list}>`);
    list = undefined;
  };
  for (const raw of lines) {
    const line = raw.trimEnd();
    if (line.trim() === '') {
      flushPara();
      closeList();
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      flushPara();
      closeList();
      // The first heading is the brief's title, already shown above it.
      if (skipTitle && heading[1] === '#') {
        skipTitle = false;
        continue;
      }
      const tag = heading[1]!.length <= 2 ? 'h4' : 'h5';
      out.push(`<${tag}>${inlineMarkdown(heading[2]!)}</${tag}>`);
      skipTitle = false;
      continue;
    }
    skipTitle = false;
    const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
    const numbered = bullet ? undefined : /^\s*\d{1,9}[.)]\s+(.*)$/.exec(line);
    const item = bullet ?? numbered;
    if (item) {
      flushPara();
      const kind = bullet ? 'ul' : 'ol';
      if (list !== kind) {
        closeList();
        out.push(`<${kind}>`);
        list = kind;
      }
      out.push(`<li>${inlineMarkdown(item[1]!)}</li>`);
      continue;
    }
    closeList();
    para.push(inlineMarkdown(line.trim()));
  }
  flushPara();
  closeList();
  return out.join('');
}

/** A brief: a top-level message, edited from "preparing" to the brief or to what went wrong. */
function renderBrief(view: BriefView): string {
  const e = escapeHtml;
  const edge = {
    running: 'status-running',
    posted: 'status-done',
    nothing_new: 'status-done',
    failed: 'status-failed',
    cancelled: 'status-failed',
  }[view.state];
  const meta = [
    e(view.date),
    ...(view.manual ? ['run by hand (Run now)'] : []),
    `owner ${e(view.owner)}`,
    `schedule ${e(view.scheduleId)}`,
  ].join(' · ');
  const late = view.late ? `<p class="brief-late">${e(view.late)}</p>` : '';
  let main: string;
  switch (view.state) {
    case 'running':
      main = '<p class="brief-state status-running">Preparing this brief…</p>';
      break;
    case 'posted':
      main = `${view.summary ? `<p>${e(view.summary)}</p>` : ''}${view.body ? `<div class="brief-body">${renderMarkdown(view.body, { skipTitle: true })}</div>` : ''}`;
      break;
    case 'nothing_new':
      main = `<p class="brief-state muted">Nothing new since the last brief: the files are the same as last time.</p>${view.summary ? `<p>${e(view.summary)}</p>` : ''}`;
      break;
    case 'failed':
    case 'cancelled':
      main = `<p class="brief-state status-failed">This brief ${view.state === 'failed' ? 'failed' : 'was cancelled'}${view.reason ? `: ${e(view.reason)}` : ''}</p>${view.advice ? `<p>${e(view.advice)}</p>` : ''}`;
      break;
  }
  const paused = view.paused
    ? `<p class="brief-paused status-failed">The schedule is paused: ${e(view.paused)}</p>`
    : '';
  return `<div class="card brief brief-${view.state} ${edge}" data-task="${e(view.taskId)}" data-schedule="${e(view.scheduleId)}"><h3>${e(view.title)}</h3><p class="muted brief-meta">${meta}</p>${view.demo ? demoNote : ''}${late}${main}${fileList(view.files)}${paused}<p class="muted">Reply in this thread to ask about this brief.</p></div>`;
}

/** A channel's schedules, each with its buttons (the console's Schedules panel). */
function renderScheduleList(view: ScheduleListView): string {
  const e = escapeHtml;
  if (view.items.length === 0) {
    return `<div class="card schedules" data-channel="${e(view.channel)}"><h3>Schedules in #${e(view.channel)}</h3><p class="muted">No schedules here yet. Start one with a message such as “@handoff every weekday at 9:00: a sales brief from the attached CSV”.</p></div>`;
  }
  const items = view.items
    .map((s) => {
      const id = e(s.id);
      const data = `data-schedule="${id}"`;
      const toggle =
        s.status === 'active'
          ? `<button type="button" class="schedule-pause" data-schedule-op="pause" ${data}>Pause</button>`
          : `<button type="button" class="schedule-resume" data-schedule-op="resume" ${data}>Resume</button>`;
      const facts = [
        `owner ${e(s.owner)}`,
        s.nextRun ? `next run ${e(s.nextRun)}` : s.status === 'paused' ? 'not running while paused' : '',
        s.lastResult ? `last: ${e(s.lastResult)}` : 'no runs yet',
        id,
      ].filter(Boolean);
      return `<li class="schedule-item schedule-${s.status}" ${data}><p class="schedule-when"><strong>${e(s.words)}</strong> <span class="muted">(${e(s.tz)})</span> <span class="badge badge-${s.status}">${s.status}</span></p><p class="schedule-request">${e(s.request)}</p><p class="muted">${facts.join(' · ')}</p>${s.pausedReason ? `<p class="status-failed">Paused: ${e(s.pausedReason)}</p>` : ''}<div class="actions">${toggle}<button type="button" class="schedule-run-now" data-schedule-op="run_now" ${data}>Run now</button><button type="button" class="schedule-edit" data-schedule-op="edit" ${data}>Edit…</button><button type="button" class="schedule-delete" data-schedule-op="delete" ${data}>Delete…</button></div></li>`;
    })
    .join('');
  return `<div class="card schedules" data-channel="${e(view.channel)}"><h3>Schedules in #${e(view.channel)}</h3><ul class="schedule-list">${items}</ul></div>`;
}

/**
 * The Connect card: what the requester can connect, and the button that starts it for
 * whoever presses it. The sign-in link is never part of it: the console page opens the
 * link the action answers with, for the person who pressed.
 */
function renderConnect(view: ConnectView): string {
  const e = escapeHtml;
  const [head = '', ...rest] = connectLines(view);
  const data = `data-task="${e(view.taskId)}" data-connector="${e(view.connector)}"`;
  const headline =
    view.state === 'connected'
      ? `<p class="decision decision-approved">${e(head)}</p>`
      : view.state === 'declined'
        ? `<p class="decision decision-denied">${e(head)}</p>`
        : `<h3>${e(head)}</h3>`;
  const button =
    view.state === 'connected'
      ? ''
      : `<div class="actions"><button type="button" class="connect" data-action="connect" ${data}>${e(connectButtonLabel(view.title))}</button></div>`;
  return `<div class="card connect connect-${view.state}" ${data}>${headline}${rest.map((l) => `<p class="muted">${e(l)}</p>`).join('')}${button}</div>`;
}

/** A person's connections (the console's Connections panel), each with Disconnect or Connect. */
function renderConnections(view: ConnectionsView): string {
  const e = escapeHtml;
  if (view.items.length === 0) {
    return '<div class="card connections"><h3>Your connections</h3><p class="muted">No connector here acts as each person.</p></div>';
  }
  const items = view.items
    .map((c) => {
      const data = `data-connector="${e(c.connector)}"`;
      const button = c.connected
        ? `<button type="button" class="connection-disconnect" data-connection-op="disconnect" ${data}>Disconnect</button>`
        : `<button type="button" class="connection-connect" data-connection-op="connect" ${data}>${e(connectButtonLabel(c.title))}</button>`;
      const badge = c.connected
        ? '<span class="badge badge-active">connected</span>'
        : '<span class="badge badge-paused">not connected</span>';
      return `<li class="connection-item connection-${c.connected ? 'connected' : 'open'}" ${data}><p><strong>${e(c.title)}</strong> ${badge}</p><p class="muted">${e(connectionFacts(c))}</p><div class="actions">${button}</div></li>`;
    })
    .join('');
  return `<div class="card connections"><h3>Your connections</h3><p class="muted">Services Handoff uses as you, for your own requests. Disconnecting removes what Handoff keeps and asks the service to revoke it.</p><ul class="connection-list">${items}</ul></div>`;
}

/** Renders a view as a card for the web console. Everything from outside is escaped. */
export function renderHtml(view: View): string {
  const e = escapeHtml;
  switch (view.kind) {
    case 'status':
      return `<div class="card status ${view.tone === 'error' ? 'status-failed' : ''}"><p>${e(view.text)}</p>${view.demo && view.tone === 'error' ? '' : ''}</div>`;
    case 'plan': {
      const steps = view.steps
        .map(
          (s) =>
            `<li><strong>${e(s.title)}</strong> <span class="badge badge-${s.level}">${levelText[s.level]}</span>${s.detail ? `<br><span class="muted">${e(s.detail)}</span>` : ''}</li>`,
        )
        .join('');
      const deliverables = view.deliverables
        .map((d) => `<li>${e(d.name)} <span class="muted">(${e(d.type)})</span></li>`)
        .join('');
      const budget = view.demo
        ? 'no model cost (demo model)'
        : `about ${view.budget.estimatedTokens.toLocaleString('en-US')} tokens, ≈ ${formatUsd(view.budget.estimatedCostUsd)}`;
      const blockers = view.blockers.length
        ? `<p class="status-failed">Cannot be approved: ${view.blockers.map(e).join('; ')}</p>`
        : '';
      const reach = view.reach
        ? `<p><strong>Beyond its files</strong></p><ul class="reach">${reachLines(view.reach)
            .map((l) => `<li>${e(l)}</li>`)
            .join('')}</ul>`
        : '';
      const fanOut = view.workstreams ? workstreamPlanLines(view.workstreams) : undefined;
      const workstreams = fanOut
        ? `<p><strong>${e(fanOut.heading)}</strong></p><ul class="workstreams">${fanOut.lines.map((l) => `<li>${e(l)}</li>`).join('')}</ul>`
        : '';
      let footer: string;
      if (view.decision) {
        const by = view.decision.by ? ` by ${e(view.decision.by)}` : '';
        const words = {
          approved: 'Approved',
          denied: 'Denied',
          cancelled: 'Cancelled',
          superseded: 'Replaced by a newer plan version',
          expired: 'Expired: nobody approved it in time',
        }[view.decision.outcome];
        const who =
          view.decision.outcome === 'superseded'
            ? view.decision.by
              ? ` after ${e(view.decision.by)} asked for changes`
              : ''
            : by;
        footer = `<p class="decision decision-${view.decision.outcome}">${words}${who} · ${time(view.decision.at)}</p>`;
      } else {
        const data = `data-task="${e(view.taskId)}" data-version="${view.version}" data-hash="${e(view.hash)}"`;
        const votes =
          view.votes && view.votes.needed > 1
            ? `<p class="muted">Approvals: ${view.votes.names.length} of ${view.votes.needed}${view.votes.names.length ? ` (${view.votes.names.map(e).join(', ')})` : ''}</p>`
            : '';
        const expires = view.expiresAt ? `<p class="muted">Open for approval until ${time(view.expiresAt)}.</p>` : '';
        footer = `${votes}${expires}<div class="actions"><button type="button" class="approve" data-action="approve" ${data}${view.blockers.length ? ' disabled' : ''}>Approve</button><button type="button" class="deny" data-action="deny" ${data}>Deny</button><button type="button" class="request-changes" data-action="request-changes" ${data}>Request changes</button></div>`;
      }
      return `<div class="card plan${view.schedule ? ' standing-plan' : ''}" data-task="${e(view.taskId)}">${view.schedule ? renderScheduleInfo(view.schedule) : ''}<h3>Plan v${view.version} for ${e(view.requester)}</h3>${view.demo ? demoNote : `<p class="muted">model ${e(view.model)}</p>`}${view.context ? `<p class="muted thread-context">${e(view.context)}</p>` : ''}${view.channelNote ? `<p class="muted channel-context">${e(view.channelNote)}</p>` : ''}<p>${e(view.summary)}</p>${view.changes ? renderChanges(view.changes, view.version) : ''}<ol class="steps">${steps}</ol><p><strong>Deliverables</strong></p><ul class="files">${deliverables}</ul>${reach}${workstreams}<p class="muted">Budget: ${budget}; cap ${formatUsd(view.budget.maxCostUsd)}, ${view.budget.maxWallTimeMin} min</p>${blockers}${footer}</div>`;
    }
    case 'progress': {
      const steps = view.steps
        .map((s) => `<li class="status-${s.status}"><span class="badge">${s.status}</span> ${e(s.title)}</li>`)
        .join('');
      const tail = view.outputTail ? `<pre class="tail">${e(view.outputTail.slice(-1500))}</pre>` : '';
      const activity = view.activity ? `<p class="muted">${e(view.activity)}</p>` : '';
      const streams = view.workstreams
        ? `<ul class="workstreams">${workstreamProgressLines(view.workstreams)
            .map((l, i) => `<li class="status-${view.workstreams![i]!.state}">${e(l)}</li>`)
            .join('')}</ul>`
        : '';
      const cancel = view.cancellable
        ? `<div class="actions"><button type="button" class="cancel" data-action="cancel" data-task="${e(view.taskId)}">Cancel</button></div>`
        : '';
      return `<div class="card progress" data-task="${e(view.taskId)}"><h3>${view.cancellable ? 'Working…' : 'Run finished'}</h3><ol class="steps">${steps}</ol>${streams}${activity}${tail}<p class="muted">${formatDuration(view.elapsedMs)} elapsed${view.demo ? ' · demo model' : ` · ${formatTokens(view.usage)} tokens`}</p>${cancel}</div>`;
    }
    case 'result': {
      const title = { succeeded: 'Done', failed: 'The run failed', cancelled: 'Cancelled' }[view.status];
      const reason = view.reason ? `<p class="status-failed">${e(view.reason)}</p>` : '';
      const summary = view.summary ? `<p>${e(view.summary)}</p>` : '';
      const cost = view.demo
        ? 'demo model, no cost'
        : `${formatTokens(view.usage)} tokens · ≈ ${formatUsd(view.costUsd)}`;
      const schedule =
        view.schedulable && view.status === 'succeeded'
          ? `<div class="actions"><button type="button" class="schedule-task" data-action="schedule-task" data-task="${e(view.taskId)}">Schedule…</button></div>`
          : '';
      const remember = (view.memoryProposals ?? [])
        .map(
          (p) =>
            `<div class="memory-proposal"><p>Remember for this channel? “${e(p.text)}”</p><div class="actions"><button type="button" class="approve" data-action="accept-memory" data-task="${e(view.taskId)}" data-approval="${e(p.id)}">Accept</button><button type="button" class="deny" data-action="dismiss-memory" data-task="${e(view.taskId)}" data-approval="${e(p.id)}">Dismiss</button></div></div>`,
        )
        .join('');
      return `<div class="card result status-${view.status === 'succeeded' ? 'done' : 'failed'}" data-task="${e(view.taskId)}"><h3>${title}</h3>${reason}${summary}${fileList(view.files)}<p class="muted">${formatDuration(view.durationMs)} · ${cost}</p>${schedule}${remember}</div>`;
    }
    case 'approval': {
      const details = view.details
        .map((d) => `<dt>${e(d.label)}</dt><dd><pre class="tail">${e(d.value.slice(0, 2000))}</pre></dd>`)
        .join('');
      let footer: string;
      if (view.state === 'pending') {
        const data = `data-task="${e(view.taskId)}" data-approval="${e(view.approvalId)}"`;
        footer = `<p class="muted">Waiting for an approver until ${time(view.expiresAt)}.</p><div class="actions"><button type="button" class="approve" data-action="approve-action" ${data}>Approve</button><button type="button" class="deny" data-action="deny-action" ${data}>Deny</button>${grantButtonsHtml(view, data)}</div>`;
      } else {
        const words = {
          approved: 'Approved',
          denied: 'Denied',
          expired: 'Expired: nobody decided in time',
          stopped: 'No longer needed: the run ended',
        }[view.state];
        const by = view.decidedBy ? ` by ${e(view.decidedBy)}` : '';
        const granted =
          view.grantedScope === 'run'
            ? ' for the rest of this run'
            : view.grantedScope === 'channel'
              ? ' and always allowed in this channel'
              : '';
        footer = `<p class="decision decision-${view.state === 'approved' ? 'approved' : 'denied'}">${words}${granted}${by}${view.decidedAt ? ` · ${time(view.decidedAt)}` : ''}</p>`;
      }
      return `<div class="card approval" data-task="${e(view.taskId)}"><h3>Approve this step?</h3><p>${e(view.reason)} <span class="badge badge-${view.trust}">${e(view.trust)}</span></p><dl class="details">${details}</dl>${footer}</div>`;
    }
    case 'question': {
      const footer = view.answeredBy
        ? `Answered by ${e(view.answeredBy)}.`
        : view.expiresAt
          ? `Reply in this thread to answer; the question stays open until ${time(view.expiresAt)}, then the agent goes on without an answer.`
          : 'Reply in this thread to answer.';
      return `<div class="card question" data-task="${e(view.taskId)}"><h3>Question</h3><p>${e(view.question)}</p><p class="muted">${footer}</p></div>`;
    }
    case 'brief':
      return renderBrief(view);
    case 'schedules':
      return renderScheduleList(view);
    case 'connect':
      return renderConnect(view);
    case 'connections':
      return renderConnections(view);
  }
}

/** "Approve for the rest of this run" and "Always allow in this channel", when the card offers them. */
function grantButtonsHtml(view: ApprovalRequestView, data: string): string {
  const e = escapeHtml;
  const g = view.grantOptions;
  if (!g) return '';
  const run = g.run
    ? `<button type="button" class="approve" data-action="grant-run-action" ${data}>Approve for the rest of this run</button>`
    : '';
  const channel = g.channel
    ? `<button type="button" class="approve" data-action="grant-channel-action" ${data} title="${e(g.patterns.join(', '))} for ${g.channelDays} days">Always allow in this channel</button>`
    : '';
  return run + channel;
}
