/**
 * The job queue: pg-boss over the application's own database connection(s).
 * On PGlite, pg-boss talks through `Database.executeSql`, which shares the session lock with Kysely.
 */
import { setMaxListeners } from 'node:events';
import { CompiledQuery, sql, type Transaction } from 'kysely';
import PgBoss from 'pg-boss';
import { Value } from 'typebox/value';
import type { Database } from '../db/database.js';
import type { DB } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { JobContext, JobDefinition, JobDeps } from './define.js';

export const JOB_SCHEMA = 'larder_jobs';

/**
 * The channel a sent job is announced on (payload: its queue's name). Workers poll every
 * `pollingIntervalSeconds` and also LISTEN here, so a new job starts at once instead of after up to
 * a polling interval; the notification is sent in the job's own transaction, so it arrives when the
 * job is visible, and never for a job whose transaction rolled back.
 */
export const WAKE_CHANNEL = 'larder_jobs';
const WAKE_DELAY_MS = 50;

/** The queues a transaction has already announced on WAKE_CHANNEL. */
const notified = new WeakMap<Transaction<DB>, Set<string>>();
function notifiedIn(trx: Transaction<DB>): Set<string> {
  let queues = notified.get(trx);
  if (!queues) notified.set(trx, (queues = new Set()));
  return queues;
}

export interface JobQueueOptions {
  /** Run handlers, maintenance and cron schedules (`larder worker`, or `serve` in embedded mode). */
  work: boolean;
  concurrency: number;
  pollingIntervalSeconds?: number;
  /** How long a batched queue's notification waits for more (default WAKE_DELAY_MS; tests set it). */
  wakeDelayMs?: number;
}

export interface SendOptions {
  /** Enqueue inside this transaction: the job exists if and only if the transaction commits. */
  trx?: Transaction<DB>;
  /**
   * pg-boss's singleton key. On the default (`standard`) queue policy it only labels the job; it
   * deduplicates only on `short`/`singleton`/`stately` queues or with `singletonSeconds`. Handlers must
   * be idempotent either way.
   */
  singletonKey?: string;
  startAfterSeconds?: number;
}

/**
 * pg-boss's `create_queue` takes table locks in an order that deadlocks when two processes create the
 * same new queue at once (replicas starting together on a fresh database: PostgreSQL aborts one with
 * 40P01). The loser retries after a short random pause and then finds the queue there.
 */
