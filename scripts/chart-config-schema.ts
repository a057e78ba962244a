// The `config:` section of charts/handoff/values.schema.json, made from the settings table
// (src/config/settings.ts): every setting that is neither secret nor set by the chart
// itself, typed as Handoff's own zod schema types it. After adding a setting, run
//   npx tsx scripts/chart-config-schema.ts && npx biome format --write charts/handoff/values.schema.json
// to rewrite that section; test/unit/chart-values.test.ts fails until they agree.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { settingDefs } from '../src/config/index.ts';

/**
 * Settings the chart sets in the pods' environment (templates/_helpers.tpl and the
 * Deployments), or leaves at their default on purpose: builtInSkillsDir stays /app/skills,
 * where the runner pod's Docker engine gets a copy of the skills.
 */
export const chartManagedSettings = [
  'host',
  'port',
  'dataDir',
  'redisUrl',
  'metricsPort',
  'shutdownTimeoutMs',
  'runnerId',
  'sandboxImage',
  's3Bucket',
  's3Prefix',
  's3Endpoint',
  's3Region',
  'policyFile',
  'builtInSkillsDir',
] as const;

/** JSON Schema of each setting handoff.yaml may carry in the chart, by its handoff.yaml key. */
export function configProperties(): Record<string, Record<string, unknown>> {
  const properties: Record<string, Record<string, unknown>> = {};
  for (const def of settingDefs) {
    if ('secret' in def && def.secret) continue;
    if ((chartManagedSettings as readonly string[]).includes(def.key)) continue;
    const json = z.toJSONSchema(def.schema as z.ZodType, { io: 'input', unrepresentable: 'any' }) as Record<
      string,
      unknown
    >;
    delete json.$schema;
    // Helm applies no defaults from a schema; Handoff applies its own.
    delete json.default;
    // A map's keys are the user's; its values stay typed.
    delete json.propertyNames;
    properties[def.key] = { description: `${def.env}: ${def.doc}`, ...json };
  }
  return properties;
}

export const valuesSchemaFile = fileURLToPath(new URL('../charts/handoff/values.schema.json', import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const schema = JSON.parse(readFileSync(valuesSchemaFile, 'utf8'));
  schema.properties.config.properties = configProperties();
  writeFileSync(valuesSchemaFile, `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`${valuesSchemaFile}: config has ${Object.keys(schema.properties.config.properties).length} settings`);
}
