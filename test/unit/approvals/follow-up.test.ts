import { describe, expect, it } from 'vitest';
import {
  checkPlanDecision,
  decisionPolicy,
  defaultPlanPolicy,
  envelopeWithin,
  followUpApproval,
  type PlanPolicy,
  parsePolicy,
  planHash,
  policyForChannel,
  tallyPlanDecision,
  toPlanPolicy,
} from '../../../src/approvals/index.ts';
import type { Plan } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const delivered = testPlan({ version: 1 });
const same = (overrides: Partial<Plan> = {}, envelope: Partial<Plan['envelope']> = {}) =>
  testPlan({ version: 2, summary: 'Same workbook, with a Q4 sheet.', ...overrides }, envelope);

const ana = { id: 'u_ana', name: 'Ana' };
const bo = { id: 'u_bo', name: 'Bo' };
const followUp = { fromVersion: 1, by: ana, text: 'add Q4', at: '2025-03-01T10:00:00.000Z' };
const task = testTask({ planVersion: 2, followUps: [followUp] });

const strict: PlanPolicy = { ...defaultPlanPolicy(false), approvers: ['u_bo'], quorum: 2 };
const lenient: PlanPolicy = { ...strict, followUps: { requesterMayApproveWithinEnvelope: true } };

describe('envelopeWithin', () => {
  it('finds a plan with the same or fewer rights and a smaller budget inside', () => {
    const smaller = same(
      { steps: [{ title: 'Add Q4', detail: '', actions: ['run_commands'] }] },
      {
        tools: ['read_file', 'run_command', 'deliver_artifact'],
        budget: { maxTokens: 100_000, maxCostUsd: 1, maxWallTimeMs: 600_000 },
      },
    );
    expect(envelopeWithin(same(), delivered)).toEqual({ within: true, beyond: [] });
    expect(envelopeWithin(smaller, delivered)).toEqual({ within: true, beyond: [] });
  });

  it.each([
    ['a new tool', same({}, { tools: [...delivered.envelope.tools, 'delete_file'] }), 'new tools: delete_file'],
    ['a new web domain', same({}, { egressDomains: ['example.com'] }), 'new web domains: example.com'],
    [
      'a new connector tool',
      same(
        {},
        {
          connectors: [
            {
              name: 'crm__read',
              connector: 'crm',
              tool: 'read',
              action: 'connector_read',
              trust: 'batched',
            },
          ],
        },
      ),
      'new connector tools: crm__read',
    ],
    [
      'a new action kind',
      same({ steps: [{ title: 'Post it', detail: '', actions: ['post_elsewhere'] }] }),
      'new action kinds: post_elsewhere',
    ],
    ['an overwrite right', same({}, { mayOverwrite: ['sales.csv'] }), 'new overwrite rights: sales.csv'],
    ['a delete right', same({}, { mayDelete: ['sales.csv'] }), 'new delete rights: sales.csv'],
    ['a new deliverable type', same({}, { deliverableTypes: ['xlsx', 'pdf'] }), 'new deliverable types: pdf'],
    ['web fetch', same({}, { webFetch: true }), 'web fetch'],
    [
      'a larger cost budget',
      same({}, { budget: { ...delivered.envelope.budget, maxCostUsd: 6 } }),
      'a larger cost budget',
    ],
    [
      'a larger token budget',
      same({}, { budget: { ...delivered.envelope.budget, maxTokens: 500_000 } }),
      'a larger token budget',
    ],
    [
      'a longer time budget',
      same({}, { budget: { ...delivered.envelope.budget, maxWallTimeMs: 1_000_000 } }),
      'a longer time budget',
    ],
  ])('finds a plan with %s outside', (_what, plan, reason) => {
    const result = envelopeWithin(plan, delivered);
    expect(result.within).toBe(false);
    expect(result.beyond).toEqual([reason]);
  });
});

