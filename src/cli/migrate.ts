import type { Config } from '../config.js';
import type { Logger } from '../platform/logger.js';
import { openRuntime } from '../runtime.js';
import { migrateToLatest } from '../platform/db/migrator.js';

export async function migrateCommand(
  { config, logger }: { config: Config; logger: Logger },
  opts: { json?: boolean },
): Promise<void> {
  const runtime = await openRuntime(config, logger, { migrate: false, jobs: 'none', redis: false });
  try {
    const outcome = await migrateToLatest(runtime.database.db);
    if (opts.json) process.stdout.write(`${JSON.stringify(outcome)}\n`);
    else if (outcome.applied.length === 0)
      process.stdout.write(`Database is up to date (${outcome.total} migrations).\n`);
    else
      process.stdout.write(
        `Applied ${outcome.applied.length} migration(s):\n${outcome.applied.map((m) => `  ${m}`).join('\n')}\n`,
      );
  } finally {
    await runtime.close();
  }
}
