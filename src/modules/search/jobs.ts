/**
 * Lexical index upkeep: compaction of a collection's postings lists (compaction.ts), enqueued after
 * every ingest and document deletion, and a periodic sweep that catches what nothing enqueued (a
 * document failed for good, a run cut short). Compaction is never needed for correct results, only
 * for fast ones and to purge deleted text.
 */
import { sql } from 'kysely';
import Type from 'typebox';
import { defineJob } from '../../platform/jobs/define.js';
import type { JobQueue } from '../../platform/jobs/queue.js';
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

/**
 * A compaction this process created less than this long ago has not started yet (it waits
 * COMPACTION_DELAY_SECONDS), so it will see whatever was committed before a new request: the request
 * is skipped without a round trip. A bulk load asks once per ingest.
 */
const REQUEST_DEBOUNCE_MS = (COMPACTION_DELAY_SECONDS - 10) * 1000;
const created = new WeakMap<JobQueue, Map<string, number>>();

/**
 * Enqueues a compaction of the collection (a no-op when one is already waiting). Returns the job's
 * id, or null when one was already waiting or this process created one moments ago.
 */
export async function requestCompaction(
  queue: JobQueue,
  target: { workspaceId: string; collectionId: string },
): Promise<string | null> {
  let recent = created.get(queue);
  if (!recent) created.set(queue, (recent = new Map<string, number>()));
  const now = Date.now();
  if (now - (recent.get(target.collectionId) ?? -Infinity) < REQUEST_DEBOUNCE_MS) return null;
  const id = await queue.send(compactLexicalJob, target, {
    singletonKey: target.collectionId,
    startAfterSeconds: COMPACTION_DELAY_SECONDS,
  });
  // Only a job created now is known to start late enough; a deduplicated request tells nothing.
  if (id !== null) {
    if (recent.size >= 10_000)
      for (const [collection, at] of recent) if (now - at >= REQUEST_DEBOUNCE_MS) recent.delete(collection);
    recent.set(target.collectionId, now);
  }
  return id;
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
