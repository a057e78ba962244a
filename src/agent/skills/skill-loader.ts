import { type Dirent, existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { maxSkillFileBytes, parseSkillFile } from './skill-format.ts';

/** Where a skill came from; later kinds in `skillSourcePrecedence` win a name clash. */
export type SkillSourceKind = 'built-in' | 'data dir' | 'config';

/** Highest precedence first: a skill from handoff.yaml's paths hides one of the same name in the data dir, which hides a built-in one. */
export const skillSourcePrecedence: readonly SkillSourceKind[] = ['config', 'data dir', 'built-in'];

/** One place skills are read from: a folder of skill folders, or a skill folder itself. */
export interface SkillSource {
  kind: SkillSourceKind;
  /** Absolute or relative to the working directory. */
  path: string;
  /** A missing folder is reported as a problem (a configured path) or silently skipped (the data dir's `skills/`). */
  required: boolean;
}

/** A skill that loaded: its front matter and where its folder is. Its body is read again when it is used. */
export interface Skill {
  name: string;
  description: string;
  /** Absolute path of the skill's folder (mounted read-only at `/skills/<name>` in a run's sandbox). */
  dir: string;
  /** Absolute path of its SKILL.md. */
  file: string;
  source: SkillSourceKind;
  license?: string;
  allowedTools?: string;
}

/** What `loadSkills` found: the skills by name, and every problem, each naming its file. */
export interface SkillCatalog {
  skills: Skill[];
  /** One line per broken skill folder or missing source, naming the file or folder. */
  problems: string[];
  /** One line per skill hidden by another of the same name from a source that takes precedence. */
  shadowed: string[];
}

/** The repository's own `skills/` folder (built-in skills): next to `src/` (or `dist/`). */
export function builtInSkillsDir(): string {
  return fileURLToPath(new URL('../../../skills/', import.meta.url));
}

/**
 * The sources of a deployment, highest precedence first: `skills.paths` from handoff.yaml
 * (in the order listed), `<dataDir>/skills`, then the built-in skills.
 */
export function skillSources(options: {
  dataDir: string;
  paths?: readonly string[];
  builtIn?: string | false;
}): SkillSource[] {
  const sources: SkillSource[] = (options.paths ?? []).map((path) => ({ kind: 'config', path, required: true }));
  sources.push({ kind: 'data dir', path: join(options.dataDir, 'skills'), required: false });
  if (options.builtIn !== false)
    sources.push({ kind: 'built-in', path: options.builtIn ?? builtInSkillsDir(), required: true });
  return sources;
}

/**
 * Reads every skill from the sources, in order of precedence (first wins a name). A broken
 * folder is reported with its file named and left out; the rest still load.
 */
export function loadSkills(sources: readonly SkillSource[]): SkillCatalog {
  const byName = new Map<string, Skill>();
  const problems: string[] = [];
  const shadowed: string[] = [];
  for (const source of sources) {
    const root = resolve(source.path);
    if (!existsSync(root)) {
      if (source.required) problems.push(`${root}: the skills folder (${source.kind}) does not exist`);
      continue;
    }
    let dirs: string[];
    try {
      if (!statSync(root).isDirectory()) {
        problems.push(`${root}: the skills path (${source.kind}) is not a folder`);
        continue;
      }
      // A path may name one skill folder, or a folder of them.
      dirs = existsSync(join(root, 'SKILL.md'))
        ? [root]
        : readdirSync(root, { withFileTypes: true })
            .filter((e) => !e.name.startsWith('.') && (e.isDirectory() || e.isSymbolicLink()))
            .map((e) => join(root, e.name))
            .filter((p) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true)
            .sort();
    } catch (err) {
      problems.push(
        `${root}: cannot read the skills folder (${source.kind}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
      continue;
    }
    for (const dir of dirs) {
      const loaded = readSkill(dir, source.kind);
      if ('problem' in loaded) {
        problems.push(loaded.problem);
        continue;
      }
      const skill = loaded.skill;
      const winner = byName.get(skill.name);
      if (winner) {
        shadowed.push(`${skill.name}: ${skill.dir} (${skill.source}) is hidden by ${winner.dir} (${winner.source})`);
        continue;
      }
      byName.set(skill.name, skill);
    }
  }
  const skills = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { skills, problems, shadowed };
}

/** Validates one skill folder (`handoff skills check DIR`). */
export function checkSkillDir(dir: string): { skill: Skill } | { problem: string } {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) return { problem: `${root}: not a folder` };
  return readSkill(root, 'config');
}

function readSkill(dir: string, source: SkillSourceKind): { skill: Skill } | { problem: string } {
  const file = join(dir, 'SKILL.md');
  let text: string;
  try {
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (!st) return { problem: `${file}: missing (a skill folder needs a SKILL.md)` };
    if (!statSync(file).isFile()) return { problem: `${file}: not a regular file` };
    if (statSync(file).size > maxSkillFileBytes)
      return { problem: `${file}: larger than ${maxSkillFileBytes / 1024} KiB` };
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { problem: `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  let parsed: ReturnType<typeof parseSkillFile>;
  try {
    parsed = parseSkillFile(text);
  } catch (err) {
    return { problem: `${file}: ${(err as Error).message}` };
  }
  const { frontMatter } = parsed;
  const folder = basename(dir);
  if (frontMatter.name !== folder) {
    return {
      problem: `${file}: name ${JSON.stringify(frontMatter.name)} does not match its folder ${JSON.stringify(folder)} (they must be the same)`,
    };
  }
  return {
    skill: {
      name: frontMatter.name,
      description: frontMatter.description.replace(/\s+/g, ' '),
      dir,
      file,
      source,
      ...(frontMatter.license ? { license: frontMatter.license } : {}),
      ...(frontMatter['allowed-tools'] ? { allowedTools: frontMatter['allowed-tools'] } : {}),
    },
  };
}

/** A skill's SKILL.md body, read again now (it may have been edited since start). */
export function readSkillBody(skill: Skill): string {
  const text = readFileSync(skill.file, 'utf8');
  return parseSkillFile(text).body;
}

/** A skill's files, relative to its folder, hidden ones left out: at most `max`, depth 6. */
export function listSkillFiles(
  skill: Skill,
  max = 200,
): { files: Array<{ path: string; size: number }>; more: boolean } {
  const files: Array<{ path: string; size: number }> = [];
  let more = false;
  const walk = (dir: string, depth: number) => {
    if (depth > 6) return;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile()) {
        if (files.length >= max) {
          more = true;
          return;
        }
        files.push({ path: relative(skill.dir, p), size: statSync(p).size });
      }
    }
  };
  walk(skill.dir, 0);
  return { files, more };
}

/**
 * The skills a channel may use. `allowed` is the channel policy's `skills:`: undefined or
 * `'*'` admits every loaded skill; a list admits those names only.
 */
export function skillsAllowed(
  catalog: SkillCatalog | undefined,
  allowed: readonly string[] | '*' | undefined,
): Skill[] {
  const all = catalog?.skills ?? [];
  if (allowed === undefined || allowed === '*') return all;
  const names = new Set(allowed);
  return all.filter((s) => names.has(s.name));
}