async function retryDeadlocks<T>(fn: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if ((error as { code?: string }).code !== '40P01' || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200 * attempt));
    }
  }
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
  /** This process's workers per queue, woken by a notification on WAKE_CHANNEL. */
  readonly #workers = new Map<string, string[]>();
  #unlisten: (() => Promise<void>) | undefined;
  #started = false;

  constructor(
    private readonly deps: JobDeps,
    definitions: JobDefinition[],
    private readonly options: JobQueueOptions,
  ) {
    for (const d of definitions) this.#definitions.set(d.name, d);
    // Every running job listens for shutdown (a batch is many jobs at once); each removes its listener.
    setMaxListeners(0, this.#abort.signal);
    const database: Database = deps.database;
    this.#boss = new PgBoss({
      db: { executeSql: (text: string, values: unknown[]) => database.executeSql(text, values) },
      schema: JOB_SCHEMA,
      // Supervision fails jobs that outlived their expiry into a retry. pg-boss has no heartbeat, so
      // this is how a job whose worker died (SIGKILL, OOM, lost node) runs again: after at most its
      // expiry plus this interval. Every worker supervises; pg-boss lets one run per interval.
      supervise: options.work,
      maintenanceIntervalSeconds: deps.config.jobMaintenanceIntervalSeconds,
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
    // Dead-letter queues first: a queue names its dead-letter queue by foreign key.
    const ordered = [...this.#definitions.values()].sort(
      (a, b) => Number(a.deadLetter !== undefined) - Number(b.deadLetter !== undefined),
    );
    for (const def of ordered) {
      if (def.deadLetter !== undefined && !this.#definitions.has(def.deadLetter))
        throw new Error(`job ${def.name}: dead-letter queue ${def.deadLetter} is not registered`);
      // The queue's policy is copied into each job when it is enqueued, so the timeout a job gets is
      // the one of the process that enqueued it: every process must use the same settings.
      const policy = {
        retryLimit: def.retry.limit,
        retryDelay: def.retry.delaySeconds,
        retryBackoff: def.retry.backoff,
        expireInSeconds: this.expireInSeconds(def),
        ...(def.policy === undefined ? {} : { policy: def.policy }),
        ...(def.deadLetter === undefined ? {} : { deadLetter: def.deadLetter }),
      };
      await retryDeadlocks(() => this.#boss.createQueue(def.name, { name: def.name, ...policy }));
      await retryDeadlocks(() => this.#boss.updateQueue(def.name, { name: def.name, ...policy }));
    }
    if (!this.options.work) return;
    // A queue whose handler takes batches is woken WAKE_DELAY_MS after its first notification: during
    // a burst of sends its workers then fetch several jobs at once (and index them together) instead of
    // one each. Other queues gain nothing from waiting and are woken at once.
    const pending = new Set<string>();
    const wake = (name: string) => {
      for (const id of this.#workers.get(name) ?? []) this.#boss.notifyWorker(id);
    };
    this.#unlisten = await this.deps.database.listen(WAKE_CHANNEL, (name) => {
      if (pending.has(name) || !this.#workers.has(name)) return;
      if (this.#definitions.get(name)?.batch === undefined) {
        wake(name);
        return;
      }
      pending.add(name);
      setTimeout(() => {
        pending.delete(name);
        wake(name);
      }, this.options.wakeDelayMs ?? WAKE_DELAY_MS).unref();
    });
    for (const def of this.#definitions.values()) {
      if (def.schedule) await this.#boss.schedule(def.name, def.schedule, {}, { tz: 'UTC' });
      for (let i = 0; i < this.options.concurrency; i++) {
        const worker: { id?: string } = {};
        worker.id = await this.#boss.work(
          def.name,
          {
            batchSize: def.batch?.size ?? 1,
            pollingIntervalSeconds: this.options.pollingIntervalSeconds ?? 2,
            // Without it pg-boss leaves out `retryCount`, and handlers never know their last attempt.
            includeMetadata: true,
          },
          // pg-boss stores the returned value as the job's output.
          async (jobs) => {
            // pg-boss waits a polling interval after every fetch, even a successful one; a worker
            // that just ran a job fetches the next at once, so a backlog drains at full speed.
            if (worker.id) this.#boss.notifyWorker(worker.id);
            const [job] = jobs;
            if (jobs.length > 1) return this.#runBatch(def, jobs);
            return job ? this.#run(def, job) : undefined;
          },
        );
        this.#workers.set(def.name, [...(this.#workers.get(def.name) ?? []), worker.id]);
      }
    }
    this.deps.logger.info(
      { queues: [...this.#definitions.keys()], concurrency: this.options.concurrency },
      'worker started',
    );
  }

  /** The time a job may run before it is presumed lost and retried (`LARDER_JOB_TIMEOUT_SECONDS`). */
  expireInSeconds(def: JobDefinition): number {
    return this.deps.config.jobTimeoutSeconds ?? def.expireInSeconds;
  }

  async #run(def: JobDefinition, job: PgBoss.JobWithMetadata<unknown>): Promise<unknown> {
    const { ctx, release } = this.#context(def, job);
    if (!Value.Check(def.payload, job.data)) {
      release();
      // Retrying cannot fix a malformed payload; fail it and keep the reason.
      ctx.log.error(
        { errors: [...Value.Errors(def.payload, job.data)].slice(0, 5) },
        'job payload is invalid',
      );
      throw new Error('invalid job payload');
    }
    const started = performance.now();
    try {
      const output = await def.handler(job.data, ctx);
      ctx.log.info({ ms: Math.round(performance.now() - started) }, 'job completed');
      return output;
    } catch (error) {
      ctx.log.warn({ err: error, ms: Math.round(performance.now() - started) }, 'job failed');
      throw error;
    } finally {
      release();
    }
  }

  /**
   * Several jobs in one handler call (`def.batch`). The jobs that settle rejected (or carry an invalid
   * payload) are failed here one by one, so each keeps its own retries and dead letter; pg-boss then
   * completes the others when this returns (it completes only jobs still active).
   */
  async #runBatch(def: JobDefinition, jobs: PgBoss.JobWithMetadata<unknown>[]): Promise<undefined> {
    const batch = def.batch;
    if (!batch) throw new Error(`job ${def.name} does not run in batches`);
    const started = performance.now();
    const contexts = jobs.map((job) => ({ job, ...this.#context(def, job) }));
    const failures: { id: string; error: unknown }[] = [];
    try {
      const valid = contexts.filter(({ job, ctx }) => {
        if (Value.Check(def.payload, job.data)) return true;
        ctx.log.error(
          { errors: [...Value.Errors(def.payload, job.data)].slice(0, 5) },
          'job payload is invalid',
        );
        failures.push({ id: job.id, error: new Error('invalid job payload') });
        return false;
      });
      const results = await batch.handler(valid.map(({ job, ctx }) => ({ payload: job.data, ctx })));
      valid.forEach(({ job, ctx }, i) => {
        const result = results[i];
        const ms = Math.round(performance.now() - started);
        if (result?.status === 'fulfilled') ctx.log.info({ ms, batch: jobs.length }, 'job completed');
        else {
          const error: unknown = result ? result.reason : new Error('the batch handler gave no result');
          ctx.log.warn({ err: error, ms, batch: jobs.length }, 'job failed');
          failures.push({ id: job.id, error });
        }
      });
    } finally {
      for (const { release } of contexts) release();
    }
    for (const { id, error } of failures) await this.#boss.fail(def.name, id, error as object);
    return undefined;
  }

  /** A job's context: its logger, attempt, and a signal aborted at shutdown or when the job expires. */
  #context(
    def: JobDefinition,
    job: PgBoss.JobWithMetadata<unknown>,
  ): { ctx: JobContext; release: () => void } {
    const log = this.deps.logger.child({ jobId: job.id, queue: def.name });
    // pg-boss fails (and retries) a job that outlives its expiry but cannot stop the handler, which
    // would run on beside its retry; aborting at the same moment lets it stop at its next safe point.
    // `expireInSeconds` is typed a number but is a numeric column: a string from the driver.
    // One controller per job, released when the job ends: combining signals with AbortSignal.any
    // left a listener on the queue's shutdown signal per job run (a leak, and Node's warning at 11).
    const expireIn: unknown = job.expireInSeconds;
    const controller = new AbortController();
    const onShutdown = () => {
      controller.abort(this.#abort.signal.reason);
    };
    this.#abort.signal.addEventListener('abort', onShutdown, { once: true });
    const timer = setTimeout(
      () => {
        controller.abort(new Error(`job expired after ${String(expireIn)} s`));
      },
      Number(expireIn) * 1000,
    );
    timer.unref();
    return {
      ctx: {
        jobId: job.id,
        retryCount: job.retryCount,
        lastAttempt: job.retryCount >= job.retryLimit,
        log,
        deps: this.deps,
        queue: this,
        signal: controller.signal,
      },
      release: () => {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener('abort', onShutdown);
      },
    };
  }

  /** Enqueues a job; returns its id (null only when a deduplicating queue policy dropped it). */
  async send<D extends JobDefinition>(
    def: D,
    payload: D extends JobDefinition<infer _S> ? Parameters<D['handler']>[0] : never,
    options: SendOptions = {},
  ): Promise<string | null> {
    if (!this.#definitions.has(def.name)) throw new Error(`job ${def.name} is not registered`);
    if (!Value.Check(def.payload, payload)) {
      throw new AppError('validation_failed', { detail: `invalid payload for job ${def.name}` });
    }
    const id = await this.#boss.send(def.name, payload as object, {
      ...(options.trx ? { db: transactionDb(options.trx) } : {}),
      ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
      ...(options.startAfterSeconds ? { startAfter: options.startAfterSeconds } : {}),
    });
    // Wakes the workers (of every process) when the job becomes visible: at the commit of `trx`.
    // PostgreSQL delivers one notification per distinct payload and transaction, so a transaction
    // that sends many jobs of one queue notifies once (Larder uses no savepoints that could undo it).
    if (id !== null && !options.startAfterSeconds) {
      const { trx } = options;
      if (!trx) await this.deps.database.executeSql('select pg_notify($1, $2)', [WAKE_CHANNEL, def.name]);
      else if (!notifiedIn(trx).has(def.name)) {
        await sql`select pg_notify(${WAKE_CHANNEL}, ${def.name})`.execute(trx);
        notifiedIn(trx).add(def.name);
      }
    }
    return id;
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
    await this.#unlisten?.();
    this.#unlisten = undefined;
    this.#workers.clear();
    await this.#boss.stop({ graceful: true, wait: true, timeout: Math.max(timeoutMs, 1000), close: false });
    this.#started = false;
  }
}
