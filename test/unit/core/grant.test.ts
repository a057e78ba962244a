import { describe, expect, it } from 'vitest';
import { defaultTrustLevels } from '../../../src/approvals/index.ts';
import {
  callDigest,
  channelGrantable,
  type Grant,
  GrantPatternSchema,
  grantIsLive,
  grantOffer,
  grantPatternsFor,
  type PendingAction,
} from '../../../src/core/index.ts';

const pending = (over: Partial<PendingAction>): PendingAction => ({
  id: 'a_1',
  toolUseId: 'toolu_1',
  tool: 'write_file',
  input: {},
  action: 'overwrite_input',
  trust: 'watched',
  reason: 'because',
  requestedAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-01T01:00:00.000Z',
  ...over,
});

describe('grant patterns', () => {
  it('names a connector tool exactly, whatever its arguments', () => {
    const p = pending({ tool: 'crm__create_note', action: 'connector_write', input: { text: 'hi' } });
    expect(grantPatternsFor(p, 'connector')).toEqual(['connector:crm__create_note']);
    expect(grantPatternsFor({ ...p, input: { text: 'other' } }, 'connector')).toEqual(['connector:crm__create_note']);
  });

  it('gives one pattern per held egress domain', () => {
    const p = pending({
      tool: 'run_command',
      action: 'network_egress',
      egress: { domains: ['api.example.com', 'cdn.example.org'], result: '', isError: false },
    });
    expect(grantPatternsFor(p, 'builtin')).toEqual(['egress:api.example.com', 'egress:cdn.example.org']);
  });

  it('names one input file for overwrites and deletions', () => {
    const write = pending({ input: { path: '/workspace/in/notes.txt', content: 'x', step: 1 } });
    expect(grantPatternsFor(write, 'builtin')).toEqual(['file:overwrite_input:/workspace/in/notes.txt']);
    const del = pending({ tool: 'delete_file', action: 'delete_file', input: { path: '/workspace/in/a.csv' } });
    expect(grantPatternsFor(del, 'builtin')).toEqual(['file:delete_file:/workspace/in/a.csv']);
  });

  it('names any other built-in call by its exact arguments, ignoring the step hint', () => {
    const p = pending({ tool: 'run_command', action: 'run_commands', input: { command: 'make report', step: 2 } });
    const [pattern] = grantPatternsFor(p, 'builtin');
    expect(pattern).toBe(`call:run_command:${callDigest('run_command', { command: 'make report' })}`);
    expect(grantPatternsFor({ ...p, input: { command: 'make report', step: 3 } }, 'builtin')).toEqual([pattern]);
    expect(grantPatternsFor({ ...p, input: { command: 'rm -rf /' } }, 'builtin')).not.toEqual([pattern]);
  });

  it('gives no pattern when the arguments were cut for the card (they cannot be matched exactly)', () => {
    const p = pending({ tool: 'run_command', action: 'run_commands', input: { command: 'x… (90000 characters)' } });
    expect(grantPatternsFor(p, 'builtin')).toEqual([]);
  });

  it('gives no pattern when one part is not a valid pattern (no partial grants)', () => {
    const p = pending({
      action: 'network_egress',
      egress: { domains: ['ok.example.com', 'BAD DOMAIN'], result: '', isError: false },
    });
    expect(grantPatternsFor(p, 'builtin')).toEqual([]);
  });

  it('accepts only the four pattern kinds, never a wildcard', () => {
    expect(GrantPatternSchema.safeParse('connector:crm__*').success).toBe(false);
    expect(GrantPatternSchema.safeParse('egress:*.example.com').success).toBe(false);
    expect(GrantPatternSchema.safeParse('tool:run_command').success).toBe(false);
    expect(GrantPatternSchema.safeParse('file:overwrite_input:/etc/passwd').success).toBe(false);
    expect(channelGrantable('connector:crm__read')).toBe(true);
    expect(channelGrantable('egress:example.com')).toBe(true);
    expect(channelGrantable('file:delete_file:/workspace/in/a')).toBe(false);
  });
});

describe('grant offers', () => {
  const connectorCall = pending({
    tool: 'crm__create_note',
    action: 'connector_write',
    grantPatterns: ['connector:crm__create_note'],
  });

  it('offers the channel grant only where the policy allows standing grants', () => {
    expect(grantOffer(connectorCall, defaultTrustLevels, { allow: true, maxDays: 30 })).toEqual({
      run: true,
      channel: true,
    });
    expect(grantOffer(connectorCall, defaultTrustLevels, { allow: false, maxDays: 30 })).toEqual({
      run: true,
      channel: false,
    });
  });

  it('offers nothing for a kind the policy forbids', () => {
    const levels = { ...defaultTrustLevels, connector_write: 'forbidden' as const };
    expect(grantOffer(connectorCall, levels, { allow: true, maxDays: 30 })).toEqual({ run: false, channel: false });
    const payment = pending({ tool: 'pay__send', action: 'payments', grantPatterns: ['connector:pay__send'] });
    expect(grantOffer(payment, defaultTrustLevels, { allow: true, maxDays: 30 })).toEqual({
      run: false,
      channel: false,
    });
  });

  it('offers no channel grant for a file or an exact call, and no run grant for held egress', () => {
    const file = pending({ grantPatterns: ['file:overwrite_input:/workspace/in/a.txt'] });
    expect(grantOffer(file, defaultTrustLevels, { allow: true, maxDays: 30 })).toEqual({ run: true, channel: false });
    const egress = pending({
      action: 'network_egress',
      egress: { domains: ['example.com'], result: '', isError: false },
      grantPatterns: ['egress:example.com'],
    });
    expect(grantOffer(egress, defaultTrustLevels, { allow: true, maxDays: 30 })).toEqual({ run: false, channel: true });
  });

  it('offers nothing without patterns', () => {
    expect(grantOffer(pending({}), defaultTrustLevels, { allow: true, maxDays: 30 })).toEqual({
      run: false,
      channel: false,
    });
  });
});

describe('grant use', () => {
  const grant: Grant = {
    id: 'g_1',
    pattern: 'connector:crm__create_note',
    action: 'connector_write',
    scope: 'channel',
    surface: 'slack',
    channel: 'C1',
    taskId: 't_1',
    runId: 'r_1',
    approvalId: 'a_1',
    description: 'x',
    createdBy: { id: 'U1', name: 'Bo' },
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-08T00:00:00.000Z',
  };
  const now = Date.parse('2026-01-02T00:00:00.000Z');
  const allow = { allow: true, maxDays: 7 };

  it('holds while unrevoked, unexpired and allowed by the policy as it is now', () => {
    expect(grantIsLive(grant, now, defaultTrustLevels, allow)).toBe(true);
    expect(grantIsLive(grant, Date.parse(grant.expiresAt), defaultTrustLevels, allow)).toBe(false);
    expect(grantIsLive({ ...grant, revokedAt: '2026-01-01T12:00:00.000Z' }, now, defaultTrustLevels, allow)).toBe(
      false,
    );
    // The policy forbids the kind since: the grant no longer counts.
    expect(grantIsLive(grant, now, { ...defaultTrustLevels, connector_write: 'forbidden' }, allow)).toBe(false);
    // The channel's policy stopped allowing standing grants: channel grants stop, run grants do not.
    expect(grantIsLive(grant, now, defaultTrustLevels, { allow: false, maxDays: 7 })).toBe(false);
    expect(grantIsLive({ ...grant, scope: 'run' }, now, defaultTrustLevels, { allow: false, maxDays: 7 })).toBe(true);
  });
});
