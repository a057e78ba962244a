/**
 * What cards say about a channel's settings: the plan card's "Follows this channel's
 * instructions and N remembered facts" on Slack, Teams and the console (counts only), and
 * the Teams memory buttons (result card, `memory` list) and the actions they send back.
 */
import { describe, expect, it } from 'vitest';
import { defaultPlanPolicy } from '../../../src/approvals/index.ts';
import { channelContextNote } from '../../../src/bot/channel-context-note.ts';
import type { ChannelSettingsView } from '../../../src/bot/channel-settings.ts';
import { renderBlocks } from '../../../src/bot/surfaces/slack/block-kit.ts';
import { cardLimits, parseAction, renderCard } from '../../../src/bot/surfaces/teams/adaptive-cards.ts';
import { memoryCard } from '../../../src/bot/surfaces/teams/memory-card.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import { planView, type ResultView } from '../../../src/bot/views.ts';
import { ErrorCodes, HandoffError } from '../../../src/core/index.ts';
import { blockKitProblems } from '../../fakes/slack-server.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const policy = defaultPlanPolicy(false);
const secretish = 'The EMEA target is 2.1 M';
const channelContext = {
  instructions: 'Our fiscal year starts in April; answer in German.',
  memory: [
    { id: 'mem_1', text: secretish },
    { id: 'mem_2', text: 'The board meets on Fridays' },
    { id: 'mem_3', text: 'Use the company template' },
  ],
};
const note = "Follows this channel's instructions and 3 remembered facts.";

/** Every Action.Execute of a card: verb and data. */
function executes(node: unknown, out: Array<{ verb: string; data: Record<string, unknown> }> = []) {
  if (Array.isArray(node)) for (const n of node) executes(n, out);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (o.type === 'Action.Execute') out.push({ verb: String(o.verb), data: o.data as Record<string, unknown> });
    for (const v of Object.values(o)) executes(v, out);
  }
  return out;
}

