// The `handoff` CLI (src/cli/): help on every command, the version, strict usage errors,
// completion, and `doctor --json`. In process through cli() (console captured), plus the
// real bin/handoff.js for the command the issue named.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CommandSpec, cli, commandName, commands } from '../../src/cli/index.ts';
import { cli as mainCli } from '../../src/main.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;
const version = (JSON.parse(readFileSync(`${repoRoot}package.json`, 'utf8')) as { version: string }).version;

/** Runs cli(args) in this process; what it printed to stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out.push(a.join(' '));
  });
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err.push(a.join(' '));
  });
  try {
    const code = await cli(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

/** Runs the real bin/handoff.js. */
function handoffBin(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/handoff.js', ...args], {
      cwd: repoRoot,
      env: { ...process.env, HANDOFF_CONFIG: '/dev/null', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** Every command in the tree, with its path of names from the top. */
function walk(specs: readonly CommandSpec[], parent: string[] = []): { path: string[]; spec: CommandSpec }[] {
  return specs.flatMap((spec) => {
    const path = [...parent, commandName(spec)];
    return [{ path, spec }, ...walk(spec.subcommands ?? [], path)];
  });
}

/** Help text with its line wrapping undone, to find a description that yargs wrapped. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('help', () => {
  const all = walk(commands);

  it('covers every command the issue lists', () => {
    const names = all.map((c) => c.path.join(' '));
    for (const expected of [
      'dev',
      'bot',
      'runner',
      'doctor',
      'config',
      'policy check',
      'policy explain',
      'connectors list',
      'connectors test',
      'skills list',
      'skills check',
      'audit verify',
      'audit export',
      'audit prune',
      'grants list',
      'grants revoke',
      'teams package',
      'console add-user',
      'console list-users',
      'console remove-user',
    ])
      expect(names).toContain(expected);
  });

  it.each(all.map((c) => [c.path.join(' '), c] as const))(
    '`handoff %s --help` exits 0 with its usage, description, subcommands and options',
    async (_, { path, spec }) => {
      const { code, out, err } = await run([...path, '--help']);
      expect(code, err).toBe(0);
      expect(err).toBe('');
      expect(out).toContain(`handoff ${path.join(' ')}`);
      // A group with a synopsis shows it instead of the generated usage line and description.
      expect(flat(out)).toContain(flat(spec.synopsis ? spec.synopsis : spec.describe));
      for (const sub of spec.subcommands ?? []) {
        expect(out).toContain(`handoff ${path.join(' ')} ${sub.command}`);
        expect(flat(out)).toContain(flat(sub.describe));
      }
      for (const [name, option] of Object.entries(spec.options ?? {})) {
        expect(out).toContain(`--${name}`);
        expect(flat(out)).toContain(flat(option.describe));
      }
      for (const [name, positional] of Object.entries(spec.positionals ?? {})) {
        expect(out).toContain(name);
        expect(flat(out)).toContain(flat(positional.describe));
      }
      expect(out).toContain('--help');
    },
  );

  it('`handoff --help` lists every top-level command with its description, and completion', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    for (const spec of commands) {
      expect(out).toContain(`handoff ${spec.command}`);
      expect(flat(out)).toContain(flat(spec.describe));
    }
    expect(out).toContain('handoff completion');
    const help = await run(['help']);
    expect(help).toEqual({ code: 0, out, err: '' });
    const completionHelp = await run(['completion', '--help']);
    expect(completionHelp.code).toBe(0);
    expect(completionHelp.out).toContain('bash/zsh tab-completion script');
  });

  it('`handoff help policy explain` is `handoff policy explain --help`', async () => {
    expect(await run(['help', 'policy', 'explain'])).toEqual(await run(['policy', 'explain', '--help']));
  });

  it('yargs knows exactly the commands in the tree at every level (through its completions)', async () => {
    const completions = async (words: string[]) =>
      (await run(['--get-yargs-completions', 'handoff', ...words, ''])).out
        .split('\n')
        .filter((w) => w && !w.startsWith('-'))
        .sort();
    expect(await completions([])).toEqual([...commands.map(commandName), 'completion'].sort());
    for (const { path, spec } of walk(commands)) {
      if (spec.subcommands) expect(await completions(path)).toEqual(spec.subcommands.map(commandName).sort());
    }
  });

  it('`handoff` alone prints the help and exits 1, as before', async () => {
    const { code, out } = await run([]);
    expect(code).toBe(1);
    expect(out).toContain('handoff doctor');
  });
});

describe('version and usage errors', () => {
  it('`handoff --version` prints the version in package.json', async () => {
    const { code, out } = await run(['--version']);
    expect(code).toBe(0);
    expect(out.trim()).toBe(version);
  });

  it('an unknown option exits 2 and names it', async () => {
    const { code, out, err } = await run(['policy', 'explain', '--channel', 'web:general', '--bogus-flag']);
    expect(code).toBe(2);
    expect(err).toContain('handoff: Unknown argument: bogus-flag');
    expect(out).toBe('');
    // A misspelt required option is named as unknown, not only reported missing.
    const typo = await run(['policy', 'explain', '--chanel', 'web:general']);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('Unknown argument: chanel');
    // Only the documented spelling: no camelCase twin of --app-id.
    const camel = await run(['teams', 'package', '--appId', 'x', '--host', 'h.example.com']);
    expect(camel.code).toBe(2);
    expect(camel.err).toContain('appId');
  });

  it('an unknown command exits 2 and names it', async () => {
    const { code, err } = await run(['frobnicate']);
    expect(code).toBe(2);
    expect(err).toContain('frobnicate');
    const sub = await run(['audit', 'shred']);
    expect(sub.code).toBe(2);
    expect(sub.err).toContain('shred');
  });

  it('a missing argument or subcommand exits 2 and says what is missing', async () => {
    const noChannel = await run(['policy', 'explain']);
    expect(noChannel.code).toBe(2);
    expect(noChannel.err).toContain('channel');
    const noValue = await run(['policy', 'explain', '--channel']);
    expect(noValue.code).toBe(2);
    expect(noValue.err).toContain('channel');
    const noSub = await run(['policy']);
    expect(noSub.code).toBe(2);
    expect(noSub.err).toContain('name a subcommand: check, explain');
    const noFile = await run(['policy', 'check']);
    expect(noFile.code).toBe(2);
  });

  it('commands still run and keep their exit codes: policy explain 0, policy check of a bad file 1', async () => {
    const explained = await run(['policy', 'explain', '--channel', 'web:general', '--action', 'delete_file']);
    expect(explained.code, explained.err).toBe(0);
    expect(explained.out).toContain('delete_file');
    const missing = await run(['policy', 'check', '/nonexistent/policy.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('/nonexistent/policy.yaml');
  });

  it('teams package gets every option it was given (the package is written, then refused over it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-cli-'));
    try {
      const file = join(dir, 'app.zip');
      const args = ['teams', 'package', '--app-id', '00000000-0000-4000-8000-000000000001'];
      args.push('--host', 'handoff.example.com', '--out', file, '--name', 'Ops Bot');
      const written = await run(args);
      expect(written.code, written.err).toBe(0);
      expect(statSync(file).size).toBeGreaterThan(0);
      const again = await run(args);
      expect(again.code).toBe(2);
      expect(again.err).toContain('pass --force');
      expect((await run([...args, '--force'])).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a command that needs REDIS_URL without it exits 2, as before', async () => {
    vi.stubEnv('HANDOFF_CONFIG', '/dev/null');
    vi.stubEnv('REDIS_URL', '');
    const verify = await run(['audit', 'verify']);
    expect(verify.code).toBe(2);
    expect(verify.err).toContain('set REDIS_URL');
  });

  it('main.ts still exports the same CLI', () => {
    expect(mainCli).toBe(cli);
  });
});

describe('completion', () => {
  it('`handoff completion` prints a bash completion script that asks handoff for its completions', async () => {
    vi.stubEnv('SHELL', '/bin/bash');
    vi.stubEnv('ZSH_NAME', '');
    const { code, out } = await run(['completion']);
    expect(code).toBe(0);
    expect(out).toContain('complete -o bashdefault -o default -F _handoff_yargs_completions handoff');
    expect(out).toContain('handoff --get-yargs-completions');
    expect(out).toContain('handoff completion >> ~/.bashrc');
  });

  it('prints the zsh script under zsh', async () => {
    vi.stubEnv('SHELL', '/usr/bin/zsh');
    const { code, out } = await run(['completion']);
    expect(code).toBe(0);
    expect(out).toContain('compdef _handoff_yargs_completions handoff');
  });

  it('completes subcommands and options', async () => {
    const subs = await run(['--get-yargs-completions', 'handoff', 'audit', '']);
    expect(subs.out.split('\n')).toEqual(expect.arrayContaining(['verify', 'export', 'prune']));
    const options = await run(['--get-yargs-completions', 'handoff', 'doctor', '--']);
    expect(options.out.split('\n')).toContain('--json');
  });
});

describe('handoff doctor --json', () => {
  /** doctor through the CLI with a config that has no Redis to reach. */
  async function doctorRun(json: boolean) {
    vi.stubEnv('HANDOFF_CONFIG', '/dev/null');
    vi.stubEnv('HANDOFF_PORT', '0');
    vi.stubEnv('REDIS_URL', 'redis://127.0.0.1:1');
    vi.stubEnv('ANTHROPIC_API_KEY', '');
    return run(['doctor', ...(json ? ['--json'] : [])]);
  }

  it('prints one JSON document with every check, and exits as the text form does', async () => {
    const { code, out } = await doctorRun(true);
    const report = JSON.parse(out) as {
      ok: boolean;
      checks: { name: string; status: string; detail: string; fix?: string }[];
    };
    expect(Object.keys(report).sort()).toEqual(['checks', 'ok']);
    const names = report.checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['Redis', 'Docker', 'Model', 'Skills', 'Port']));
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail']).toContain(c.status);
      expect(typeof c.detail).toBe('string');
      if (c.status === 'ok') expect(c.fix).toBeUndefined();
    }
    // Redis cannot be reached: a failure with its fix, so the whole report fails and exits 1.
    expect(report.checks.find((c) => c.name === 'Redis')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('unreachable'),
      fix: 'start Redis or correct REDIS_URL',
    });
    expect(report.ok).toBe(false);
    expect(code).toBe(1);

    const text = await doctorRun(false);
    expect(text.code).toBe(code);
    for (const c of report.checks) {
      const status = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' }[c.status];
      expect(text.out).toContain(`${status}  ${c.name}: `);
    }
  }, 60_000);
});

describe('bin/handoff.js', () => {
  it('`handoff policy explain --help` exits 0 with its options (it used to fail: Unknown option --help)', async () => {
    const { code, out, err } = await handoffBin(['policy', 'explain', '--help']);
    expect(code, err).toBe(0);
    expect(out).toContain('handoff policy explain');
    expect(out).toContain('--channel');
    expect(out).toContain('--action');
  }, 60_000);

  it('an unknown option makes the process exit 2, naming it', async () => {
    const { code, err } = await handoffBin(['doctor', '--jsn']);
    expect(code).toBe(2);
    expect(err).toContain('jsn');
  }, 60_000);
});
