import { describe, expect, it } from 'vitest';
import {
  type ApprovalClick,
  checkDecider,
  checkPlanDecision,
  defaultPlanPolicy,
  defaultTrustLevels,
  type PlanPolicy,
  planBlockers,
  planHash,
  tallyPlanDecision,
} from '../../../src/approvals/index.ts';
import { type ActionKind, ActionKindSchema, HandoffError, type Plan, type Task } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const ana = { id: 'u_ana', name: 'Ana' };
const bo = { id: 'u_bo', name: 'Bo' };

function makePlan(overrides: Partial<Plan> = {}): Plan {
  return testPlan(overrides);
}

function makeTask(overrides: Partial<Task> = {}): Task {
  return testTask({ requester: ana, ...overrides });
}

function clickOn(plan: Plan, overrides: Partial<ApprovalClick> = {}): ApprovalClick {
  return {
    taskId: plan.taskId,
    planVersion: plan.version,
    planHash: planHash(plan),
    by: bo,
    outcome: 'approved',
    ...overrides,
  };
}

function refusal(fn: () => void): HandoffError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandoffError) return err;
    throw err;
  }
  throw new Error('expected a HandoffError, but nothing was thrown');
}

/** Rebuilds an object with its keys in reverse order, all the way down. */
function reverseKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reverseKeys) as T;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .reverse()
      .map(([k, v]) => [k, reverseKeys(v)]),
  ) as T;
}

describe('planHash', () => {
  it('is a sha256 hex digest that does not depend on key order', () => {
    const plan = makePlan();
    const shuffled = reverseKeys(plan);
    expect(JSON.stringify(shuffled)).not.toBe(JSON.stringify(plan));
    expect(planHash(plan)).toMatch(/^[0-9a-f]{64}$/);
    expect(planHash(shuffled)).toBe(planHash(plan));
  });

  it('changes when the version changes', () => {
    expect(planHash(makePlan({ version: 3 }))).not.toBe(planHash(makePlan()));
  });

  it('changes when a step changes', () => {
    const plan = makePlan();
    const edited = makePlan({
      steps: [plan.steps[0]!, { ...plan.steps[1]!, actions: ['run_commands', 'create_files', 'delete_file'] }],
    });
    const retitled = makePlan({ steps: [{ ...plan.steps[0]!, title: 'Read every CSV' }, plan.steps[1]!] });
    expect(planHash(edited)).not.toBe(planHash(plan));
    expect(planHash(retitled)).not.toBe(planHash(plan));
  });

  it('changes when the envelope budget widens', () => {
    const plan = makePlan();
    const wider = makePlan({ envelope: { ...plan.envelope, budget: { ...plan.envelope.budget, maxCostUsd: 50 } } });
    expect(planHash(wider)).not.toBe(planHash(plan));
  });
});

