import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  builtInPolicy,
  type CliOutput,
  checkPlanDecision,
  defaultTrustLevels,
  egressAllowed,
  loadPolicy,
  PolicyError,
  parsePolicy,
  planHash,
  policyCheck,
  policyExplain,
  policyForChannel,
  toPlanPolicy,
} from '../../../src/approvals/index.ts';
import { ErrorCodes, HandoffError, type Plan, type Task } from '../../../src/core/index.ts';
import { testPlan, testTask } from '../../helpers/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'handoff-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let written = 0;
function policyFile(text: string): string {
  const file = join(dir, `policy-${++written}.yaml`);
  writeFileSync(file, text);
  return file;
}

function policyError(file: string): PolicyError {
  try {
    loadPolicy(file);
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('expected the policy to be refused, but it loaded');
}

function recorder(): CliOutput & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, log: (l) => out.push(l), error: (l) => err.push(l) };
}

const example = new URL('../../../examples/policy.yaml', import.meta.url).pathname;

describe('loadPolicy', () => {
  it('is the DESIGN §6 default when no file is given', () => {
    const policy = loadPolicy();
    expect(policy.defaults.trustLevels).toEqual(defaultTrustLevels);
    expect(policy.defaults.requesterMayApprove).toBe(false);
    expect(policy.defaults.approvalExpiryMs).toBe(24 * 3_600_000);
    expect(policy.defaults.redaction).toEqual({ enabled: true, kinds: ['email', 'phone', 'card', 'iban', 'secret'] });
    const eff = policyForChannel(policy, 'slack:C0123');
    expect(eff.rule).toBe('defaults');
    expect(eff.approvers).toBeUndefined();
    expect(eff.quorum).toBe(1);
    expect(eff.egressDomains).toEqual([]);
  });

  it('loads the example policy, which passes `policy check`', () => {
    const policy = loadPolicy(example);
    expect(policy.channels.map((c) => c.key)).toEqual([
      'slack:*',
      'slack:C05FINANCE',
      'slack:C06*',
      'teams:19:4f2a9c1e8b7d@thread.tacv2',
      'web:*',
    ]);
    const io = recorder();
    expect(policyCheck(example, io)).toBe(0);
    expect(io.out).toEqual(['ok: 5 channels']);
    expect(io.err).toEqual([]);
  });

  it('accepts approver groups: looked up on Slack, a warning where a surface has no groups', () => {
    const slack = policyFile('version: 1\nchannels:\n  "slack:C1":\n    approvers: { users: [U1], groups: [S0SEC] }\n');
    const io = recorder();
    expect(policyCheck(slack, io)).toBe(0);
    expect(io.err).toEqual([]);
    expect(io.out).toEqual(['ok: 1 channel']);

    const web = policyFile(
      'version: 1\nchannels:\n  "web:*":\n    approvers: { users: ["web:bo"], groups: [admins] }\n  "*":\n    approvers: { groups: [S0SEC] }\n',
    );
    const io2 = recorder();
    expect(policyCheck(web, io2)).toBe(0);
    expect(io2.err).toEqual([
      `warning: ${web}: channels.web:*.approvers.groups: web has no user groups, so on web only the listed users can approve here`,
      `warning: ${web}: channels.*.approvers.groups: only Slack user groups and Entra groups (Teams) are looked up, so on other surfaces only the listed users can approve here`,
    ]);
  });

  it('loads a minimal file with only a version', () => {
    const policy = loadPolicy(policyFile('version: 1\n'));
    expect(policy.channels).toHaveLength(0);
    expect(policy.defaults.trustLevels).toEqual(defaultTrustLevels);
  });

  it('refuses an unknown key, naming the file and the key path', () => {
    const file = policyFile(
      ['version: 1', 'channels:', '  "slack:C0123":', '    aprovers:', '      users: [U1]', ''].join('\n'),
    );
    const err = policyError(file);
    expect(err).toBeInstanceOf(HandoffError);
    expect(err.code).toBe(ErrorCodes.config);
    expect(err.problems).toEqual([`${file}: channels.slack:C0123.aprovers: unknown key; did you mean approvers?`]);
  });

  it('lists every problem at once, each as <file>: <key.path>: <reason>', () => {
    const file = policyFile(
      [
        'version: 1',
        'defaults:',
        '  approvalExpiry: tomorrow',
        '  trust:',
        '    payments: watched',
        '    teleport: autonomous',
        'channels:',
        '  "slack:C1":',
        '    quorum: 0',
        '    egressDomains: ["https://example.com", "example.com:443", "EXAMPLE.org", "10.0.0.1", "api.example.com"]',
        '  "discord:C2": {}',
        '',
      ].join('\n'),
    );
    const lines = policyError(file).problems;
    const paths = lines.map((l) => l.slice(file.length + 2).split(': ')[0]);
    expect(paths).toHaveLength(9);
    expect(paths).toEqual(
      expect.arrayContaining([
        'defaults.approvalExpiry',
        'defaults.trust.teleport',
        'defaults.trust.payments',
        'channels.slack:C1.quorum',
        'channels.slack:C1.egressDomains[0]',
        'channels.slack:C1.egressDomains[1]',
        'channels.slack:C1.egressDomains[2]',
        'channels.slack:C1.egressDomains[3]',
        'channels.discord:C2',
      ]),
    );
    for (const line of lines) expect(line.startsWith(`${file}: `)).toBe(true);
    const text = lines.join('\n');
    expect(text).toContain('"tomorrow" is not a duration');
    expect(text).toContain('without a scheme');
    expect(text).toContain('without a port');
    expect(text).toContain('lower case');
    expect(text).toContain('an IP address is not a domain name');
    expect(text).toContain('unknown surface "discord"');
    expect(text).not.toContain('api.example.com');
  });

  it('refuses loosening a forbidden action, in defaults and in any channel', () => {
    const file = policyFile(
      [
        'version: 1',
        'defaults:',
        '  trust:',
        '    network_egress: forbidden',
        'channels:',
        '  "slack:*":',
        '    trust:',
        '      delete_file: forbidden',
        '  "slack:C0123":',
        '    trust:',
        '      payments: watched',
        '      network_egress: watched',
        '      delete_file: autonomous',
        '',
      ].join('\n'),
    );
    const lines = policyError(file).problems;
    expect(lines).toEqual([
      `${file}: channels.slack:C0123.trust.delete_file: delete_file is forbidden by channels.slack:*, which also covers this channel, and can never be loosened`,
      `${file}: channels.slack:C0123.trust.network_egress: network_egress is forbidden in defaults.trust and can never be loosened in a channel`,
      `${file}: channels.slack:C0123.trust.payments: payments is forbidden by the built-in policy and can never be loosened`,
    ]);
  });

  it('refuses a quorum larger than the listed approvers', () => {
    const file = policyFile(
      [
        'version: 1',
        'channels:',
        '  "slack:C0123":',
        '    approvers: { users: [U1, U2] }',
        '    quorum: 3',
        '  "slack:C9*":',
        '    approvers: { users: [] }',
        '',
      ].join('\n'),
    );
    expect(policyError(file).problems).toEqual([
      `${file}: channels.slack:C0123.quorum: quorum 3 is more than the 2 approvers listed in approvers.users, so no plan could ever be approved`,
      `${file}: channels.slack:C9*.approvers: no one could approve: list users or groups, or remove approvers to let anyone in the conversation approve`,
    ]);
    // With a group listed, the number of approvers is not known, so a quorum of 3 is allowed.
    const withGroup = policyFile(
      'version: 1\nchannels:\n  "slack:C0123":\n    approvers: { users: [U1], groups: [S1] }\n    quorum: 3\n',
    );
    expect(policyForChannel(loadPolicy(withGroup), 'slack:C0123').quorum).toBe(3);
  });

  it('refuses bad durations, a wrong version, YAML errors and a missing file', () => {
    const bad = policyFile('version: 1\ndefaults:\n  budget:\n    maxWallTime: 15 minutes\n    maxTokens: -5\n');
    const lines = policyError(bad).problems.join('\n');
    expect(lines).toContain(`${bad}: defaults.budget.maxWallTime: "15 minutes" is not a duration`);
    expect(lines).toContain(`${bad}: defaults.budget.maxTokens:`);
    // A value of the wrong type is not reported as missing.
    expect(policyError(policyFile('version: 1\ndefaults: { requesterMayApprove: "yes" }\n')).problems).toEqual([
      expect.stringMatching(/: defaults\.requesterMayApprove: Invalid input: expected boolean, received string$/),
    ]);
    expect(policyError(policyFile('version: 1\ndefaults: { approvalExpiry: 0h }\n')).problems[0]).toContain(
      'defaults.approvalExpiry: must be longer than zero',
    );
    expect(policyError(policyFile('version: 2\n')).problems[0]).toMatch(/: version: must be 1/);
    expect(policyError(policyFile('channels: {}\n')).problems[0]).toMatch(/: version: is required/);
    expect(policyError(policyFile('version: 1\nversion: 1\n')).problems[0]).toMatch(/: line 2, column 1: /);
    expect(policyError(policyFile('')).problems[0]).toContain('the file is empty');
    expect(policyError(join(dir, 'nope.yaml')).problems[0]).toBe(
      `${join(dir, 'nope.yaml')}: cannot read the policy file: no such file`,
    );
  });
});

