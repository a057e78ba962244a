import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * The Agent Skills format (agentskills.io): a folder whose SKILL.md starts with YAML front
 * matter holding `name` and `description`, followed by Markdown instructions. Other files
 * (scripts/, references/, assets/…) sit alongside. Fields other than these are accepted as
 * they are, so a skill folder written for another agent loads unchanged.
 */

/** 1–64 lower-case letters, digits and single hyphens, not starting or ending with one. */
export const skillNamePattern = /^[a-z0-9](?:[a-z0-9]|-(?!-))*$/;
export const maxSkillNameLength = 64;
export const maxSkillDescriptionLength = 1024;
/** SKILL.md larger than this is refused: it is meant to be read by a model in one go. */
export const maxSkillFileBytes = 256 * 1024;

export const SkillNameSchema = z
  .string({ error: 'must be a string' })
  .min(1, { error: 'must not be empty' })
  .max(maxSkillNameLength, { error: `must be at most ${maxSkillNameLength} characters` })
  .regex(skillNamePattern, {
    error: 'must be lower-case letters, digits and single hyphens, not starting or ending with a hyphen',
  });

export const SkillFrontMatterSchema = z.looseObject({
  name: SkillNameSchema,
  description: z
    .string({ error: 'is required: one or two sentences saying what the skill does and when to use it' })
    .trim()
    .min(1, { error: 'must not be empty' })
    .max(maxSkillDescriptionLength, { error: `must be at most ${maxSkillDescriptionLength} characters` }),
  license: z.string({ error: 'must be a string' }).optional(),
  compatibility: z.string({ error: 'must be a string' }).max(500).optional(),
  'allowed-tools': z.string({ error: 'must be a string (space-separated tool names)' }).optional(),
  metadata: z.record(z.string(), z.unknown(), { error: 'must be a mapping' }).optional(),
});
export type SkillFrontMatter = z.infer<typeof SkillFrontMatterSchema>;

/** A SKILL.md split into its validated front matter and its Markdown body. */
export interface ParsedSkillFile {
  frontMatter: SkillFrontMatter;
  body: string;
}

/**
 * Parses the text of a SKILL.md. Throws an Error whose message says what is wrong (without
 * the file name: the caller adds it), never returning a half-valid skill.
 */
export function parseSkillFile(text: string): ParsedSkillFile {
  const source = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  if (!source.startsWith('---\n')) {
    throw new Error('it does not start with YAML front matter (a line "---", name: and description:, then "---")');
  }
  const end = source.indexOf('\n---', 3);
  if (end < 0 || !/^\n---[ \t]*(?:\n|$)/.test(source.slice(end))) {
    throw new Error('its front matter is not closed by a line "---"');
  }
  const yamlText = source.slice(4, end + 1);
  let data: unknown;
  try {
    data = parseYaml(yamlText);
  } catch (err) {
    throw new Error(`its front matter is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new Error('its front matter must be a mapping with name: and description:');
  }
  const result = SkillFrontMatterSchema.safeParse(data);
  if (!result.success) {
    const reasons = result.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.') || 'front matter';
      return issue.code === 'invalid_type' && (data as Record<string, unknown>)[key] === undefined
        ? `${key} is required`
        : `${key} ${issue.message}`;
    });
    throw new Error(reasons.join('; '));
  }
  const afterFence = source.indexOf('\n', end + 1);
  const body = afterFence < 0 ? '' : source.slice(afterFence + 1).trim();
  return { frontMatter: result.data, body };
}
