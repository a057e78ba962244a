import { join } from 'node:path';
import type { ValidateFunction } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { chartManagedSettings, configProperties } from '../../scripts/chart-config-schema.ts';
import { settingDefs } from '../../src/config/index.ts';
import {
  chartDir,
  compileValuesSchema,
  describeErrors,
  exampleFiles,
  mergeValues,
  readYamlFile,
  type Values,
} from '../helpers/chart.ts';

/**
 * values.schema.json is what makes `helm install` refuse a typo. Helm validates the merged
 * values (values.yaml with every -f file on top) against it; these tests do the same with ajv.
 */

/** Objects whose keys are the user's own (labels, annotations, env names…): their values are still typed. */
const userKeyedMaps = new Set([
  'bot.podAnnotations',
  'bot.nodeSelector',
  'runner.podAnnotations',
  'runner.nodeSelector',
  'ingress.annotations',
  'metrics.serviceMonitor.labels',
  'metrics.grafanaDashboard.labels',
  'networkPolicy.kedaOperatorLabels',
  'networkPolicy.metricsNamespaceLabels',
  'networkPolicy.botIngressFrom[].namespaceSelector.matchLabels',
  'networkPolicy.botIngressFrom[].podSelector.matchLabels',
  'secrets.inline',
  'connectors',
  'connectors{}.env',
  'connectors{}.headers',
  'connectors{}.trust',
  'config.slackApprovers',
]);

let schema: Values;
let validate: ValidateFunction;
let defaults: Values;

beforeAll(async () => {
  ({ schema, validate } = await compileValuesSchema());
  defaults = await readYamlFile(join(chartDir, 'values.yaml'));
});

/** The problems Helm would report for these values on top of values.yaml. */
function problems(over: Values): string[] {
  return validate(mergeValues(defaults, over)) ? [] : describeErrors(validate.errors);
}

