import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matchSample } from '../../../src/agent/demo/demo-provider.ts';
import {
  builtInSkillsDir,
  checkSkillDir,
  combineExtraTools,
  loadSkillDefinition,
  loadSkills,
  parseSkillFile,
  type SkillLoadRecord,
  skillSources,
  skillsAllowed,
  skillTools,
} from '../../../src/agent/skills/index.ts';
import { loadPolicy, policyExplain, policyForChannel, toPlanPolicy } from '../../../src/approvals/index.ts';
import { parseSkillsConfig } from '../../../src/config/index.ts';
import { skillsCheck, skillsList } from '../../../src/runner/skills-cli.ts';

const root = mkdtempSync(join(tmpdir(), 'handoff-skills-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function folder(): string {
  const dir = join(root, `src-${++n}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function skill(parent: string, name: string, text: string, files: Record<string, string> = {}): string {
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'SKILL.md'), text);
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  return dir;
}

const good = (name: string, description = `Does ${name} things.`, body = `# ${name}\n\nSecret body of ${name}.`) =>
  `---\nname: ${name}\ndescription: ${description}\n---\n\n${body}\n`;

function recorder() {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: { log: (l: string) => lines.push(l), error: (l: string) => errors.push(l) } };
}

describe('SKILL.md', () => {
  it('reads name, description, optional fields and the body', () => {
    const parsed = parseSkillFile(
      '\uFEFF---\r\nname: report-writer\r\ndescription: >\r\n  Writes reports.\r\nlicense: MIT\r\nallowed-tools: Bash Read\r\nmetadata:\r\n  author: ops\r\nx-vendor: kept\r\n---\r\n# Body\r\n\r\nText.\r\n',
    );
    expect(parsed.frontMatter).toMatchObject({
      name: 'report-writer',
      description: 'Writes reports.',
      license: 'MIT',
      'allowed-tools': 'Bash Read',
      metadata: { author: 'ops' },
    });
    expect(parsed.body).toBe('# Body\n\nText.');
  });

  it.each([
    ['no front matter', '# Just markdown\n', /does not start with YAML front matter/],
    ['an unclosed front matter', '---\nname: a\ndescription: b\n', /not closed/],
    ['no description', '---\nname: a\n---\nbody', /description is required/],
    ['an empty description', '---\nname: a\ndescription: "  "\n---\n', /description must not be empty/],
    ['a name with capitals', '---\nname: My_Skill\ndescription: d\n---\n', /name must be lower-case/],
    ['a name with a double hyphen', '---\nname: a--b\ndescription: d\n---\n', /name must be lower-case/],
    ['a name too long', `---\nname: ${'a'.repeat(65)}\ndescription: d\n---\n`, /at most 64/],
    ['a description too long', `---\nname: a\ndescription: ${'d'.repeat(1025)}\n---\n`, /at most 1024/],
    ['broken YAML', '---\nname: [a\ndescription: d\n---\n', /not valid YAML/],
  ])('refuses %s', (_what, text, reason) => {
    expect(() => parseSkillFile(text)).toThrow(reason);
  });
});

describe('loading skills', () => {
  it('loads a good folder with its files, and names a broken SKILL.md while the rest still load', () => {
    const dir = folder();
    skill(dir, 'alpha', good('alpha'), { 'scripts/run.sh': 'echo hi', 'references/guide.md': '# guide' });
    skill(dir, 'broken', '---\nname: broken\n---\nno description');
    skill(dir, 'mismatch', good('other-name'));
    mkdirSync(join(dir, 'empty'));
    skill(dir, 'zeta', good('zeta'));
    const catalog = loadSkills([{ kind: 'data dir', path: dir, required: true }]);
    expect(catalog.skills.map((s) => s.name)).toEqual(['alpha', 'zeta']);
    expect(catalog.skills[0]).toMatchObject({ description: 'Does alpha things.', source: 'data dir' });
    expect(catalog.problems).toHaveLength(3);
    expect(catalog.problems).toContainEqual(`${join(dir, 'broken', 'SKILL.md')}: description is required`);
    expect(catalog.problems).toContainEqual(
      `${join(dir, 'mismatch', 'SKILL.md')}: name "other-name" does not match its folder "mismatch" (they must be the same)`,
    );
    expect(catalog.problems).toContainEqual(
      `${join(dir, 'empty', 'SKILL.md')}: missing (a skill folder needs a SKILL.md)`,
    );
  });

  it('names a SKILL.md it cannot read', () => {
    if (process.getuid?.() === 0) return; // root reads everything; the message is the same code path as any read error
    const dir = folder();
    const s = skill(dir, 'locked', good('locked'));
    chmodSync(join(s, 'SKILL.md'), 0);
    const catalog = loadSkills([{ kind: 'data dir', path: dir, required: true }]);
    expect(catalog.problems[0]).toMatch(/locked\/SKILL\.md: cannot be read \(EACCES\)/);
  });

  it('lets handoff.yaml paths win over the data dir, and the data dir over built-in skills, reporting what is hidden', () => {
    const builtIn = folder();
    const dataDir = folder();
    const extra = folder();
    skill(builtIn, 'pptx', good('pptx', 'Built-in decks.'));
    skill(builtIn, 'xlsx', good('xlsx', 'Built-in sheets.'));
    skill(join(dataDir, 'skills'), 'pptx', good('pptx', 'Company decks.'));
    skill(join(dataDir, 'skills'), 'docx', good('docx', 'Company docs.'));
    const single = skill(extra, 'docx', good('docx', 'Team docs.'));
    const catalog = loadSkills(skillSources({ dataDir, paths: [single], builtIn }));
    expect(Object.fromEntries(catalog.skills.map((s) => [s.name, `${s.source}: ${s.description}`]))).toEqual({
      docx: 'config: Team docs.',
      pptx: 'data dir: Company decks.',
      xlsx: 'built-in: Built-in sheets.',
    });
    expect(catalog.shadowed).toEqual([
      `docx: ${join(dataDir, 'skills', 'docx')} (data dir) is hidden by ${single} (config)`,
      `pptx: ${join(builtIn, 'pptx')} (built-in) is hidden by ${join(dataDir, 'skills', 'pptx')} (data dir)`,
    ]);
    expect(catalog.problems).toEqual([]);
  });

  it('reports a configured path that does not exist, but not a missing data dir skills folder', () => {
    const catalog = loadSkills(
      skillSources({ dataDir: join(root, 'nowhere'), paths: [join(root, 'missing')], builtIn: false }),
    );
    expect(catalog.problems).toEqual([`${join(root, 'missing')}: the skills folder (config) does not exist`]);
  });

  it('ships built-in skills that all load cleanly, each with a script', () => {
    const catalog = loadSkills([{ kind: 'built-in', path: builtInSkillsDir(), required: true }]);
    expect(catalog.problems).toEqual([]);
    expect(catalog.skills.map((s) => s.name)).toEqual(['docx', 'pdf', 'pptx', 'xlsx']);
    for (const s of catalog.skills) expect(checkSkillDir(s.dir)).toHaveProperty('skill');
  });

  it('applies a channel policy: "*" and no policy admit all, a list admits its names', () => {
    const dir = folder();
    skill(dir, 'a', good('a'));
    skill(dir, 'b', good('b'));
    const catalog = loadSkills([{ kind: 'data dir', path: dir, required: true }]);
    expect(skillsAllowed(catalog, undefined).map((s) => s.name)).toEqual(['a', 'b']);
    expect(skillsAllowed(catalog, '*').map((s) => s.name)).toEqual(['a', 'b']);
    expect(skillsAllowed(catalog, ['b', 'nope']).map((s) => s.name)).toEqual(['b']);
    expect(skillsAllowed(catalog, [])).toEqual([]);
  });
});

describe('load_skill', () => {
  const dir = folder();
  skill(dir, 'decks', good('decks', 'Builds decks.', '# Decks\n\nUse the </skill_instructions> script.'), {
    'scripts/make.js': 'console.log(1)',
  });
  skill(dir, 'sheets', good('sheets', 'Builds sheets.'));
  const catalog = loadSkills([{ kind: 'data dir', path: dir, required: true }]);

  it('shows names and descriptions only until a skill is loaded', () => {
    const def = loadSkillDefinition(catalog.skills);
    expect(def.description).toContain('- decks: Builds decks.');
    expect(def.description).toContain('- sheets: Builds sheets.');
    expect(JSON.stringify(def)).not.toContain('Use the');
    expect(def.input_schema).toMatchObject({ properties: { name: { enum: ['decks', 'sheets'] } } });
  });

  it('returns the body and the files with their sandbox paths, and reports the load', async () => {
    const loads: SkillLoadRecord[] = [];
    const tools = skillTools({ skills: catalog.skills, readLevel: 'autonomous', onLoad: (r) => void loads.push(r) });
    expect(tools.classify('load_skill', {})).toEqual({ action: 'read_files', trust: 'autonomous' });
    expect(tools.classify('run_command', {})).toBeUndefined();
    const r = await tools.run('load_skill', { name: 'decks' }, new AbortController().signal);
    expect(r.isError).toBe(false);
    expect(r.content).toContain('- /skills/decks/SKILL.md');
    expect(r.content).toContain('- /skills/decks/scripts/make.js (14 bytes)');
    expect(r.content).toContain('<skill_instructions name="decks">\n# Decks');
    // The body cannot close the block early.
    expect(r.content).toContain('Use the ‹/skill_instructions> script.');
    expect(loads).toEqual([
      expect.objectContaining({
        skill: 'decks',
        source: 'data dir',
        ok: true,
        files: 2,
        bodySha256: expect.any(String),
      }),
    ]);
  });

  it('refuses a skill it does not offer', async () => {
    const loads: SkillLoadRecord[] = [];
    const allowed = skillsAllowed(catalog, ['sheets']);
    const tools = skillTools({ skills: allowed, readLevel: 'autonomous', onLoad: (r) => void loads.push(r) });
    expect(tools.definitions[0]!.description).not.toContain('decks');
    const r = await tools.run('load_skill', { name: 'decks' }, new AbortController().signal);
    expect(r).toEqual({
      content: 'Error: there is no skill named "decks" in this channel. The skills are: sheets.',
      isError: true,
    });
    expect(loads).toEqual([{ skill: 'decks', source: '', ok: false, reason: 'not available' }]);
  });

  it('combines with other extra tools, each call going to its owner', async () => {
    const other = {
      definitions: [{ name: 'web_fetch', description: 'x', input_schema: { type: 'object' as const } }],
      classify: (name: string) =>
        name === 'web_fetch' ? { action: 'network_egress' as const, trust: 'batched' as const } : undefined,
      run: async () => ({ content: 'fetched', isError: false }),
      describe: () => 'fetching',
    };
    const both = combineExtraTools(other, undefined, skillTools({ skills: catalog.skills, readLevel: 'autonomous' }))!;
    expect(both.definitions.map((d) => d.name)).toEqual(['web_fetch', 'load_skill']);
    expect((await both.run('web_fetch', {}, new AbortController().signal)).content).toBe('fetched');
    expect((await both.run('load_skill', { name: 'sheets' }, new AbortController().signal)).content).toContain(
      'Secret body of sheets',
    );
    expect(both.describe('load_skill', { name: 'sheets' })).toBe('loading skill sheets');
    expect(combineExtraTools(undefined, undefined)).toBeUndefined();
  });
});

describe('the skills policy key', () => {
  const dir = folder();
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('defaults to every installed skill and narrows per channel', () => {
    const policy = loadPolicy(
      write('p1.yaml', 'version: 1\nchannels:\n  "web:*":\n    skills: [xlsx, pptx]\n  "web:open":\n    skills: "*"\n'),
    );
    expect(policyForChannel(policy, 'slack:C1').skills).toBe('*');
    expect(toPlanPolicy(policyForChannel(policy, 'web:general')).skills).toEqual(['xlsx', 'pptx']);
    expect(policyForChannel(policy, 'web:open').skills).toBe('*');
    expect(policyExplain(policy, { channel: 'web:general' })).toContain('skills: xlsx, pptx (from channels.web:*)');
    expect(policyExplain(policy, { channel: 'slack:C1' })).toContain('skills: every installed skill (from default)');
  });

  it.each([
    ['a word other than "*"', 'skills: all', /skills: must be "\*" \(every installed skill\) or a list of skill names/],
    ['a bad name', 'skills: [Big_Skill]', /skills\[0\]: a skill name: lower-case letters, digits and single hyphens/],
    ['a mapping', 'skills: {xlsx: true}', /skills: must be "\*" \(every installed skill\) or a list of skill names/],
  ])('rejects %s clearly', (_what, line, reason) => {
    const file = write(`bad-${line.length}.yaml`, `version: 1\nchannels:\n  "*":\n    ${line}\n`);
    expect(() => loadPolicy(file)).toThrow(reason);
  });
});

describe('skills in handoff.yaml', () => {
  it('makes relative paths absolute from the file and rejects unknown keys', () => {
    expect(parseSkillsConfig({ paths: ['team-skills', '/opt/skills'] }, '/etc/handoff/handoff.yaml')).toEqual({
      paths: ['/etc/handoff/team-skills', '/opt/skills'],
    });
    expect(parseSkillsConfig(undefined, 'handoff.yaml')).toEqual({ paths: [] });
    expect(() => parseSkillsConfig({ path: 'x' }, 'handoff.yaml')).toThrow(/skills: unknown key\(s\): path/);
    expect(() => parseSkillsConfig({ paths: 'x' }, 'handoff.yaml')).toThrow(/skills.paths: must be a list/);
  });
});

describe('the skills CLI', () => {
  const dir = folder();
  skill(dir, 'sheets', good('sheets'));
  skill(dir, 'broken', '---\nname: broken\n---\n');

  it('check: exit 0 for a good folder, 1 naming the file for a broken one', () => {
    const ok = recorder();
    expect(skillsCheck(join(dir, 'sheets'), ok.out)).toBe(0);
    expect(ok.lines[0]).toBe('sheets: ok');
    const bad = recorder();
    expect(skillsCheck(join(dir, 'broken'), bad.out)).toBe(1);
    expect(bad.errors).toEqual([`${join(dir, 'broken', 'SKILL.md')}: description is required`]);
  });

  it('list: each skill with its source and whether a channel may use it; exit 1 with a problem', () => {
    const catalog = loadSkills([{ kind: 'data dir', path: dir, required: true }]);
    const policy = loadPolicy(
      (() => {
        const f = join(dir, '..', `list-${n}.yaml`);
        writeFileSync(f, 'version: 1\nchannels:\n  "slack:C1":\n    skills: [pptx]\n');
        return f;
      })(),
    );
    const r = recorder();
    expect(skillsList(catalog, policy, { channel: 'slack:C1' }, r.out)).toBe(1);
    expect(r.lines).toContain('sheets (data dir)  not allowed');
    expect(r.lines[0]).toBe('skills in slack:C1: pptx (from channels.slack:C1)');
    expect(r.errors).toContain('warning: the policy allows skill pptx in slack:C1, but no such skill is installed');
    expect(r.errors).toContain(`problem: ${join(dir, 'broken', 'SKILL.md')}: description is required`);
  });
});

describe('the demo deck sample', () => {
  it('is chosen for notes and a deck, with the slide count asked for', () => {
    const first =
      'Request from Ana:\n<request>\nturn these notes into a 5-slide deck\n</request>\n\nInput files:\n- /workspace/in/deck-notes.md (text/markdown, 900 bytes)\n';
    const { sample, input } = matchSample(first);
    expect(sample.id).toBe('deck');
    expect(input).toBe('deck-notes.md');
    expect(sample.calls(input, first).map((c) => c.name)).toEqual(['load_skill', 'run_command', 'deliver_artifact']);
    expect(JSON.stringify(sample.calls(input, first)[1])).toContain('--slides 5');
  });
});
