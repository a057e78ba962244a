import type { Options, PositionalOptions } from 'yargs';

/** The parsed arguments a command's `run` receives (yargs' argv; kebab-case keys as typed). */
export type CommandArgs = { readonly [key: string]: unknown };

/**
 * One command of the `handoff` CLI. The yargs parser is built from a tree of these, and the
 * tests walk the same tree, so a command cannot be added without its help.
 */
export interface CommandSpec {
  /** The yargs command string: the name, then `<required>` / `[optional]` positionals. */
  command: string;
  /** One line: shown in the parent's list and at the head of this command's `--help`. */
  describe: string;
  /** The usage line of `--help` when the generated one says too little (groups of subcommands). */
  synopsis?: string;
  /** Each positional named in `command`, with its description. */
  positionals?: Record<string, PositionalOptions & { describe: string }>;
  /** Options of this command (not inherited by subcommands), each with its description. */
  options?: Record<string, Options & { describe: string }>;
  /** Subcommands: a group has these and no `run`. */
  subcommands?: CommandSpec[];
  /** Shown under "Examples:" in `--help`. */
  examples?: [command: string, what: string][];
  /** Runs the command; resolves with the exit code (see exit-codes.ts). */
  run?: (args: CommandArgs) => number | Promise<number>;
}

/** The name of a command (its command string without positionals). */
export function commandName(spec: Pick<CommandSpec, 'command'>): string {
  return spec.command.split(' ')[0]!;
}
