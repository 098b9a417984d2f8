import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';

export interface PurgeResult {
  refreshTokens: number;
  invitations: number;
}

/** Deletes refresh tokens and unaccepted invitations that expired more than `retentionDays` ago. */
export async function purgeExpired(db: Db, retentionDays: number): Promise<PurgeResult> {
  const cutoff = sql<Date>`now() - make_interval(days => ${retentionDays})`;
  return db.transaction().execute(async (trx) => {
    const tokens = await trx.deleteFrom('refresh_tokens').where('expires_at', '<', cutoff).executeTakeFirst();
    const invitations = await trx
      .deleteFrom('invitations')
      .where('expires_at', '<', cutoff)
      .where('accepted_at', 'is', null)
      .executeTakeFirst();
    return { refreshTokens: Number(tokens.numDeletedRows), invitations: Number(invitations.numDeletedRows) };
  });
}
