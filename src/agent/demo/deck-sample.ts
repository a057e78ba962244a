import type { PlanDraft } from '../../core/index.ts';

/**
 * The demo's deck sample: notes (examples/deck-notes.md) turned into a 5-slide deck with
 * speaker notes by the built-in pptx skill. The run loads the skill first (load_skill), then
 * runs the skill's own script from its read-only folder, as a real model would.
 */

/** "turn these notes into a 5-slide deck": notes attached and a deck, slides or presentation asked for. */
export function wantsDeck(request: string, notes: string | undefined): boolean {
  return notes !== undefined && /\b(deck|slides?|pptx|powerpoint|presentation)\b/i.test(request);
}

/** The slide count the request asks for ("a 5-slide deck", "7 slides"), or 5. */
export function slideCount(request: string): number {
  const m = /\b(\d{1,2})[\s-]*slides?\b/i.exec(request);
  const n = m ? Number(m[1]) : 5;
  return n >= 2 && n <= 20 ? n : 5;
}

export function deckPlan(input: string, slides: number): PlanDraft {
  return {
    summary: `Turn ${input} into a ${slides}-slide deck (deck.pptx): a title slide and ${slides - 1} content slides with bullets, a chart where the notes have figures, and speaker notes, built with the pptx skill.`,
    steps: [
      {
        title: 'Load the pptx skill',
        detail: 'Read the skill’s instructions for building decks.',
        actions: ['read_files'],
      },
      {
        title: 'Build the deck',
        detail: `Run the skill’s notes_to_deck.js on ${input}: one slide per section, ${slides} slides in all.`,
        actions: ['run_commands', 'create_files'],
      },
      { title: 'Deliver the deck', detail: 'Post deck.pptx in the thread.', actions: ['create_files'] },
    ],
    deliverables: [{ name: 'deck.pptx', type: 'pptx' }],
  };
}

export function deckCalls(input: string, slides: number): Array<{ name: string; input: Record<string, unknown> }> {
  return [
    { name: 'load_skill', input: { name: 'pptx', step: 1 } },
    {
      name: 'run_command',
      input: {
        command: `node /skills/pptx/scripts/notes_to_deck.js '/workspace/in/${input}' /workspace/out/deck.pptx --slides ${slides}`,
        step: 2,
      },
    },
    { name: 'deliver_artifact', input: { path: '/workspace/out/deck.pptx', step: 3 } },
  ];
}

export function deckClosing(facts: Record<string, unknown> | undefined): string {
  if (!facts || typeof facts.slides !== 'number') return 'Here is deck.pptx, built with the pptx skill.';
  const charts = typeof facts.charts === 'number' && facts.charts > 0 ? `, ${facts.charts} with a chart` : '';
  const notes = typeof facts.notes === 'number' ? ` Speaker notes are on ${facts.notes} of them.` : '';
  return `Here is deck.pptx: ${facts.slides} slides (a title slide and ${facts.slides - 1} content slides${charts}), built with the pptx skill.${notes}`;
}
