import { describe, expect, it } from 'vitest';
import { defaultPlanPolicy, planHash } from '../../../src/approvals/index.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import { planView, progressView, resultView } from '../../../src/bot/views.ts';
import type { Artifact, Plan, Task } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const policy = defaultPlanPolicy(false);
const ana = { id: 'u_ana', name: 'Ana' };
const bo = { id: 'u_bo', name: 'Bo' };

function makePlan(overrides: Partial<Plan> = {}): Plan {
  return testPlan(
    {
      steps: [
        { title: 'Read the CSV', detail: 'Check columns and row count.', actions: ['read_files'] },
        { title: 'Build the workbook', detail: '', actions: ['run_commands', 'create_files'] },
        { title: 'Replace the input', detail: '', actions: ['read_files', 'overwrite_input'] },
      ],
      deliverables: [
        { name: 'sales.xlsx', type: 'xlsx' },
        { name: 'Q3 summary (final).md', type: 'md' },
      ],
      ...overrides,
    },
    { deliverableTypes: ['xlsx', 'md'] },
  );
}

function makeTask(overrides: Partial<Task> = {}): Task {
  return testTask({ requester: ana, ...overrides });
}

/** The card's buttons, each as its label and attributes. */
function buttons(html: string): Array<{ label: string; attrs: Record<string, string> }> {
  return [...html.matchAll(/<button([^>]*)>([^<]*)<\/button>/g)].map((m) => ({
    label: m[2]!,
    attrs: Object.fromEntries([...m[1]!.matchAll(/([a-z-]+)(?:="([^"]*)")?/g)].map((a) => [a[1]!, a[2] ?? ''])),
  }));
}

/** The text of each step item, tags stripped. */
function stepTexts(html: string): string[] {
  const list = /<ol class="steps">(.*?)<\/ol>/.exec(html)?.[1] ?? '';
  return [...list.matchAll(/<li>(.*?)<\/li>/g)].map((m) =>
    m[1]!
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

describe('plan card', () => {
  it('shows every step with its trust badge and every deliverable', () => {
    const html = renderHtml(planView(makeTask(), makePlan(), policy));

    expect(stepTexts(html)).toEqual([
      'Read the CSV autonomous Check columns and row count.',
      'Build the workbook batched',
      'Replace the input watched',
    ]);
    expect(html).toContain('badge-autonomous');
    expect(html).toContain('badge-batched');
    expect(html).toContain('badge-watched');
    expect(html).toContain('sales.xlsx');
    expect(html).toContain('Q3 summary (final).md');
    expect(html).toContain('Plan v2 for Ana');
    expect(html).toContain('model claude-sonnet-5-5');
    expect(html).not.toContain('demo model');
  });

  it('says "demo model" when the demo model wrote the plan', () => {
    const html = renderHtml(planView(makeTask({ demo: true }), makePlan({ demo: true }), policy));
    expect(html).toContain('demo model');
    expect(html).not.toContain('model claude-sonnet-5-5');
  });

  it('has Approve, Deny and Request changes buttons bound to the task, the version and the plan hash', () => {
    const plan = makePlan();
    const html = renderHtml(planView(makeTask(), plan, policy));
    const found = buttons(html);

    expect(found.map((b) => b.label)).toEqual(['Approve', 'Deny', 'Request changes']);
    for (const b of found) {
      expect(b.attrs['data-task']).toBe('t_abcdef123');
      expect(b.attrs['data-version']).toBe('2');
      expect(b.attrs['data-hash']).toBe(planHash(plan));
      expect(b.attrs).not.toHaveProperty('disabled');
    }
    expect(found.map((b) => b.attrs['data-action'])).toEqual(['approve', 'deny', 'request-changes']);
  });

  it('drops the buttons and names the approver once decided', () => {
    const plan = makePlan();
    const task = makeTask({
      state: 'queued',
      decision: {
        by: bo,
        at: '2025-03-01T09:02:00.000Z',
        outcome: 'approved',
        planVersion: 2,
        planHash: planHash(plan),
      },
    });
    const html = renderHtml(planView(task, plan, policy));

    expect(buttons(html)).toEqual([]);
    expect(html).toContain('Approved by Bo');
    expect(html).toContain('2025-03-01 09:02 UTC');
  });

  it('shows a denial, and marks an older version as replaced', () => {
    const plan = makePlan();
    const denied = makeTask({
      state: 'denied',
      decision: { by: bo, at: '2025-03-01T09:02:00.000Z', outcome: 'denied', planVersion: 2, planHash: planHash(plan) },
    });
    expect(renderHtml(planView(denied, plan, policy))).toContain('Denied by Bo');

    const old = renderHtml(planView(makeTask({ planVersion: 3 }), plan, policy));
    expect(buttons(old)).toEqual([]);
    expect(old).toContain('Replaced by a newer plan version');
  });

  it('on a revision, says who asked for what and shows the diff; the old version is replaced at once', () => {
    const v1 = makePlan({ version: 1 });
    const v2 = makePlan({
      version: 2,
      steps: [
        ...v1.steps.filter((s) => s.title !== 'Replace the input'),
        { title: 'Add a <chart>', detail: 'Bar chart of totals.', actions: ['run_commands', 'create_files'] },
      ],
      deliverables: [...v1.deliverables, { name: 'chart.png', type: 'png' }],
      envelope: { ...v1.envelope, budget: { ...v1.envelope.budget, maxCostUsd: 8 } },
    });
    const asked = { version: 1, by: bo, text: 'also add a <chart>', at: '2025-03-01T09:03:00.000Z' };

    // Right after the request: v1 waits for v2 (the task plans), and its card has no buttons any more.
    const planning = makeTask({ state: 'planning', planVersion: 1, changeRequests: [asked] });
    const old = renderHtml(planView(planning, v1, policy));
    expect(buttons(old)).toEqual([]);
    expect(old).toContain('Replaced by a newer plan version after Bo asked for changes');

    const view = planView(makeTask({ planVersion: 2, changeRequests: [asked] }), v2, policy, v1);
    expect(view.changes?.requestedBy).toBe('Bo');
    expect(view.changes?.diff.steps.filter((s) => s.kind !== 'same').map((s) => s.kind)).toEqual(['removed', 'added']);
    const html = renderHtml(view);
    expect(html).toContain('Revised after Bo asked: “also add a &lt;chart&gt;”');
    expect(html).toContain('<li class="diff-added">+ <strong>Add a &lt;chart&gt;</strong>');
    expect(html).toContain('<li class="diff-removed">− <del>Replace the input</del></li>');
    expect(html).toContain('+ file chart.png');
    expect(html).toContain('budget: $5.00 → $8.00');
    expect(buttons(html).map((b) => b.label)).toEqual(['Approve', 'Deny', 'Request changes']);

    // Without the previous plan (or on version 1) there is nothing to compare.
    expect(planView(makeTask({ planVersion: 2, changeRequests: [asked] }), v2, policy).changes).toBeUndefined();
  });

  it('disables Approve and says why when a step needs a forbidden action', () => {
    const plan = makePlan({
      steps: [
        { title: 'Read the invoices', detail: '', actions: ['read_files'] },
        { title: 'Pay the supplier', detail: '', actions: ['payments'] },
      ],
    });
    const html = renderHtml(planView(makeTask(), plan, policy));
    const [approve, deny, changes] = buttons(html);

    expect(approve!.label).toBe('Approve');
    expect(approve!.attrs).toHaveProperty('disabled');
    expect(deny!.attrs).not.toHaveProperty('disabled');
    expect(changes!.attrs).not.toHaveProperty('disabled');
    expect(html).toContain('Cannot be approved');
    expect(html).toContain('step 2');
    expect(html).toContain('Pay the supplier');
    expect(html).toContain('badge-forbidden');
  });

  it('escapes HTML coming from the request and the plan', () => {
    const plan = makePlan({
      summary: 'Summary <script>alert(1)</script>',
      steps: [{ title: '<img src=x onerror=alert(2)>', detail: '"quoted" & \'single\'', actions: ['read_files'] }],
    });
    const task = makeTask({ requester: { id: 'u_eve', name: '<b>Eve</b>' } });
    const html = renderHtml(planView(task, plan, policy));

    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>Eve');
    expect(html).toContain('Summary &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&lt;img src=x onerror=alert(2)&gt;');
    expect(html).toContain('&quot;quoted&quot; &amp; &#39;single&#39;');
    expect(html).toContain('&lt;b&gt;Eve&lt;/b&gt;');
  });
});

describe('result card', () => {
  const artifact = (name: string, size: number): Artifact => ({
    name,
    mediaType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    size,
    sha256: 'b'.repeat(64),
    key: `out/t_abcdef123/${name}`,
    createdAt: '2025-03-01T09:10:00.000Z',
  });

  it('lists each file with its name, size, download link and expiry', () => {
    const task = makeTask({
      state: 'succeeded',
      startedAt: '2025-03-01T09:03:00.000Z',
      finishedAt: '2025-03-01T09:05:30.000Z',
      resultSummary: 'Made sales.xlsx with four regions.',
    });
    const links = [
      {
        artifact: artifact('sales.xlsx', 20_480),
        url: '/files/abc?sig=1&exp=2',
        expiresAt: '2025-03-02T09:10:00.000Z',
      },
      { artifact: artifact('notes.md', 512), url: '/files/def?sig=3', expiresAt: '2025-03-02T09:11:00.000Z' },
    ];
    const view = resultView(task, makePlan(), links);
    const html = renderHtml(view);

    expect(view.status).toBe('succeeded');
    expect(html).toContain('<h3>Done</h3>');
    expect(html).toContain('Made sales.xlsx with four regions.');
    expect(html).toContain('<a href="/files/abc?sig=1&amp;exp=2" download="sales.xlsx">sales.xlsx</a>');
    expect(html).toContain('20.0 KB');
    expect(html).toContain('link valid until <time datetime="2025-03-02T09:10:00.000Z">2025-03-02 09:10 UTC</time>');
    expect(html).toContain('<a href="/files/def?sig=3" download="notes.md">notes.md</a>');
    expect(html).toContain('512 B');
    expect(html).toContain('2 min 30 s');
  });

  it('shows why a run failed', () => {
    const task = makeTask({
      state: 'failed',
      startedAt: '2025-03-01T09:03:00.000Z',
      finishedAt: '2025-03-01T09:04:00.000Z',
      failure: { code: 'handoff_deliverables_missing', message: 'the run ended without delivering any file.' },
    });
    const html = renderHtml(resultView(task, makePlan(), []));

    expect(html).toContain('The run failed');
    expect(html).toContain('the run ended without delivering any file.');
    expect(html).not.toContain('<ul class="files">');
  });

  it('shows input, output and cache tokens on the live card and on the result', () => {
    const usage = { inputTokens: 12_300, outputTokens: 2_100, cacheReadTokens: 80_000, cacheWriteTokens: 4_000 };
    const task = makeTask({
      state: 'succeeded',
      startedAt: '2025-03-01T09:03:00.000Z',
      finishedAt: '2025-03-01T09:05:30.000Z',
      usage,
    });
    const words = '12,300 in · 2,100 out · 80,000 cache read · 4,000 cache write tokens';
    expect(renderHtml(resultView(task, makePlan(), []))).toContain(words);
    const running = makeTask({ state: 'running', startedAt: '2025-03-01T09:03:00.000Z' });
    const live = progressView(running, {
      type: 'progress',
      taskId: running.id,
      runId: 'r_1',
      steps: [{ title: 'Read', status: 'running' }],
      elapsedMs: 1000,
      usage,
      seq: 1,
    });
    expect(renderHtml(live)).toContain(words);
  });
});
