import { buildApp } from '../app.js';
import type { Config } from '../config.js';
import type { Logger } from '../platform/logger.js';
import { bootstrapFirstUser, countUsers } from '../modules/admin/service.js';
import { handleShutdownSignals, inlineWorker, openRuntime } from '../runtime.js';

export async function serveCommand({ config, logger }: { config: Config; logger: Logger }): Promise<void> {
  const signals = handleShutdownSignals(logger, config.shutdownTimeoutMs);
  const runtime = await openRuntime(config, logger, {
    migrate: config.migrateOnStart,
    jobs: inlineWorker(config) ? 'work' : 'produce',
    redis: true,
    keys: true,
  });
  await bootstrapFirstUser(runtime.database.db, config, logger);
  const firstRun = (await countUsers(runtime.database.db)) === 0;
  if (!runtime.keys) throw new Error('serve needs the key ring');
  const app = await buildApp({ ...runtime, keys: runtime.keys });
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
  if (runtime.database.mode === 'embedded') {
    process.stderr.write(
      `\nLarder (embedded mode, data in ${config.dataDir}) is listening on ${address}\n` +
        `  API reference: ${address}/docs\n` +
        (firstRun
          ? `  No users yet. Create the first one now with\n` +
            `    curl -s ${address}/v1/auth/signup -H 'content-type: application/json' \\\n` +
            `      -d '{"email":"you@example.com","password":"a long passphrase","displayName":"You"}'\n` +
            `  or stop the server and run: npx larder admin create-user --email you@example.com --owner\n`
          : '') +
        '\n',
    );
  }
  // Last: it signals readiness to whoever watches the log (and to the CLI tests).
  logger.info({ address, docs: `${address}/docs`, mode: runtime.database.mode }, 'Larder is listening');
}
