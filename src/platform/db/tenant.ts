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
import { createRequire } from 'node:module';
import {
  type Compilable,
  CompiledQuery,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCreator,
  type RawBuilder,
  sql,
  type Transaction,
} from 'kysely';
import type pg from 'pg';
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

// ---------------------------------------------------------------------------------------------------
// Tenant reads: one round trip, no explicit transaction.

/**
 * Builds read statements for `tenantRead`. It has no database behind it (a dummy driver): a query built
 * here can only be compiled, so it can never run outside the tenant scope by mistake.
 */
const COMPILER = new Kysely<DB>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Result rows of each query of a tuple of compilable queries. */
export type ReadResults<Q extends readonly Compilable[]> = {
  [K in keyof Q]: Q[K] extends Compilable<infer O> ? O[] : never;
};

/**
 * Runs read-only statements as the tenant and returns their rows: the same scoping as `withTenant`
 * (role `larder_app`, `larder.workspace_id`, so row-level security applies), plus
 * `transaction_read_only`, so a statement that tries to write fails.
 *
 * Server mode sends the settings and every statement in one extended-protocol pipeline ending in one
 * Sync: PostgreSQL runs them in one implicit transaction, which ends (and with it the settings) before
 * the connection goes back to the pool. One round trip instead of three (BEGIN+settings, the query,
 * COMMIT), and each statement is prepared once per connection. Embedded mode runs them in `withTenant`.
 *
 * `build` receives a compile-only query builder (it cannot execute anything); return one query or a
 * tuple of them. Only SELECT (or WITH … SELECT) statements are accepted.
 *
 * @example
 *   const [docs] = await tenantRead(db, ws.id, (q) => [
 *     q.selectFrom('documents').select(['id', 'title']).where('workspace_id', '=', ws.id),
 *   ]);
 */
export async function tenantRead<const Q extends readonly Compilable[]>(
  db: Db,
  workspaceId: string,
  build: (q: QueryCreator<DB>) => Q,
): Promise<ReadResults<Q>> {
  if (!UUID.test(workspaceId)) throw new Error(`tenantRead: not a workspace id: ${workspaceId}`);
  const compiled = build(COMPILER).map((query) => query.compile());
  for (const query of compiled) {
    if (!READ_ONLY_SQL.test(query.sql)) throw new Error(`tenantRead: not a read statement: ${query.sql}`);
  }
  const server = SERVER_POOLS.get(db);
  const results = server
    ? await pipelinedRead(server, workspaceId.toLowerCase(), compiled)
    : await withTenant(db, workspaceId, async (trx) => {
        await sql`select set_config('transaction_read_only', 'on', true)`.execute(trx);
        const rows: unknown[][] = [];
        for (const query of compiled) rows.push((await trx.executeQuery(query)).rows);
        return rows;
      });
  return results as ReadResults<Q>;
}

const READ_ONLY_SQL = /^\s*(select|with)\s/i;

/**
 * A raw SQL read (`sql\`select …\``) as a statement for `tenantRead`, compiled by its compile-only
 * builder.
 *
 * @example
 *   const [rows] = await tenantRead(db, ws.id, () => [rawRead(sql<{ n: number }>`select 1 as n`)]);
 */
export function rawRead<O>(query: RawBuilder<O>): Compilable<O> {
  return { compile: () => query.compile(COMPILER) };
}

/** Placeholder for the value at `index` while a template is built: it cannot occur in real input. */
const PLACEHOLDER_START = '\u0000larder:';
const placeholder = (index: number) => `${PLACEHOLDER_START}${index}\u0000`;

/** The index of a placeholder, or undefined for a string that merely contains one. */
function placeholderIndex(value: string): number | undefined {
  const index = Number(value.slice(PLACEHOLDER_START.length, -1));
  return Number.isInteger(index) && value === placeholder(index) ? index : undefined;
}

/** Where each bound parameter of a template comes from: a value's index, or a constant of the shape. */
type Slot = number | { constant: unknown };

interface Compiled {
  sql: string;
  slots: Slot[];
  /** Calls checked against a fresh build so far (see `bind`). */
  checked: number;
}

/** Calls per shape whose template is compared with a fresh build: all of the first, then a sample. */
const CHECK_FIRST = 16;
const CHECK_EVERY = 1024;
const MAX_SHAPES = 500;

