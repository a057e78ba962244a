import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.ts';
import { HandoffError } from '../../../src/core/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'handoff-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let written = 0;
function yamlFile(text: string): string {
  const file = join(dir, `handoff-${++written}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** An empty config file, so a handoff.yaml in the working directory never leaks in. */
const empty = () => yamlFile('');

function configError(fn: () => unknown): HandoffError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandoffError) return err;
    throw err;
  }
  throw new Error('expected a configuration error, but the config loaded');
}

describe('loadConfig', () => {
  it('uses the documented defaults when nothing is set', () => {
    const config = loadConfig({ env: {}, file: empty() });
    expect(config).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      dataDir: '.handoff',
      model: 'claude-sonnet-5-5',
      sandboxImage: 'handoff-sandbox:latest',
      sandboxMemoryMb: 1024,
      sandboxCpus: 1,
      commandTimeoutMs: 120_000,
      runTimeoutMs: 900_000,
      maxUploadBytes: 25 * 1024 * 1024,
      maxFilesPerRequest: 10,
      runnerConcurrency: 2,
      maxTokensPerRun: 400_000,
      maxCostUsdPerRun: 5,
      logLevel: 'info',
    });
    expect(config.anthropicApiKey).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.allowSelfApproval).toBeUndefined();
  });

  it('reads handoff.yaml and lets the environment override it', () => {
    const file = yamlFile('port: 4000\nmodel: claude-from-yaml\nsandboxMemoryMb: 2048\n');
    const config = loadConfig({
      env: { HANDOFF_PORT: '5000', HANDOFF_ALLOW_SELF_APPROVAL: 'no', HANDOFF_MODEL: '' },
      file,
    });
    expect(config.port).toBe(5000);
    expect(config.model).toBe('claude-from-yaml');
    expect(config.sandboxMemoryMb).toBe(2048);
    expect(config.allowSelfApproval).toBe(false);
  });

  it('finds the file named by HANDOFF_CONFIG', () => {
    const file = yamlFile('runnerConcurrency: 4\n');
    expect(loadConfig({ env: { HANDOFF_CONFIG: file } }).runnerConcurrency).toBe(4);
  });

  it('names the env variable of an invalid value', () => {
    const err = configError(() => loadConfig({ env: { HANDOFF_PORT: 'abc' }, file: empty() }));
    expect(err.code).toBe('handoff_config_invalid');
    expect(err.message).toContain('HANDOFF_PORT');
  });

  it('names every invalid setting at once, with the file key when it came from the file', () => {
    const file = yamlFile('sandboxMemoryMb: 1\n');
    const err = configError(() => loadConfig({ env: { HANDOFF_PUBLIC_URL: 'not a url' }, file }));
    expect(err.message).toContain('HANDOFF_PUBLIC_URL');
    expect(err.message).toContain('HANDOFF_SANDBOX_MEMORY_MB');
    expect(err.message).toContain(`sandboxMemoryMb in ${file}`);
  });

  it('refuses an unknown key in the file, naming it', () => {
    const file = yamlFile('port: 4000\nprot: 4001\n');
    const err = configError(() => loadConfig({ env: {}, file }));
    expect(err.code).toBe('handoff_config_invalid');
    expect(err.message).toContain('unknown setting(s): prot');
  });

  it('refuses a file whose top level is not a mapping', () => {
    const file = yamlFile('- port\n- 4000\n');
    const err = configError(() => loadConfig({ env: {}, file }));
    expect(err.message).toContain('mapping');
  });

  it('says which file it could not read', () => {
    const missing = join(dir, 'missing.yaml');
    const err = configError(() => loadConfig({ env: {}, file: missing }));
    expect(err.message).toContain(`cannot read config file ${missing}`);
  });
});

describe('the settings table', () => {
  it('names every setting and every environment variable once', async () => {
    const { settingDefs } = await import('../../../src/config/index.ts');
    const keys = settingDefs.map((d) => d.key);
    const envs = settingDefs.map((d) => d.env);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    expect(envs.filter((e, i) => envs.indexOf(e) !== i)).toEqual([]);
  });
});
