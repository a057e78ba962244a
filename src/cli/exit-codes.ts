/**
 * What `handoff` exits with (docs/cli.md, "Exit codes"). The command functions in the
 * other modules return these numbers; this names them for the CLI and its tests.
 */
export const ExitCode = {
  /** The command did what it was asked. */
  ok: 0,
  /** A check or verification failed, or the command could not finish (named on stderr). */
  failed: 1,
  /** Usage or configuration: an unknown command or option, a missing argument, a bad setting. */
  usage: 2,
  /** A second Ctrl-C (SIGINT) while `dev`, `bot` or `runner` was stopping. */
  interrupted: 130,
} as const;
