import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy, policyForChannel } from '../../../src/approvals/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'handoff-policy-teams-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const team = '19:team-general@thread.tacv2';
const finance = '19:finance@thread.tacv2';
const ana = '0a1b2c3d-0000-4000-8000-00000000a0a0';
const ben = '0a1b2c3d-0000-4000-8000-00000000b0b0';

describe('Teams channels in the policy file', () => {
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'channels:',
      `  "teams:${team}/*":`,
      '    approvers:',
      `      users: [${ana}]`,
      `  "teams:${finance}":`,
      '    approvers:',
      `      users: [${ben}]`,
      '',
    ].join('\n'),
  );
  const policy = loadPolicy(file);

  it('a key names a team channel as <team id>/<channel id>, or a whole team with a prefix', () => {
    expect(
      policyForChannel(policy, { surface: 'teams', channel: `${team}/19:other@thread.tacv2`, thread: '1' }).approvers
        ?.users,
    ).toEqual([ana]);
  });

  it('a key may name the channel’s own conversation id, which wins over the team’s prefix', () => {
    const eff = policyForChannel(policy, { surface: 'teams', channel: `${team}/${finance}`, thread: '1' });
    expect(eff.approvers?.users).toEqual([ben]);
  });

  it('a chat is matched by its conversation id only, and other surfaces never match', () => {
    expect(
      policyForChannel(policy, { surface: 'teams', channel: '19:chat@thread.v2', thread: '1' }).approvers,
    ).toBeUndefined();
    expect(
      policyForChannel(policy, { surface: 'slack', channel: `${team}/${finance}`, thread: '1' }).approvers,
    ).toBeUndefined();
  });

  it('keeps Entra ids (GUIDs) in lower case, as Teams sends them, whatever case the file uses', () => {
    const upper = join(dir, 'upper.yaml');
    writeFileSync(
      upper,
      [
        'version: 1',
        'channels:',
        '  "teams:*":',
        '    approvers:',
        `      users: [${ben.toUpperCase()}, UABC]`,
        '',
      ].join('\n'),
    );
    const eff = policyForChannel(loadPolicy(upper), { surface: 'teams', channel: '19:x', thread: '1' });
    expect(eff.approvers?.users).toEqual([ben, 'UABC']);
  });
});