describe('checkPlanDecision', () => {
  const policy = defaultPlanPolicy(false);

  it('accepts an approval by someone else on the current card', () => {
    const plan = makePlan();
    expect(() => checkPlanDecision(makeTask(), plan, clickOn(plan), policy)).not.toThrow();
  });

  it('refuses a click on a plan that was already approved, naming who approved it', () => {
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
    const err = refusal(() => checkPlanDecision(task, plan, clickOn(plan, { by: { id: 'u_cy', name: 'Cy' } }), policy));
    expect(err.code).toBe('handoff_stale_approval');
    expect(err.message).toContain('already approved');
    expect(err.message).toContain('Bo');
  });

  it('refuses a click when the task is not awaiting approval', () => {
    const plan = makePlan();
    const err = refusal(() => checkPlanDecision(makeTask({ state: 'planning' }), plan, clickOn(plan), policy));
    expect(err.code).toBe('handoff_stale_approval');
    expect(err.message).toContain('planning');
  });

  it('refuses a click on an older plan version', () => {
    const old = makePlan({ version: 1 });
    const current = makePlan({ version: 2 });
    const err = refusal(() => checkPlanDecision(makeTask(), current, clickOn(old), policy));
    expect(err.code).toBe('handoff_stale_approval');
    expect(err.message).toMatch(/outdated plan version/);
  });

  it('refuses a click carrying a forged hash', () => {
    const plan = makePlan();
    const err = refusal(() => checkPlanDecision(makeTask(), plan, clickOn(plan, { planHash: 'f'.repeat(64) }), policy));
    expect(err.code).toBe('handoff_stale_approval');
    expect(err.message).toMatch(/does not match the current plan/);
  });

  it('refuses a hash made for a wider envelope than the stored plan', () => {
    const plan = makePlan();
    const wider = makePlan({ envelope: { ...plan.envelope, egressDomains: ['example.com'] } });
    const err = refusal(() => checkPlanDecision(makeTask(), plan, clickOn(wider), policy));
    expect(err.code).toBe('handoff_stale_approval');
  });

  it('refuses self-approval unless policy allows it', () => {
    const plan = makePlan();
    const self = clickOn(plan, { by: ana });
    const err = refusal(() => checkPlanDecision(makeTask(), plan, self, defaultPlanPolicy(false)));
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toMatch(/your own request/);
    expect(() => checkPlanDecision(makeTask(), plan, self, defaultPlanPolicy(true))).not.toThrow();
  });

  it('lets the requester deny their own plan', () => {
    const plan = makePlan();
    expect(() =>
      checkPlanDecision(makeTask(), plan, clickOn(plan, { by: ana, outcome: 'denied' }), defaultPlanPolicy(false)),
    ).not.toThrow();
  });

  it('refuses someone outside the approvers list, and accepts someone on it', () => {
    const plan = makePlan();
    const restricted: PlanPolicy = { ...defaultPlanPolicy(false), approvers: ['u_dee'] };
    const err = refusal(() => checkPlanDecision(makeTask(), plan, clickOn(plan), restricted));
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toMatch(/not an approver/);
    const dee = clickOn(plan, { by: { id: 'u_dee', name: 'Dee' } });
    expect(() => checkPlanDecision(makeTask(), plan, dee, restricted)).not.toThrow();
  });

  it('refuses to approve a plan with a forbidden action, naming the step', () => {
    const plan = makePlan({
      steps: [
        { title: 'Read the invoices', detail: '', actions: ['read_files'] },
        { title: 'Pay the supplier', detail: '', actions: ['payments'] },
      ],
    });
    const err = refusal(() => checkPlanDecision(makeTask(), plan, clickOn(plan), policy));
    expect(err.code).toBe('handoff_plan_not_approvable');
    expect(err.message).toContain('Pay the supplier');
    expect(err.message).toContain('payments');
    const blockers = planBlockers(plan, policy);
    expect(blockers).toHaveLength(1);
    expect(blockers[0]).toContain('step 2');
    expect(blockers[0]).toContain('Pay the supplier');
    expect(planBlockers(makePlan(), policy)).toEqual([]);
  });
});

describe('checkDecider: who may decide a plan, a paused step, or cancel', () => {
  const task = makeTask();
  const dee = { id: 'u_dee', name: 'Dee' };
  const open = defaultPlanPolicy(false);
  const restricted: PlanPolicy = { ...open, approvers: ['u_dee'], approverGroups: ['S_FIN'] };

  it('refuses the requester approving their own plan, in the plan wording', () => {
    const err = refusal(() => checkDecider(task, ana, 'approved', open, {}, 'plan'));
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toBe('you cannot approve your own request; ask someone else in this conversation');
  });

  it('refuses the requester approving a step of their own request, in the step wording', () => {
    const err = refusal(() => checkDecider(task, ana, 'approved', restricted, {}, 'step'));
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toBe('you cannot approve a step of your own request; ask u_dee or a member of S_FIN');
  });

  it('lets the requester approve their own when policy allows self-approval, if they may approve there', () => {
    expect(() => checkDecider(task, ana, 'approved', defaultPlanPolicy(true))).not.toThrow();
    const err = refusal(() => checkDecider(task, ana, 'approved', { ...restricted, allowSelfApproval: true }));
    expect(err.message).toBe('you are not an approver here; ask u_dee or a member of S_FIN');
  });

  it('always lets the requester deny or cancel their own, even where they are no approver', () => {
    for (const subject of ['plan', 'step'] as const) {
      expect(() => checkDecider(task, ana, 'denied', restricted, {}, subject)).not.toThrow();
    }
    expect(() => checkDecider(task, ana, 'cancel', restricted)).not.toThrow();
  });

  it('refuses someone who is not an approver, naming whom to ask', () => {
    for (const act of ['approved', 'denied'] as const) {
      for (const subject of ['plan', 'step'] as const) {
        const err = refusal(() => checkDecider(task, bo, act, restricted, {}, subject));
        expect(err.code).toBe('handoff_not_approver');
        expect(err.message).toBe('you are not an approver here; ask u_dee or a member of S_FIN');
      }
    }
  });

  it('refuses a cancel by someone else in the cancel wording, with the surface naming the approvers', () => {
    const err = refusal(() => checkDecider(task, bo, 'cancel', restricted, { ask: '<@u_dee>' }));
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toBe('only the requester or an approver can cancel this task; ask <@u_dee>');
  });

  it('accepts a listed approver, a member of a listed group, and anyone where no approvers are named', () => {
    for (const act of ['approved', 'denied', 'cancel'] as const) {
      expect(() => checkDecider(task, dee, act, restricted)).not.toThrow();
      expect(() => checkDecider(task, bo, act, restricted, { inApproverGroup: true })).not.toThrow();
      expect(() => checkDecider(task, bo, act, open)).not.toThrow();
    }
  });

  it('is the rule checkPlanDecision applies to plan cards', () => {
    const plan = makePlan();
    const err = refusal(() =>
      checkPlanDecision(makeTask(), plan, clickOn(plan), restricted, Date.now(), { ask: 'Dee' }),
    );
    expect(err.message).toBe('you are not an approver here; ask Dee');
    const self = refusal(() => checkPlanDecision(makeTask(), plan, clickOn(plan, { by: ana }), restricted));
    expect(self.message).toBe('you cannot approve your own request; ask u_dee or a member of S_FIN');
  });
});

