import { describe, expect, it } from 'vitest';
import { countPlanChanges, planDiff } from '../../../src/approvals/index.ts';
import type { Plan } from '../../../src/core/index.ts';
import { testPlan } from '../../helpers/fixtures.ts';

function makePlan(overrides: Partial<Plan> = {}): Plan {
  return testPlan(
    {
      version: 1,
      summary: 'Turn sales.csv into a spreadsheet with totals per region.',
      steps: [
        { title: 'Read the CSV', detail: 'Check columns and rows.', actions: ['read_files'] },
        { title: 'Build the workbook', detail: 'Data and Totals sheets.', actions: ['run_commands', 'create_files'] },
        { title: 'Deliver', detail: '', actions: ['create_files'] },
      ],
      ...overrides,
    },
    { tools: ['read_file', 'list_files', 'run_command', 'write_file', 'deliver_artifact'], ...overrides.envelope },
  );
}

describe('planDiff', () => {
  it('finds nothing between a plan and an identical revision', () => {
    const diff = planDiff(makePlan(), makePlan({ version: 2 }));
    expect(diff.summaryChanged).toBe(false);
    expect(diff.steps.map((s) => s.kind)).toEqual(['same', 'same', 'same']);
    expect(diff.deliverables).toEqual({ added: [], removed: [] });
    expect(diff.envelope).toEqual([]);
    expect(countPlanChanges(diff)).toBe(0);
  });

  it('shows added, removed and changed steps in the new order, removed ones where they were', () => {
    const before = makePlan();
    const after = makePlan({
      version: 2,
      summary: 'Turn sales.csv into a spreadsheet with totals per region and a chart.',
      steps: [
        // First step dropped; the second changed; a chart step added before delivery.
        {
          title: 'build the  workbook',
          detail: 'Data and Totals sheets, plus a bar chart.',
          actions: ['run_commands', 'create_files'],
        },
        { title: 'Check the chart', detail: 'Open the file and look.', actions: ['read_files'] },
        { title: 'Deliver', detail: '', actions: ['create_files'] },
      ],
    });
    const diff = planDiff(before, after);
    expect(diff.summaryChanged).toBe(true);
    expect(diff.steps).toEqual([
      { kind: 'removed', title: 'Read the CSV', before: 'Check columns and rows. (actions: read files)' },
      {
        kind: 'changed',
        title: 'build the  workbook',
        before: 'Data and Totals sheets. (actions: run commands, create files)',
        after: 'Data and Totals sheets, plus a bar chart. (actions: run commands, create files)',
      },
      { kind: 'added', title: 'Check the chart', after: 'Open the file and look. (actions: read files)' },
      { kind: 'same', title: 'Deliver' },
    ]);
    expect(countPlanChanges(diff)).toBe(4);
  });

  it('counts a step whose actions changed as changed', () => {
    const after = makePlan({
      version: 2,
      steps: makePlan().steps.map((s, i) => (i === 2 ? { ...s, actions: ['create_files', 'delete_file'] } : s)),
    });
    const step = planDiff(makePlan(), after).steps[2]!;
    expect(step).toEqual({
      kind: 'changed',
      title: 'Deliver',
      before: 'actions: create files',
      after: 'actions: create files, delete file',
    });
  });

  it('lists deliverables added and removed by file name', () => {
    const after = makePlan({
      version: 2,
      deliverables: [
        { name: 'sales.xlsx', type: 'xlsx' },
        { name: 'chart.png', type: 'png' },
      ],
    });
    expect(planDiff(makePlan(), after).deliverables).toEqual({ added: ['chart.png'], removed: [] });
    expect(planDiff(after, makePlan()).deliverables).toEqual({ added: [], removed: ['chart.png'] });
  });

  it('says in plain sentences what the envelope now allows', () => {
    const before = makePlan();
    const after = makePlan({
      version: 2,
      envelope: {
        ...before.envelope,
        tools: [...before.envelope.tools.filter((t) => t !== 'write_file'), 'delete_file'],
        egressDomains: ['api.example.com'],
        mayDelete: ['old.csv'],
        mayOverwrite: ['sales.csv'],
        budget: { maxTokens: 500_000, maxCostUsd: 8, maxWallTimeMs: 1_200_000 },
      },
    });
    expect(planDiff(before, after).envelope).toEqual([
      'budget: $5.00 → $8.00',
      'token cap: 400,000 → 500,000',
      'wall time: 15 min → 20 min',
      'new tool: delete_file',
      'tool dropped: write_file',
      'new network access: api.example.com',
      'may now overwrite: sales.csv',
      'may now delete: old.csv',
    ]);
  });
});
