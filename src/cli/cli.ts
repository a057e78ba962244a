import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { asHandoffError } from '../core/index.ts';
import { type CommandArgs, type CommandSpec, commandName } from './command-spec.ts';
import { commands } from './commands.ts';
import { ExitCode } from './exit-codes.ts';

/** A usage problem yargs found (unknown command or option, missing argument): exit 2. */
class UsageError extends Error {
  override name = 'UsageError';
}

/** Everything `handoff --help` says about the whole, besides the list of commands. */
const about = 'Hand work to an AI coworker from chat. Settings come from the environment and an optional handoff.yaml.';

const topExamples: [string, string][] = [
  ['$0 dev', 'everything on one machine; open the web console it prints'],
  ['$0 doctor --json', 'what is usable, as JSON for scripts'],
  ['$0 policy explain --channel web:general', 'which rule applies there, and why'],
  ['$0 console add-user NAME', 'adds a console user and prints their sign-in link, once'],
  ['$0 completion >> ~/.bashrc', 'tab completion for bash (~/.zshrc for zsh)'],
];

/** The version in package.json, as `handoff --version` prints it. */
export function handoffVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * The `handoff` CLI. Returns the exit code for one-shot commands; `dev`, `bot` and `runner`
 * resolve once they have shut down. Help, the version and completions go to stdout; usage
 * problems to stderr with exit 2.
 */
export async function cli(argv: string[]): Promise<number> {
  // `handoff help policy explain` is `handoff policy explain --help`.
  const args = argv[0] === 'help' ? [...argv.slice(1), '--help'] : argv;
  let code: number | undefined;
  const parser = buildParser(args, (c) => {
    code = c;
  });
  if (args.length === 0) {
    // As before yargs: the help, and exit 1 (nothing was done).
    parser.showHelp('log');
    return ExitCode.failed;
  }
  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`handoff: ${err.message}`);
      return ExitCode.usage;
    }
    // The command functions report their own failures; this is one that escaped them.
    console.error(`handoff: ${asHandoffError(err).message}`);
    return ExitCode.failed;
  }
  // --help, --version and completions print and run no command.
  return code ?? ExitCode.ok;
}

/** The yargs parser for `args`, built from `commands`; `done` receives a command's exit code. */
export function buildParser(args: string[], done: (code: number) => void): Argv {
  const parser: Argv = yargs(args)
    .scriptName('handoff')
    .usage(`$0 <command> [options]\n\n${about}`)
    .exitProcess(false)
    // English whatever LANG says: the descriptions are English, and docs/cli.md quotes the messages.
    .detectLocale(false)
    // Without .recommendCommands(): its "Did you mean …?" would replace the message naming the unknown command.
    .strict()
    // As node's parseArgs did: a repeated option keeps its last value; options only as
    // documented (no camelCase twins, which strict mode would also name in its errors).
    .parserConfiguration({ 'duplicate-arguments-array': false, 'dot-notation': false, 'camel-case-expansion': false })
    .version(handoffVersion())
    .help()
    .alias('help', 'h')
    // yargs answers `--get-yargs-completions` (what the completion script calls); the
    // `completion` command below prints the script. yargs' own completion command would also
    // be checked as an unknown argument by .strict() when the process does not exit, so it
    // is registered under a name nobody types, hidden.
    .completion('yargs-completion-script', false);
  for (const spec of commands) addCommand(parser, spec, done);
  parser.command(
    'completion',
    'prints the bash/zsh tab-completion script (zsh when SHELL is zsh)',
    (y) => y.example('$0 completion >> ~/.bashrc', 'installs it for bash; ~/.zshrc for zsh'),
    () => {
      // yargs takes ($0, command name) here (the install line in the script names it);
      // @types/yargs 17 declares no parameters.
      (parser as Argv & { showCompletionScript($0: string, cmd: string): Argv }).showCompletionScript(
        'handoff',
        'completion',
      );
      done(ExitCode.ok);
    },
  );
  for (const [command, what] of topExamples) parser.example(command, what);
  parser.demandCommand(1, 'name a command (handoff --help lists them)');
  parser.fail((message, err) => {
    // yargs' own validation errors (YError) are usage problems; anything else a command threw is not.
    // (A failed .check() arrives with its message as `err`, a string.)
    if (err instanceof Error && err.name !== 'YError') throw err;
    throw new UsageError(message ?? String(err));
  });
  return parser;
}

function addCommand(parent: Argv, spec: CommandSpec, done: (code: number) => void): void {
  parent.command(
    spec.command,
    spec.describe,
    (y) => {
      if (spec.synopsis) y.usage(spec.synopsis);
      for (const [name, p] of Object.entries(spec.positionals ?? {})) y.positional(name, p);
      // Required options are checked after the strict check, so a misspelt one (--chanel) is
      // named as unknown rather than reported as the required one missing.
      const required: string[] = [];
      for (const [name, o] of Object.entries(spec.options ?? {})) {
        if (o.demandOption === true) required.push(name);
        y.option(
          name,
          o.demandOption === true ? { ...o, demandOption: false, describe: `${o.describe} (required)` } : o,
        );
      }
      if (required.length > 0)
        y.check((argv) => {
          const missing = required.filter((name) => argv[name] === undefined).map((name) => `--${name}`);
          // A string (not a thrown error) is how yargs reports a failed check as a usage problem.
          return (
            missing.length === 0 || `Missing required argument${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`
          );
        });
      for (const [command, what] of spec.examples ?? []) y.example(command, what);
      if (spec.subcommands) {
        for (const sub of spec.subcommands) addCommand(y, sub, done);
        y.demandCommand(1, `name a subcommand: ${spec.subcommands.map(commandName).join(', ')}`);
      }
      return y;
    },
    spec.run
      ? async (argv) => {
          done(await spec.run!(argv as CommandArgs));
        }
      : undefined,
  );
}
