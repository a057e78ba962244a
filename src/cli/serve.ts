import type { Config, ConnectorConfig } from '../config/index.ts';
import { asHandoffError } from '../core/index.ts';
import { ExitCode } from './exit-codes.ts';

/**
 * `handoff dev|bot|runner`: starts the role and resolves once it has shut down on SIGTERM or
 * Ctrl-C. A second Ctrl-C exits at once (130); a shutdown that outlasts `shutdownTimeoutMs`
 * exits 1; a start that fails resolves with 1.
 */
export async function serve(
  mode: 'dev' | 'bot' | 'runner',
  settings: { config: Config; connectors: ConnectorConfig[]; skillPaths: string[] },
): Promise<number> {
  const { config, connectors, skillPaths } = settings;
  // Loaded here, not imported at the top: main.ts re-exports the CLI, so a static import would
  // make a cycle; and the rest of the CLI stays quick to load (commands.ts).
  const [{ startHandoff }, { createLogger }] = await Promise.all([
    import('../main.ts'),
    import('../observability/index.ts'),
  ]);
  const logger = createLogger(config.logLevel, 'handoff', { scrubText: config.logRedaction });
  let running: Awaited<ReturnType<typeof startHandoff>>;
  try {
    running = await startHandoff({ config, mode, logger, connectors, skillPaths });
  } catch (err) {
    const e = asHandoffError(err);
    logger.fatal({ code: e.code }, e.message);
    return ExitCode.failed;
  }
  if (running.url) {
    const demo =
      config.anthropicApiKey || config.modelProvider ? '' : ' (demo model: set ANTHROPIC_API_KEY to use Claude)';
    console.log(`\nHandoff is running${demo}.\nWeb console: ${running.url}\n`);
  } else {
    logger.info('runner started');
  }
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second Ctrl-C means now.
        logger.warn({ signal }, 'stopping at once');
        process.exit(ExitCode.interrupted);
      }
      stopping = true;
      logger.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
      // Bounded: whatever has not stopped by then is cut off (runs resume from their checkpoints).
      setTimeout(() => {
        logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time; exiting');
        process.exit(ExitCode.failed);
      }, config.shutdownTimeoutMs).unref();
      void running.close().then(resolveStop);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    if (process.env.HANDOFF_EXIT_WITH_PARENT === '1') {
      // Started by `npm start`: if whatever started it is killed outright, stop too rather than
      // hold the port and the data dir for nobody.
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) stop('parent exited');
      }, 1000).unref();
    }
  });
  // Everything is closed; a handle some library left open must not keep the process alive.
  setTimeout(() => process.exit(ExitCode.ok), 500).unref();
  return ExitCode.ok;
}
