/**
 * Tenant-scoped transactions: the database enforces the workspace boundary (row-level security), not
 * only the repositories. See migrations/0005_tenant_isolation.sql for the policies and the role.
 *
 * @example
 *   const docs = await withTenant(db, workspaceId, (trx) =>
 *     trx.selectFrom('documents').selectAll().where('workspace_id', '=', workspaceId).execute(),
 *   );
 *   // Even without the where clause, only this workspace's rows would come back.
 */
import { sql, type Transaction } from 'kysely';
import type { Db } from './database.js';
import type { DB } from './schema.js';

/** The unprivileged role tenant work runs as (RLS never applies to owners or superusers). */
export const APP_ROLE = 'larder_app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Runs `fn` in a transaction as `larder_app` with `larder.workspace_id` set: every statement sees and
 * writes only that workspace's rows. Both settings are transaction-local (released at commit/rollback),
 * so pooled connections never leak a tenant. Pass `trx` down; never use `db` inside `fn`.
 */
export async function withTenant<T>(
  db: Db,
  workspaceId: string,
  fn: (trx: Transaction<DB>) => Promise<T>,
  /** `snapshot`: read-only, REPEATABLE READ: every statement reads the same snapshot. */
  options: { snapshot?: boolean } = {},
): Promise<T> {
  if (!UUID.test(workspaceId)) throw new Error(`withTenant: not a workspace id: ${workspaceId}`);
  const builder = options.snapshot
    ? db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only')
    : db.transaction();
  return builder.execute(async (trx) => {
    await sql`select set_config('role', ${APP_ROLE}, true), set_config('larder.workspace_id', ${workspaceId}, true)`.execute(
      trx,
    );
    return fn(trx);
  });
}