describe('default trust table (DESIGN §6)', () => {
  const expected: Record<ActionKind, string> = {
    read_files: 'autonomous',
    create_files: 'batched',
    overwrite_input: 'watched',
    delete_file: 'watched',
    run_commands: 'batched',
    network_egress: 'watched',
    connector_read: 'batched',
    connector_write: 'watched',
    post_elsewhere: 'watched',
    payments: 'forbidden',
    billing: 'forbidden',
    hr_payroll_write: 'forbidden',
    credential_change: 'forbidden',
  };

  it('covers every action kind', () => {
    expect(Object.keys(expected).sort()).toEqual([...ActionKindSchema.options].sort());
  });

  it.each(Object.entries(expected))('%s is %s', (action, level) => {
    expect(defaultTrustLevels[action as ActionKind]).toBe(level);
    expect(defaultPlanPolicy(false).trustLevels[action as ActionKind]).toBe(level);
  });
});

describe('quorum and expiry', () => {
  const cy = { id: 'u_cy', name: 'Cy' };
  const quorum2 = { ...defaultPlanPolicy(false), quorum: 2 };
  const at = new Date('2025-03-01T09:05:00.000Z');

  it('needs two distinct approvers; the same person clicking twice counts once', () => {
    const plan = makePlan();
    const first = tallyPlanDecision(makeTask(), clickOn(plan, { by: bo }), quorum2, at);
    expect(first.outcome).toBe('pending');
    expect(first.remaining).toBe(1);
    expect(first.task.state).toBe('awaiting_approval');

    expect(() => checkPlanDecision(first.task, plan, clickOn(plan, { by: bo }), quorum2)).toThrow(/already approved/);

    checkPlanDecision(first.task, plan, clickOn(plan, { by: cy }), quorum2);
    const second = tallyPlanDecision(first.task, clickOn(plan, { by: cy }), quorum2, at);
    expect(second.outcome).toBe('approved');
    expect(second.task.state).toBe('queued');
    expect(second.task.votes.map((v) => v.by.name)).toEqual(['Bo', 'Cy']);
    expect(second.task.decision).toMatchObject({ outcome: 'approved', by: cy });
  });

  it('a deny by an approver denies at once, even after an approval', () => {
    const plan = makePlan();
    const first = tallyPlanDecision(makeTask(), clickOn(plan, { by: bo }), quorum2, at);
    const denied = tallyPlanDecision(first.task, clickOn(plan, { by: cy, outcome: 'denied' }), quorum2, at);
    expect(denied.outcome).toBe('denied');
    expect(denied.task.state).toBe('denied');
  });

  it('refuses a click after the approval request expired (fake clock)', () => {
    const plan = makePlan();
    const task = makeTask({ approvalExpiresAt: '2025-03-02T09:00:00.000Z' });
    expect(() =>
      checkPlanDecision(task, plan, clickOn(plan), defaultPlanPolicy(false), Date.parse('2025-03-02T08:59:59.000Z')),
    ).not.toThrow();
    expect(() =>
      checkPlanDecision(task, plan, clickOn(plan), defaultPlanPolicy(false), Date.parse('2025-03-02T09:00:00.000Z')),
    ).toThrow(/expired/);
    expect(() =>
      checkPlanDecision(makeTask({ state: 'expired' }), plan, clickOn(plan), defaultPlanPolicy(false)),
    ).toThrow(/expired/);
  });
});
