import { checkSkillDir, type SkillCatalog, skillsAllowed } from '../agent/index.ts';
import { type Policy, parseChannelId, policyForChannel } from '../approvals/index.ts';

/** Where CLI functions print; console by default, a recorder in tests. */
export interface SkillsOutput {
  log(line: string): void;
  error(line: string): void;
}

/**
 * `handoff skills list [--channel C]`: every loaded skill with its source, folder and
 * description; with a channel, whether that channel's policy lets runs use it. Problems
 * (broken SKILL.md, missing folders) and name clashes are listed after. Exit 1 when any
 * skill folder is broken, so a deployment check can fail on it.
 */
export function skillsList(
  catalog: SkillCatalog,
  policy: Policy,
  opts: { channel?: string } = {},
  out: SkillsOutput = console,
): number {
  let allowed: Set<string> | undefined;
  if (opts.channel) {
    parseChannelId(opts.channel);
    const effective = policyForChannel(policy, opts.channel);
    allowed = new Set(skillsAllowed(catalog, effective.skills).map((s) => s.name));
    out.log(
      `skills in ${opts.channel}: ${effective.skills === '*' ? 'every installed skill' : effective.skills.join(', ') || 'none'} (from ${effective.sources.skills})`,
    );
  }
  if (catalog.skills.length === 0) out.log('no skills are installed (see docs/skills.md)');
  for (const s of catalog.skills) {
    const verdict = allowed ? (allowed.has(s.name) ? '  allowed' : '  not allowed') : '';
    out.log(`${s.name} (${s.source})${verdict}`);
    out.log(`  ${s.dir}`);
    out.log(`  ${s.description.length > 200 ? `${s.description.slice(0, 199)}…` : s.description}`);
  }
  if (opts.channel && policy.channels.length > 0) {
    const effective = policyForChannel(policy, opts.channel);
    if (effective.skills !== '*') {
      const installed = new Set(catalog.skills.map((s) => s.name));
      for (const name of effective.skills.filter((n) => !installed.has(n)))
        out.error(`warning: the policy allows skill ${name} in ${opts.channel}, but no such skill is installed`);
    }
  }
  for (const line of catalog.shadowed) out.log(`hidden: ${line}`);
  for (const problem of catalog.problems) out.error(`problem: ${problem}`);
  return catalog.problems.length > 0 ? 1 : 0;
}

/**
 * `handoff skills check DIR`: validates one skill folder. Exit 0 with its name and
 * description, or 1 with the file and what is wrong with it.
 */
export function skillsCheck(dir: string, out: SkillsOutput = console): number {
  const result = checkSkillDir(dir);
  if ('problem' in result) {
    out.error(result.problem);
    return 1;
  }
  out.log(`${result.skill.name}: ok`);
  out.log(`  ${result.skill.description}`);
  return 0;
}
