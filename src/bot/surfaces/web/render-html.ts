import { formatBytes } from '../../../storage/index.ts';
import { formatDuration, formatTokens, formatUsd, type PlanView, type View } from '../../views.ts';

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
  const asked = changes.requestedBy
    ? `<p class="revision-note">Revised after ${e(changes.requestedBy)} asked: “${e(changes.text)}”</p>`
    : `<p class="revision-note">Revised plan</p>`;
  return `<div class="revision">${asked}<p class="muted">Changes since v${version - 1}:</p><ul class="plan-diff">${shown.join('')}</ul></div>`;
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
      return `<div class="card plan" data-task="${e(view.taskId)}"><h3>Plan v${view.version} for ${e(view.requester)}</h3>${view.demo ? demoNote : `<p class="muted">model ${e(view.model)}</p>`}<p>${e(view.summary)}</p>${view.changes ? renderChanges(view.changes, view.version) : ''}<ol class="steps">${steps}</ol><p><strong>Deliverables</strong></p><ul class="files">${deliverables}</ul><p class="muted">Budget: ${budget}; cap ${formatUsd(view.budget.maxCostUsd)}, ${view.budget.maxWallTimeMin} min</p>${blockers}${footer}</div>`;
    }
    case 'progress': {
      const steps = view.steps
        .map((s) => `<li class="status-${s.status}"><span class="badge">${s.status}</span> ${e(s.title)}</li>`)
        .join('');
      const tail = view.outputTail ? `<pre class="tail">${e(view.outputTail.slice(-1500))}</pre>` : '';
      const activity = view.activity ? `<p class="muted">${e(view.activity)}</p>` : '';
      const cancel = view.cancellable
        ? `<div class="actions"><button type="button" class="cancel" data-action="cancel" data-task="${e(view.taskId)}">Cancel</button></div>`
        : '';
      return `<div class="card progress" data-task="${e(view.taskId)}"><h3>${view.cancellable ? 'Working…' : 'Run finished'}</h3><ol class="steps">${steps}</ol>${activity}${tail}<p class="muted">${formatDuration(view.elapsedMs)} elapsed${view.demo ? ' · demo model' : ` · ${formatTokens(view.usage)} tokens`}</p>${cancel}</div>`;
    }
    case 'result': {
      const title = { succeeded: 'Done', failed: 'The run failed', cancelled: 'Cancelled' }[view.status];
      const files = view.files
        .map(
          (f) =>
            `<li><a href="${e(f.url)}" download="${e(f.name)}">${e(f.name)}</a> <span class="muted">${e((f.name.split('.').pop() ?? '').toUpperCase())} · ${formatBytes(f.size)} · link valid until ${time(f.expiresAt)}</span></li>`,
        )
        .join('');
      const reason = view.reason ? `<p class="status-failed">${e(view.reason)}</p>` : '';
      const summary = view.summary ? `<p>${e(view.summary)}</p>` : '';
      const cost = view.demo
        ? 'demo model, no cost'
        : `${formatTokens(view.usage)} tokens · ≈ ${formatUsd(view.costUsd)}`;
      return `<div class="card result status-${view.status === 'succeeded' ? 'done' : 'failed'}" data-task="${e(view.taskId)}"><h3>${title}</h3>${reason}${summary}${files ? `<ul class="files">${files}</ul>` : ''}<p class="muted">${formatDuration(view.durationMs)} · ${cost}</p></div>`;
    }
    case 'approval': {
      const details = view.details
        .map((d) => `<dt>${e(d.label)}</dt><dd><pre class="tail">${e(d.value.slice(0, 2000))}</pre></dd>`)
        .join('');
      let footer: string;
      if (view.state === 'pending') {
        const data = `data-task="${e(view.taskId)}" data-approval="${e(view.approvalId)}"`;
        footer = `<p class="muted">Waiting for an approver until ${time(view.expiresAt)}.</p><div class="actions"><button type="button" class="approve" data-action="approve-action" ${data}>Approve</button><button type="button" class="deny" data-action="deny-action" ${data}>Deny</button></div>`;
      } else {
        const words = {
          approved: 'Approved',
          denied: 'Denied',
          expired: 'Expired: nobody decided in time',
          stopped: 'No longer needed: the run ended',
        }[view.state];
        const by = view.decidedBy ? ` by ${e(view.decidedBy)}` : '';
        footer = `<p class="decision decision-${view.state === 'approved' ? 'approved' : 'denied'}">${words}${by}${view.decidedAt ? ` · ${time(view.decidedAt)}` : ''}</p>`;
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
  }
}
