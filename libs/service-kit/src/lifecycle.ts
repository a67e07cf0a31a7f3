import { ConfigError } from './config';
import type { Logger } from './logger';

export interface RunningService {
  /** Stop accepting work, finish and ack what is in flight, close connections. */
  stop: () => Promise<void>;
}

export interface RunServiceOptions {
  name: string;
  logger: Logger;
  /** How long stop() may take after SIGTERM/SIGINT before the process exits with 1 anyway. */
  shutdownGraceMs: number;
  start: () => Promise<RunningService>;
}

/**
 * Owns the process: starts the service, stops it on SIGTERM/SIGINT and sets the exit code
 * (0 clean stop; 1 failed start, stop too slow or failed, second signal, uncaught error).
 * Resolves once the service has started.
 */
export async function runService(options: RunServiceOptions): Promise<void> {
  const { name, logger, shutdownGraceMs } = options;
  let shuttingDown = false;

  const exit = (code: number): void => {
    process.exit(code);
  };

  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception; exiting');
    exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection; exiting');
    exit(1);
  });

  // Started before the signal handlers are useful, so a SIGTERM during start-up waits for start() and then stops.
  const started = Promise.resolve().then(() => options.start());

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    logger.info({ signal, graceMs: shutdownGraceMs }, 'shutdown requested; stopping');
    // Deliberately not unref'd: a stop() waiting on nothing would otherwise let node exit with 0.
    const deadline = setTimeout(() => {
      logger.error({ graceMs: shutdownGraceMs }, 'stop did not finish within the grace period; exiting');
      exit(1);
    }, shutdownGraceMs);
    try {
      const running = await started;
      await running.stop();
      clearTimeout(deadline);
      logger.info('stopped cleanly');
      exit(0);
    } catch (error) {
      clearTimeout(deadline);
      logger.error({ err: error }, 'stop failed; exiting');
      exit(1);
    }
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      logger.warn({ signal }, 'second signal during shutdown; forcing exit');
      exit(1);
      return;
    }
    shuttingDown = true;
    void shutdown(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  logger.info('starting');
  try {
    await started;
  } catch (error) {
    if (error instanceof ConfigError) {
      // Plainly on stderr too: the operator needs the variable names, not a JSON stack trace.
      process.stderr.write(`${name}: ${error.message}\n`);
    }
    logger.fatal({ err: error }, 'start failed; exiting');
    exit(1);
    return;
  }
  logger.info('started');
}
