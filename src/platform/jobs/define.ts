/**
 * Typed background jobs on pg-boss (at-least-once, retries with backoff, dead letters), stored in the
 * same PostgreSQL as everything else. Handlers must be idempotent: a job can run again after a crash.
 *
 * @example
 *   export const reindex = defineJob({
 *     name: 'documents.reindex',
 *     payload: Type.Object({ documentId: Type.String({ format: 'uuid' }) }),
 *     retry: { limit: 5, delaySeconds: 10, backoff: true },
 *     async handler({ documentId }, ctx) { ... },
 *   });
 *   await jobs.send(reindex, { documentId });
 */
import type { Static, TSchema } from 'typebox';
import type { Config } from '../../config.js';
import type { EmbeddingProviders } from '../../ai/embeddings/index.js';
import type { Database } from '../db/database.js';
import type { EventBus } from '../events/bus.js';
import type { Logger } from '../logger.js';
import type { JobQueue } from './queue.js';

/** What a handler may use. Services are built from these, never from globals. */
export interface JobDeps {
  config: Config;
  database: Database;
  logger: Logger;
  events: EventBus;
  embeddings: EmbeddingProviders;
}

export interface JobContext {
  jobId: string;
  /** 0 on the first attempt. */
  retryCount: number;
  /** This is the last attempt the retry policy allows (a failure now is final). */
  lastAttempt: boolean;
  /** Child logger carrying `jobId` and `queue`. */
  log: Logger;
  deps: JobDeps;
  /** The queue running this job: handlers enqueue follow-up jobs with it (inside their transaction). */
  queue: JobQueue;
  /** Aborted when the worker is shutting down; long handlers should stop at the next safe point. */
  signal: AbortSignal;
}

export interface RetryPolicy {
  /** Attempts after the first one. */
  limit: number;
  delaySeconds: number;
  /** Exponential backoff with jitter (pg-boss) instead of a fixed delay. */
  backoff: boolean;
}

export interface JobDefinition<S extends TSchema = TSchema> {
  /** Queue name: `domain.action`, letters, digits, `.`, `_`, `-`. */
  name: string;
  payload: S;
  retry: RetryPolicy;
  /** A running job is failed (and retried) after this long. */
  expireInSeconds: number;
  /**
   * pg-boss queue policy (default `standard`). `stately`: at most one job waiting and one running per
   * singleton key; sending another while one waits is a no-op (returns null).
   */
  policy?: 'standard' | 'stately';
  /** Optional cron expression (UTC): the job is enqueued on this schedule by the worker. */
  schedule?: string;
  /**
   * Queue that receives the payload when this job fails for good, its retries spent, timeouts
   * included (a worker that died never runs a handler's own last-attempt code). Must be defined too.
   */
  deadLetter?: string;
  handler(payload: Static<S>, ctx: JobContext): Promise<unknown>;
  /**
   * Run up to `size` waiting jobs of this queue in one call, when the work is cheaper together (one
   * transaction for many rows). Each job keeps its own retries and dead letter: the handler settles
   * every item on its own (a rejected item's job alone is failed and retried). `handler` above is
   * still the one-job entry point.
   */
  batch?: {
    size: number;
    handler(items: BatchItem<Static<S>>[]): Promise<PromiseSettledResult<unknown>[]>;
  };
}

/** One job of a batch: its payload and its own context (attempt, logger). */
export interface BatchItem<P> {
  payload: P;
  ctx: JobContext;
}

const NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;

export function defineJob<S extends TSchema>(
  definition: Omit<JobDefinition<S>, 'expireInSeconds'> & { expireInSeconds?: number },
): JobDefinition<S> {
  if (!NAME.test(definition.name)) throw new Error(`invalid job name: ${definition.name}`);
  if (definition.retry.limit < 0 || definition.retry.delaySeconds < 0)
    throw new Error('retry values must be >= 0');
  if (
    definition.batch !== undefined &&
    !(Number.isInteger(definition.batch.size) && definition.batch.size >= 1)
  )
    throw new Error('batch size must be a positive integer');
  return { expireInSeconds: 15 * 60, ...definition };
}