/**
 * A read statement built and compiled by Kysely once per shape, then re-bound with new values: on a hot
 * path, building and compiling the query costs more than the rest of the request's JavaScript.
 *
 * `build` gets placeholders instead of `values` and must take every value from them; `shape` must name
 * everything else that changes the statement (which filters apply, how many ids a list has, the caller's
 * role when it selects constants). A value the builder transforms (`toLowerCase`, `new Date`) is not a
 * placeholder any more: such a build is not cached, only run. As a guard against a shape that misses a
 * variation, the first calls of each shape and a sample after that are compared with a fresh build from
 * the real values; a difference throws (and drops the shape), never runs the wrong statement.
 *
 * @example
 *   const BY_ID = new ReadTemplate((q, [ws = '', id = '']) =>
 *     q.selectFrom('documents').select(['id', 'title']).where('workspace_id', '=', ws).where('id', '=', id));
 *   const [[doc]] = await tenantRead(db, wsId, () => [BY_ID.bind('by-id', [wsId, id], undefined)]);
 */
export class ReadTemplate<O, C = undefined> {
  readonly #shapes = new Map<string, Compiled | null>();

  constructor(
    private readonly build: (q: QueryCreator<DB>, values: readonly string[], context: C) => Compilable<O>,
  ) {}

  /** `context` is for what `shape` names (e.g. the caller's role); values come from `values` only. */
  bind(shape: string, values: readonly string[], context: C): Compilable<O> {
    let compiled = this.#shapes.get(shape);
    if (compiled === undefined) {
      compiled = this.#template(values.length, context);
      if (this.#shapes.size < MAX_SHAPES) this.#shapes.set(shape, compiled);
    }
    if (compiled === null) return this.build(COMPILER, values, context);
    const template = compiled;
    const parameters = template.slots.map((slot) =>
      typeof slot === 'number' ? values[slot] : slot.constant,
    );
    const n = template.checked++;
    if (n < CHECK_FIRST || n % CHECK_EVERY === 0) {
      const fresh = this.build(COMPILER, values, context).compile();
      if (
        fresh.sql !== template.sql ||
        fresh.parameters.length !== parameters.length ||
        fresh.parameters.some((p, i) => !sameParameter(p, parameters[i]))
      ) {
        this.#shapes.delete(shape);
        throw new Error(`ReadTemplate: shape "${shape}" does not determine the statement: ${fresh.sql}`);
      }
    }
    return { compile: () => CompiledQuery.raw(template.sql, parameters) };
  }

  #template(count: number, context: C): Compiled | null {
    const probe = this.build(
      COMPILER,
      Array.from({ length: count }, (_, i) => placeholder(i)),
      context,
    ).compile();
    if (probe.sql.includes('\u0000')) return null;
    const slots: Slot[] = [];
    for (const parameter of probe.parameters) {
      if (typeof parameter === 'string' && parameter.includes('\u0000')) {
        const index = placeholderIndex(parameter);
        if (index === undefined) return null; // a transformed value: not cacheable
        slots.push(index);
      } else slots.push({ constant: parameter });
    }
    return { sql: probe.sql, slots, checked: 0 };
  }
}

function sameParameter(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return JSON.stringify(a) === JSON.stringify(b);
}

interface ServerPool {
  pool: pg.Pool;
  types: pg.CustomTypesConfig;
}

/** Server-mode pools behind a `Db`, registered by `openDatabase`: `tenantRead` pipelines on them. */
const SERVER_POOLS = new WeakMap<Db, ServerPool>();

export function registerServerPool(db: Db, pool: pg.Pool, types: pg.CustomTypesConfig): void {
  SERVER_POOLS.set(db, { pool, types });
  PIPELINED.add(db);
}

/** The tenant settings, the first statement of every pipeline ($1 = workspace id). */
const TENANT_SETTINGS = `select set_config('role', '${APP_ROLE}', true), set_config('larder.workspace_id', $1, true), set_config('transaction_read_only', 'on', true)`;

