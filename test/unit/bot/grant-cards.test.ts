import { describe, expect, it } from 'vitest';
import { renderBlocks } from '../../../src/bot/surfaces/slack/block-kit.ts';
import { grantsBlocks } from '../../../src/bot/surfaces/slack/grants-blocks.ts';
import { parseCommand } from '../../../src/bot/surfaces/slack/slack-app.ts';
import { cardVerbs, parseAction, renderCard } from '../../../src/bot/surfaces/teams/adaptive-cards.ts';
import { grantsCard } from '../../../src/bot/surfaces/teams/grants-card.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import { type ApprovalRequestView, approvalView } from '../../../src/bot/views.ts';
import { type Grant, newTask, type PendingAction } from '../../../src/core/index.ts';

const task = newTask(
  {
    id: 't_1',
    conversation: { surface: 'slack', channel: 'C1', thread: '1.1' },
    requester: { id: 'U1', name: 'Ana' },
    request: 'x',
    inputs: [],
    demo: false,
  },
  new Date(),
);
const pending: PendingAction = {
  id: 'a_1',
  toolUseId: 'toolu_1',
  tool: 'crm__create_note',
  input: { text: 'hello' },
  action: 'connector_write',
  trust: 'watched',
  reason: 'a connector write',
  requestedAt: new Date().toISOString(),
  expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  grantPatterns: ['connector:crm__create_note'],
};
const json = (v: unknown) => JSON.stringify(v);

describe('grant buttons on a paused call’s card', () => {
  const both = approvalView(task, pending, undefined, { run: true, channel: true, channelDays: 7 });
  const runOnly = approvalView(task, pending, undefined, { run: true, channel: false, channelDays: 7 });
  const none = approvalView(task, pending, undefined);

  it('renders each offered button, and only those, on every surface', () => {
    const cases: Array<[string, (v: ApprovalRequestView) => string, string, string]> = [
      ['slack', (v) => json(renderBlocks(v)), 'handoff_action_grant_run', 'handoff_action_grant_channel'],
      ['teams', (v) => json(renderCard(v)), cardVerbs.actionGrantRun, cardVerbs.actionGrantChannel],
      ['web', (v) => renderHtml(v), 'grant-run-action', 'grant-channel-action'],
    ];
    for (const [, render, run, channel] of cases) {
      expect(render(both)).toContain(run);
      expect(render(both)).toContain(channel);
      expect(render(runOnly)).toContain(run);
      expect(render(runOnly)).not.toContain(channel);
      expect(render(none)).not.toContain(run);
      expect(render(none)).not.toContain(channel);
    }
  });

  it('drops the buttons once decided, and says what was granted', () => {
    const decided = approvalView(
      task,
      pending,
      {
        approvalId: 'a_1',
        outcome: 'approved',
        by: { id: 'U2', name: 'Bo' },
        at: new Date().toISOString(),
        grant: 'channel',
      },
      { run: true, channel: true, channelDays: 7 },
    );
    expect(decided.grantOptions).toBeUndefined();
    expect(renderHtml(decided)).toContain('Approved and always allowed in this channel by Bo');
    expect(json(renderBlocks(decided))).toContain('always allowed in this channel');
    expect(json(renderCard(decided))).toContain('always allowed in this channel');
  });

  it('parses the Teams grant verbs, bound to the task and the approval id', () => {
    const action = parseAction({
      action: {
        type: 'Action.Execute',
        verb: cardVerbs.actionGrantChannel,
        data: { taskId: 't_1', approvalId: 'a_1' },
      },
    });
    expect(action).toMatchObject({ verb: 'action.grant_channel', taskId: 't_1', approvalId: 'a_1' });
    expect(() =>
      parseAction({ action: { type: 'Action.Execute', verb: cardVerbs.actionGrantRun, data: { taskId: 't_1' } } }),
    ).toThrow(/approvalId/);
  });
});

describe('grant lists', () => {
  const grant: Grant = {
    id: 'g_1',
    pattern: 'connector:crm__create_note',
    action: 'connector_write',
    scope: 'channel',
    surface: 'slack',
    channel: 'C1',
    taskId: 't_1',
    runId: 'r_1',
    approvalId: 'a_1',
    description: 'the connector tool crm__create_note (any arguments)',
    createdBy: { id: 'U2', name: 'Bo <b>' },
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-08T00:00:00.000Z',
  };

  it('lists each grant with who, when, expiry and a Revoke button carrying its id', () => {
    const slack = grantsBlocks('C1', [grant]);
    expect(json(slack.blocks)).toContain('handoff_grant_revoke_0');
    expect(json(slack.blocks)).toContain('"value":"g_1"');
    expect(json(slack.blocks)).toContain('Bo &lt;b&gt;');
    expect(json(slack.blocks)).toContain('2026-01-08 00:00 UTC');
    const teams = grantsCard([grant]);
    expect(json(teams)).toContain(cardVerbs.grantRevoke);
    expect(
      parseAction({ action: { type: 'Action.Execute', verb: cardVerbs.grantRevoke, data: { grantId: 'g_1' } } }),
    ).toEqual(expect.objectContaining({ verb: 'grant.revoke', grantId: 'g_1' }));
    expect(grantsBlocks('C1', []).text).toContain('No standing grants');
  });

  it('reads `/handoff grants` as the list command', () => {
    expect(parseCommand('grants')).toEqual({ kind: 'grants' });
    expect(parseCommand('grants list')).toEqual({ kind: 'grants' });
  });
});
