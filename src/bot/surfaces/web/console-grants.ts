import { describeGrantPattern, type Grant } from '../../../core/index.ts';
import { escapeHtml } from './render-html.ts';

/** At most this many grants are listed (the channel's soonest-expiring first). */
const maxListed = 100;

function minute(iso: string): string {
  return `<time datetime="${escapeHtml(iso)}">${escapeHtml(iso.replace('T', ' ').slice(0, 16))} UTC</time>`;
}

/**
 * The console's Grants panel body: a channel's live standing grants (the pattern in words
 * and as recorded, its scope, who granted it, when, until when), each with Revoke. Only the
 * channel's approvers get the list at all, so every item carries the button. Everything
 * the grant holds is escaped: its pattern names connector tools and web domains.
 */
export function grantsHtml(grants: readonly Grant[]): string {
  const e = escapeHtml;
  const head = '<h3>Standing grants</h3>';
  if (grants.length === 0)
    return `<div class="card grants">${head}<p class="muted">No standing grants in this channel: every watched call asks an approver.</p></div>`;
  const items = grants
    .slice(0, maxListed)
    .map((g) => {
      const words = g.description || describeGrantPattern(g.pattern);
      const scope = g.scope === 'channel' ? 'in this channel' : 'for one run';
      return `<li class="connection-item grant-item" data-grant-id="${e(g.id)}"><p><strong class="grant-words">${e(words)}</strong> <span class="badge badge-active">${scope}</span></p><p class="muted"><code class="grant-pattern">${e(g.pattern)}</code></p><p class="muted grant-facts">Granted by ${e(g.createdBy.name)} on ${minute(g.createdAt)} · until ${minute(g.expiresAt)}</p><div class="actions"><button type="button" class="deny grant-revoke" data-grant-op="revoke" data-grant-id="${e(g.id)}">Revoke</button></div></li>`;
    })
    .join('');
  const more =
    grants.length > maxListed
      ? `<p class="muted">…and ${grants.length - maxListed} more; list them all with <code>npx handoff grants list</code>.</p>`
      : '';
  return `<div class="card grants">${head}<p class="muted">These calls run without asking an approver until they expire or are revoked. Revoking applies from the next call (a web domain a run already reached: from the next run).</p><ul class="connection-list grant-list">${items}</ul>${more}</div>`;
}