describe('policyForChannel', () => {
  const policy = loadPolicy(example);

  it('tightens per channel and cascades from patterns to the exact channel', () => {
    const finance = policyForChannel(policy, { surface: 'slack', channel: 'C05FINANCE', thread: '1.2' });
    expect(finance.rule).toBe('channels.slack:C05FINANCE');
    expect(finance.matched).toEqual(['channels.slack:*', 'channels.slack:C05FINANCE']);
    expect(finance.trustLevels.delete_file).toBe('forbidden');
    expect(finance.trustLevels.network_egress).toBe('forbidden');
    expect(finance.trustLevels.read_files).toBe('autonomous');
    expect(finance.trustSources.delete_file).toBe('channels.slack:C05FINANCE');
    expect(finance.approvers).toEqual({ users: ['U05CTRL1', 'U05CTRL2', 'U05CTRL3'], groups: [] });
    expect(finance.quorum).toBe(2);
    expect(finance.approvalExpiryMs).toBe(4 * 3_600_000);
    // Budget keys cascade one by one: the channel's caps over the defaults'.
    expect(finance.budget).toEqual({
      maxTokens: 400_000,
      maxCostUsd: 2,
      maxWallTimeMs: 20 * 60_000,
      monthlyCostCapUsd: 100,
    });

    // Another Slack channel gets only the `slack:*` rule.
    const random = policyForChannel(policy, 'slack:C01RANDOM');
    expect(random.rule).toBe('channels.slack:*');
    expect(random.approvers?.users).toEqual(['U04OPSLEAD1', 'U04OPSLEAD2', 'U04OPSLEAD3']);
    expect(random.trustLevels.delete_file).toBe('watched');
    expect(random.quorum).toBe(1);
  });

  it('matches `<surface>:<prefix>*` patterns and `*`', () => {
    const eng = policyForChannel(policy, 'slack:C06PLATFORM');
    expect(eng.rule).toBe('channels.slack:C06*');
    expect(eng.why).toContain('most specific pattern');
    expect(eng.connectors).toEqual(['github', 'jira']);
    expect(eng.trustLevels.connector_read).toBe('autonomous');
    expect(egressAllowed(eng, 'api.github.com')).toBe(true);
    expect(egressAllowed(eng, 'acme.atlassian.net')).toBe(true);
    expect(egressAllowed(eng, 'atlassian.net')).toBe(false);
    expect(egressAllowed(eng, 'evil.example.com')).toBe(false);
    // Approvers come from `slack:*`, which also matches.
    expect(eng.sources.approvers).toBe('channels.slack:*');

    const everywhere = loadPolicy(
      policyFile('version: 1\nchannels:\n  "*":\n    approvers: { users: [SEC1] }\n  "teams:*":\n    quorum: 1\n'),
    );
    expect(policyForChannel(everywhere, 'web:general').rule).toBe('channels.*');
    expect(policyForChannel(everywhere, 'web:general').approvers?.users).toEqual(['SEC1']);
    expect(policyForChannel(everywhere, 'teams:19:abc@thread.tacv2').rule).toBe('channels.teams:*');
    expect(policyForChannel(everywhere, 'teams:19:abc@thread.tacv2').approvers?.users).toEqual(['SEC1']);

    const teams = policyForChannel(policy, 'teams:19:4f2a9c1e8b7d@thread.tacv2');
    expect(teams.rule).toBe('channels["teams:19:4f2a9c1e8b7d@thread.tacv2"]');
    expect(teams.why).toContain('exactly');

    const web = policyForChannel(policy, 'web:general');
    expect(web.requesterMayApprove).toBe(true);
    expect(web.redaction.enabled).toBe(false);
    expect(web.trustLevels.post_elsewhere).toBe('forbidden');
  });

  it('gives checkPlanDecision a PlanPolicy that enforces approvers and self-approval', () => {
    const eff = policyForChannel(policy, 'slack:C05FINANCE');
    const plan = makePlan();
    const task = makeTask();
    const planPolicy = toPlanPolicy(eff);
    expect(planPolicy).toEqual({
      trustLevels: eff.trustLevels,
      allowSelfApproval: false,
      approvers: ['U05CTRL1', 'U05CTRL2', 'U05CTRL3'],
      quorum: eff.quorum,
      approvalExpiryMs: eff.approvalExpiryMs,
      budget: eff.budget,
      redaction: eff.redaction,
      schedules: eff.schedules,
      followUps: { requesterMayApproveWithinEnvelope: false },
      connectors: eff.connectors,
      egressDomains: eff.egressDomains,
      connectorTrust: eff.connectorTrust,
      webSearch: false,
      skills: '*',
      standingGrants: { allow: false, maxDays: 30 },
      explicitTrust: Object.fromEntries(
        Object.entries(eff.trustSources).map(([a, from]) => [a, from !== 'built-in default policy']),
      ),
    });
    expect(planPolicy.quorum).toBe(2);
    expect(planPolicy.approvalExpiryMs).toBe(4 * 3600_000);
    const click = (id: string) => ({
      taskId: task.id,
      planVersion: 1,
      planHash: planHash(plan),
      by: { id, name: id },
      outcome: 'approved' as const,
    });
    expect(() => checkPlanDecision(task, plan, click('U04OPSLEAD1'), planPolicy)).toThrow(/not an approver/);
    expect(() => checkPlanDecision(task, plan, click('U05CTRL1'), planPolicy)).toThrow(/your own request/);
    expect(() => checkPlanDecision(task, plan, click('U05CTRL2'), planPolicy)).not.toThrow();
    const builtIn = toPlanPolicy(policyForChannel(builtInPolicy(), 'web:general'));
    expect(builtIn).toMatchObject({ trustLevels: defaultTrustLevels, allowSelfApproval: false, quorum: 1 });
    expect(builtIn.approvers).toBeUndefined();
  });
});

