/**
 * Lexical index upkeep: compaction of a collection's postings lists (compaction.ts), enqueued after
 * every ingest and document deletion, and a periodic sweep that catches what nothing enqueued (a
 * document failed for good, a run cut short). Compaction is never needed for correct results, only
 * for fast ones and to purge deleted text.
 */
import { sql } from 'kysely';
import Type from 'typebox';
import { defineJob } from '../../platform/jobs/define.js';
import type { JobQueue, SendOptions } from '../../platform/jobs/queue.js';
import { compactCollection } from './compaction.js';

const Uuid = Type.String({ format: 'uuid' });

/**
 * A wait before compacting, so that one run merges the lists of many ingests: each run rewrites every
 * lexeme it touches, and during a bulk load a 5 s delay had compaction running half the time.
 */
export const COMPACTION_DELAY_SECONDS = 30;

export const compactLexicalJob = defineJob({
  name: 'search.compact',
  payload: Type.Object({ workspaceId: Uuid, collectionId: Uuid }),
  retry: { limit: 3, delaySeconds: 30, backoff: true },
  expireInSeconds: 15 * 60,
  // One waiting and one running per collection: enqueueing after every ingest costs nothing more.
  policy: 'stately',
  async handler(payload, ctx) {
    const result = await compactCollection(ctx.deps.database.db, payload.workspaceId, payload.collectionId, {
      signal: ctx.signal,
    });
    // Cut short by the batch limit: the rest in another run.
    if (result.more && !ctx.signal.aborted) await requestCompaction(ctx.queue, payload);
    return result;
  },
});

/** Enqueues a compaction of the collection (a no-op when one is already waiting). */
export function requestCompaction(
  queue: JobQueue,
  target: { workspaceId: string; collectionId: string },
  options: Pick<SendOptions, 'trx'> = {},
): Promise<string | null> {
  return queue.send(compactLexicalJob, target, {
    ...options,
    singletonKey: target.collectionId,
    startAfterSeconds: COMPACTION_DELAY_SECONDS,
  });
}

export const compactionSweepJob = defineJob({
  name: 'search.compact-sweep',
  payload: Type.Object({}),
  retry: { limit: 1, delaySeconds: 60, backoff: false },
  expireInSeconds: 5 * 60,
  schedule: '*/10 * * * *',
  async handler(_payload, ctx) {
    // Across workspaces: the worker's own role, like the other maintenance jobs.
    const { rows } = await sql<{ workspace_id: string; collection_id: string }>`
      select distinct workspace_id, collection_id from lexical_ranges where not live
      union
      select distinct workspace_id, collection_id from lexical_postings where not merged`.execute(
      ctx.deps.database.db,
    );
    for (const r of rows)
      await requestCompaction(ctx.queue, { workspaceId: r.workspace_id, collectionId: r.collection_id });
    return { collections: rows.length };
  },
});

export const searchJobs = [compactLexicalJob, compactionSweepJob];
