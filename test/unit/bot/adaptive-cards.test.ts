import { describe, expect, it } from 'vitest';
import { defaultPlanPolicy, planHash } from '../../../src/approvals/index.ts';
import type { ScheduleAction } from '../../../src/bot/schedules.ts';
import {
  type AdaptiveCard,
  cardAttachment,
  cardLimits,
  escapeCardMarkdown,
  messageText,
  parseAction,
  renderCard,
  scheduleCardActions,
  type TeamsAction,
} from '../../../src/bot/surfaces/teams/adaptive-cards.ts';
import {
  approvalView,
  type BriefView,
  planView,
  progressView,
  questionView,
  resultView,
  type ScheduleListView,
  statusView,
} from '../../../src/bot/views.ts';
import { type Artifact, ErrorCodes, HandoffError, type Plan, type Task } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

// Compile-time: the schedule buttons are exactly the actions Schedules.act accepts.
type CardScheduleAction = (typeof scheduleCardActions)[number];
const sameScheduleActions: [ScheduleAction] extends [CardScheduleAction]
  ? [CardScheduleAction] extends [ScheduleAction]
    ? true
    : false
  : false = true;

const policy = defaultPlanPolicy(false);
const ana = { id: 'u_ana', name: 'Ana' };
const bo = { id: 'u_bo', name: 'Bo' };

function makePlan(overrides: Partial<Plan> = {}): Plan {
  return testPlan({
    steps: [
      { title: 'Read the CSV', detail: 'Check columns and row count.', actions: ['read_files'] },
      { title: 'Build the workbook', detail: '', actions: ['run_commands', 'create_files'] },
      { title: 'Replace the input', detail: '', actions: ['read_files', 'overwrite_input'] },
    ],
    ...overrides,
  });
}

function makeTask(overrides: Partial<Task> = {}): Task {
  return testTask({ requester: ana, ...overrides });
}

const artifact = (name: string, size: number): Artifact => ({
  name,
  mediaType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  size,
  sha256: 'b'.repeat(64),
  key: `out/t_abcdef123/${name}`,
  createdAt: '2025-03-01T09:10:00.000Z',
});

function finishedTask(overrides: Partial<Task> = {}): Task {
  return makeTask({
    state: 'succeeded',
    startedAt: '2025-03-01T09:03:00.000Z',
    finishedAt: '2025-03-01T09:05:30.000Z',
    resultSummary: 'Made sales.xlsx with four regions.',
    ...overrides,
  });
}

function pendingAction(overrides: Record<string, unknown> = {}) {
  return {
    id: 'a_paused1',
    toolUseId: 'tu_1',
    tool: 'write_file',
    input: { path: 'sales.csv', content: 'region,total\nnorth,1' },
    action: 'overwrite_input' as const,
    trust: 'watched' as const,
    reason: 'overwrites the input sales.csv',
    requestedAt: '2025-03-01T09:04:00.000Z',
    expiresAt: '2099-01-01T00:00:00.000Z',
    ...overrides,
  };
}

function briefView(overrides: Partial<BriefView> = {}): BriefView {
  return {
    kind: 'brief',
    taskId: 's_abc-1a2b3c',
    scheduleId: 's_abc',
    title: 'Weekly sales',
    date: 'Mon 3 Mar 2025, 09:00',
    state: 'posted',
    body: '# Sales\n\n- North: **up** 4%\n- South: see [the report](https://reports.example/q3)\n\nSome *notes*.',
    files: [
      {
        name: 'brief.md',
        mediaType: 'text/markdown',
        size: 900,
        url: 'https://handoff.example/files/b?sig=1',
        expiresAt: '2025-03-04T09:00:00.000Z',
      },
    ],
    owner: 'Ana',
    demo: false,
    ...overrides,
  };
}

function scheduleList(count = 2): ScheduleListView {
  return {
    kind: 'schedules',
    channel: '19:general@thread.tacv2',
    demo: false,
    items: Array.from({ length: count }, (_, i) => ({
      id: `s_sched${i}`,
      request: `Post the weekly sales summary ${i}`,
      owner: 'Ana',
      words: 'every Monday at 09:00',
      tz: 'Europe/Berlin',
      status: i % 2 === 0 ? ('active' as const) : ('paused' as const),
      ...(i % 2 === 1 ? { pausedReason: 'paused by Bo' } : { nextRun: 'Mon 10 Mar, 09:00' }),
      lastResult: 'posted Mon 3 Mar',
    })),
  };
}