describe('policyExplain', () => {
  const policy = loadPolicy(example);

  it('says which rule applies, the level and where it was set, and who approves', () => {
    const text = policyExplain(policy, { channel: 'slack:C05FINANCE', action: 'delete_file' });
    expect(text).toContain(`policy: ${example}`);
    expect(text).toContain(
      'rule: channels.slack:C05FINANCE (channels.slack:C05FINANCE names slack:C05FINANCE exactly)',
    );
    expect(text).toContain(
      'action delete_file: forbidden — set by channels.slack:C05FINANCE.trust.delete_file (built-in default: watched)',
    );
    expect(text).toContain('approvers: users U05CTRL1, U05CTRL2, U05CTRL3 (from channels.slack:C05FINANCE)');
    expect(text).toContain('quorum: 2 distinct approvers (from channels.slack:C05FINANCE)');
    expect(text).toContain('approval expiry: 4h');
    expect(text).toContain('egress domains: none (no network)');

    const builtIn = policyExplain(loadPolicy(), { channel: 'web:general', action: 'payments' });
    expect(builtIn).toContain('rule: defaults (no channels: rule matches web:general, so the defaults apply)');
    expect(builtIn).toContain('action payments: forbidden — the built-in default; refused');
    expect(builtIn).toContain('approvers: anyone in the conversation');
    expect(builtIn).toContain('requester may approve own plan: no');
  });

  it('lists every action without --action, and refuses unknown actions and channels', () => {
    const text = policyExplain(policy, { channel: 'slack:C06X' });
    for (const action of Object.keys(defaultTrustLevels)) expect(text).toContain(`  ${action}: `);
    expect(() => policyExplain(policy, { channel: 'slack:C1', action: 'launch_rockets' })).toThrow(/unknown action/);
    expect(() => policyExplain(policy, { channel: 'C0123' })).toThrow(/is not a channel/);
  });
});

