import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

const run = promisify(execFile);

export const chartDir = fileURLToPath(new URL('../../charts/handoff/', import.meta.url));
const rendererDir = fileURLToPath(new URL('../../scripts/chart-render/', import.meta.url));

export type Values = Record<string, unknown>;

export async function readYamlFile(path: string): Promise<Values> {
  return (parseYaml(await readFile(path, 'utf8')) as Values | null) ?? {};
}

/** charts/handoff/examples/*.yaml, by file name. */
export async function exampleFiles(): Promise<string[]> {
  return (await readdir(join(chartDir, 'examples'))).filter((f) => f.endsWith('.yaml')).sort();
}

function isMap(v: unknown): v is Values {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * values.yaml with user values on top, as Helm merges `-f` files before it validates them
 * against values.schema.json: maps merge key by key, anything else is replaced, null removes.
 */
export function mergeValues(base: Values, over: Values): Values {
  const out: Values = structuredClone(base);
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isMap(v) && isMap(out[k])) out[k] = mergeValues(out[k] as Values, v);
    else out[k] = structuredClone(v);
  }
  return out;
}

/** values.schema.json compiled with ajv (draft-07, strict), with the `uri` format Helm's validator knows. */
export async function compileValuesSchema(): Promise<{ schema: Values; validate: ValidateFunction }> {
  const schema = JSON.parse(await readFile(join(chartDir, 'values.schema.json'), 'utf8')) as Values;
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addFormat('uri', (s: string) => URL.canParse(s));
  return { schema, validate: ajv.compile(schema) };
}

/** One line per problem, naming the key the way a person reads it: `bot.replicas: must be >= 2`. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const path = e.instancePath.split('/').filter(Boolean).join('.');
    const key =
      e.keyword === 'additionalProperties'
        ? [path, (e.params as { additionalProperty: string }).additionalProperty].filter(Boolean).join('.')
        : path || '(top level)';
    const extra = e.keyword === 'additionalProperties' ? 'unknown key' : (e.message ?? e.keyword);
    return `${key}: ${extra}`;
  });
}

/** A built scripts/chart-render binary, or why it cannot be built here. */
export async function buildRenderer(): Promise<{ ok: true; bin: string; dir: string } | { ok: false; reason: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'handoff-chart-render-'));
  const cache = join(tmpdir(), 'handoff-go-build-cache');
  await mkdir(cache, { recursive: true });
  const bin = join(dir, 'chart-render');
  try {
    // Debian's golang-github-masterminds-sprig-dev installs sprig under GOPATH, not as a module.
    await run('go', ['build', '-o', bin, '.'], {
      cwd: rendererDir,
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: cache, GOFLAGS: '' },
      timeout: 180_000,
    });
    return { ok: true, bin, dir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const reason =
      e.code === 'ENOENT'
        ? 'go is not installed (apt-get install golang-go golang-github-masterminds-sprig-dev)'
        : `scripts/chart-render does not build: ${e.stderr?.trim() || e.message}`;
    return { ok: false, reason };
  }
}

export interface Rendered {
  /** charts/handoff/templates/<file> it came from. */
  source: string;
  doc: Values;
}

/** Renders the chart as `helm template RELEASE charts/handoff -n NAMESPACE -f ...` would. */
export async function renderChart(
  bin: string,
  valueFiles: string[],
  options: { chart?: string; release?: string; namespace?: string } = {},
): Promise<Rendered[]> {
  const { stdout } = await run(
    bin,
    [options.chart ?? chartDir, options.release ?? 'handoff', options.namespace ?? 'handoff', ...valueFiles],
    { maxBuffer: 32 * 1024 * 1024 },
  );
  const out: Rendered[] = [];
  // The renderer prints each document as "---", "# Source: <template>", then the YAML.
  for (const chunk of stdout.split(/^---$/m)) {
    const source = /^# Source: (\S+)$/m.exec(chunk)?.[1];
    if (!source) continue;
    const docs = parseAllDocuments(chunk);
    for (const d of docs) {
      if (d.errors.length > 0) throw new Error(`${source}: rendered YAML does not parse: ${d.errors[0]?.message}`);
    }
    if (docs.length !== 1) throw new Error(`${source}: expected one document, found ${docs.length}`);
    const doc = docs[0]?.toJS() as Values | null;
    if (doc) out.push({ source, doc });
  }
  return out;
}

/** The error `helm install` would stop with (the renderer's stderr), or undefined when it renders. */
export async function renderError(bin: string, valueFiles: string[], chart?: string): Promise<string | undefined> {
  try {
    await renderChart(bin, valueFiles, chart ? { chart } : {});
    return undefined;
  } catch (err) {
    return (err as { stderr?: string }).stderr ?? String(err);
  }
}