describe('values.schema.json', () => {
  it('accepts values.yaml as it is', () => {
    expect(validate(defaults) ? [] : describeErrors(validate.errors)).toEqual([]);
  });

  it('accepts every example in charts/handoff/examples', async () => {
    const files = await exampleFiles();
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const values = await readYamlFile(join(chartDir, 'examples', file));
      expect({ file, problems: problems(values) }).toEqual({ file, problems: [] });
    }
  });

  it('refuses an unknown key, naming it, at the top and deep down', () => {
    expect(problems({ replica: 3 })).toContain('replica: unknown key');
    expect(problems({ bot: { replica: 3 } })).toContain('bot.replica: unknown key');
    expect(problems({ runner: { autoscaling: { maxReplica: 3 } } })).toContain(
      'runner.autoscaling.maxReplica: unknown key',
    );
    expect(problems({ networkPolicy: { egress: { modelAPI: [] } } })).toContain(
      'networkPolicy.egress.modelAPI: unknown key',
    );
    expect(problems({ config: { runTimeout: 600000 } })).toContain('config.runTimeout: unknown key');
  });

  it('refuses a wrong type, naming the key', () => {
    expect(problems({ bot: { replicas: 'three' } })).toContain('bot.replicas: must be integer');
    expect(problems({ runner: { autoscaling: { enabled: 'yes' } } })).toContain(
      'runner.autoscaling.enabled: must be boolean',
    );
    expect(problems({ config: { runTimeoutMs: '15m' } })).toContain('config.runTimeoutMs: must be integer');
    expect(problems({ config: { logLevel: 'verbose' } })).toContain(
      'config.logLevel: must be equal to one of the allowed values',
    );
    expect(problems({ networkPolicy: { egress: { redis: [{ cidr: 'redis.internal', ports: [6379] }] } } })).toEqual(
      expect.arrayContaining([expect.stringMatching(/^networkPolicy\.egress\.redis\.0\.cidr: must match pattern/)]),
    );
  });

  it('refuses fewer than two bots', () => {
    expect(problems({ bot: { replicas: 1 } })).toContain('bot.replicas: must be >= 2');
    expect(problems({ bot: { replicas: 2 } })).toEqual([]);
  });

  it('refuses inline secrets unless secrets.dangerouslyAllowInline says so', () => {
    expect(problems({ secrets: { inline: { ANTHROPIC_API_KEY: 'sk-ant-x' } } })).toContain(
      'secrets.inline: must NOT have more than 0 properties',
    );
    expect(problems({ secrets: { dangerouslyAllowInline: true, inline: { ANTHROPIC_API_KEY: 'sk-ant-x' } } })).toEqual(
      [],
    );
  });

  it('refuses a secret setting in handoff.yaml (secrets come from a Secret)', () => {
    const secrets = settingDefs.filter((d) => 'secret' in d && d.secret);
    expect(secrets.length).toBeGreaterThan(5);
    for (const def of secrets) {
      expect(problems({ config: { [def.key]: 'a-secret-value-0123456789abcdef0123' } })).toContain(
        `config.${def.key}: unknown key`,
      );
    }
  });

  it('offers in config exactly the settings of src/config/settings.ts that are neither secret nor set by the chart, typed alike', () => {
    const config = (schema.properties as Record<string, Values>).config as { properties: Record<string, Values> };
    const expected = configProperties();
    const missing = Object.keys(expected).filter((k) => !(k in config.properties));
    const extra = Object.keys(config.properties).filter((k) => !(k in expected));
    // Out of step: run `npx tsx scripts/chart-config-schema.ts`.
    expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    expect(config.properties).toEqual(expected);
    for (const key of chartManagedSettings) expect(settingDefs.some((d) => d.key === key)).toBe(true);
    for (const def of settingDefs.filter((d) => 'secret' in d && d.secret))
      expect(config.properties).not.toHaveProperty(def.key);
  });

  it("accepts in config what Handoff's own settings schema accepts, and refuses what it refuses", () => {
    const config = (schema.properties as Record<string, Values>).config as { properties: Record<string, Values> };
    for (const key of Object.keys(config.properties)) {
      const def = settingDefs.find((d) => d.key === key);
      if (!def) throw new Error(`config.${key} is no setting`);
      // The setting's own default (or a representative value) passes both schemas.
      const parsed = (def.schema as z.ZodType).safeParse(undefined);
      const sample = parsed.success && parsed.data !== undefined ? sampleFor(parsed.data) : undefined;
      if (sample === undefined) continue;
      expect({ key, problems: problems({ config: { [key]: sample } }) }).toEqual({ key, problems: [] });
      expect((def.schema as z.ZodType).safeParse(sample).success).toBe(true);
    }
    // Below a minimum, both refuse.
    let belowMinimum = 0;
    for (const [key, prop] of Object.entries(config.properties)) {
      if (typeof prop.minimum !== 'number') continue;
      const def = settingDefs.find((d) => d.key === key);
      if (!def) throw new Error(`config.${key} is no setting`);
      const below = prop.minimum - 1;
      expect(problems({ config: { [key]: below } })).toContain(`config.${key}: must be >= ${prop.minimum}`);
      expect((def.schema as z.ZodType).safeParse(below).success).toBe(false);
      belowMinimum++;
    }
    expect(belowMinimum).toBeGreaterThan(20);
  });

  it('has additionalProperties false on every object, except maps keyed by the user whose values are typed', () => {
    const loose: string[] = [];
    const maps: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Values;
      if (n.type === 'object') {
        if (n.additionalProperties === false) {
          // strict
        } else if (typeof n.additionalProperties === 'object' && n.additionalProperties !== null) {
          maps.push(path);
          if (!('type' in (n.additionalProperties as Values)) && !('anyOf' in (n.additionalProperties as Values)))
            loose.push(`${path} (untyped map values)`);
          walk(n.additionalProperties, `${path}{}`);
        } else {
          loose.push(path);
        }
      }
      for (const [k, v] of Object.entries((n.properties as Values | undefined) ?? {}))
        walk(v, path ? `${path}.${k}` : k);
      if (n.items) walk(n.items, `${path}[]`);
      for (const alt of (n.anyOf as unknown[] | undefined) ?? []) walk(alt, path);
    };
    walk(schema, '');
    expect(loose).toEqual([]);
    expect(maps.filter((p) => !userKeyedMaps.has(p))).toEqual([]);
  });
});

/** A value of the setting's type to try against both schemas. */
function sampleFor(value: unknown): unknown {
  if (Array.isArray(value)) return value.join(',');
  return value;
}