/** One card per kind and state, all from real views. */
function everyCard(): Array<[string, AdaptiveCard]> {
  const plan = makePlan();
  const running = makeTask({ state: 'running', startedAt: '2025-03-01T09:03:00.000Z' });
  const progress = progressView(running, {
    type: 'progress',
    taskId: running.id,
    runId: 'r_1',
    steps: [
      { title: 'Read', status: 'done' },
      { title: 'Build', status: 'running' },
    ],
    activity: 'running python build.py',
    outputTail: 'line 1\nline 2',
    elapsedMs: 12_000,
    usage: { inputTokens: 100, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 0 },
    seq: 1,
  });
  const links = [
    {
      artifact: artifact('sales.xlsx', 20_480),
      url: 'https://handoff.example/files/abc?sig=1&exp=2',
      expiresAt: '2025-03-02T09:10:00.000Z',
    },
  ];
  const result = { ...resultView(finishedTask(), plan, links), schedulable: true };
  const decided = makeTask({
    state: 'queued',
    decision: { by: bo, at: '2025-03-01T09:02:00.000Z', outcome: 'approved', planVersion: 2, planHash: planHash(plan) },
  });
  return [
    ['status', renderCard(statusView(makeTask({ demo: true }), 'Planning…'))],
    ['status error', renderCard(statusView(makeTask(), 'Something broke', 'error'))],
    ['plan', renderCard(planView(makeTask(), plan, policy))],
    ['plan refresh', renderCard(planView(makeTask(), plan, policy), { refreshUserIds: ['29:bo'] })],
    ['plan decided', renderCard(planView(decided, plan, policy))],
    ['progress', renderCard(progress)],
    ['approval', renderCard(approvalView(running, pendingAction(), undefined))],
    ['question', renderCard(questionView(running, 'Which region?', { expiresAt: '2099-01-01T00:00:00.000Z' }))],
    ['result', renderCard(result)],
    ['brief', renderCard(briefView())],
    ['schedules', renderCard(scheduleList())],
    ['schedules empty', renderCard(scheduleList(0))],
  ];
}

type Node = Record<string, unknown>;

/** Every object in the card that has a `type`, inside ShowCards and the refresh block too. */
function typedNodes(node: unknown, out: Node[] = []): Node[] {
  if (Array.isArray(node)) for (const n of node) typedNodes(n, out);
  else if (node && typeof node === 'object') {
    const o = node as Node;
    if (typeof o.type === 'string') out.push(o);
    for (const v of Object.values(o)) typedNodes(v, out);
  }
  return out;
}

/** Every text Teams reads as markdown: TextBlocks and facts. */
function markdownTexts(card: unknown): string[] {
  const texts: string[] = [];
  for (const n of typedNodes(card)) {
    if (n.type === 'TextBlock') texts.push(n.text as string);
    if (n.type === 'FactSet')
      for (const f of n.facts as Array<{ title: string; value: string }>) texts.push(f.title, f.value);
  }
  return texts;
}

interface FoundExecute {
  title: string;
  verb: string;
  data: Record<string, unknown>;
  style?: string;
  /** Ids of the inputs of the ShowCard it sits in. */
  inputs: Array<{ id: string; isRequired?: boolean; maxLength?: number; isMultiline?: boolean }>;
}

/** The Action.Execute buttons a person can click (not the refresh), with the inputs next to them. */
function executes(node: unknown, inputs: FoundExecute['inputs'] = [], out: FoundExecute[] = []): FoundExecute[] {
  if (Array.isArray(node)) for (const n of node) executes(n, inputs, out);
  else if (node && typeof node === 'object') {
    const o = node as Node;
    if (o.type === 'Action.Execute') {
      out.push({
        title: o.title as string,
        verb: o.verb as string,
        data: o.data as Record<string, unknown>,
        ...(o.style ? { style: o.style as string } : {}),
        inputs,
      });
      return out;
    }
    if (o.type === 'Action.ShowCard') {
      const card = o.card as Node;
      const own = typedNodes(card.body).filter((n) => n.type === 'Input.Text') as unknown as FoundExecute['inputs'];
      executes(card, own, out);
      return out;
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'refresh') executes(v, inputs, out);
  }
  return out;
}

const verbsOf = (card: AdaptiveCard) => executes(card).map((e) => e.verb);
const json = (card: AdaptiveCard) => JSON.stringify(card);
const size = (card: AdaptiveCard) => new TextEncoder().encode(JSON.stringify(card)).length;

const allowedElements = new Set([
  'AdaptiveCard',
  'TextBlock',
  'RichTextBlock',
  'TextRun',
  'FactSet',
  'ColumnSet',
  'Column',
  'Container',
  'ActionSet',
  'Input.Text',
]);
const allowedActions = new Set(['Action.Execute', 'Action.ShowCard', 'Action.OpenUrl']);

function invoke(verb: string, data: Record<string, unknown>, trigger = 'manual') {
  return { action: { type: 'Action.Execute', verb, data }, trigger };
}

function refused(value: unknown): HandoffError {
  try {
    parseAction(value);
  } catch (err) {
    expect(err).toBeInstanceOf(HandoffError);
    expect((err as HandoffError).code).toBe(ErrorCodes.invalidInput);
    return err as HandoffError;
  }
  throw new Error(`accepted: ${JSON.stringify(value).slice(0, 200)}`);
}

