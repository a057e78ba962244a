export { buildParser, cli, handoffVersion } from './cli.ts';
export { type CommandArgs, type CommandSpec, commandName } from './command-spec.ts';
export { commands } from './commands.ts';
export { ExitCode } from './exit-codes.ts';