async function pipelinedRead(
  server: ServerPool,
  workspaceId: string,
  queries: readonly CompiledQuery[],
): Promise<unknown[][]> {
  const client = await server.pool.connect();
  // An idle connection ('I') is required: inside an open transaction the settings would outlive the
  // pipeline. Never expected; a connection in any other state is discarded, not reused.
  if (client.getTransactionStatus() !== 'I') {
    client.release(new Error('pooled connection was not idle'));
    throw new Error('tenantRead: pooled connection was not idle');
  }
  let result: unknown[][];
  try {
    result = await new Promise<unknown[][]>((resolve, reject) => {
      client.query(
        new TenantPipeline(client, server.types, workspaceId, queries, (error, rows) => {
          if (error) reject(error);
          else resolve(rows);
        }),
      );
    });
  } catch (error) {
    // The server ended the implicit transaction at Sync (errors included), so the connection is clean.
    release(client);
    throw error;
  }
  release(client);
  return result;
}

function release(client: pg.PoolClient): void {
  const status = client.getTransactionStatus();
  if (status === 'I') client.release();
  else client.release(new Error(`tenantRead: connection left in transaction state ${String(status)}`));
}

/** pg's wire-protocol writer (not in @types/pg: the methods `pg.Query` itself uses). */
interface Wire {
  stream: { cork?: () => void; uncork?: () => void };
  parse(message: { text: string; name?: string; types?: unknown[] }): void;
  bind(message: {
    statement?: string;
    values: readonly unknown[];
    valueMapper: (value: unknown) => unknown;
  }): void;
  describe(message: { type: 'P' | 'S'; name?: string }): void;
  execute(message: { portal?: string; rows?: number }): void;
  close(message: { type: 'P' | 'S'; name: string }): void;
  sync(): void;
}

interface RowDescription {
  fields: pg.FieldDef[];
}
interface DataRow {
  fields: (string | null)[];
}

/** How to turn one statement's text-format columns into a row object (built once per statement). */
interface RowShape {
  fields: readonly pg.FieldDef[];
  columns: { name: string; parse: (value: string) => unknown }[];
}

/** Row shapes per SQL text: a prepared statement describes the same columns every time. */
const ROW_SHAPES = new Map<string, RowShape>();

