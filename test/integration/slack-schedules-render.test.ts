import { describe, expect, it } from 'vitest';
import {
  homeView,
  markdownToMrkdwn,
  parseCommand,
  renderBlocks,
  scheduleActionPattern,
} from '../../src/bot/surfaces/slack/index.ts';
import type { BriefView, PlanView, ScheduleListView } from '../../src/bot/views.ts';
import { blockKitProblems } from '../fakes/slack-server.ts';

const brief = (over: Partial<BriefView> = {}): BriefView => ({
  kind: 'brief',
  taskId: 's_1-abc',
  scheduleId: 's_1',
  title: 'Weekly sales brief',
  date: 'Mon 7 Dec 2026, 09:00 CET',
  state: 'posted',
  files: [],
  owner: 'Ana',
  demo: false,
  ...over,
});

const item = (i: number): ScheduleListView['items'][number] => ({
  id: `s_${i}`,
  request: `post brief number ${i} ${'with a long request '.repeat(20)}`,
  owner: 'Ana',
  words: 'every weekday (Mon–Fri) at 08:30',
  tz: 'Europe/Berlin',
  status: i % 2 ? 'paused' : 'active',
  ...(i % 2 ? { pausedReason: 'paused by Ana' } : { nextRun: 'Tue 8 Dec 2026, 08:30 CET' }),
  lastResult: 'posted (Mon 7 Dec 2026, 08:30 CET)',
});

describe('Block Kit for scheduled briefs (what Slack would accept)', () => {
  it('turns a brief’s markdown into mrkdwn, escaped, and keeps a long one within the limits', () => {
    expect(
      markdownToMrkdwn(
        '# Sales <3\n\n- **Total**: 5 & more\n* *North* leads\n1. see [dash](https://x.example/a?b=1)\n`**not bold**`\n~~old~~',
      ),
    ).toBe(
      '*Sales &lt;3*\n\n• *Total*: 5 &amp; more\n• _North_ leads\n1. see <https://x.example/a?b=1|dash>\n`**not bold**`\n~old~',
    );
    const body = Array.from({ length: 200 }, (_, i) => `- **Row ${i}**: ${'x'.repeat(40)}`).join('\n');
    const message = renderBlocks(brief({ body, files: [] }));
    expect(blockKitProblems(message.blocks)).toEqual([]);
    expect(JSON.stringify(message.blocks)).toContain('• *Row 199*');
  });

  it('renders every state of a brief, with the failure’s reason, advice and pause', () => {
    for (const state of ['running', 'posted', 'nothing_new', 'failed', 'cancelled'] as const) {
      const m = renderBlocks(
        brief({
          state,
          reason: 'the run ended without delivering any file',
          advice: 'Use Run now to try again.',
          paused: 'paused itself after 3 failed briefs in a row',
          late: '2 h 10 min late',
          manual: true,
          files: [
            {
              name: 'b.md',
              mediaType: 'text/markdown',
              size: 10,
              url: 'https://d.example/b',
              expiresAt: '2030-01-01T00:00:00Z',
            },
          ],
        }),
      );
      expect(blockKitProblems(m.blocks)).toEqual([]);
    }
    const failed = JSON.stringify(
      renderBlocks(brief({ state: 'failed', reason: 'it broke', advice: 'Run now.' })).blocks,
    );
    expect(failed).toContain('This brief failed:* it broke');
    expect(failed).toContain('Run now.');
  });

  it('lists many schedules within 50 blocks, with unique action ids and a Delete that asks first', () => {
    const view: ScheduleListView = {
      kind: 'schedules',
      channel: 'C1',
      items: Array.from({ length: 40 }, (_, i) => item(i)),
      demo: false,
    };
    const m = renderBlocks(view);
    expect(m.blocks.length).toBeLessThanOrEqual(50);
    expect(blockKitProblems(m.blocks)).toEqual([]);
    expect(JSON.stringify(m.blocks)).toContain('more schedules not shown');
    const ids = JSON.stringify(m.blocks).match(/handoff_schedule_[a-z_]+_\d+/g) ?? [];
    expect(ids.every((id) => scheduleActionPattern.test(id))).toBe(true);
    expect(JSON.stringify(m.blocks)).toContain(
      '"confirm":{"title":{"type":"plain_text","text":"Delete this schedule?"',
    );
    const home = homeView({
      mine: [],
      waiting: [],
      schedules: view.items.map((x) => ({ ...x, channel: 'C1' })),
      notice: 'Paused.',
    });
    expect(blockKitProblems((home as { blocks: unknown[] }).blocks, 100)).toEqual([]);
    const empty = renderBlocks({ ...view, items: [] });
    expect(JSON.stringify(empty.blocks)).toContain('/handoff schedule');
  });

  it('puts the schedule above the plan', () => {
    const plan: PlanView = {
      kind: 'plan',
      taskId: 't_1',
      version: 1,
      hash: 'a'.repeat(64),
      requester: 'Ana',
      summary: 'Write the brief.',
      steps: [{ title: 'Write', detail: '', level: 'batched' }],
      deliverables: [{ name: 'b.md', type: 'md' }],
      budget: { estimatedTokens: 1000, estimatedCostUsd: 0.01, maxCostUsd: 2, maxWallTimeMin: 15 },
      blockers: [],
      demo: false,
      model: 'claude',
      schedule: {
        words: 'every Monday at 09:00',
        tz: 'Europe/Berlin',
        tzSource: 'given in the request',
        nextRuns: ['Mon 7 Dec 2026, 09:00 CET', 'Mon 14 Dec 2026, 09:00 CET', 'Mon 21 Dec 2026, 09:00 CET'],
        owner: 'Ana',
        target: 'C1',
        envelope: {
          tools: ['write_file'],
          connectors: [],
          deliverableTypes: ['md'],
          maxCostUsdPerRun: 2,
          maxWallTimeMin: 15,
          monthlyCapUsd: 50,
        },
        catchUp: 'none',
        replaces: 's_old',
      },
    };
    const text = JSON.stringify(renderBlocks(plan).blocks);
    expect(text.indexOf('every Monday at 09:00')).toBeLessThan(text.indexOf('Plan v1'));
    expect(text).toContain('monthly cap is $50.00');
    expect(text).toContain('replaces schedule `s_old`');
    expect(text).toContain('missed while Handoff is down are skipped');
  });
});

describe('/handoff subcommands', () => {
  it('tells schedules, a schedule and a request apart', () => {
    expect(parseCommand('schedules')).toEqual({ kind: 'schedules' });
    expect(parseCommand('schedule "every weekday at 9:00" post the brief')).toEqual({
      kind: 'schedule',
      when: 'every weekday at 9:00',
      request: 'post the brief',
    });
    expect(parseCommand('schedule “every Monday 9:00 Europe/Berlin” post it')).toMatchObject({
      when: 'every Monday 9:00 Europe/Berlin',
    });
    expect(parseCommand('schedule every weekday at 9: post the brief')).toEqual({
      kind: 'schedule',
      when: 'every weekday at 9',
      request: 'post the brief',
    });
    expect(parseCommand('every Friday at 16:00: post the brief')).toMatchObject({ kind: 'schedule' });
    expect(parseCommand('schedule')).toMatchObject({ kind: 'usage' });
    expect(parseCommand('schedule a meeting with Ben')).toMatchObject({ kind: 'usage' });
    expect(parseCommand('summarise last week')).toEqual({ kind: 'request' });
  });
});
