import { describe, expect, it } from 'vitest';
import { planDiff, planHash } from '../../../src/approvals/index.ts';
import { type Plan, PlanDraftSchema } from '../../../src/core/index.ts';
import { childJobOptions } from '../../../src/queue/index.ts';
import { childBudget } from '../../../src/runner/workstreams.ts';

const draft = {
  summary: 'One sheet per region.',
  steps: [{ title: 'Prepare', detail: '', actions: ['run_commands'] }],
  deliverables: [{ name: 'out.xlsx', type: 'xlsx' }],
};
const streams = ['north', 'south', 'east', 'west'].map((id) => ({ id, title: id, brief: `Do ${id}.` }));

function plan(extra: Partial<Plan> = {}): Plan {
  return {
    ...PlanDraftSchema.parse(draft),
    taskId: 't_1',
    version: 1,
    envelope: {
      tools: ['run_command'],
      egressDomains: [],
      mayOverwrite: [],
      mayDelete: [],
      deliverableTypes: ['xlsx'],
      budget: { maxTokens: 500_000, maxCostUsd: 5, maxWallTimeMs: 900_000 },
    },
    estimatedTokens: 0,
    estimatedCostUsd: 0,
    model: 'demo',
    demo: true,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...extra,
  };
}

describe('workstreams in the plan', () => {
  it('accepts 2–8 workstreams with unique ids, and nothing else', () => {
    expect(PlanDraftSchema.safeParse({ ...draft, workstreams: streams, onChildFailure: 'continue' }).success).toBe(
      true,
    );
    expect(PlanDraftSchema.safeParse({ ...draft, workstreams: streams.slice(0, 1) }).success).toBe(false);
    expect(
      PlanDraftSchema.safeParse({
        ...draft,
        workstreams: [
          ...streams,
          ...streams.map((s) => ({ ...s, id: `${s.id}2` })),
          { id: 'x9', title: 'x', brief: 'x' },
        ],
      }).success,
    ).toBe(false);
    expect(PlanDraftSchema.safeParse({ ...draft, workstreams: [streams[0], streams[0]] }).success).toBe(false);
    expect(
      PlanDraftSchema.safeParse({ ...draft, workstreams: [{ ...streams[0], id: '../x' }, streams[1]] }).success,
    ).toBe(false);
    expect(PlanDraftSchema.safeParse({ ...draft, onChildFailure: 'ignore' }).success).toBe(false);
  });

  it('is part of the hashed plan: approving it does not approve other workstreams or another rule', () => {
    const base = plan();
    const fanned = plan({ workstreams: streams });
    expect(planHash(fanned)).not.toBe(planHash(base));
    expect(planHash(plan({ workstreams: streams.slice(0, 3) }))).not.toBe(planHash(fanned));
    expect(planHash(plan({ workstreams: streams, onChildFailure: 'continue' }))).not.toBe(planHash(fanned));
    expect(planHash(plan({ workstreams: streams, merge: 'Merge them.' }))).not.toBe(planHash(fanned));
  });

  it('shows workstream changes in the diff of a revised plan', () => {
    const before = plan({ workstreams: streams, onChildFailure: 'retry', merge: 'Merge.' });
    const after = plan({
      version: 2,
      workstreams: [
        ...streams.slice(1, 3),
        { ...streams[3]!, brief: 'Do west twice.' },
        { id: 'emea', title: 'EMEA', brief: 'Do EMEA.' },
      ],
      onChildFailure: 'continue',
      merge: 'Merge them all.',
    });
    expect(planDiff(before, after).envelope).toEqual([
      'new workstream: emea',
      'workstream dropped: north',
      'workstream changed: west',
      'merge step changed',
      'if a workstream fails: retry → continue',
    ]);
    expect(
      planDiff(before, plan({ version: 2, workstreams: streams, onChildFailure: 'retry', merge: 'Merge.' })).envelope,
    ).toEqual([]);
  });

  it('gives each workstream a slice of the budget: 1/(n+1) of tokens and cost, wall time by waves + 1', () => {
    const p = plan({ workstreams: streams });
    expect(childBudget(p, 4)).toEqual({ maxTokens: 100_000, maxCostUsd: 1, maxWallTimeMs: 450_000 });
    expect(childBudget(p, 1)).toEqual({ maxTokens: 100_000, maxCostUsd: 1, maxWallTimeMs: 180_000 });
    expect(childBudget(p, 3).maxWallTimeMs).toBe(300_000);
  });

  it('maps the failure rule to BullMQ flow options', () => {
    expect(childJobOptions('fail')).toEqual({ attempts: 1, continueParentOnFailure: true });
    expect(childJobOptions('retry')).toEqual({ attempts: 2, continueParentOnFailure: true });
    expect(childJobOptions('continue')).toEqual({ attempts: 1, ignoreDependencyOnFailure: true });
  });
});