describe('policyCheck', () => {
  it('prints the problems and exits 1', () => {
    const file = policyFile('version: 1\nchannels:\n  "slack:C1":\n    trust:\n      billing: batched\n');
    const io = recorder();
    expect(policyCheck(file, io)).toBe(1);
    expect(io.out).toEqual([]);
    expect(io.err).toEqual([
      `${file}: channels.slack:C1.trust.billing: billing is forbidden by the built-in policy and can never be loosened`,
      '1 problem: the policy was not loaded',
    ]);
  });
});

function makePlan(): Plan {
  return testPlan(
    {
      version: 1,
      summary: 'Reconcile the ledger export.',
      steps: [{ title: 'Read the ledger', detail: '', actions: ['read_files', 'create_files'] }],
      deliverables: [{ name: 'reconciliation.xlsx', type: 'xlsx' }],
      estimatedTokens: 20_000,
      estimatedCostUsd: 0.1,
    },
    {
      tools: ['read_file', 'write_file', 'deliver_artifact'],
      budget: { maxTokens: 100_000, maxCostUsd: 1, maxWallTimeMs: 600_000 },
    },
  );
}

function makeTask(): Task {
  return testTask({
    conversation: { surface: 'slack', channel: 'C05FINANCE', thread: '1700000000.000100' },
    requester: { id: 'U05CTRL1', name: 'Ctrl One' },
    request: 'Reconcile the ledger',
    planVersion: 1,
  });
}

