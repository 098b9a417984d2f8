import { buildApp } from '../app.js';
import type { Config } from '../config.js';
import type { Logger } from '../platform/logger.js';
import { handleShutdownSignals, inlineWorker, openRuntime } from '../runtime.js';

export async function serveCommand({ config, logger }: { config: Config; logger: Logger }): Promise<void> {
  const signals = handleShutdownSignals(logger, config.shutdownTimeoutMs);
  const runtime = await openRuntime(config, logger, {
    migrate: config.migrateOnStart,
    jobs: inlineWorker(config) ? 'work' : 'produce',
    redis: true,
  });
  const app = await buildApp(runtime);
  let address: string;
  try {
    address = await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await app.close();
    await runtime.close();
    throw error;
  }
  signals.started(async () => {
    await app.close(); // stops accepting, answers 503 to new requests, waits for in-flight ones
    await runtime.close();
  });
  logger.info({ address, docs: `${address}/docs`, mode: runtime.database.mode }, 'Larder is listening');
  if (runtime.database.mode === 'embedded') {
    process.stderr.write(
      `\nLarder (embedded mode, data in ${config.dataDir}) is listening on ${address}\n` +
        `  API reference: ${address}/docs\n\n`,
    );
  }
}
