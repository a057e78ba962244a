import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CliOutput,
  defaultSchedulePolicy,
  loadPolicy,
  PolicyError,
  policyCheck,
  policyExplain,
  policyForChannel,
  type SchedulePolicy,
  timeZoneProblem,
  toPlanPolicy,
} from '../../../src/approvals/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'handoff-policy-schedules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let written = 0;
function policyFile(lines: string[]): string {
  const file = join(dir, `policy-${++written}.yaml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function problems(file: string): readonly string[] {
  try {
    loadPolicy(file);
  } catch (err) {
    if (err instanceof PolicyError) return err.problems;
    throw err;
  }
  throw new Error('expected the policy to be refused, but it loaded');
}

function recorder(): CliOutput & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, log: (l) => out.push(l), error: (l) => err.push(l) };
}

const builtIn: SchedulePolicy = { create: 'anyone', minIntervalMs: 15 * 60_000, maxPerChannel: 20, connectors: false };

describe('schedules in the policy', () => {
  it('defaults when no file or no schedules key is given', () => {
    expect(defaultSchedulePolicy).toEqual(builtIn);
    expect(Object.isFrozen(defaultSchedulePolicy)).toBe(true);

    const none = policyForChannel(loadPolicy(), 'slack:C1');
    expect(none.schedules).toEqual(builtIn);
    expect(none.schedules.timeZone).toBeUndefined();
    expect(none.sources.schedules).toBe('built-in default policy');
    expect(toPlanPolicy(none).schedules).toEqual(builtIn);

    const file = policyFile(['version: 1', 'channels:', '  "slack:C1":', '    quorum: 1']);
    const eff = policyForChannel(loadPolicy(file), 'slack:C1');
    expect(eff.schedules).toEqual(builtIn);
    expect(eff.sources.schedules).toBe('built-in default policy');
  });

  it('merges defaults and channel rules key by key, most specific last', () => {
    const file = policyFile([
      'version: 1',
      'defaults:',
      '  schedules:',
      '    create: approvers',
      '    minInterval: 1h',
      '    timeZone: Europe/Berlin',
      'channels:',
      '  "slack:*":',
      '    schedules:',
      '      maxPerChannel: 5',
      '  "slack:C1":',
      '    connectors: [github]',
      '    schedules:',
      '      connectors: true',
      '      minInterval: 1m',
      '      timeZone: America/New_York',
      '  "web:*":',
      '    schedules:',
      '      create: anyone',
      '      timeZone: UTC',
    ]);
    const policy = loadPolicy(file);
    expect(policy.defaults.schedules).toEqual({
      create: 'approvers',
      minIntervalMs: 3_600_000,
      maxPerChannel: 20,
      connectors: false,
      timeZone: 'Europe/Berlin',
    });

    const c1 = policyForChannel(policy, 'slack:C1');
    expect(c1.schedules).toEqual({
      create: 'approvers',
      minIntervalMs: 60_000,
      maxPerChannel: 5,
      connectors: true,
      timeZone: 'America/New_York',
    });
    expect(c1.sources.schedules).toBe('channels.slack:C1');

    const c2 = policyForChannel(policy, 'slack:C2');
    expect(c2.schedules).toEqual({ ...policy.defaults.schedules, maxPerChannel: 5 });
    expect(c2.sources.schedules).toBe('channels.slack:*');

    const web = policyForChannel(policy, 'web:general');
    expect(web.schedules).toEqual({ ...policy.defaults.schedules, create: 'anyone', timeZone: 'UTC' });

    const teams = policyForChannel(policy, 'teams:19:abc@thread.tacv2');
    expect(teams.schedules).toEqual(policy.defaults.schedules);
    expect(teams.sources.schedules).toBe('defaults');

    // The plan policy gets a copy, not the effective policy's object.
    const plan = toPlanPolicy(c1);
    expect(plan.schedules).toEqual(c1.schedules);
    expect(plan.schedules).not.toBe(c1.schedules);
    // Merging never changes the loaded defaults.
    expect(policy.defaults.schedules.maxPerChannel).toBe(20);
    expect(policyCheck(file, recorder())).toBe(0);
  });

  it('refuses unknown keys and bad values, each as <file>: <key.path>: <reason>', () => {
    const file = policyFile([
      'version: 1',
      'defaults:',
      '  schedules:',
      '    minInterval: 0m',
      '    timeZone: Mars/Olympus',
      '    maxPerChanel: 3',
      'channels:',
      '  "slack:C1":',
      '    schedules:',
      '      minInterval: abc',
      '      maxPerChannel: 0',
      '      timeZone: CET',
      '      create: admins',
      '      connectors: "yes"',
      '  "slack:C2":',
      '    schedule:',
      '      create: anyone',
      '    schedules:',
      '      maxPerChannel: 1001',
      '      minInterval: 59s',
    ]);
    const lines = problems(file);
    expect([...lines].sort()).toEqual(
      [
        `${file}: defaults.schedules.maxPerChanel: unknown key; did you mean maxPerChannel?`,
        `${file}: defaults.schedules.minInterval: must be at least 1m: a schedule runs at most once a minute`,
        `${file}: defaults.schedules.timeZone: "Mars/Olympus" is not a known time zone: write an IANA time zone name such as Europe/Berlin, America/New_York or UTC`,
        `${file}: channels.slack:C1.schedules.minInterval: "abc" is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 24h`,
        `${file}: channels.slack:C1.schedules.maxPerChannel: must be a whole number from 1 to 1000`,
        `${file}: channels.slack:C1.schedules.timeZone: "CET" is an abbreviation, not a time zone name: write an IANA time zone name such as Europe/Berlin, America/New_York or UTC`,
        `${file}: channels.slack:C1.schedules.create: must be anyone or approvers`,
        `${file}: channels.slack:C1.schedules.connectors: must be true or false`,
        `${file}: channels.slack:C2.schedule: unknown key; did you mean schedules?`,
        `${file}: channels.slack:C2.schedules.maxPerChannel: must be a whole number from 1 to 1000`,
        `${file}: channels.slack:C2.schedules.minInterval: must be at least 1m: a schedule runs at most once a minute`,
      ].sort(),
    );
  });

  it('accepts IANA names and UTC, refuses abbreviations and unknown zones', () => {
    for (const zone of ['UTC', 'Europe/Berlin', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5', 'Asia/Kolkata']) {
      expect(timeZoneProblem(zone), zone).toBeUndefined();
    }
    expect(timeZoneProblem('CET')).toContain('is an abbreviation');
    expect(timeZoneProblem('EST')).toContain('is an abbreviation');
    expect(timeZoneProblem('GMT')).toContain('is an abbreviation');
    expect(timeZoneProblem('Mars/Olympus')).toContain('is not a known time zone');
    expect(timeZoneProblem('Berlin')).toContain('is not a time zone name');
    expect(timeZoneProblem('europe/berlin')).toContain('is not a time zone name');
    expect(timeZoneProblem('Europe/Berlin ')).toContain('is not a time zone name');
    expect(timeZoneProblem('')).toContain('is not a time zone name');
  });
});

describe('policy explain: schedules', () => {
  it('prints the effective schedule rules and where they came from', () => {
    const builtInText = policyExplain(loadPolicy(), { channel: 'slack:C1' });
    expect(builtInText).toContain(
      'schedules: created by anyone in the conversation; at most every 15m; at most 20 per channel; connectors not allowed; time zone not set (from built-in default policy)',
    );

    const file = policyFile([
      'version: 1',
      'defaults:',
      '  schedules: { timeZone: Europe/Berlin, minInterval: 1h30m }',
      'channels:',
      '  "slack:C1":',
      '    connectors: [github, jira]',
      '    schedules: { create: approvers, connectors: true, maxPerChannel: 3 }',
    ]);
    const policy = loadPolicy(file);
    expect(policyExplain(policy, { channel: 'slack:C1', action: 'read_files' })).toContain(
      'schedules: created by approvers only; at most every 1h30m; at most 3 per channel; connectors allowed (github, jira); time zone Europe/Berlin (from channels.slack:C1)',
    );
    expect(policyExplain(policy, { channel: 'slack:C2' })).toContain(
      'schedules: created by anyone in the conversation; at most every 1h30m; at most 20 per channel; connectors not allowed; time zone Europe/Berlin (from defaults)',
    );
  });
});
