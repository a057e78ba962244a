import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ApprovalClick,
  checkPlanDecision,
  defaultPlanPolicy,
  describeApprovers,
  isApprover,
  loadPolicy,
  type PlanPolicy,
  planHash,
  policyExplain,
  policyForChannel,
  toPlanPolicy,
} from '../../../src/approvals/index.ts';
import { HandoffError, type Plan, type Task } from '../../../src/core/index.ts';

const ana = { id: 'UANA', name: 'Ana' }; // requester
const ben = { id: 'UBEN', name: 'Ben' }; // listed by id
const cleo = { id: 'UCLEO', name: 'Cleo' }; // member of SFIN (resolved by the caller)
const dan = { id: 'UDAN', name: 'Dan' }; // neither

const plan: Plan = {
  taskId: 't_groups01',
  version: 1,
  summary: 'Summarise the invoices.',
  steps: [{ title: 'Build the sheet', detail: '', actions: ['run_commands', 'create_files'] }],
  deliverables: [{ name: 'invoices.xlsx', type: 'xlsx' }],
  envelope: {
    tools: ['run_command', 'write_file', 'deliver_artifact'],
    egressDomains: [],
    mayOverwrite: [],
    mayDelete: [],
    deliverableTypes: ['xlsx'],
    budget: { maxTokens: 400_000, maxCostUsd: 5, maxWallTimeMs: 900_000 },
  },
  estimatedTokens: 10_000,
  estimatedCostUsd: 0.1,
  model: 'demo',
  demo: true,
  createdAt: '2025-03-01T09:01:00.000Z',
};

const task: Task = {
  id: 't_groups01',
  createdAt: '2025-03-01T09:00:00.000Z',
  updatedAt: '2025-03-01T09:01:00.000Z',
  conversation: { surface: 'slack', channel: 'C9', thread: '1.2' },
  requester: ana,
  request: 'Summarise the invoices',
  inputs: [],
  state: 'awaiting_approval',
  planVersion: 1,
  artifacts: [],
  votes: [],
  changeRequests: [],
  usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 },
  costUsd: 0,
  demo: true,
};

const click = (by: ApprovalClick['by'], outcome: ApprovalClick['outcome'] = 'approved'): ApprovalClick => ({
  taskId: task.id,
  planVersion: 1,
  planHash: planHash(plan),
  by,
  outcome,
});

function refusal(fn: () => void): HandoffError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandoffError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

const groupsOnly: PlanPolicy = { ...defaultPlanPolicy(false), approvers: [], approverGroups: ['SFIN'] };
const usersAndGroups: PlanPolicy = { ...defaultPlanPolicy(false), approvers: ['UBEN'], approverGroups: ['SFIN'] };

describe('isApprover (pure: group membership comes resolved)', () => {
  it('lets anyone approve when no approvers are set', () => {
    expect(isApprover(defaultPlanPolicy(false), dan.id)).toBe(true);
  });

  it('accepts a listed user, or a group member when groups are listed; refuses everyone else', () => {
    expect(isApprover(usersAndGroups, ben.id)).toBe(true);
    expect(isApprover(usersAndGroups, cleo.id, true)).toBe(true);
    expect(isApprover(usersAndGroups, dan.id, false)).toBe(false);
    expect(isApprover(groupsOnly, cleo.id, true)).toBe(true);
    expect(isApprover(groupsOnly, ben.id)).toBe(false);
  });

  it('ignores a "member of a group" answer when the policy lists no groups', () => {
    const usersOnly: PlanPolicy = { ...defaultPlanPolicy(false), approvers: ['UBEN'] };
    expect(isApprover(usersOnly, cleo.id, true)).toBe(false);
  });
});

describe('checkPlanDecision with approver groups', () => {
  it('accepts a member of a listed group and refuses a non-member, naming who to ask', () => {
    expect(() =>
      checkPlanDecision(task, plan, click(cleo), groupsOnly, Date.now(), { inApproverGroup: true }),
    ).not.toThrow();
    const err = refusal(() =>
      checkPlanDecision(task, plan, click(dan), groupsOnly, Date.now(), { inApproverGroup: false }),
    );
    expect(err.code).toBe('handoff_not_approver');
    expect(err.message).toBe('you are not an approver here; ask a member of SFIN');
    // Without a lookup, group members are not approvers (fail closed).
    expect(() => checkPlanDecision(task, plan, click(cleo), groupsOnly)).toThrow(/not an approver here/);
  });

  it('uses the wording the surface gives for who to ask', () => {
    const err = refusal(() =>
      checkPlanDecision(task, plan, click(dan), usersAndGroups, Date.now(), {
        inApproverGroup: false,
        ask: '<@UBEN>, <!subteam^SFIN>',
      }),
    );
    expect(err.message).toBe('you are not an approver here; ask <@UBEN>, <!subteam^SFIN>');
  });

  it('still refuses self-approval to a requester who is in an approver group', () => {
    const err = refusal(() =>
      checkPlanDecision(task, plan, click(ana), groupsOnly, Date.now(), { inApproverGroup: true }),
    );
    expect(err.message).toMatch(/your own request/);
    // Also when they are no approver at all: the reason that matters is named.
    expect(() => checkPlanDecision(task, plan, click(ana), usersAndGroups)).toThrow(
      'you cannot approve your own request; ask UBEN or a member of SFIN',
    );
  });

  it('lets the requester deny their own plan even when they are not an approver', () => {
    expect(() => checkPlanDecision(task, plan, click(ana, 'denied'), groupsOnly)).not.toThrow();
    expect(() => checkPlanDecision(task, plan, click(dan, 'denied'), groupsOnly)).toThrow(/not an approver/);
  });

  it('names the approvers in plain ids by default', () => {
    expect(describeApprovers(usersAndGroups)).toBe('UBEN or a member of SFIN');
    expect(describeApprovers({ ...defaultPlanPolicy(false), approvers: ['U1', 'U2', 'U3'] })).toBe('U1, U2 or U3');
    expect(describeApprovers(defaultPlanPolicy(false))).toBe('someone else in this conversation');
  });
});

describe('approver groups from the policy file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-groups-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    'version: 1\nchannels:\n  "slack:C9":\n    approvers: { groups: [SFIN] }\n  "web:*":\n    approvers: { users: ["web:bo"], groups: [admins] }\n',
  );
  const policy = loadPolicy(file);

  it('toPlanPolicy carries the groups beside the users', () => {
    const slack = toPlanPolicy(policyForChannel(policy, 'slack:C9'));
    expect(slack.approvers).toEqual([]);
    expect(slack.approverGroups).toEqual(['SFIN']);
    const other = toPlanPolicy(policyForChannel(policy, 'slack:C1'));
    expect(other.approvers).toBeUndefined();
    expect(other.approverGroups).toBeUndefined();
  });

  it('explain says whether groups are looked up on the channel’s surface', () => {
    expect(policyExplain(policy, { channel: 'slack:C9' })).toContain(
      'approvers: groups SFIN (members looked up in Slack)',
    );
    expect(policyExplain(policy, { channel: 'web:general' })).toContain(
      'approvers: users web:bo; groups admins (web has no groups: they approve nobody here)',
    );
  });
});
