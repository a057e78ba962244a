import type { types } from '@slack/bolt';
import type { ChannelSettingsView, MemoryProposalView } from '../../channel-settings.ts';

export { parseSettingsCommand, type SettingsCommand } from '../../channel-settings.ts';

type KnownBlock = types.KnownBlock;

/**
 * Channel instructions and memory on Slack: `/handoff instructions [text|clear]`,
 * `/handoff memory`, "@handoff remember that …", and the Forget / Accept / Dismiss buttons.
 * Action ids are numbered (`handoff_memory_forget_3`) because an action id is unique within
 * one message and a list holds several.
 */
export const memoryActionIds = {
  forget: /^handoff_memory_forget_\d+$/,
  accept: /^handoff_memory_accept_\d+$/,
  dismiss: /^handoff_memory_dismiss_\d+$/,
} as const;

/** What a memory button carries: the fact's channel (Forget) and the fact or proposal id. */
export interface MemoryButtonValue {
  channel?: string;
  id: string;
}

export function decodeMemoryValue(raw: unknown): MemoryButtonValue | undefined {
  if (typeof raw !== 'string' || raw.length > 300) return undefined;
  try {
    const v = JSON.parse(raw) as { c?: unknown; i?: unknown };
    if (typeof v.i !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(v.i)) return undefined;
    if (v.c === undefined) return { id: v.i };
    return typeof v.c === 'string' && /^[A-Za-z0-9]{1,40}$/.test(v.c) ? { channel: v.c, id: v.i } : undefined;
  } catch {
    return undefined;
  }
}

const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
const section = (text: string): KnownBlock => ({ type: 'section', text: { type: 'mrkdwn', text: cut(text, 3000) } });
const context = (text: string): KnownBlock => ({
  type: 'context',
  elements: [{ type: 'mrkdwn', text: cut(text, 3000) }],
});
const button = (
  action: 'forget' | 'accept' | 'dismiss',
  n: number,
  label: string,
  value: MemoryButtonValue,
  style?: 'primary' | 'danger',
) => ({
  type: 'button' as const,
  action_id: `handoff_memory_${action}_${n}`,
  text: { type: 'plain_text' as const, text: label },
  value: JSON.stringify(value.channel ? { c: value.channel, i: value.id } : { i: value.id }),
  ...(style ? { style } : {}),
});

/** "Remember for this channel?" with Accept and Dismiss, per open proposal (result cards and thread replies). */
export function memoryProposalBlocks(proposals: readonly Pick<MemoryProposalView, 'id' | 'text'>[]): KnownBlock[] {
  // Slack allows 50 blocks a message: a result card keeps room for its own.
  return proposals.slice(0, 5).flatMap((p, n) => [
    section(`:bulb: Remember for this channel? “${esc(p.text)}”`),
    {
      type: 'actions',
      elements: [button('accept', n, 'Accept', { id: p.id }, 'primary'), button('dismiss', n, 'Dismiss', { id: p.id })],
    } as KnownBlock,
  ]);
}

/** `/handoff memory` and `/handoff instructions`: the channel's settings, with buttons for approvers. */
export function channelSettingsMessage(view: ChannelSettingsView): { text: string; blocks: KnownBlock[] } {
  const blocks: KnownBlock[] = [];
  if (view.policyInstructions)
    blocks.push(section(`*Instructions from the policy file*\n${esc(view.policyInstructions)}`));
  blocks.push(
    section(
      view.instructions
        ? `*Instructions*\n${esc(view.instructions.text)}`
        : '*Instructions*\nNone set. An approver sets them with `/handoff instructions <text>`.',
    ),
  );
  if (view.instructions)
    blocks.push(
      context(`Set by ${esc(view.instructions.by)} · ${view.instructions.at.slice(0, 16).replace('T', ' ')} UTC`),
    );
  blocks.push(
    section(
      view.memory.length
        ? `*Memory* (${view.memory.length})`
        : '*Memory*\nNothing remembered yet. Say “@handoff remember that …”.',
    ),
  );
  // 50 blocks at most: the newest facts are listed when there are more.
  const shown = view.memory.slice(-30);
  for (const [n, f] of shown.entries()) {
    const who =
      f.source === 'proposed' ? `proposed by ${esc(f.proposedBy ?? 'someone')}, accepted by ${esc(f.by)}` : esc(f.by);
    const line = `• ${esc(f.text)}  _(${who})_`;
    blocks.push(
      view.canEdit
        ? ({
            type: 'section',
            text: { type: 'mrkdwn', text: cut(line, 3000) },
            accessory: button('forget', n, 'Forget', { channel: view.channel, id: f.id }, 'danger'),
          } as KnownBlock)
        : section(line),
    );
  }
  if (view.proposals.length > 0 && view.canEdit) blocks.push(...memoryProposalBlocks(view.proposals));
  else if (view.proposals.length > 0)
    blocks.push(context(`${view.proposals.length} proposed fact(s) wait for an approver.`));
  if (!view.canEdit) blocks.push(context("Only this channel's approvers change its instructions and memory."));
  const text = `Instructions: ${view.instructions || view.policyInstructions ? 'set' : 'none'} · ${view.memory.length} remembered fact(s)`;
  return { text, blocks };
}