describe('Adaptive Cards for Teams', () => {
  it('renders every view as a 1.5 card with only element and action types Teams supports', () => {
    expect(sameScheduleActions).toBe(true);
    const cards = everyCard();
    expect(cards.length).toBeGreaterThan(10);
    for (const [name, card] of cards) {
      expect(card.type, name).toBe('AdaptiveCard');
      expect(card.version, name).toBe('1.5');
      expect(card.$schema, name).toBe('http://adaptivecards.io/schemas/adaptive-card.json');
      expect(card.msteams, name).toEqual({ width: 'Full' });
      expect(card.body.length, name).toBeGreaterThan(0);
      for (const node of typedNodes(card)) {
        const type = node.type as string;
        if (type.startsWith('Action.')) expect(allowedActions, `${name}: ${type}`).toContain(type);
        else expect(allowedElements, `${name}: ${type}`).toContain(type);
        if (type === 'TextBlock') expect((node.text as string).length, name).toBeGreaterThan(0);
      }
      expect(json(card), name).not.toContain('Action.Submit');
      expect(size(card), name).toBeLessThan(cardLimits.maxCardBytes);
    }
    expect(cardAttachment(cards[0]![1])).toEqual({
      contentType: 'application/vnd.microsoft.card.adaptive',
      content: cards[0]![1],
    });
  });

  it('puts Approve, Deny and Request changes on an open plan, each bound to task, version and hash', () => {
    const plan = makePlan();
    const card = renderCard(planView(makeTask(), plan, policy));
    const found = executes(card);
    expect(found.map((e) => [e.title, e.verb, e.style])).toEqual([
      ['Approve', 'plan.approve', 'positive'],
      ['Deny', 'plan.deny', 'destructive'],
      ['Send', 'plan.changes', undefined],
    ]);
    for (const e of found) expect(e.data).toEqual({ taskId: 't_abcdef123', version: 2, hash: planHash(plan) });
    const changes = found[2]!.inputs;
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ id: 'changes', isMultiline: true, maxLength: 2000, isRequired: true });
    expect(changes[0]).toHaveProperty('errorMessage');
    const show = typedNodes(card).find((n) => n.type === 'Action.ShowCard')!;
    expect(show.title).toBe('Request changes');
    expect(card.refresh).toBeUndefined();

    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('**1. Read the CSV** · autonomous');
    expect(texts).toContain('**3. Replace the input** · 👀 watched');
    expect(texts).toContain('Watched steps pause for an approver');
    expect(texts).toContain('sales.xlsx');
    expect(texts).toContain('Budget: about 60,000 tokens ($0.30); cap $5.00, 15 min wall time');
    expect(texts).toContain('model claude-sonnet-5-5');
    expect(texts).not.toContain('Demo model');
  });

  it('shows the demo banner on cards of the demo model', () => {
    const plan = makePlan({ demo: true });
    const card = renderCard(planView(makeTask({ demo: true }), plan, policy));
    expect(markdownTexts(card).join('\n')).toContain('Demo model — scripted sample');
    expect(markdownTexts(card).join('\n')).toContain('no model cost (demo model)');
  });

  it('leaves Approve out while a step needs a forbidden action, and says why', () => {
    const plan = makePlan({ steps: [{ title: 'Pay the supplier', detail: '', actions: ['payments'] }] });
    const card = renderCard(planView(makeTask(), plan, policy));
    expect(verbsOf(card)).toEqual(['plan.deny', 'plan.changes']);
    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('This plan cannot be approved');
    expect(texts).toContain('step 1');
  });

  it('with refresh ids, gives everyone a card without buttons and each listed person their own', () => {
    const plan = makePlan();
    const view = planView(makeTask(), plan, policy);
    const ids = ['29:bo', '29:cy'];

    const base = renderCard(view, { refreshUserIds: ids, waitingFor: 'Bo or Cy' });
    // No decision: only the button that asks for the clicker's own version.
    expect(verbsOf(base)).toEqual(['refresh']);
    expect(executes(base)[0]!.data).toEqual({ kind: 'plan', taskId: 't_abcdef123', version: 2 });
    expect(markdownTexts(base).join('\n')).toContain('Waiting for approval by Bo or Cy');
    expect(base.refresh).toEqual({
      action: { type: 'Action.Execute', verb: 'refresh', data: { kind: 'plan', taskId: 't_abcdef123', version: 2 } },
      userIds: ids,
    });

    const approver = renderCard(view, {
      refreshUserIds: ids,
      viewer: { id: '29:bo', mayDecide: true, isRequester: false },
    });
    expect(verbsOf(approver)).toEqual(['plan.approve', 'plan.deny', 'plan.changes']);

    const requester = renderCard(view, { viewer: { id: '29:ana', mayDecide: false, isRequester: true } });
    expect(verbsOf(requester)).toEqual(['plan.deny', 'plan.changes']);
    expect(executes(requester)[0]!.data).toEqual({ taskId: 't_abcdef123', version: 2, hash: planHash(plan) });

    const bystander = renderCard(view, { viewer: { id: '29:eve', mayDecide: false, isRequester: false } });
    expect(verbsOf(bystander)).toEqual([]);
    expect(markdownTexts(bystander).join('\n')).toContain('Waiting for approval by an approver');

    // More people than Teams refreshes for: buttons for everyone, the bot refuses non-approvers.
    const crowd = renderCard(view, { refreshUserIds: Array.from({ length: 61 }, (_, i) => `29:u${i}`) });
    expect(verbsOf(crowd)).toEqual(['plan.approve', 'plan.deny', 'plan.changes']);
    expect(crowd.refresh).toBeUndefined();
  });

  it('has no buttons and no refresh once a plan is decided, superseded or expired, and says who and when', () => {
    const plan = makePlan();
    const decided = makeTask({
      state: 'queued',
      decision: {
        by: bo,
        at: '2025-03-01T09:02:00.000Z',
        outcome: 'approved',
        planVersion: 2,
        planHash: planHash(plan),
      },
    });
    const card = renderCard(planView(decided, plan, policy), {
      refreshUserIds: ['29:bo'],
      viewer: { id: '29:bo', mayDecide: true, isRequester: false },
    });
    expect(verbsOf(card)).toEqual([]);
    expect(card.refresh).toBeUndefined();
    expect(markdownTexts(card).join('\n')).toContain(
      '✅ Approved by Bo · {{DATE(2025-03-01T09:02:00Z, SHORT)}} {{TIME(2025-03-01T09:02:00Z)}}',
    );

    const superseded = renderCard(planView(makeTask({ planVersion: 3 }), plan, policy));
    expect(verbsOf(superseded)).toEqual([]);
    expect(markdownTexts(superseded).join('\n')).toContain('Superseded by a newer version');

    const expired = renderCard(planView(makeTask({ state: 'expired' }), plan, policy));
    expect(verbsOf(expired)).toEqual([]);
    expect(markdownTexts(expired).join('\n')).toContain('Expired: nobody approved in time');
  });

  it('shows votes, expiry, the revision asked for and its diff', () => {
    const v1 = makePlan({ version: 1 });
    const v2 = makePlan({
      version: 2,
      steps: [...v1.steps.slice(0, 2), { title: 'Add a chart', detail: 'Bar chart.', actions: ['create_files'] }],
      envelope: { ...v1.envelope, budget: { ...v1.envelope.budget, maxCostUsd: 8 } },
    });
    const asked = { version: 1, by: bo, text: 'also add a chart', at: '2025-03-01T09:03:00.000Z' };
    const task = makeTask({
      planVersion: 2,
      changeRequests: [asked],
      approvalExpiresAt: '2025-03-02T09:00:00.000Z',
      votes: [{ by: bo, at: '2025-03-01T09:04:00.000Z', planVersion: 2, planHash: planHash(v2) }],
    });
    const card = renderCard(planView(task, v2, { ...policy, quorum: 2 }, v1));
    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('**Revised after Bo asked:** “also add a chart”');
    expect(texts).toContain('**Changes since v1**');
    expect(texts).toContain('➕ **Add a chart**');
    expect(texts).toContain('➖ ~~Replace the input~~');
    expect(texts).toContain('budget: $5.00 → $8.00');
    expect(texts).toContain('Approvals: Bo (1 of 2)');
    expect(texts).toContain('expires {{DATE(2025-03-02T09:00:00Z, SHORT)}}');
  });

  it('shows a standing plan with its schedule and envelope', () => {
    const view = {
      ...planView(makeTask(), makePlan(), policy),
      schedule: {
        words: 'every weekday (Mon–Fri) at 08:30',
        tz: 'Europe/Berlin',
        tzSource: 'given in the request',
        nextRuns: ['Mon 3 Mar, 08:30', 'Tue 4 Mar, 08:30'],
        owner: 'Ana',
        target: '19:general@thread.tacv2',
        envelope: {
          tools: ['read_file', 'write_file'],
          connectors: [],
          deliverableTypes: ['md'],
          maxCostUsdPerRun: 0.5,
          maxWallTimeMin: 10,
          monthlyCapUsd: 20,
        },
        catchUp: 'latest' as const,
        replaces: 's_old',
      },
    };
    const texts = markdownTexts(renderCard(view)).join('\n');
    expect(texts).toContain('Scheduled brief: every weekday (Mon–Fri) at 08:30');
    expect(texts).toContain('Europe/Berlin (given in the request)');
    expect(texts).toContain('Mon 3 Mar, 08:30 · Tue 4 Mar, 08:30');
    expect(texts).toContain('read\\_file, write\\_file');
    expect(texts).toContain("up to $0.50 and 10 min per run; the channel's monthly cap is $20.00");
    expect(texts).toContain('replaces schedule s\\_old');
    expect(texts).toContain('latest missed run is made up');
    expect(messageText(view)).toBe(
      'Schedule (every weekday (Mon–Fri) at 08:30) — Plan v2 for Ana: Turn sales.csv into a formatted spreadsheet with totals per region.',
    );
  });

  it('escapes markdown that people or models wrote, so it cannot become links or formatting', () => {
    const evil = '[click](http://evil) **x** <at>CEO</at> {{DATE(2020-01-01T00:00:00Z)}}';
    const plan = makePlan({
      summary: `Summary ${evil}`,
      steps: [{ title: `Step ${evil}`, detail: `# heading\n- item ${evil}`, actions: ['read_files'] }],
    });
    const task = makeTask({ requester: { id: 'u_eve', name: `Eve ${evil}` } });
    const planCard = renderCard(planView(task, plan, policy));
    const result = renderCard(
      resultView(finishedTask({ resultSummary: `Done ${evil}` }), plan, [
        {
          artifact: artifact('[click](http://evil).xlsx', 10),
          url: 'https://handoff.example/f',
          expiresAt: '2025-03-02T09:10:00.000Z',
        },
      ]),
    );
    for (const card of [planCard, result]) {
      const texts = markdownTexts(card);
      const all = texts.join('\n');
      expect(all).toContain('\\[click\\](http://evil)');
      expect(all).toContain('\\*\\*x\\*\\*');
      expect(all).toContain('\\<at\\>CEO\\</at\\>');
      for (const t of texts) {
        expect(t).not.toMatch(/(^|[^\\])\[click/);
        expect(t).not.toMatch(/(^|[^\\])\*\*x/);
        expect(t).not.toMatch(/(^|[^\\])\{\{DATE\(2020/);
      }
    }
    // A heading or list marker at the start of a line stays text.
    expect(markdownTexts(planCard).join('\n')).toContain('\\# heading\n\n\\- item');
    expect(escapeCardMarkdown('1. one\n+ two\n_x_ ~y~ a|b & c')).toBe('1\\. one\n\\+ two\n\\_x\\_ \\~y\\~ a\\|b \\& c');
  });

  it('keeps the largest cards under the Teams size limit, counting what it leaves out', () => {
    const long = (n: number, c = 'x') => c.repeat(n);
    const plan = makePlan({
      summary: long(10_000, '*'),
      steps: Array.from({ length: 200 }, (_, i) => ({
        title: `Step ${i} ${long(300, '[')}`,
        detail: long(2000, '日'),
        actions: ['read_files' as const],
      })),
      deliverables: Array.from({ length: 100 }, (_, i) => ({
        name: `file-${i}-${long(100)}.xlsx`,
        type: 'xlsx' as const,
      })),
    });
    const ids = Array.from({ length: 60 }, (_, i) => `29:${long(90, String(i % 10))}`);
    const big = renderCard(planView(makeTask({ requester: { id: 'u', name: long(500) } }), plan, policy), {
      refreshUserIds: ids,
      notice: { text: long(5000), tone: 'error' },
    });
    expect(size(big)).toBeLessThan(28_000);
    expect(size(big)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    const texts = markdownTexts(big).join('\n');
    expect(texts).toMatch(/…and \d+ more steps/);
    expect(texts).toContain('**1. Step 0');
    expect(big.refresh).toMatchObject({ userIds: ids });

    const plain200 = renderCard(
      planView(
        makeTask(),
        makePlan({
          steps: Array.from({ length: 200 }, (_, i) => ({
            title: `Step ${i}`,
            detail: 'Check it.',
            actions: ['read_files' as const],
          })),
        }),
        policy,
      ),
    );
    expect(size(plain200)).toBeLessThan(28_000);
    expect(verbsOf(plain200)).toEqual(['plan.approve', 'plan.deny', 'plan.changes']);

    const files = Array.from({ length: 300 }, (_, i) => ({
      artifact: artifact(`f${i}-${long(100)}.csv`, 10),
      url: `https://handoff.example/files/${i}?sig=${long(200)}`,
      expiresAt: '2025-03-02T09:10:00.000Z',
    }));
    const result = renderCard({
      ...resultView(finishedTask({ resultSummary: long(50_000) }), plan, files),
      schedulable: true,
    });
    expect(size(result)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    expect(markdownTexts(result).join('\n')).toMatch(/…and \d+ more files/);
    expect(verbsOf(result)).toEqual(['task.schedule']);

    const brief = renderCard(
      briefView({
        body: Array.from({ length: 3000 }, (_, i) => `- item ${i} **bold** [l](https://x.example/${i})`).join('\n'),
        files: files.map(({ artifact: a, url, expiresAt }) => ({ ...a, url, expiresAt })),
      }),
    );
    expect(size(brief)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    expect(markdownTexts(brief).join('\n')).toContain('the brief is cut here to fit');

    const schedules = renderCard(scheduleList(200));
    expect(size(schedules)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    expect(markdownTexts(schedules).join('\n')).toMatch(/…and \d+ more schedules not shown/);

    const running = makeTask({ state: 'running' });
    const approval = renderCard(
      approvalView(
        running,
        pendingAction({ input: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, long(20_000)])) }),
        undefined,
      ),
    );
    expect(size(approval)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    expect(verbsOf(approval)).toEqual(['action.approve', 'action.deny']);

    const progress = renderCard(
      progressView(running, {
        type: 'progress',
        taskId: running.id,
        runId: 'r_1',
        steps: Array.from({ length: 500 }, (_, i) => ({ title: `Step ${i} ${long(200)}`, status: 'running' as const })),
        outputTail: `${long(50_000, '<')}\nTHE END`,
        elapsedMs: 1000,
        usage: { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 },
        seq: 1,
      }),
    );
    expect(size(progress)).toBeLessThanOrEqual(cardLimits.maxCardBytes);
    expect(json(progress)).toContain('THE END');
    expect(verbsOf(progress)).toEqual(['task.cancel']);
  });

  it('shows progress with step icons and usage, with Cancel only while the run is live', () => {
    const event = {
      type: 'progress' as const,
      taskId: 't_abcdef123',
      runId: 'r_1',
      steps: [
        { title: 'Read', status: 'done' as const },
        { title: 'Build', status: 'running' as const },
        { title: 'Check', status: 'pending' as const },
      ],
      elapsedMs: 65_000,
      usage: { inputTokens: 12_300, outputTokens: 2_100, cacheReadTokens: 0, cacheWriteTokens: 0 },
      seq: 2,
    };
    const live = renderCard(progressView(makeTask({ state: 'running' }), event));
    const texts = markdownTexts(live).join('\n');
    expect(texts).toContain('✅ 1. Read');
    expect(texts).toContain('⏳ 2. Build');
    expect(texts).toContain('⚪ 3. Check');
    expect(texts).toContain('1 min 5 s elapsed · 12,300 in · 2,100 out tokens');
    expect(executes(live)).toEqual([
      { title: 'Cancel', verb: 'task.cancel', data: { taskId: 't_abcdef123' }, style: 'destructive', inputs: [] },
    ]);
    const done = renderCard(progressView(makeTask({ state: 'succeeded' }), event));
    expect(verbsOf(done)).toEqual([]);
    expect(markdownTexts(done).join('\n')).toContain('Run finished');
  });

  it('shows a paused call with its trust level, Approve and Deny while open, the decision after', () => {
    const running = makeTask({ state: 'running' });
    const open = renderCard(approvalView(running, pendingAction(), undefined));
    const texts = markdownTexts(open).join('\n');
    expect(texts).toContain('**Approval needed** — overwrite input (👀 watched)');
    expect(texts).toContain('overwrites the input sales.csv');
    expect(texts).toContain('region,total\n\nnorth,1');
    expect(texts).toContain('Waits until {{DATE(2099-01-01T00:00:00Z, SHORT)}}');
    expect(executes(open).map((e) => [e.verb, e.style, e.data])).toEqual([
      ['action.approve', 'positive', { taskId: 't_abcdef123', approvalId: 'a_paused1' }],
      ['action.deny', 'destructive', { taskId: 't_abcdef123', approvalId: 'a_paused1' }],
    ]);
    const decided = renderCard(
      approvalView(running, pendingAction(), {
        approvalId: 'a_paused1',
        outcome: 'approved',
        by: bo,
        at: '2025-03-01T09:05:00.000Z',
      }),
    );
    expect(verbsOf(decided)).toEqual([]);
    expect(markdownTexts(decided).join('\n')).toContain('✅ Approved by Bo · {{DATE(2025-03-01T09:05:00Z, SHORT)}}');
  });

  it('asks a question to be answered in the thread, and says who answered', () => {
    const open = renderCard(questionView(makeTask(), 'Which **region**?', { expiresAt: '2099-01-01T00:00:00.000Z' }));
    const texts = markdownTexts(open).join('\n');
    expect(texts).toContain('Which \\*\\*region\\*\\*?');
    expect(texts).toContain('Reply in this thread to answer');
    expect(texts).toContain('{{DATE(2099-01-01T00:00:00Z, SHORT)}}');
    const answered = renderCard(questionView(makeTask(), 'Which region?', { answeredBy: 'Bo' }));
    expect(markdownTexts(answered).join('\n')).toContain('Answered by Bo.');
  });

  it('lists result files with name, type, size, link expiry and a download button; offers Schedule…', () => {
    const links = [
      {
        artifact: artifact('sales.xlsx', 20_480),
        url: 'https://handoff.example/files/abc?sig=1&exp=2',
        expiresAt: '2025-03-02T09:10:00.000Z',
      },
      { artifact: artifact('notes.md', 512), url: 'javascript:alert(1)', expiresAt: '2025-03-02T09:11:00.000Z' },
    ];
    const view = { ...resultView(finishedTask(), makePlan(), links), schedulable: true };
    const card = renderCard(view);
    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('✅ **Done**');
    expect(texts).toContain('Made sales.xlsx with four regions.');
    expect(texts).toContain('**sales.xlsx**');
    expect(texts).toContain('XLSX · 20.0 KB · link valid until {{DATE(2025-03-02T09:10:00Z, SHORT)}}');
    expect(texts).toContain('MD · 512 B · no link available');
    expect(texts).toContain('Took 2 min 30 s');
    const urls = typedNodes(card).filter((n) => n.type === 'Action.OpenUrl');
    expect(urls.map((u) => u.url)).toEqual(['https://handoff.example/files/abc?sig=1&exp=2']);
    const schedule = executes(card);
    expect(schedule).toHaveLength(1);
    expect(schedule[0]).toMatchObject({ verb: 'task.schedule', data: { taskId: 't_abcdef123' } });
    expect(schedule[0]!.inputs).toMatchObject([{ id: 'when', isRequired: true, maxLength: 300 }]);
    expect(json(card)).toContain('every weekday at 9:00');
    expect(typedNodes(card).find((n) => n.type === 'Action.ShowCard')?.title).toBe('Schedule…');

    // Not offered unless the view says so, nor on a failure.
    expect(verbsOf(renderCard(resultView(finishedTask(), makePlan(), links)))).toEqual([]);
    const failed = finishedTask({
      state: 'failed',
      failure: { code: 'handoff_deliverables_missing', message: 'the run ended without delivering any file.' },
    });
    const failedCard = renderCard({ ...resultView(failed, makePlan(), []), schedulable: true });
    expect(verbsOf(failedCard)).toEqual([]);
    expect(markdownTexts(failedCard).join('\n')).toContain('❌ **Failed**: the run ended without delivering any file.');
  });

  it('renders a brief: markdown kept safe, links only to http(s), files, owner and schedule', () => {
    const card = renderCard(
      briefView({
        body: '# Sales\n\n- North: **up** 4%\n- South: [report](https://reports.example/q3) [bad](javascript:alert(1))\n\n<b>x</b>',
        late: '2 h 10 min late',
        paused: 'it failed 3 times in a row',
      }),
    );
    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('**Sales**');
    expect(texts).toContain('- North: **up** 4%\n- South: [report](https://reports.example/q3) bad');
    expect(texts).toContain('\\<b\\>x\\</b\\>');
    expect(texts).toContain('2 h 10 min late');
    expect(texts).toContain('The schedule is paused');
    expect(texts).toContain('Scheduled brief of Ana · s\\_abc');
    expect(typedNodes(card).filter((n) => n.type === 'Action.OpenUrl')).toHaveLength(1);
    expect(messageText(briefView())).toBe('Weekly sales — Mon 3 Mar 2025, 09:00');
    const failed = renderCard(briefView({ state: 'failed', reason: 'the model failed', advice: 'Try Run now.' }));
    expect(markdownTexts(failed).join('\n')).toContain('**This brief failed:** the model failed');
  });

  it('lists schedules with the actions Schedules.act accepts, Delete and Edit behind a second step', () => {
    const card = renderCard(scheduleList(2));
    const found = executes(card);
    expect(found.map((e) => [e.title, e.data.scheduleId, e.data.action, e.style])).toEqual([
      ['Pause', 's_sched0', 'pause', undefined],
      ['Run now', 's_sched0', 'run_now', undefined],
      ['Save', 's_sched0', 'edit', undefined],
      ['Delete', 's_sched0', 'delete', 'destructive'],
      ['Resume', 's_sched1', 'resume', 'positive'],
      ['Run now', 's_sched1', 'run_now', undefined],
      ['Save', 's_sched1', 'edit', undefined],
      ['Delete', 's_sched1', 'delete', 'destructive'],
    ]);
    for (const e of found) {
      expect(e.verb).toBe('schedule.act');
      expect(Object.keys(e.data).sort()).toEqual(['action', 'scheduleId']);
      expect(scheduleCardActions).toContain(e.data.action);
    }
    // Input ids are unique within the card.
    const inputIds = typedNodes(card)
      .filter((n) => n.type === 'Input.Text')
      .map((n) => n.id);
    expect(new Set(inputIds).size).toBe(inputIds.length);
    const texts = markdownTexts(card).join('\n');
    expect(texts).toContain('every Monday at 09:00 (Europe/Berlin) · owner Ana');
    expect(texts).toContain('⏸️ Paused: paused by Bo');
    expect(texts).toContain('next run Mon 10 Mar, 09:00');
    expect(markdownTexts(renderCard(scheduleList(0))).join('\n')).toContain('No schedules here yet');
    expect(messageText(scheduleList(2))).toBe('2 schedules in this channel');
  });

  it('puts a notice on top, coloured by its tone, leaving the card as it was', () => {
    const view = planView(makeTask(), makePlan(), policy);
    const plain = renderCard(view);
    for (const [tone, color] of [
      ['error', 'Attention'],
      ['warning', 'Warning'],
      ['good', 'Good'],
    ] as const) {
      const card = renderCard(view, { notice: { text: 'you cannot approve your own request; ask Bo', tone } });
      expect(card.body[0]).toMatchObject({
        type: 'TextBlock',
        text: 'you cannot approve your own request; ask Bo',
        color,
        wrap: true,
      });
      expect(card.body.slice(1)).toEqual(plain.body);
      expect(card.actions).toEqual(plain.actions);
    }
  });

  it('gives a short plain text for notifications', () => {
    const plan = makePlan({ summary: 'Make\n\nthe   workbook' });
    expect(messageText(planView(makeTask(), plan, policy))).toBe('Plan v2 for Ana: Make the workbook');
    expect(messageText(statusView(makeTask(), 'Planning…'))).toBe('Planning…');
    expect(messageText(questionView(makeTask(), 'Which region?'))).toBe('Question: Which region?');
    const running = makeTask({ state: 'running' });
    expect(messageText(approvalView(running, pendingAction(), undefined))).toBe(
      'Approval needed: overwrite input (write_file)',
    );
    expect(messageText(resultView(finishedTask(), plan, []))).toBe('Done: Made sales.xlsx with four regions.');
    expect(messageText(statusView(makeTask(), 'x'.repeat(1000))).length).toBeLessThanOrEqual(300);
  });
});

describe('parseAction', () => {
  it('reads back every action a card carries, with the values typed into its inputs', () => {
    const typed: Record<string, string> = {
      changes: '  also add a chart  ',
      when: 'every Monday 9:00 Europe/Berlin',
    };
    const parsed: TeamsAction[] = [];
    const expected: unknown[] = [];
    for (const [, card] of everyCard()) {
      for (const e of executes(card)) {
        const inputs = Object.fromEntries(
          e.inputs.map((i) => [i.id, typed[i.id] ?? (i.id.startsWith('edit.when.') ? 'every day at 8:00' : 'new')]),
        );
        parsed.push(parseAction(invoke(e.verb, { ...e.data, ...inputs })));
        const extra: Record<string, string> = {};
        if (e.verb === 'plan.changes') extra.changes = 'also add a chart';
        if (e.verb === 'task.schedule') extra.when = 'every Monday 9:00 Europe/Berlin';
        if (e.verb === 'refresh') extra.trigger = 'manual';
        if (e.verb === 'schedule.act' && e.data.action === 'edit')
          Object.assign(extra, { when: 'every day at 8:00', text: 'new' });
        expected.push({ verb: e.verb, ...e.data, ...extra });
      }
      if (card.refresh) {
        const r = (card.refresh as { action: { verb: string; data: Record<string, unknown> } }).action;
        parsed.push(parseAction(invoke(r.verb, r.data, 'automatic')));
        expected.push({ verb: 'refresh', ...r.data, trigger: 'automatic' });
      }
    }
    expect(parsed).toEqual(expected);
    expect(new Set(parsed.map((p) => p.verb))).toEqual(
      new Set([
        'plan.approve',
        'plan.deny',
        'plan.changes',
        'refresh',
        'task.cancel',
        'action.approve',
        'action.deny',
        'task.schedule',
        'schedule.act',
      ]),
    );
    const actions = parsed.flatMap((p) => (p.verb === 'schedule.act' ? [p.action] : []));
    expect(new Set(actions)).toEqual(new Set(scheduleCardActions));
    // An edit with nothing typed, and inputs of another schedule, carry no values.
    expect(
      parseAction(
        invoke('schedule.act', { scheduleId: 's_1', action: 'edit', 'edit.when.s_2': 'daily', 'edit.request.s_1': '' }),
      ),
    ).toEqual({ verb: 'schedule.act', scheduleId: 's_1', action: 'edit', when: undefined, text: undefined });
  });

  it('refuses unknown verbs, forged shapes, missing fields and oversized text', () => {
    const hash = 'a'.repeat(64);
    const plan = { taskId: 't_abcdef123', version: 2, hash };
    expect(refused(invoke('plan.explode', plan)).message).toContain('unknown card action');
    refused(null);
    refused('plan.approve');
    refused({ action: { type: 'Action.Submit', verb: 'plan.approve', data: plan } });
    refused({ action: { type: 'Action.Execute', data: plan } });
    expect(refused(invoke('plan.approve', { taskId: 't_abcdef123', version: 2 })).message).toContain('hash');
    refused(invoke('plan.approve', { ...plan, hash: 'A'.repeat(64) }));
    refused(invoke('plan.approve', { ...plan, version: '2' }));
    refused(invoke('plan.approve', { ...plan, version: 0 }));
    refused(invoke('plan.approve', { ...plan, taskId: '../t_1' }));
    refused(invoke('plan.approve', { ...plan, taskId: 't'.repeat(101) }));
    refused(invoke('plan.changes', plan));
    refused(invoke('plan.changes', { ...plan, changes: '   ' }));
    refused(invoke('plan.changes', { ...plan, changes: 'x'.repeat(2001) }));
    expect(parseAction(invoke('plan.changes', { ...plan, changes: 'x'.repeat(2000) }))).toMatchObject({
      verb: 'plan.changes',
    });
    refused(invoke('refresh', { kind: 'result', taskId: 't_1', version: 1 }));
    refused(invoke('task.cancel', {}));
    refused(invoke('action.approve', { taskId: 't_1' }));
    refused(invoke('action.deny', { taskId: 't_1', approvalId: 'a b' }));
    refused(invoke('task.schedule', { taskId: 't_1' }));
    refused(invoke('task.schedule', { taskId: 't_1', when: 'x'.repeat(301) }));
    refused(invoke('schedule.act', { scheduleId: 's_1', action: 'explode' }));
    refused(invoke('schedule.act', { action: 'pause' }));
    refused(invoke('schedule.act', { scheduleId: 's_1', action: 'edit', 'edit.request.s_1': 'x'.repeat(3001) }));
  });

  it('keeps what the verb needs and drops whatever else the data carries', () => {
    expect(parseAction(invoke('task.cancel', { taskId: 't_1', verb: 'plan.approve', when: 'now', extra: 1 }))).toEqual({
      verb: 'task.cancel',
      taskId: 't_1',
    });
    expect(parseAction(invoke('schedule.act', { scheduleId: 's_1', action: 'pause', when: 'daily' }))).toEqual({
      verb: 'schedule.act',
      scheduleId: 's_1',
      action: 'pause',
      when: undefined,
      text: undefined,
    });
    expect(
      parseAction({
        action: { type: 'Action.Execute', verb: 'refresh', data: { kind: 'plan', taskId: 't_1', version: 3 } },
      }),
    ).toEqual({
      verb: 'refresh',
      kind: 'plan',
      taskId: 't_1',
      version: 3,
      trigger: 'manual',
    });
  });
});
