/** Job-queue dependencies for tests: real event bus and real embedding providers, never stubs. */
import { embeddingOptionsFromConfig, EmbeddingProviders } from '../../src/ai/embeddings/index.js';
import type { Config } from '../../src/config.js';
import type { Database } from '../../src/platform/db/database.js';
import { type EventBus, InProcessEventBus } from '../../src/platform/events/bus.js';
import type { JobDeps } from '../../src/platform/jobs/define.js';
import type { Logger } from '../../src/platform/logger.js';

export function jobDeps(
  config: Config,
  database: Database,
  logger: Logger,
  events: EventBus = new InProcessEventBus(logger),
): JobDeps {
  return {
    config,
    database,
    logger,
    events,
    embeddings: new EmbeddingProviders(embeddingOptionsFromConfig(config)),
  };
}
