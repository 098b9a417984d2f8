/**
 * The job queue: pg-boss over the application's own database connection(s).
 * On PGlite, pg-boss talks through `Database.executeSql`, which shares the session lock with Kysely.
 */
import { CompiledQuery, type Transaction } from 'kysely';
import PgBoss from 'pg-boss';
import { Value } from 'typebox/value';
import type { Database } from '../db/database.js';
import type { DB } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { JobDefinition, JobDeps } from './define.js';

export const JOB_SCHEMA = 'larder_jobs';

export interface JobQueueOptions {
  /** Run handlers, maintenance and cron schedules (`larder worker`, or `serve` in embedded mode). */
  work: boolean;
  concurrency: number;
  pollingIntervalSeconds?: number;
}

export interface SendOptions {
  /** Enqueue inside this transaction: the job exists if and only if the transaction commits. */
  trx?: Transaction<DB>;
  /** Deduplicate: at most one queued job with this key per queue. */
  singletonKey?: string;
  startAfterSeconds?: number;
}

function transactionDb(trx: Transaction<DB>): PgBoss.Db {
  return {
    async executeSql(text, values) {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values));
      return { rows: result.rows };
    },
  };
}

export class JobQueue {
  readonly #boss: PgBoss;
  readonly #definitions = new Map<string, JobDefinition>();
  readonly #abort = new AbortController();
  #started = false;

  constructor(
    private readonly deps: JobDeps,
    definitions: JobDefinition[],
    private readonly options: JobQueueOptions,
  ) {
    for (const d of definitions) this.#definitions.set(d.name, d);
    const database: Database = deps.database;
    this.#boss = new PgBoss({
      db: { executeSql: (text: string, values: unknown[]) => database.executeSql(text, values) },
      schema: JOB_SCHEMA,
      supervise: options.work,
      schedule: options.work,
      migrate: true,
    });
    this.#boss.on('error', (error) => {
      deps.logger.error({ err: error }, 'job queue error');
    });
  }

  get definitions(): JobDefinition[] {
    return [...this.#definitions.values()];
  }

  async start(): Promise<void> {
    if (this.#started) return;
    await this.#boss.start();
    this.#started = true;
    for (const def of this.#definitions.values()) {
      const policy = {
        retryLimit: def.retry.limit,
        retryDelay: def.retry.delaySeconds,
        retryBackoff: def.retry.backoff,
        expireInSeconds: def.expireInSeconds,
      };
      await this.#boss.createQueue(def.name, { name: def.name, ...policy });
      await this.#boss.updateQueue(def.name, { name: def.name, ...policy });
    }
    if (!this.options.work) return;
    for (const def of this.#definitions.values()) {
      if (def.schedule) await this.#boss.schedule(def.name, def.schedule, {}, { tz: 'UTC' });
      for (let i = 0; i < this.options.concurrency; i++) {
        await this.#boss.work(
          def.name,
          { batchSize: 1, pollingIntervalSeconds: this.options.pollingIntervalSeconds ?? 2 },
          // pg-boss stores the returned value as the job's output.
          async ([job]) => (job ? this.#run(def, job) : undefined),
        );
      }
    }
    this.deps.logger.info(
      { queues: [...this.#definitions.keys()], concurrency: this.options.concurrency },
      'worker started',
    );
  }

  async #run(def: JobDefinition, job: PgBoss.Job<unknown>): Promise<unknown> {
    const log = this.deps.logger.child({ jobId: job.id, queue: def.name });
    if (!Value.Check(def.payload, job.data)) {
      // Retrying cannot fix a malformed payload; fail it and keep the reason.
      log.error({ errors: [...Value.Errors(def.payload, job.data)].slice(0, 5) }, 'job payload is invalid');
      throw new Error('invalid job payload');
    }
    const started = performance.now();
    const retryCount = (job as PgBoss.Job<unknown> & { retryCount?: number }).retryCount ?? 0;
    try {
      const output = await def.handler(job.data, {
        jobId: job.id,
        retryCount,
        log,
        deps: this.deps,
        queue: this,
        signal: this.#abort.signal,
      });
      log.info({ ms: Math.round(performance.now() - started) }, 'job completed');
      return output;
    } catch (error) {
      log.warn({ err: error, ms: Math.round(performance.now() - started) }, 'job failed');
      throw error;
    }
  }

  /** Enqueues a job; returns its id, or null when deduplicated by `singletonKey`. */
  async send<D extends JobDefinition>(
    def: D,
    payload: D extends JobDefinition<infer _S> ? Parameters<D['handler']>[0] : never,
    options: SendOptions = {},
  ): Promise<string | null> {
    if (!this.#definitions.has(def.name)) throw new Error(`job ${def.name} is not registered`);
    if (!Value.Check(def.payload, payload)) {
      throw new AppError('validation_failed', { detail: `invalid payload for job ${def.name}` });
    }
    return this.#boss.send(def.name, payload as object, {
      ...(options.trx ? { db: transactionDb(options.trx) } : {}),
      ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
      ...(options.startAfterSeconds ? { startAfter: options.startAfterSeconds } : {}),
    });
  }

  /** State of a job (`created`, `active`, `completed`, `failed`, …), or null if unknown. */
  async state(def: JobDefinition, id: string): Promise<{ state: string; output: unknown } | null> {
    const job = await this.#boss.getJobById(def.name, id, { includeArchive: true });
    return job ? { state: job.state, output: job.output } : null;
  }

  /** Stops fetching, waits for running jobs up to `timeoutMs`, then fails what is still running. */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.#started) return;
    this.#abort.abort();
    await this.#boss.stop({ graceful: true, wait: true, timeout: Math.max(timeoutMs, 1000), close: false });
    this.#started = false;
  }
}
