import type { Config } from '../config.js';
import type { Logger } from '../platform/logger.js';
import { handleShutdownSignals, openRuntime } from '../runtime.js';

export async function workerCommand({ config, logger }: { config: Config; logger: Logger }): Promise<void> {
  if (!config.databaseUrl) {
    logger.warn(
      'no DATABASE_URL: running the worker on the embedded database. `larder serve` already runs jobs ' +
        'in-process in embedded mode; a separate worker only makes sense with PostgreSQL.',
    );
  }
  const signals = handleShutdownSignals(logger, config.shutdownTimeoutMs);
  const runtime = await openRuntime(config, logger, {
    migrate: config.migrateOnStart,
    jobs: 'work',
    redis: true,
  });
  signals.started(() => runtime.close());
}
