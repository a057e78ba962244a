import { describe, expect, it } from 'vitest';
import { channelSettingsText, parseSettingsCommand } from '../../../src/bot/channel-settings.ts';
import { renderBlocks } from '../../../src/bot/surfaces/slack/block-kit.ts';
import { memoryActionIds } from '../../../src/bot/surfaces/slack/channel-settings-slack.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import type { ResultView } from '../../../src/bot/views.ts';
import { blockKitProblems } from '../../fakes/slack-server.ts';

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
  memoryProposals: [{ id: 'mp_1', text: 'The board meets <on> Fridays' }],
};

describe('proposed facts on a result card', () => {
  it('Block Kit: Accept and Dismiss per proposal, escaped, within Slack limits', () => {
    const { blocks } = renderBlocks(result);
    expect(blockKitProblems(blocks)).toEqual([]);
    const buttons = blocks.flatMap((b) =>
      'elements' in b ? (b.elements as Array<{ action_id?: string; value?: string }>) : [],
    );
    const accept = buttons.find((e) => e.action_id && memoryActionIds.accept.test(e.action_id));
    const dismiss = buttons.find((e) => e.action_id && memoryActionIds.dismiss.test(e.action_id));
    expect(JSON.parse(accept!.value!)).toEqual({ i: 'mp_1' });
    expect(JSON.parse(dismiss!.value!)).toEqual({ i: 'mp_1' });
    expect(JSON.stringify(blocks)).toContain('The board meets &lt;on&gt; Fridays');
  });
  it('console HTML: the buttons carry the proposal id, the text is escaped', () => {
    const html = renderHtml(result);
    expect(html).toContain('data-action="accept-memory" data-task="t_1" data-approval="mp_1"');
    expect(html).toContain('data-action="dismiss-memory" data-task="t_1" data-approval="mp_1"');
    expect(html).toContain('The board meets &lt;on&gt; Fridays');
  });
  it('no proposals, no buttons', () => {
    const { memoryProposals: _, ...plain } = result;
    expect(renderHtml(plain)).not.toContain('accept-memory');
    expect(JSON.stringify(renderBlocks(plain).blocks)).not.toContain('handoff_memory_');
  });
});

describe('settings commands', () => {
  it('parses instructions and memory, and leaves requests alone', () => {
    expect(parseSettingsCommand('instructions')).toEqual({ kind: 'instructions' });
    expect(parseSettingsCommand('Instructions clear')).toEqual({ kind: 'instructions', clear: true });
    expect(parseSettingsCommand('instructions Answer in German.')).toEqual({
      kind: 'instructions',
      text: 'Answer in German.',
    });
    expect(parseSettingsCommand('memory')).toEqual({ kind: 'memory' });
    expect(parseSettingsCommand('write the instructions for the new hire')).toBeUndefined();
    expect(parseSettingsCommand('memory usage report')).toBeUndefined();
  });
  it('lists settings as text with ids, and says who may change them', () => {
    const text = channelSettingsText({
      kind: 'channel_settings',
      surface: 'teams',
      channel: 'c1',
      memory: [{ id: 'mem_1', text: 'EMEA target 2.1 M', by: 'Ben', at: '2026-01-01T00:00:00Z', source: 'asked' }],
      proposals: [],
      canEdit: false,
      demo: false,
    });
    expect(text).toContain('• EMEA target 2.1 M [mem_1]');
    expect(text).toContain("Only this channel's approvers change its instructions and memory.");
  });
});
