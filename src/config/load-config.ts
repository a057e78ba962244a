import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCodes, HandoffError } from '../core/index.ts';
import { type ConnectorConfig, parseConnectors } from './connectors.ts';
import { type Config, settingDefs } from './settings.ts';
import { parseSkillsConfig, type SkillsConfig } from './skills.ts';

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Path of handoff.yaml; default HANDOFF_CONFIG, else ./handoff.yaml when present. */
  file?: string;
}

const schema = z.strictObject(Object.fromEntries(settingDefs.map((d) => [d.key, d.schema])));

/**
 * Reads settings once: handoff.yaml (when present), then the environment on top.
 * Fails fast with every problem named by its env variable or file key.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const { file, fromFile } = readConfigFile(options);
  const raw: Record<string, unknown> = { ...fromFile };
  // Sections that are not settings have their own readers.
  delete raw.connectors;
  delete raw.skills;
  for (const def of settingDefs) {
    const value = env[def.env];
    if (value !== undefined && value !== '') raw[def.key] = value;
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const def = settingDefs.find((d) => d.key === key);
      const where = def
        ? `${def.env}${file && key in fromFile ? ` (or ${key} in ${file})` : ''}`
        : `${key} in ${file ?? 'config'}`;
      const reason =
        issue.code === 'unrecognized_keys' ? `unknown setting(s): ${issue.keys.join(', ')}` : issue.message;
      return `  ${where}: ${reason}`;
    });
    throw new HandoffError(ErrorCodes.config, `invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data as Config;
}

/** The `connectors:` section of handoff.yaml, validated (docs/connectors.md); empty without one. */
export function loadConnectors(options: LoadOptions = {}): ConnectorConfig[] {
  const { file, fromFile } = readConfigFile(options);
  return parseConnectors(fromFile.connectors, file ?? 'handoff.yaml');
}

/** The `skills:` section of handoff.yaml, validated, paths made absolute (docs/skills.md); no paths without one. */
export function loadSkillsConfig(options: LoadOptions = {}): SkillsConfig {
  const { file, fromFile } = readConfigFile(options);
  return parseSkillsConfig(fromFile.skills, file ?? 'handoff.yaml');
}

function readConfigFile(options: LoadOptions): { file?: string; fromFile: Record<string, unknown> } {
  const env = options.env ?? process.env;
  const file = options.file ?? env.HANDOFF_CONFIG ?? (existsSync('handoff.yaml') ? 'handoff.yaml' : undefined);
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new HandoffError(ErrorCodes.config, `cannot read config file ${file}: ${(err as Error).message}`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new HandoffError(ErrorCodes.config, `${file}: the top level must be a mapping of setting: value`);
    }
    fromFile = (parsed as Record<string, unknown> | null) ?? {};
  }
  return file ? { file, fromFile } : { fromFile };
}

/** The settings as a Markdown table (README), secrets never shown with a value. */
export function settingsTable(): string {
  const rows = settingDefs.map((d) => {
    const parsed = d.schema.safeParse(undefined);
    const dflt = parsed.success && parsed.data !== undefined ? `\`${String(parsed.data)}\`` : '—';
    return `| \`${d.env}\` | \`${d.key}\` | ${dflt} | ${d.doc} |`;
  });
  return ['| env | handoff.yaml | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
