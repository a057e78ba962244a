import { describe, expect, it } from 'vitest';
import {
  builtInPolicy,
  type EnvApprovers,
  type PolicyResolverInput,
  parsePolicy,
  planPolicyResolver,
} from '../../../src/approvals/index.ts';
import type { ConversationRef } from '../../../src/core/index.ts';

const web: ConversationRef = { surface: 'web', channel: 'general', thread: '-' };
const slack: ConversationRef = { surface: 'slack', channel: 'C1', thread: '1.2' };
const slackOther: ConversationRef = { surface: 'slack', channel: 'C2', thread: '3.4' };

const hour = 3_600_000;
const settingExpiryMs = 2 * hour;

function resolver(overrides: Partial<PolicyResolverInput> = {}) {
  return planPolicyResolver({
    doc: builtInPolicy(),
    hasPolicyFile: false,
    mode: 'bot',
    approvalExpiryMs: settingExpiryMs,
    ...overrides,
  });
}

/** A policy as if read from a file. */
function fromFile(yaml: string): Pick<PolicyResolverInput, 'doc' | 'hasPolicyFile'> {
  return { doc: parsePolicy(`version: 1\n${yaml}`, 'policy.yaml'), hasPolicyFile: true };
}

describe('planPolicyResolver: self-approval', () => {
  it('the deployment setting wins over the policy file and the dev exception', () => {
    const fileAllows = fromFile('defaults: { requesterMayApprove: true }\n');
    expect(resolver({ ...fileAllows, allowSelfApproval: false })(slack).allowSelfApproval).toBe(false);
    expect(resolver({ mode: 'dev', allowSelfApproval: false })(web).allowSelfApproval).toBe(false);
    expect(resolver({ mode: 'bot', allowSelfApproval: true })(slack).allowSelfApproval).toBe(true);
    expect(resolver({ ...fromFile(''), allowSelfApproval: true })(slack).allowSelfApproval).toBe(true);
  });

  it("with a policy file and no setting, the file's requesterMayApprove decides, per channel", () => {
    const file = fromFile('channels:\n  "slack:C1":\n    requesterMayApprove: true\n');
    const resolve = resolver({ ...file, mode: 'bot' });
    expect(resolve(slack).allowSelfApproval).toBe(true);
    expect(resolve(slackOther).allowSelfApproval).toBe(false);
  });

  it('a policy file turns the dev exception off: the console follows the file', () => {
    const resolve = resolver({ ...fromFile(''), mode: 'dev' });
    expect(resolve(web).allowSelfApproval).toBe(false);
  });

  it('handoff dev without a policy file lets one person approve their own plan in the console only', () => {
    const resolve = resolver({ mode: 'dev' });
    expect(resolve(web).allowSelfApproval).toBe(true);
    expect(resolve(slack).allowSelfApproval).toBe(false);
  });

  it('bot and runner modes never allow it without a setting or a policy that says so', () => {
    for (const mode of ['bot', 'runner'] as const) {
      const resolve = resolver({ mode });
      expect(resolve(web).allowSelfApproval).toBe(false);
      expect(resolve(slack).allowSelfApproval).toBe(false);
    }
  });
});

describe('planPolicyResolver: approval expiry', () => {
  it("comes from the deployment's setting when there is no policy file", () => {
    expect(resolver()(slack).approvalExpiryMs).toBe(settingExpiryMs);
    expect(resolver({ approvalExpiryMs: 5 * hour })(web).approvalExpiryMs).toBe(5 * hour);
  });

  it('comes from the policy file when there is one, the setting notwithstanding', () => {
    const file = fromFile('defaults: { approvalExpiry: 3h }\nchannels:\n  "slack:C1":\n    approvalExpiry: 30m\n');
    const resolve = resolver(file);
    expect(resolve(slack).approvalExpiryMs).toBe(30 * 60_000);
    expect(resolve(slackOther).approvalExpiryMs).toBe(3 * hour);
    // A file that says nothing about expiry keeps the built-in 24 h, not the setting.
    expect(resolver(fromFile(''))(slack).approvalExpiryMs).toBe(24 * hour);
  });
});

describe('planPolicyResolver: approvers from a surface setting', () => {
  const env = (map: Record<string, EnvApprovers>) => (c: ConversationRef) =>
    c.surface === 'slack' ? map[c.channel] : undefined;

  it('applies when the policy names no approvers for the channel', () => {
    const policy = resolver({ envApprovers: env({ C1: { users: ['U1', 'U2'], groups: [] } }) })(slack);
    expect(policy.approvers).toEqual(['U1', 'U2']);
    expect(policy.approverGroups).toBeUndefined();
  });

  it('carries groups, and groups alone leave an empty user list (only group members approve)', () => {
    const both = resolver({ envApprovers: env({ C1: { users: ['U1'], groups: ['S1'] } }) })(slack);
    expect(both.approvers).toEqual(['U1']);
    expect(both.approverGroups).toEqual(['S1']);
    const groupsOnly = resolver({ envApprovers: env({ C1: { users: [], groups: ['S1', 'S2'] } }) })(slack);
    expect(groupsOnly.approvers).toEqual([]);
    expect(groupsOnly.approverGroups).toEqual(['S1', 'S2']);
  });

  it('is not consulted where the policy names approvers, even only groups', () => {
    const asked: ConversationRef[] = [];
    const envApprovers = (c: ConversationRef): EnvApprovers => {
      asked.push(c);
      return { users: ['UENV'], groups: ['SENV'] };
    };
    const file = fromFile(
      'channels:\n  "slack:C1":\n    approvers: { users: [UPOL] }\n  "slack:C2":\n    approvers: { groups: [SPOL] }\n',
    );
    const resolve = resolver({ ...file, envApprovers });
    expect(resolve(slack)).toMatchObject({ approvers: ['UPOL'] });
    expect(resolve(slack).approverGroups).toBeUndefined();
    expect(resolve(slackOther)).toMatchObject({ approvers: [], approverGroups: ['SPOL'] });
    expect(asked).toEqual([]);
  });

  it('answers for any surface through the hook, and anyone may approve where it names none', () => {
    const envApprovers = (c: ConversationRef): EnvApprovers | undefined =>
      c.surface === 'teams' ? { users: ['aad-1'], groups: [] } : undefined;
    const resolve = resolver({ envApprovers });
    expect(resolve({ surface: 'teams', channel: '19:abc', thread: '1' }).approvers).toEqual(['aad-1']);
    expect(resolve(slack).approvers).toBeUndefined();
    expect(resolve(web).approvers).toBeUndefined();
    expect(resolver()(slack).approvers).toBeUndefined();
  });
});
