import { describe, expect, it } from 'vitest';
import {
  channelPatternAdmitted,
  grantOfferFor,
  grantsForClick,
  type PolicyError,
  parsePolicy,
  policyExplain,
  policyForChannel,
  standingGrantRule,
  toPlanPolicy,
} from '../../../src/approvals/index.ts';
import { newTask, type PendingAction } from '../../../src/core/index.ts';

const policyFile = [
  'version: 1',
  'channels:',
  '  "slack:*":',
  '    standingGrants: { allow: true }',
  '  "slack:C9":',
  '    standingGrants: { maxDays: 3 }',
  '  "slack:C0":',
  '    standingGrants: { allow: false }',
  '',
].join('\n');

describe('standingGrants in the policy file', () => {
  it('is off by default and merged key by key from the matching rules', () => {
    const doc = parsePolicy(policyFile, 'policy.yaml');
    const rule = (channel: string) =>
      standingGrantRule(toPlanPolicy(policyForChannel(doc, { surface: 'slack', channel, thread: '1' })));
    expect(rule('C1')).toEqual({ allow: true, maxDays: 30 });
    expect(rule('C9')).toEqual({ allow: true, maxDays: 3 });
    expect(rule('C0')).toEqual({ allow: false, maxDays: 30 });
    const web = policyForChannel(doc, { surface: 'web', channel: 'general', thread: '1' });
    expect(standingGrantRule(toPlanPolicy(web))).toEqual({ allow: false, maxDays: 30 });
  });

  it('refuses a bad value or an unknown key with the path', () => {
    const bad = (yaml: string) => {
      try {
        parsePolicy(yaml, 'p.yaml');
      } catch (err) {
        return (err as PolicyError).problems.join('\n');
      }
      return 'no error';
    };
    expect(bad('version: 1\nchannels:\n  "slack:*":\n    standingGrants: { allow: yes please }\n')).toContain(
      'standingGrants.allow',
    );
    expect(bad('version: 1\nchannels:\n  "slack:*":\n    standingGrants: { maxDays: 400 }\n')).toContain(
      'from 1 to 365',
    );
    expect(bad('version: 1\nchannels:\n  "slack:*":\n    standingGrants: { forever: true }\n')).toContain(
      'standingGrants',
    );
  });
});

describe('grants for a click', () => {
  const task = {
    ...newTask(
      {
        id: 't_1',
        conversation: { surface: 'slack', workspace: 'T1', channel: 'C1', thread: '1.1' },
        requester: { id: 'U1', name: 'Ana' },
        request: 'x',
        inputs: [],
        demo: false,
      },
      new Date('2026-01-01T00:00:00Z'),
    ),
    runId: 'r_1',
  };
  const pending: PendingAction = {
    id: 'a_1',
    toolUseId: 'toolu_1',
    tool: 'crm__create_note',
    input: { text: 'x' },
    action: 'connector_write',
    trust: 'watched',
    reason: 'x',
    requestedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    grantPatterns: ['connector:crm__create_note'],
  };
  const doc = parsePolicy(policyFile, 'policy.yaml');
  const policy = toPlanPolicy(policyForChannel(doc, task.conversation));
  const now = new Date('2026-01-01T00:30:00.000Z');

  it('makes a channel grant for the policy’s days, with who and when', () => {
    const [g] = grantsForClick({
      task,
      runId: 'r_1',
      pending,
      scope: 'channel',
      by: { id: 'U2', name: 'Bo' },
      policy,
      now,
      runRetentionMs: 1000,
    });
    expect(g).toMatchObject({
      pattern: 'connector:crm__create_note',
      action: 'connector_write',
      scope: 'channel',
      surface: 'slack',
      workspace: 'T1',
      channel: 'C1',
      approvalId: 'a_1',
      createdBy: { id: 'U2', name: 'Bo' },
      createdAt: now.toISOString(),
      expiresAt: '2026-01-31T00:30:00.000Z',
    });
  });

  it('refuses a grant the card did not offer', () => {
    const off = toPlanPolicy(policyForChannel(doc, { ...task.conversation, channel: 'C0' }));
    expect(() =>
      grantsForClick({
        task,
        runId: 'r_1',
        pending,
        scope: 'channel',
        by: { id: 'U2', name: 'Bo' },
        policy: off,
        now,
        runRetentionMs: 1000,
      }),
    ).toThrow(/does not allow standing grants/);
    const forbidden = { ...policy, trustLevels: { ...policy.trustLevels, connector_write: 'forbidden' as const } };
    expect(() =>
      grantsForClick({
        task,
        runId: 'r_1',
        pending,
        scope: 'run',
        by: { id: 'U2', name: 'Bo' },
        policy: forbidden,
        now,
        runRetentionMs: 1000,
      }),
    ).toThrow(/cannot be approved for the rest of the run/);
  });
});

describe('channel grants for web domains', () => {
  const egress: PendingAction = {
    id: 'a_2',
    toolUseId: 'toolu_2',
    tool: 'run_command',
    input: { command: 'curl https://api.example.com' },
    action: 'network_egress',
    trust: 'watched',
    reason: 'x',
    requestedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    egress: { domains: ['api.example.com'], result: '', isError: false },
    grantPatterns: ['egress:api.example.com'],
  };
  const policyWith = (egressDomains: string[]) =>
    toPlanPolicy(
      policyForChannel(
        parsePolicy(
          `version: 1\nchannels:\n  "slack:*":\n    standingGrants: { allow: true }\n    egressDomains: [${egressDomains.join(', ')}]\n`,
          'p.yaml',
        ),
        { surface: 'slack', channel: 'C1', thread: '1' },
      ),
    );

  it('are offered only for a domain the channel’s egressDomains admits', () => {
    expect(grantOfferFor(egress, policyWith(['api.example.com']))).toEqual({ run: false, channel: true });
    expect(grantOfferFor(egress, policyWith(['"*.example.com"']))).toEqual({ run: false, channel: true });
    expect(grantOfferFor(egress, policyWith(['other.example.org']))).toEqual({ run: false, channel: false });
    expect(channelPatternAdmitted('egress:api.example.com', policyWith(['www.example.com']))).toBe(false);
    expect(channelPatternAdmitted('connector:crm__read', policyWith([]))).toBe(true);
  });
});

describe('policy explain: standing grants', () => {
  it('says whether "Always allow" is offered in the channel, and for how long', () => {
    const doc = parsePolicy(policyFile, 'policy.yaml');
    expect(policyExplain(doc, { channel: 'slack:C9' })).toContain(
      'standing grants: "Always allow in this channel" offered, for 3 days',
    );
    expect(policyExplain(doc, { channel: 'slack:C0' })).toContain('standing grants: not offered');
  });
});
