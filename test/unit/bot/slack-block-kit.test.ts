import { describe, expect, it } from 'vitest';
import {
  decodeButtonValue,
  EditLimiter,
  encodeButtonValue,
  renderBlocks,
} from '../../../src/bot/surfaces/slack/index.ts';
import type { PlanView, ProgressView, ResultView } from '../../../src/bot/views.ts';
import { blockKitProblems } from '../../fakes/slack-server.ts';

const hash = 'a'.repeat(64);

function plan(overrides: Partial<PlanView> = {}): PlanView {
  return <PlanView>{
    kind: 'plan',
    taskId: 't_abc',
    version: 3,
    hash,
    requester: 'Ana <script>',
    summary: 'Build the Q3 workbook & chart',
    steps: [
      { title: 'Read the CSV', detail: 'Columns and rows', level: 'autonomous' },
      { title: 'Replace the input', detail: '', level: 'watched' },
    ],
    deliverables: [{ name: 'q3.xlsx', type: 'xlsx' }],
    budget: { estimatedTokens: 60_000, estimatedCostUsd: 0.3, maxCostUsd: 5, maxWallTimeMin: 15 },
    blockers: [],
    demo: false,
    model: 'claude-sonnet-4-5',
    ...overrides,
  };
}

const text = (blocks: unknown) => JSON.stringify(blocks);