function sameFields(a: readonly pg.FieldDef[], b: readonly pg.FieldDef[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((field, i) => field.name === b[i]?.name && field.dataTypeID === b[i].dataTypeID);
}

function rowShape(text: string, fields: readonly pg.FieldDef[], types: pg.CustomTypesConfig): RowShape {
  const known = ROW_SHAPES.get(text);
  if (known && sameFields(known.fields, fields)) return known;
  const parser = types.getTypeParser.bind(types) as (
    oid: number,
    format: 'text',
  ) => (value: string) => unknown;
  const shape: RowShape = {
    fields,
    columns: fields.map((f) => ({ name: f.name, parse: parser(f.dataTypeID, 'text') })),
  };
  if (ROW_SHAPES.size < MAX_STATEMENT_NAMES) ROW_SHAPES.set(text, shape);
  return shape;
}

function parseRow(shape: RowShape, values: readonly (string | null)[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  let i = 0;
  for (const column of shape.columns) {
    const value = values[i++];
    row[column.name] = value === null || value === undefined ? null : column.parse(value);
  }
  return row;
}

/** pg's own conversion of parameters to wire values (dates, arrays, JSON), as `pg.Query` binds them. */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => unknown;
};

/** Values are converted by `prepareValue` before the pipeline is written. */
const asPrepared = (value: unknown) => value;

/** Statement names per SQL text, process-wide; beyond the cap, statements stay unnamed (parsed each time). */
const STATEMENT_NAMES = new Map<string, string>();
const MAX_STATEMENT_NAMES = 1000;
/** Named statements known to be prepared on each connection; bounded like the names. */
const PREPARED = new WeakMap<pg.PoolClient, Set<string>>();
const MAX_PREPARED_PER_CONNECTION = 200;

function statementName(text: string): string | undefined {
  let name = STATEMENT_NAMES.get(text);
  if (name === undefined && STATEMENT_NAMES.size < MAX_STATEMENT_NAMES) {
    name = `larder_read_${STATEMENT_NAMES.size + 1}`;
    STATEMENT_NAMES.set(text, name);
  }
  return name;
}

/**
 * A pg "submittable" that writes the tenant settings and the statements as one pipeline: for each,
 * Parse (the first time on this connection) / Bind / Describe / Execute, then one Sync, in one socket
 * write. pg's client hands it the backend's answers in order; the settings' row is skipped.
 *
 * A named statement is closed before it is parsed the first time on a connection (closing a missing
 * statement is not an error), so a pipeline that failed halfway never leaves a name we would
 * wrongly believe free or prepared; names count as prepared only after a pipeline succeeded.
 */
class TenantPipeline implements pg.Submittable {
  readonly #statements: { text: string; name: string | undefined; values: readonly unknown[] }[];
  readonly #types: pg.CustomTypesConfig;
  /** Rows of each statement, and the shape of the statement whose rows arrive now. */
  readonly #rows: Record<string, unknown>[][];
  #shape: RowShape | undefined;
  readonly #prepared: Set<string>;
  readonly #parsing: string[] = [];
  /** Index of the statement whose answers arrive now (0 = the settings). */
  #current = 0;
  #failed: Error | undefined;
  #done = false;

  constructor(
    client: pg.PoolClient,
    types: pg.CustomTypesConfig,
    workspaceId: string,
    queries: readonly CompiledQuery[],
    private readonly callback: (error: Error | undefined, rows: Record<string, unknown>[][]) => void,
  ) {
    let prepared = PREPARED.get(client);
    if (!prepared) PREPARED.set(client, (prepared = new Set()));
    this.#prepared = prepared;
    this.#statements = [
      { text: TENANT_SETTINGS, name: statementName(TENANT_SETTINGS), values: [workspaceId] },
      // Values are converted here, before anything is written: a conversion that throws must not
      // leave half a pipeline (without its Sync) on the connection.
      ...queries.map((q) => ({
        text: q.sql,
        name: statementName(q.sql),
        values: q.parameters.map((value) => prepareValue(value)),
      })),
    ];
    this.#types = types;
    this.#rows = queries.map(() => []);
  }

  submit(connection: unknown): void {
    const wire = connection as Wire;
    wire.stream.cork?.();
    try {
      for (const [i, statement] of this.#statements.entries()) {
        let name = statement.name;
        if (name !== undefined && !this.#prepared.has(name)) {
          if (this.#prepared.size >= MAX_PREPARED_PER_CONNECTION) name = undefined;
          else {
            wire.close({ type: 'S', name });
            this.#parsing.push(name);
          }
          wire.parse({ text: statement.text, ...(name === undefined ? {} : { name }) });
        } else if (name === undefined) {
          wire.parse({ text: statement.text });
        }
        wire.bind({ statement: name ?? '', values: statement.values, valueMapper: asPrepared });
        if (i > 0) wire.describe({ type: 'P', name: '' }); // the settings' row is not read
        wire.execute({ portal: '', rows: 0 });
      }
      wire.sync();
    } finally {
      wire.stream.uncork?.();
    }
  }

  handleRowDescription(message: RowDescription): void {
    const statement = this.#statements[this.#current];
    if (statement && this.#current > 0) this.#shape = rowShape(statement.text, message.fields, this.#types);
  }

  handleDataRow(message: DataRow): void {
    const rows = this.#rows[this.#current - 1];
    if (!rows || !this.#shape || this.#failed) return;
    try {
      rows.push(parseRow(this.#shape, message.fields));
    } catch (error) {
      this.#failed = error as Error;
    }
  }

  handleCommandComplete(): void {
    this.#current++;
    this.#shape = undefined;
  }

  handleEmptyQuery(): void {
    this.#current++;
  }

  handlePortalSuspended(): void {
    this.#fail(new Error('tenantRead: unexpected portal suspension'));
  }

  handleCopyInResponse(): void {
    this.#fail(new Error('tenantRead: COPY is not a read statement'));
  }

  handleCopyData(): void {
    // never requested
  }

  handleError(error: Error): void {
    this.#fail(error);
  }

  handleReadyForQuery(): void {
    if (this.#failed) {
      this.#fail(this.#failed);
      return;
    }
    for (const name of this.#parsing) this.#prepared.add(name);
    this.#finish(undefined);
  }

  #fail(error: Error): void {
    this.#finish(error);
  }

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.callback(error, this.#rows);
  }
}