describe('the plan card says which channel settings the plan follows', () => {
  it('words the counts, and says nothing without settings', () => {
    expect(channelContextNote(channelContext)).toBe(note);
    expect(channelContextNote({ policyInstructions: 'Amounts in EUR.', memory: [] })).toBe(
      "Follows this channel's instructions.",
    );
    expect(channelContextNote({ memory: [{ id: 'mem_1', text: 'x' }] })).toBe(
      "Follows this channel's 1 remembered fact.",
    );
    expect(channelContextNote({ memory: [] })).toBeUndefined();
    expect(channelContextNote(undefined)).toBeUndefined();
  });

  it("comes from the plan's snapshot", () => {
    expect(planView(testTask(), testPlan({ channelContext }), policy).channelNote).toBe(note);
    expect(planView(testTask(), testPlan(), policy).channelNote).toBeUndefined();
  });

  const withNote = planView(testTask(), testPlan({ channelContext }), policy);
  const without = planView(testTask(), testPlan(), policy);

  it('Slack: in the model line’s context block (no extra block), no texts', () => {
    const blocks = renderBlocks(withNote).blocks;
    expect(blockKitProblems(blocks)).toEqual([]);
    expect(blocks.length).toBe(renderBlocks(without).blocks.length);
    const modelLine = JSON.stringify(blocks.find((b) => JSON.stringify(b).includes('model ')));
    expect(modelLine).toContain(note);
    expect(JSON.stringify(blocks)).not.toContain(secretish);
    expect(JSON.stringify(blocks)).not.toContain('fiscal year');
    expect(JSON.stringify(renderBlocks(without).blocks)).not.toContain('Follows this channel');
  });

  it('Teams: a subtle line under the model, no texts', () => {
    const card = JSON.stringify(renderCard(withNote));
    expect(card).toContain(`📌 ${note}`);
    expect(card).not.toContain(secretish);
    expect(card).not.toContain('fiscal year');
    expect(JSON.stringify(renderCard(without))).not.toContain('Follows this channel');
  });

  it('console: a muted line, escaped, no texts', () => {
    const html = renderHtml(withNote);
    expect(html).toMatch(
      /<p class="muted channel-context">Follows this channel(&#39;|&#x27;|')s instructions and 3 remembered facts\.<\/p>/,
    );
    expect(html).not.toContain(secretish);
    expect(renderHtml(without)).not.toContain('channel-context');
  });
});

describe('Teams memory buttons', () => {
  const result: ResultView = {
    kind: 'result',
    taskId: 't_1',
    status: 'succeeded',
    summary: 'Wrote note.md.',
    files: [],
    durationMs: 1000,
    usage: { input: 1, output: 1, cacheRead: 0, cacheWrite: 0 },
    costUsd: 0,
    demo: false,
    memoryProposals: [{ id: 'mp_1', text: 'The board meets [on](https://evil.example) Fridays' }],
  };

  it('result card: Accept and Dismiss per proposal, the text escaped', () => {
    const card = renderCard(result);
    expect(executes(card)).toEqual([
      { verb: 'memory.accept', data: { proposalId: 'mp_1' } },
      { verb: 'memory.dismiss', data: { proposalId: 'mp_1' } },
    ]);
    expect(JSON.stringify(card)).toContain('\\\\[on\\\\]');
    const { memoryProposals: _, ...plain } = result;
    expect(executes(renderCard(plain))).toEqual([]);
  });

  it('parses the memory verbs and refuses forged ids', () => {
    const click = (verb: string, data: Record<string, unknown>) =>
      parseAction({ action: { type: 'Action.Execute', verb, data } });
    expect(click('memory.accept', { proposalId: 'mp_1' })).toEqual({ verb: 'memory.accept', proposalId: 'mp_1' });
    expect(click('memory.dismiss', { proposalId: 'mp_1' })).toEqual({ verb: 'memory.dismiss', proposalId: 'mp_1' });
    expect(click('memory.forget', { factId: 'mem_1' })).toEqual({ verb: 'memory.forget', factId: 'mem_1' });
    for (const bad of [
      () => click('memory.accept', { proposalId: '../x' }),
      () => click('memory.forget', {}),
      () => click('memory.forget', { factId: 'x'.repeat(101) }),
    ]) {
      try {
        bad();
        expect.unreachable('a forged click was parsed');
      } catch (err) {
        expect(err).toBeInstanceOf(HandoffError);
        expect((err as HandoffError).code).toBe(ErrorCodes.invalidInput);
      }
    }
  });

  const settings = (over: Partial<ChannelSettingsView> = {}): ChannelSettingsView => ({
    kind: 'channel_settings',
    surface: 'teams',
    channel: 'team/channel',
    instructions: { text: 'Answer in German.', by: 'Ben', at: '2026-01-01T00:00:00Z' },
    memory: [
      { id: 'mem_1', text: 'EMEA target 2.1 M', by: 'Ben', at: '2026-01-01T00:00:00Z', source: 'asked' },
      {
        id: 'mem_2',
        text: 'Board meets Fridays',
        by: 'Ben',
        at: '2026-01-01T00:00:00Z',
        source: 'proposed',
        proposedBy: 'the agent',
      },
    ],
    proposals: [{ id: 'mp_9', text: 'APAC target 1.5 M', proposedBy: 'Ana' }],
    canEdit: true,
    demo: false,
    ...over,
  });

  it('memory list: Forget per fact and Accept / Dismiss per proposal for approvers, ids shown', () => {
    const card = memoryCard(settings());
    expect(executes(card)).toEqual([
      { verb: 'memory.forget', data: { factId: 'mem_1' } },
      { verb: 'memory.forget', data: { factId: 'mem_2' } },
      { verb: 'memory.accept', data: { proposalId: 'mp_9' } },
      { verb: 'memory.dismiss', data: { proposalId: 'mp_9' } },
    ]);
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
    const types = new Set<string>();
    const visit = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(visit);
      else if (n && typeof n === 'object') {
        const t = (n as { type?: unknown }).type;
        if (typeof t === 'string') types.add(t);
        Object.values(n).forEach(visit);
      }
    };
    visit(card);
    expect([...types].sort()).toEqual(['Action.Execute', 'ActionSet', 'AdaptiveCard', 'Container', 'TextBlock']);
    const text = JSON.stringify(card);
    expect(text).toContain('EMEA target 2.1 M \\\\[mem\\\\_1\\\\]');
    expect(text).toContain('proposed by the agent, accepted by Ben');
    expect(text).toContain('APAC target 1.5 M (by Ana) \\\\[mp\\\\_9\\\\]');
  });

  it('memory list: no buttons for anyone else, and a notice on top after a click', () => {
    const card = memoryCard(settings({ canEdit: false }));
    expect(executes(card)).toEqual([]);
    expect(JSON.stringify(card)).toContain("Only this channel's approvers change its instructions and memory.");
    const after = memoryCard(settings(), { text: 'Forgotten: “x”.', tone: 'good' });
    expect(after.body[0]).toMatchObject({ text: 'Forgotten: “x”.', color: 'Good' });
  });

  it('memory list: a full memory still fits Teams’ card size limit', () => {
    const long = (i: number) => `${i} ${'a very long remembered fact '.repeat(20)}`.slice(0, 500);
    const card = memoryCard(
      settings({
        instructions: { text: 'i'.repeat(4000), by: 'Ben', at: '2026-01-01T00:00:00Z' },
        policyInstructions: 'p'.repeat(4000),
        memory: Array.from({ length: 50 }, (_, i) => ({
          id: `mem_${i}`,
          text: long(i),
          by: 'Ben',
          at: '2026-01-01T00:00:00Z',
          source: 'asked' as const,
        })),
        proposals: Array.from({ length: 20 }, (_, i) => ({ id: `mp_${i}`, text: long(i), proposedBy: 'Ana' })),
      }),
    );
    expect(Buffer.byteLength(JSON.stringify(card))).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    // The newest facts are the ones listed, with their Forget buttons.
    expect(executes(card).some((e) => e.data.factId === 'mem_49')).toBe(true);
    expect(JSON.stringify(card)).toContain('older facts are kept too');
  });
});
