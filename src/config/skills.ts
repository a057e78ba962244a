import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, HandoffError } from '../core/index.ts';

/**
 * The `skills:` section of handoff.yaml (docs/skills.md): extra folders to read Agent Skills
 * from, besides the built-in ones and `<dataDir>/skills`.
 */
export const SkillsConfigSchema = z.strictObject({
  /**
   * Folders of skill folders, or skill folders themselves. Relative paths are read from the
   * folder handoff.yaml is in. Earlier paths win a name clash, and every path wins over the
   * data dir and the built-in skills.
   */
  paths: z
    .array(z.string().min(1, 'must not be empty').max(4096), { error: 'must be a list of folder paths' })
    .max(100),
});

/** The section as Handoff uses it: absolute paths. */
export interface SkillsConfig {
  paths: string[];
}

/** Validates the section; `file` is handoff.yaml's path, for messages and relative paths. */
export function parseSkillsConfig(raw: unknown, file: string): SkillsConfig {
  if (raw === undefined || raw === null) return { paths: [] };
  const result = SkillsConfigSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = ['skills', ...issue.path.map(String)].join('.');
      const reason =
        issue.code === 'unrecognized_keys' ? `unknown key(s): ${issue.keys.join(', ')} (only paths)` : issue.message;
      return `  ${file}: ${key}: ${reason}`;
    });
    throw new HandoffError(ErrorCodes.config, `invalid skills section:\n${lines.join('\n')}`);
  }
  const base = dirname(resolve(file));
  return { paths: result.data.paths.map((p) => (isAbsolute(p) ? p : resolve(base, p))) };
}
