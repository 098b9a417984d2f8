/** SQL for the audit log. Inserts run on the caller's connection; reads run inside a tenant transaction. */
import { sql, type Transaction } from 'kysely';
import { type KeysetPosition, positionAt } from '../../platform/db/cursor.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, NewAuditLogEntry } from '../../platform/db/schema.js';

type Conn = Db | Transaction<DB>;

export async function insertAuditEvent(conn: Conn, row: NewAuditLogEntry): Promise<void> {
  await conn.insertInto('audit_log').values(row).execute();
}

/** Position of a row in the newest-first order (see platform/db/cursor.ts). */
export type AuditPosition = KeysetPosition;

export interface AuditFilters {
  /** Exact action, or a prefix when it ends in `*`. */
  action?: string | undefined;
  actorUserId?: string | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  /** Inclusive. */
  from?: Date | undefined;
  /** Exclusive. */
  to?: Date | undefined;
  /** Rows strictly after this position (older). */
  after?: AuditPosition | undefined;
  limit: number;
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, '\\$&');

/**
 * A page of a workspace's events, newest first. Keyset pagination on `(created_at, id)`: `created_at`
 * alone is not unique (events of one transaction share `now()`), and JS Dates would truncate its
 * microseconds, so the position is carried as text at full precision (`position_at`).
 */
export function listAuditEvents(trx: Transaction<DB>, workspaceId: string, f: AuditFilters) {
  let query = trx
    .selectFrom('audit_log')
    .select([
      'id',
      'workspace_id',
      'actor_type',
      'actor_user_id',
      'actor_api_key_id',
      'action',
      'target_type',
      'target_id',
      'ip',
      'user_agent',
      'request_id',
      'data',
      'created_at',
      positionAt.as('position_at'),
    ])
    .where('workspace_id', '=', workspaceId);
  if (f.action !== undefined) {
    query = f.action.endsWith('*')
      ? query.where('action', 'like', `${escapeLike(f.action.slice(0, -1))}%`)
      : query.where('action', '=', f.action);
  }
  if (f.actorUserId !== undefined) query = query.where('actor_user_id', '=', f.actorUserId);
  if (f.targetType !== undefined) query = query.where('target_type', '=', f.targetType);
  if (f.targetId !== undefined) query = query.where('target_id', '=', f.targetId);
  if (f.from !== undefined) query = query.where('created_at', '>=', f.from);
  if (f.to !== undefined) query = query.where('created_at', '<', f.to);
  if (f.after !== undefined) {
    query = query.where(
      sql<boolean>`(created_at, id) < (${f.after.createdAt}::timestamp at time zone 'UTC', ${f.after.id}::uuid)`,
    );
  }
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit).execute();
}

export type AuditRow = Awaited<ReturnType<typeof listAuditEvents>>[number];
