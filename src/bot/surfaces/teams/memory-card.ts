import type { ChannelSettingsView } from '../../channel-settings.ts';
import {
  type AdaptiveCard,
  cardLimits,
  cardSchemaUrl,
  cardVerbs,
  escapeCardMarkdown,
  type JsonObject,
  memoryProposalBlocks,
  truncate,
} from './adaptive-cards.ts';

const text = (t: string, extra: JsonObject = {}): JsonObject => ({ type: 'TextBlock', wrap: true, text: t, ...extra });
const subtle = (t: string): JsonObject => text(t, { isSubtle: true, size: 'Small', spacing: 'None' });
const safe = (t: string, max: number) => escapeCardMarkdown(truncate(t.replace(/\s+/g, ' ').trim(), max));

/** The newest facts listed on the card; the rest are counted. */
const maxFactsShown = 30;

/**
 * The `memory` and `instructions` answer on Teams: the channel's instructions and memory,
 * each fact and proposal with its id (for the `forget|accept|dismiss <id>` commands), and
 * for the channel's approvers Forget on each fact and Accept / Dismiss on each proposal.
 * `notice` tops the card when it answers a click.
 */
export function memoryCard(
  view: ChannelSettingsView,
  notice?: { text: string; tone: 'good' | 'warning' | 'error' },
): AdaptiveCard {
  // Teams refuses a card over its size limit: fewer facts are listed until it fits.
  for (let facts = maxFactsShown; ; facts = Math.floor(facts / 2)) {
    const card = build(view, facts, notice);
    if (facts === 0 || Buffer.byteLength(JSON.stringify(card)) <= cardLimits.maxCardBytes) return card;
  }
}

function build(
  view: ChannelSettingsView,
  maxFacts: number,
  notice: { text: string; tone: 'good' | 'warning' | 'error' } | undefined,
): AdaptiveCard {
  const body: JsonObject[] = [];
  if (notice)
    body.push(
      text(escapeCardMarkdown(truncate(notice.text, 1000)), {
        weight: 'Bolder',
        color: notice.tone === 'error' ? 'Attention' : notice.tone === 'warning' ? 'Warning' : 'Good',
      }),
    );
  if (view.policyInstructions)
    body.push(text(`**Instructions from the policy file:** ${safe(view.policyInstructions, 1500)}`));
  body.push(
    text(
      view.instructions
        ? `**Instructions** (set by ${safe(view.instructions.by, 100)}): ${safe(view.instructions.text, 1500)}`
        : '**Instructions:** none set.',
    ),
  );
  body.push(
    text(view.memory.length ? `**Memory** (${view.memory.length})` : '**Memory:** nothing remembered yet.', {
      separator: true,
    }),
  );
  const shown = maxFacts > 0 ? view.memory.slice(-maxFacts) : [];
  if (shown.length < view.memory.length)
    body.push(
      subtle(`The newest ${shown.length} are listed; ${view.memory.length - shown.length} older facts are kept too.`),
    );
  for (const f of shown) {
    const by = f.source === 'proposed' ? `proposed by ${f.proposedBy ?? 'someone'}, accepted by ${f.by}` : f.by;
    body.push({
      type: 'Container',
      separator: true,
      items: [
        text(`• ${safe(f.text, 300)} ${escapeCardMarkdown(`[${f.id}]`)}`),
        subtle(safe(by, 250)),
        ...(view.canEdit
          ? [
              {
                type: 'ActionSet',
                actions: [
                  {
                    type: 'Action.Execute',
                    title: 'Forget',
                    verb: cardVerbs.memoryForget,
                    data: { factId: f.id },
                    style: 'destructive',
                  },
                ],
              },
            ]
          : []),
      ],
    });
  }
  if (view.proposals.length > 0) {
    body.push(text('**Proposed, waiting for an approver**', { separator: true }));
    for (const p of view.proposals.slice(0, 20))
      body.push(text(`• ${safe(p.text, 300)} (by ${safe(p.proposedBy, 100)}) ${escapeCardMarkdown(`[${p.id}]`)}`));
    if (view.canEdit) body.push(...memoryProposalBlocks(view.proposals));
  }
  body.push(
    subtle(
      view.canEdit
        ? 'Say “forget <id>” to forget a fact, “accept <id>” or “dismiss <id>” for a proposal.'
        : "Only this channel's approvers change its instructions and memory.",
    ),
  );
  return { type: 'AdaptiveCard', $schema: cardSchemaUrl, version: '1.5', msteams: { width: 'Full' }, body };
}
