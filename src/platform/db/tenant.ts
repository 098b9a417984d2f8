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
  if (PIPELINED.has(db)) return pipelined(db, workspaceId, fn, options);
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

/**
 * Databases whose driver runs a parameterless multi-statement script in one round trip (node-postgres
 * sends it as a simple query): there `withTenant` opens the transaction and sets the tenant with one
 * message instead of two. Registered by `openDatabase` for server mode; PGlite keeps the plain path.
 */
const PIPELINED = new WeakSet<Db>();

export function pipelineTenantBegin(db: Db): void {
  PIPELINED.add(db);
}

/**
 * `BEGIN …; SELECT set_config(…)` as one script (the workspace id is a checked UUID and the role a
 * constant, so both are inlined safely), then `fn`, then COMMIT (ROLLBACK on error) on the same
 * pooled connection. Saves one round trip per tenant transaction, which is most of the API's reads.
 * `fn` gets the connection typed as a transaction: like in a Kysely transaction, it must not open
 * another one.
 */
async function pipelined<T>(
  db: Db,
  workspaceId: string,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options: { snapshot?: boolean },
): Promise<T> {
  const mode = options.snapshot ? ' isolation level repeatable read read only' : '';
  return db.connection().execute(async (conn) => {
    await sql
      .raw(
        `begin${mode}; select set_config('role', '${APP_ROLE}', true), set_config('larder.workspace_id', '${workspaceId.toLowerCase()}', true)`,
      )
      .execute(conn);
    let result: T;
    try {
      result = await fn(conn as unknown as Transaction<DB>);
    } catch (error) {
      await sql.raw('rollback').execute(conn);
      throw error;
    }
    await sql.raw('commit').execute(conn);
    return result;
  });
}