describe('followUpApproval and decisionPolicy', () => {
  it('is nothing for a plan that answers no follow-up', () => {
    expect(followUpApproval(testTask({ planVersion: 2 }), same(), delivered, lenient)).toBeUndefined();
    expect(decisionPolicy(lenient, undefined, task, ana)).toBe(lenient);
  });

  it('lets the requester alone approve a follow-up inside the envelope when the policy says so', () => {
    const plan = same();
    const approval = followUpApproval(task, plan, delivered, lenient);
    expect(approval).toMatchObject({ followUp, requesterAlone: true, comparison: { within: true } });
    const policy = decisionPolicy(lenient, approval, task, ana);
    const click = { taskId: task.id, planVersion: 2, planHash: planHash(plan), by: ana, outcome: 'approved' as const };
    expect(() => checkPlanDecision(task, plan, click, policy)).not.toThrow();
    // One approval is enough although the channel's quorum is two.
    expect(tallyPlanDecision(task, click, policy, new Date()).outcome).toBe('approved');
    // Anyone else is under the channel's rules as they stand.
    expect(decisionPolicy(lenient, approval, task, bo)).toBe(lenient);
  });

  it('refuses the requester alone when the policy does not allow it', () => {
    const plan = same();
    const approval = followUpApproval(task, plan, delivered, strict);
    expect(approval?.requesterAlone).toBe(false);
    const policy = decisionPolicy(strict, approval, task, ana);
    const click = { taskId: task.id, planVersion: 2, planHash: planHash(plan), by: ana, outcome: 'approved' as const };
    expect(() => checkPlanDecision(task, plan, click, policy)).toThrow(/cannot approve your own request/);
  });

  it('refuses the requester alone for a follow-up outside the envelope', () => {
    const plan = same({}, { egressDomains: ['example.com'] });
    const approval = followUpApproval(task, plan, delivered, lenient);
    expect(approval).toMatchObject({ requesterAlone: false, comparison: { within: false } });
    const policy = decisionPolicy(lenient, approval, task, ana);
    const click = { taskId: task.id, planVersion: 2, planHash: planHash(plan), by: ana, outcome: 'approved' as const };
    expect(() => checkPlanDecision(task, plan, click, policy)).toThrow(/cannot approve your own request/);
  });

  it('compares only the version drafted from the follow-up with the plan that delivered', () => {
    // Without the delivered plan (expired, or another version) nobody approves alone.
    expect(followUpApproval(task, same(), undefined, lenient)?.requesterAlone).toBe(false);
    expect(followUpApproval(task, same(), testPlan({ version: 3 }), lenient)?.requesterAlone).toBe(false);
    // Version 3 revises the follow-up plan v2 after Request changes: approved as usual.
    const t3 = testTask({ planVersion: 3, followUps: [followUp] });
    expect(followUpApproval(t3, same({ version: 3 }), delivered, lenient)).toMatchObject({ requesterAlone: false });
  });
});

describe('the followUps policy key', () => {
  const file = `version: 1
channels:
  "*":
    followUps: { requesterMayApproveWithinEnvelope: true }
  "slack:C2":
    followUps: { requesterMayApproveWithinEnvelope: false }
`;

  it('is false by default and cascades from less specific rules', () => {
    const builtIn = parsePolicy('version: 1\n', 'p.yaml');
    expect(toPlanPolicy(policyForChannel(builtIn, 'slack:C1')).followUps).toEqual({
      requesterMayApproveWithinEnvelope: false,
    });
    const policy = parsePolicy(file, 'p.yaml');
    expect(toPlanPolicy(policyForChannel(policy, 'slack:C1')).followUps?.requesterMayApproveWithinEnvelope).toBe(true);
    expect(toPlanPolicy(policyForChannel(policy, 'slack:C2')).followUps?.requesterMayApproveWithinEnvelope).toBe(false);
  });

  it('refuses a value that is not true or false, and a misspelt key, naming it', () => {
    expect(() =>
      parsePolicy(
        'version: 1\nchannels:\n  "*":\n    followUps: { requesterMayApproveWithinEnvelope: yes please }\n',
        'p.yaml',
      ),
    ).toThrow(/channels\.\*\.followUps\.requesterMayApproveWithinEnvelope: must be true or false/);
    expect(() =>
      parsePolicy('version: 1\nchannels:\n  "*":\n    followUps: { requesterMayApprove: true }\n', 'p.yaml'),
    ).toThrow(/followUps\.requesterMayApprove: unknown key/);
  });
});
