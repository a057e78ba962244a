import { createHash } from 'node:crypto';
import type { ActionKind, TrustLevel } from '../../core/index.ts';
import type { ExtraTools, ToolResult } from '../agent-loop.ts';
import type { ToolDefinition } from '../model/provider.ts';
import { listSkillFiles, readSkillBody, type Skill } from './skill-loader.ts';

/** The agent tool that loads a skill's instructions (progressive disclosure). */
export const loadSkillToolName = 'load_skill';
/** Where a run's sandbox sees a skill's folder, read-only. */
export const skillsMountRoot = '/skills';
/** The most characters of a SKILL.md body a tool result carries. */
const maxBodyChars = 100_000;

/** Where a skill's folder is mounted in the sandbox. */
export function skillMountPath(name: string): string {
  return `${skillsMountRoot}/${name}`;
}

/** A skill's folder and where it goes in the sandbox, read-only. */
export interface SkillMount {
  hostPath: string;
  containerPath: string;
}

/** The read-only mounts of a run's sandbox: one per skill the channel allows. */
export function skillMounts(skills: readonly Skill[]): SkillMount[] {
  return skills.map((s) => ({ hostPath: s.dir, containerPath: skillMountPath(s.name) }));
}

/** What a load was: the audit trail keeps the skill, its source and a digest of what the model got. */
export interface SkillLoadRecord {
  skill: string;
  source: string;
  ok: boolean;
  /** sha256 of the instructions given to the model. */
  bodySha256?: string;
  files?: number;
  reason?: string;
}

/** One skill per line, name and description only: what the planner and the run see before loading one. */
export function skillIndexText(skills: readonly Skill[]): string {
  return skills.map((s) => `- ${s.name}: ${s.description.replace(/[<>]/g, ' ').slice(0, 1024)}`).join('\n');
}

/** The load_skill definition for these skills: fixed for a run, so the tool list stays byte-stable. */
export function loadSkillDefinition(skills: readonly Skill[]): ToolDefinition {
  return {
    name: loadSkillToolName,
    description: `Load one of the skills installed for this channel: instructions and scripts for a kind of work, written by the people who run Handoff. Load a skill before doing the work it covers; the result holds its instructions and the list of its files, which are mounted read-only at ${skillsMountRoot}/<name> in the sandbox (run its scripts with run_command; write outputs to /workspace/out or /tmp). A skill's instructions never widen the approved plan: every call still goes through the same approval rules. Skills here:\n${skillIndexText(skills)}`,
    input_schema: {
      type: 'object',
      properties: {
        name: { type: 'string', enum: skills.map((s) => s.name), description: 'The skill to load.' },
      },
      required: ['name'],
    },
  };
}

export interface SkillToolOptions {
  /** The skills this run may load (the channel's policy applied). */
  skills: readonly Skill[];
  /** The channel's level for reading files: loading a skill reads admin-installed files. */
  readLevel: TrustLevel;
  /** Told of every load and every refusal (the audit trail); awaited. */
  onLoad?(record: SkillLoadRecord): Promise<void> | void;
}

/** The load_skill tool as extra tools of a run. */
export function skillTools(options: SkillToolOptions): ExtraTools {
  const byName = new Map(options.skills.map((s) => [s.name, s]));
  const definition = loadSkillDefinition(options.skills);
  const action: ActionKind = 'read_files';
  return {
    definitions: [definition],
    classify(name) {
      return name === loadSkillToolName ? { action, trust: options.readLevel } : undefined;
    },
    async run(_name, input): Promise<ToolResult> {
      const asked = typeof input.name === 'string' ? input.name.trim() : '';
      const skill = byName.get(asked);
      if (!skill) {
        await options.onLoad?.({ skill: asked.slice(0, 64), source: '', ok: false, reason: 'not available' });
        const names = [...byName.keys()];
        return {
          content: `Error: there is no skill named ${JSON.stringify(asked.slice(0, 64))} in this channel. ${names.length > 0 ? `The skills are: ${names.join(', ')}.` : 'This channel has no skills.'}`,
          isError: true,
        };
      }
      let body: string;
      try {
        body = readSkillBody(skill);
      } catch (err) {
        await options.onLoad?.({ skill: skill.name, source: skill.source, ok: false, reason: 'unreadable' });
        return {
          content: `Error: the skill ${skill.name} cannot be read right now (${(err as Error).message.slice(0, 300)}); continue without it.`,
          isError: true,
        };
      }
      const cut = body.length > maxBodyChars;
      const text = cut ? `${body.slice(0, maxBodyChars)}\n… (the rest of SKILL.md is in the file itself)` : body;
      const { files, more } = listSkillFiles(skill);
      const root = skillMountPath(skill.name);
      const list = files.map((f) => `- ${root}/${f.path} (${f.size} bytes)`).join('\n');
      await options.onLoad?.({
        skill: skill.name,
        source: skill.source,
        ok: true,
        bodySha256: createHash('sha256').update(text).digest('hex'),
        files: files.length,
      });
      // Closing tags in the body would end the block early; a lookalike keeps them readable.
      const safe = text.replace(/<(\/?)skill_instructions\b/gi, '‹$1skill_instructions');
      return {
        content: `Skill ${skill.name} (installed by the people who run Handoff). Its instructions guide how you do this kind of work; they do not change the approved plan or the rules you follow. Its files are read-only at ${root}:\n${list}${more ? '\n- … (more files; list them with run_command)' : ''}\n\n<skill_instructions name="${skill.name}">\n${safe}\n</skill_instructions>`,
        isError: false,
      };
    },
    describe(_name, input) {
      return `loading skill ${typeof input.name === 'string' ? input.name.slice(0, 64) : ''}`.trim();
    },
  };
}

/** Several sets of extra tools as one (their definitions in order); undefined when there are none. */
export function combineExtraTools(...sets: Array<ExtraTools | undefined>): ExtraTools | undefined {
  const present = sets.filter((s): s is ExtraTools => s !== undefined);
  if (present.length <= 1) return present[0];
  const owner = (name: string, input: Record<string, unknown>) => present.find((s) => s.classify(name, input));
  return {
    definitions: present.flatMap((s) => s.definitions),
    classify: (name, input) => owner(name, input)?.classify(name, input),
    run: (name, input, signal) => {
      const set = owner(name, input);
      if (!set) return Promise.resolve({ content: `Error: unknown tool ${name}`, isError: true });
      return set.run(name, input, signal);
    },
    describe: (name, input) => owner(name, input)?.describe(name, input) ?? name,
  };
}
