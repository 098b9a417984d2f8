import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';

export interface PurgeResult {
  refreshTokens: number;
  invitations: number;
  embeddingCache: number;
}

/** Cached vectors no chunk uses are kept this long (a re-sync soon after a delete still hits them). */
export const EMBEDDING_CACHE_RETENTION_DAYS = 30;

/**
 * Deletes refresh tokens and unaccepted invitations that expired more than `retentionDays` ago, and
 * embedding-cache entries older than 30 days that no chunk uses.
 */
export async function purgeExpired(db: Db, retentionDays: number): Promise<PurgeResult> {
  const cutoff = sql<Date>`now() - make_interval(days => ${retentionDays})`;
  return db.transaction().execute(async (trx) => {
    const tokens = await trx.deleteFrom('refresh_tokens').where('expires_at', '<', cutoff).executeTakeFirst();
    const invitations = await trx
      .deleteFrom('invitations')
      .where('expires_at', '<', cutoff)
      .where('accepted_at', 'is', null)
      .executeTakeFirst();
    // Vectors of the embedding cache that no chunk of their workspace uses under that model any more.
    const cache = await sql`
      delete from embedding_cache c
      where c.created_at < now() - make_interval(days => ${EMBEDDING_CACHE_RETENTION_DAYS})
        and not exists (select 1 from chunk_embeddings e
                        where e.workspace_id = c.workspace_id and e.model = c.model
                          and e.content_hash = c.content_hash)`.execute(trx);
    return {
      refreshTokens: Number(tokens.numDeletedRows),
      invitations: Number(invitations.numDeletedRows),
      embeddingCache: Number(cache.numAffectedRows ?? 0),
    };
  });
}
