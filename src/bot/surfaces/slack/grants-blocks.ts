import type { Grant } from '../../../core/index.ts';

/** Action ids of the standing-grant buttons. */
export const grantActionIds = {
  /** "Approve for the rest of this run" on a paused call's card. */
  grantRun: 'handoff_action_grant_run',
  /** "Always allow in #channel" on a paused call's card. */
  grantChannel: 'handoff_action_grant_channel',
  /** "Revoke" in `/handoff grants`; numbered because an action id is unique within one message. */
  revokePrefix: 'handoff_grant_revoke_',
} as const;

/** Action ids of Revoke buttons: `handoff_grant_revoke_<n>`. */
export const revokeGrantActionPattern = /^handoff_grant_revoke_\d+$/;

/** A Revoke button's value: the grant id; undefined when it is not one. */
export function parseRevokeValue(raw: unknown): string | undefined {
  return typeof raw === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(raw) ? raw : undefined;
}

const escapeText = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const minute = (iso: string) => `${iso.replace('T', ' ').slice(0, 16)} UTC`;

/** `/handoff grants`: the channel's live standing grants, each with who granted it, when, its expiry and Revoke. */
export function grantsBlocks(channel: string, grants: readonly Grant[]): { text: string; blocks: unknown[] } {
  if (grants.length === 0) {
    const text = `No standing grants in <#${channel}>: every watched call asks an approver.`;
    return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
  }
  const blocks: unknown[] = [
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `*Standing grants in <#${channel}>* — these calls run without asking.` },
    },
  ];
  grants.slice(0, 40).forEach((g, i) => {
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `\`${escapeText(g.pattern).slice(0, 300)}\` — ${escapeText(g.description)}\nGranted by ${escapeText(g.createdBy.name)} on ${minute(g.createdAt)} · until ${minute(g.expiresAt)} · ${g.id}`,
      },
      accessory: {
        type: 'button',
        action_id: `${grantActionIds.revokePrefix}${i}`,
        text: { type: 'plain_text', text: 'Revoke' },
        style: 'danger',
        value: g.id,
      },
    });
  });
  return { text: `${grants.length} standing grant(s) in this channel`, blocks };
}