describe('connectorTrust', () => {
  it('collects entries from the defaults and every matching rule, the strictest winning', () => {
    const policy = parsePolicy(
      `version: 1
defaults:
  connectorTrust:
    files/*: batched
channels:
  "slack:*":
    connectors: [files]
    connectorTrust:
      files/write_file: forbidden
      files/*: watched
  "slack:C01":
    connectorTrust:
      files/*: autonomous
`,
      'p.yaml',
    );
    const eff = policyForChannel(policy, 'slack:C01');
    expect(eff.connectorTrust).toEqual({ 'files/*': 'watched', 'files/write_file': 'forbidden' });
    expect(eff.sources.connectorTrust).toBe('channels.slack:C01');
    expect(toPlanPolicy(eff).connectorTrust).toEqual(eff.connectorTrust);
  });

  it('refuses keys that are not CONNECTOR/TOOL or CONNECTOR/* and connector names handoff.yaml cannot have', () => {
    expect(() =>
      parsePolicy('version: 1\nchannels:\n  "slack:C01":\n    connectorTrust:\n      files: watched\n', 'p.yaml'),
    ).toThrow(/CONNECTOR\/TOOL or CONNECTOR\/\*/);
    expect(() => parsePolicy('version: 1\nchannels:\n  "slack:C01":\n    connectors: [my.files]\n', 'p.yaml')).toThrow(
      /1–30 lower-case letters, digits, _ or -/,
    );
  });
});