describe('Block Kit rendering', () => {
  it('renders a plan card with trust levels, escaped text and three uniquely named buttons', () => {
    const m = renderBlocks(plan());
    expect(blockKitProblems(m.blocks)).toEqual([]);
    const t = text(m.blocks);
    expect(t).toContain('Ana &lt;script&gt;');
    expect(t).toContain('workbook &amp; chart');
    expect(t).toContain('`watched`');
    const actions = m.blocks.filter((b) => b.type === 'actions');
    expect(actions).toHaveLength(1);
    const approve = (actions[0] as { elements: Array<{ action_id: string; value: string; confirm?: unknown }> })
      .elements[0]!;
    expect(approve.action_id).toBe('handoff_approve');
    // A watched step: Approve asks for confirmation.
    expect(approve.confirm).toBeDefined();
    expect(decodeButtonValue(approve.value)).toEqual({ taskId: 't_abc', version: 3, hash });
  });

  it('has no confirmation without watched steps, no Approve when blocked, no buttons after a decision', () => {
    const plain = renderBlocks(plan({ steps: [{ title: 'Read', detail: '', level: 'batched' }] }));
    expect(text(plain.blocks)).not.toContain('"confirm"');
    const blocked = renderBlocks(plan({ blockers: ['step 1 needs payments, which policy forbids'] }));
    expect(text(blocked.blocks)).not.toContain('handoff_approve');
    expect(text(blocked.blocks)).toContain('cannot be approved');
    const decided = renderBlocks(
      plan({ decision: { outcome: 'approved', by: 'Ben', at: '2026-01-02T03:04:05.000Z' } }),
    );
    expect(decided.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(text(decided.blocks)).toContain('Approved by Ben');
    expect(text(decided.blocks)).toContain('<!date^');
  });

  it('stays within 50 blocks and 3,000 characters for the largest plan, output tail and file list', () => {
    const big = plan({
      summary: 'S'.repeat(5000),
      steps: Array.from({ length: 20 }, (_, i) => ({
        title: `T${i}`.repeat(50),
        detail: 'd<'.repeat(1500),
        level: 'watched' as const,
      })),
      deliverables: Array.from({ length: 20 }, (_, i) => ({
        name: `file-${i}-${'x'.repeat(100)}.xlsx`,
        type: 'xlsx' as const,
      })),
      blockers: Array.from({ length: 20 }, () => 'b'.repeat(400)),
    });
    expect(blockKitProblems(renderBlocks(big).blocks)).toEqual([]);

    const progress: ProgressView = {
      kind: 'progress',
      taskId: 't_abc',
      steps: Array.from({ length: 20 }, (_, i) => ({
        title: `Step ${i} ${'y'.repeat(190)}`,
        status: 'running' as const,
      })),
      activity: 'a'.repeat(500),
      outputTail: `${'<&>'.repeat(1300)}THE END`,
      elapsedMs: 12_000,
      usage: { input: 8, output: 2, cacheRead: 0, cacheWrite: 0 },
      cancellable: true,
      demo: false,
    };
    const p = renderBlocks(progress);
    expect(blockKitProblems(p.blocks)).toEqual([]);
    // The end of the output is what is kept.
    expect(text(p.blocks)).toContain('THE END');
    expect(text(p.blocks)).toContain('handoff_cancel');

    const result: ResultView = {
      kind: 'result',
      taskId: 't_abc',
      status: 'succeeded',
      summary: 'z'.repeat(20_000),
      files: Array.from({ length: 80 }, (_, i) => ({
        name: `f${i}.csv`,
        mediaType: 'text/csv',
        size: 10,
        url: `https://files.example/f${i}?sig=a|b`,
        expiresAt: '2026-01-02T03:04:05.000Z',
      })),
      durationMs: 65_000,
      usage: { input: 1, output: 1, cacheRead: 0, cacheWrite: 0 },
      costUsd: 0.12,
      demo: false,
    };
    const r = renderBlocks(result, { uploaded: ['f0.csv'] });
    expect(blockKitProblems(r.blocks)).toEqual([]);
    expect(r.blocks.length).toBeLessThanOrEqual(50);
    expect(text(r.blocks)).toContain('more files');
    expect(text(r.blocks)).toContain('uploaded above');
    expect(text(r.blocks)).toContain('Took 1 min 5 s');
  });

  it('shows who asked for a revision and its diff, cutting a long diff with a count', () => {
    const small = renderBlocks(
      plan({
        changes: {
          requestedBy: 'Ben',
          text: 'also add a <chart>',
          diff: {
            summaryChanged: false,
            steps: [
              { kind: 'same', title: 'Read the CSV' },
              { kind: 'added', title: 'Add a chart', after: 'Bar chart.' },
              { kind: 'removed', title: 'Old step', before: '' },
              { kind: 'changed', title: 'Build', before: 'one sheet', after: 'two sheets' },
            ],
            deliverables: { added: ['chart.png'], removed: [] },
            envelope: ['budget: $5.00 → $8.00'],
          },
        },
      }),
    );
    expect(blockKitProblems(small.blocks)).toEqual([]);
    const t = text(small.blocks);
    expect(t).toContain('Revised after Ben asked:* “also add a &lt;chart&gt;”');
    expect(t).toContain(':heavy_plus_sign: *Add a chart*');
    expect(t).toContain(':heavy_minus_sign: ~Old step~');
    expect(t).toContain('*Build*: one sheet → two sheets');
    expect(t).toContain('file chart.png');
    expect(t).toContain('budget: $5.00 → $8.00');
    expect(t).not.toContain('more changes');

    const huge = renderBlocks(
      plan({
        steps: Array.from({ length: 20 }, (_, i) => ({ title: `T${i}`.repeat(50), detail: 'd', level: 'watched' })),
        blockers: ['b'],
        changes: {
          requestedBy: 'Ben',
          text: '<'.repeat(2000),
          diff: {
            summaryChanged: true,
            steps: Array.from({ length: 40 }, (_, i) => ({
              kind: 'changed' as const,
              title: `Step ${i} ${'x'.repeat(190)}`,
              before: 'b'.repeat(2000),
              after: 'a'.repeat(2000),
            })),
            deliverables: { added: ['a.png'], removed: ['b.png'] },
            envelope: ['new tool: delete_file'],
          },
        },
      }),
    );
    expect(blockKitProblems(huge.blocks)).toEqual([]);
    expect(huge.blocks.length).toBeLessThanOrEqual(50);
    expect(text(huge.blocks)).toMatch(/…and \d+ more changes/);
  });

  it('refuses button values that are not ours', () => {
    expect(decodeButtonValue(encodeButtonValue({ taskId: 't_1', version: 1, hash }))).toBeDefined();
    for (const bad of [
      '',
      'x',
      `{"t":"../../x","v":1,"h":"${hash}"}`,
      `{"t":"t","v":0,"h":"${hash}"}`,
      '{"t":"t","v":1,"h":"zz"}',
      42,
    ]) {
      expect(decodeButtonValue(bad)).toBeUndefined();
    }
  });
});

describe('EditLimiter', () => {
  it('sends at most one edit per interval per message and only the newest pending one', async () => {
    const limiter = new EditLimiter({ minIntervalMs: 200, maxRetryAfterMs: 1000, maxAttempts: 3 });
    const sent: Array<{ n: number; at: number }> = [];
    const start = Date.now();
    const all = Array.from({ length: 10 }, (_, n) =>
      limiter.submit('C1:1', async () => {
        sent.push({ n, at: Date.now() - start });
      }),
    );
    await Promise.all(all);
    // The first goes at once; the nine that arrived meanwhile collapse into the last one.
    expect(sent.map((s) => s.n)).toEqual([0, 9]);
    expect(sent[1]!.at).toBeGreaterThanOrEqual(190);
    limiter.close();
  });

  it('waits for Retry-After on a 429 and gives up after the attempt limit', async () => {
    const limiter = new EditLimiter({ minIntervalMs: 10, maxRetryAfterMs: 1000, maxAttempts: 3 });
    const rateLimited = Object.assign(new Error('rate limited'), {
      code: 'slack_webapi_rate_limited_error',
      retryAfter: 0.2,
    });
    let calls = 0;
    const start = Date.now();
    await limiter.submit('k', async () => {
      calls++;
      if (calls === 1) throw rateLimited;
    });
    expect(calls).toBe(2);
    expect(Date.now() - start).toBeGreaterThanOrEqual(190);

    let forever = 0;
    await expect(
      limiter.submit('k2', async () => {
        forever++;
        throw rateLimited;
      }),
    ).rejects.toThrow('rate limited');
    expect(forever).toBe(3);
    limiter.close();
  });
});
