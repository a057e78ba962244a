import { describe, expect, it } from 'vitest';
import { defaultPlanPolicy } from '../../../src/approvals/index.ts';
import { renderBlocks } from '../../../src/bot/surfaces/slack/block-kit.ts';
import { stepChunks } from '../../../src/bot/surfaces/slack/progress-stream.ts';
import { renderCard } from '../../../src/bot/surfaces/teams/adaptive-cards.ts';
import { renderHtml } from '../../../src/bot/surfaces/web/render-html.ts';
import { planView, progressView } from '../../../src/bot/views.ts';
import type { ProgressEvent, WorkstreamProgress } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const workstreams = [
  { id: 'north', title: 'North', brief: 'Extract the <North> rows.' },
  { id: 'south', title: 'South', brief: 'Extract the South rows.' },
];
const plan = testPlan({ workstreams, merge: 'One sheet per region.', onChildFailure: 'continue' });
const task = testTask({ state: 'running', planVersion: plan.version });
const states: WorkstreamProgress[] = [
  { id: 'north', title: 'North', state: 'done' },
  { id: 'south', title: 'South', state: 'running' },
];
const event: ProgressEvent = {
  type: 'progress',
  taskId: task.id,
  runId: 'r_1',
  steps: plan.steps.map((s) => ({ title: s.title, status: 'pending' })),
  elapsedMs: 1000,
  usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 },
  seq: 1,
  workstreams: states,
};

describe('workstreams on every surface', () => {
  const card = planView(task, plan, defaultPlanPolicy(false));
  const progress = progressView(task, event);

  it('the plan card lists the workstreams, the merge and the failure rule', () => {
    const html = renderHtml(card);
    expect(html).toContain('Runs as 2 parallel workstreams, each in its own sandbox');
    expect(html).toContain('North (north): Extract the &lt;North&gt; rows.');
    expect(html).toContain('Then the merge: One sheet per region.');
    expect(html).toContain('the merge goes on without it');
    const slack = JSON.stringify(renderBlocks(card).blocks);
    expect(slack).toContain('Runs as 2 parallel workstreams');
    expect(slack).toContain('South (south): Extract the South rows.');
    const teams = JSON.stringify(renderCard(card));
    expect(teams).toContain('Runs as 2 parallel workstreams');
    expect(teams).toContain('North (north)');
  });

  it('the progress card shows where each workstream is', () => {
    expect(renderHtml(progress)).toContain('<li class="status-running">South: running</li>');
    const slack = JSON.stringify(renderBlocks(progress).blocks);
    expect(slack).toContain('North: done');
    expect(slack).toContain('South: running');
    const teams = JSON.stringify(renderCard(progress));
    expect(teams).toContain('North: done');
    expect(teams).toContain('South: running');
  });

  it("Slack's native progress shows each workstream as a task after the steps", () => {
    const { chunks } = stepChunks(progress, [], undefined, false);
    const ws = chunks.filter((c) => c.id.startsWith('ws-'));
    expect(ws.map((c) => [c.id, c.title, c.status])).toEqual([
      ['ws-north', 'Workstream: North', 'complete'],
      ['ws-south', 'Workstream: South', 'in_progress'],
    ]);
    // Later appends send only what changed, under the same ids.
    const { statuses } = stepChunks(progress, [], undefined, false);
    const next = progressView(task, { ...event, workstreams: [states[0]!, { ...states[1]!, state: 'failed' }] });
    const later = stepChunks(next, statuses, undefined, false).chunks;
    expect(later.map((c) => [c.id, c.status])).toEqual([['ws-south', 'error']]);
  });

  it('a plan without workstreams shows none', () => {
    const plain = planView(task, testPlan(), defaultPlanPolicy(false));
    expect(plain.workstreams).toBeUndefined();
    expect(renderHtml(plain)).not.toContain('workstreams');
  });
});
