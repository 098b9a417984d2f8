/**
 * Process composition: builds the dependencies every entry point shares (database, migrations,
 * Redis, job queue) and tears them down in the reverse order. The CLI commands are thin wrappers.
 */
import { Redis } from 'ioredis';
import { type Config, databaseMode, describeConfig } from './config.js';
import { assertServerRequirements, type Database, openDatabase } from './platform/db/database.js';
import { migrateToLatest } from './platform/db/migrator.js';
import { KeyRing } from './modules/auth/keys.js';
import { JobQueue } from './platform/jobs/queue.js';
import { embeddingOptionsFromConfig, EmbeddingProviders } from './ai/embeddings/index.js';
import { type EventBus, InProcessEventBus, RedisEventBus } from './platform/events/bus.js';
import { jobDefinitions } from './platform/jobs/registry.js';
import { limitHeapGrowth } from './platform/heap.js';
import type { Logger } from './platform/logger.js';

export interface Runtime {
  config: Config;
  logger: Logger;
  database: Database;
  redis?: Redis | undefined;
  jobs?: JobQueue | undefined;
  /** Domain events: Redis pub/sub with `REDIS_URL`, in-process otherwise. */
  events: EventBus;
  /** Embedding models (the local one starts its worker threads on first use). */
  embeddings: EmbeddingProviders;
  /** Access-token keys; only in processes that serve HTTP (`keys: true`). */
  keys: KeyRing | undefined;
  /** Stops jobs, then closes Redis and the database. Idempotent. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  migrate: boolean;
  /** `none`: no queue; `produce`: can enqueue; `work`: also runs handlers and schedules. */
  jobs: 'none' | 'produce' | 'work';
  redis: boolean;
  /** Load (or create) the access-token key ring: only `serve` needs it. */
  keys?: boolean;
  pollingIntervalSeconds?: number;
}

export async function openRuntime(config: Config, logger: Logger, options: RuntimeOptions): Promise<Runtime> {
  logger.info({ mode: databaseMode(config), config: describeConfig(config) }, 'starting');
  const database = await openDatabase(config, logger);
  let redis: Redis | undefined;
  let jobs: JobQueue | undefined;
  let keys: KeyRing | undefined;
  let events: EventBus = new InProcessEventBus(logger);
  const embeddings = new EmbeddingProviders(embeddingOptionsFromConfig(config));
  const close = async () => {
    await jobs?.stop(config.shutdownTimeoutMs);
    jobs = undefined;
    await embeddings.close();
    await events.close();
    if (redis) await redis.quit().catch(() => redis?.disconnect());
    redis = undefined;
    await database.close();
  };
  try {
    if (database.mode === 'server') await assertServerRequirements(database.db);
    if (options.migrate) {
      const { applied, total } = await migrateToLatest(database.db);
      logger.info({ applied, total }, applied.length ? 'migrations applied' : 'database schema up to date');
    }
    if (options.keys) keys = await KeyRing.load(config);
    if (options.redis && config.redisUrl) {
      redis = new Redis(config.redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest: 2,
        connectionName: 'larder',
      });
      redis.on('error', (error) => {
        logger.warn({ err: error }, 'redis connection error');
      });
      await redis.connect();
      events = new RedisEventBus(redis, logger);
    }
    if (options.jobs === 'work') limitHeapGrowth();
    if (options.jobs !== 'none') {
      jobs = new JobQueue({ config, database, logger, events, embeddings }, jobDefinitions, {
        work: options.jobs === 'work',
        concurrency: config.jobConcurrency,
        ...(options.pollingIntervalSeconds ? { pollingIntervalSeconds: options.pollingIntervalSeconds } : {}),
      });
      await jobs.start();
    }
  } catch (error) {
    await close().catch((closeError: unknown) => {
      logger.warn({ err: closeError }, 'cleanup after failed start failed');
    });
    throw error;
  }
  return {
    config,
    logger,
    database,
    get redis() {
      return redis;
    },
    get jobs() {
      return jobs;
    },
    get events() {
      return events;
    },
    embeddings,
    keys,
    close,
  };
}

/** Whether `serve` runs the job handlers in-process. */
export function inlineWorker(config: Config): boolean {
  return config.inlineWorker === 'auto'
    ? databaseMode(config) === 'embedded'
    : config.inlineWorker === 'true';
}

/**
 * Graceful shutdown on SIGTERM/SIGINT. Install it first thing, then call `started(shutdown)` once the
 * process is up. A signal during start-up is remembered and honoured as soon as start-up finishes, so
 * nothing half-open (e.g. the embedded database) is abandoned. A second signal, or the timeout, exits
 * at once with status 1.
 */
export function handleShutdownSignals(
  logger: Logger,
  timeoutMs: number,
): { started(shutdown: () => Promise<void>): void } {
  let stop: (() => Promise<void>) | undefined;
  let requested = false;
  const run = () => {
    if (!stop) return;
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown timed out: exiting');
      process.exit(1);
    }, timeoutMs + 2_000);
    timer.unref();
    stop().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (requested) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    requested = true;
    logger.info(
      { signal, timeoutMs },
      stop ? 'shutting down: draining in-flight work' : 'stop requested during start-up',
    );
    run();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    started(shutdown) {
      stop = shutdown;
      if (requested) run();
    },
  };
}
