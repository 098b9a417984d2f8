/**
 * The database: one Kysely code path over two drivers.
 *  - embedded: PGlite (PostgreSQL in WASM) with pgvector, persisted under `LARDER_DATA_DIR`;
 *  - server:   PostgreSQL ≥ 14 with pgvector through a `pg` Pool.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Config } from '../../config.js';
import { StartupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { acquireDataDirLock } from './data-dir-lock.js';
import { PGliteDialect, SessionLock } from './pglite-dialect.js';
import { prepareStatements } from './prepared.js';
import { registerServerPool } from './tenant.js';
import type { DB } from './schema.js';

export type Db = Kysely<DB>;

/** Rows of every statement, as pg-boss's `db.executeSql` contract expects. */
export interface SqlResult {
  rows: unknown[];
}

export interface Database {
  readonly mode: 'embedded' | 'server';
  readonly db: Db;
  /**
   * Runs raw SQL outside Kysely (used by the job queue). On PGlite this takes the same session lock as
   * Kysely, so it never lands inside someone else's transaction. Multi-statement text is allowed when
   * `values` is empty; rows of every statement are returned in order.
   */
  executeSql(text: string, values?: unknown[]): Promise<SqlResult>;
  /**
   * Calls `onPayload` for every `NOTIFY` on `channel` (a lower-case identifier) until the returned
   * function is called or the database closes. PostgreSQL delivers a notification when the
   * transaction that sent it commits, never if it rolls back. On a server the listener holds one
   * connection of its own, outside the pool, and reconnects after a failure; notifications sent while
   * it is disconnected are lost, so it may only speed up what also works without it (the job queue
   * still polls).
   */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes pools / the embedded database. Idempotent. */
  close(): Promise<void>;
}

/** int8 (counts, byte sizes) as JS numbers, as PGlite does; per pool, not a global override. */
const pgTypes = new pg.TypeOverrides();
pgTypes.setTypeParser(pg.types.builtins.INT8, Number);

export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  return config.databaseUrl ? openServer(config, config.databaseUrl, logger) : openEmbedded(config, logger);
}

async function openEmbedded(config: Config, logger: Logger): Promise<Database> {
  const dataDir = path.resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const releaseDirLock = await acquireDataDirLock(dataDir);
  const pgDir = path.join(dataDir, 'pg');
  logger.info({ dataDir }, 'opening embedded database (PGlite)');
  let pglite: PGlite;
  try {
    pglite = await PGlite.create({ dataDir: pgDir, extensions: { vector } });
  } catch (error) {
    await releaseDirLock();
    throw error;
  }
  return embeddedDatabase(pglite, releaseDirLock);
}

/** Wraps an open PGlite instance (also used by tests with an in-memory copy of a migrated template). */
export function embeddedDatabase(
  pglite: PGlite,
  onClose: () => Promise<void> = () => Promise.resolve(),
): Database {
  const lock = new SessionLock();
  const db = new Kysely<DB>({ dialect: new PGliteDialect(pglite, lock) });
  let closed = false;
  return {
    mode: 'embedded',
    db,
    executeSql: (text, values) =>
      lock.run(async () => {
        if (values && values.length > 0) return { rows: (await pglite.query(text, values)).rows };
        try {
          const results = await pglite.exec(text);
          return { rows: results.flatMap((r) => r.rows) };
        } catch (error) {
          // A failed `BEGIN; …; COMMIT;` script leaves the session in an aborted transaction; we hold the
          // session lock, so nobody else's transaction can be open: roll back so the session is usable.
          await pglite.exec('rollback').catch(() => undefined);
          throw error;
        }
      }),
    listen: (channel, onPayload) =>
      lock.run(async () => {
        const unlisten = await pglite.listen(channel, onPayload);
        return () => (closed ? Promise.resolve() : lock.run(() => unlisten()));
      }),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      await lock.run(() => pglite.close());
      await onClose();
    },
  };
}

async function openServer(config: Config, url: string, logger: Logger): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: config.databasePoolSize,
    application_name: 'larder',
    statement_timeout: config.databaseStatementTimeoutMs || undefined,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    types: pgTypes,
  });
  if (config.databasePreparedStatements) pool.on('connect', (client) => prepareStatements(client));
  // An idle client that errors (server restart) must not crash the process; the pool replaces it.
  pool.on('error', (error) => {
    logger.warn({ err: error }, 'idle database connection failed');
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  registerServerPool(db, pool, pgTypes);
  let closed = false;
  const listeners = new Set<() => Promise<void>>();
  return {
    mode: 'server',
    db,
    async executeSql(text, values) {
      const result = (await pool.query(text, values)) as pg.QueryResult | pg.QueryResult[];
      return {
        rows: Array.isArray(result) ? result.flatMap((r) => r.rows as unknown[]) : (result.rows as unknown[]),
      };
    },
    async listen(channel, onPayload) {
      const stop = await serverListener(url, channel, onPayload, logger);
      const unlisten = async () => {
        listeners.delete(unlisten);
        await stop();
      };
      listeners.add(unlisten);
      return unlisten;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...listeners].map((unlisten) => unlisten()));
      await db.destroy(); // ends the pool
    },
  };
}

/** Delay before a lost listening connection is opened again. */
const LISTEN_RECONNECT_MS = 2000;

/**
 * A connection of its own that LISTENs on `channel`; reopened after an error or a server restart. The
 * first connection must succeed (a wrong URL fails at start-up, not silently later).
 */
async function serverListener(
  url: string,
  channel: string,
  onPayload: (payload: string) => void,
  logger: Logger,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const connect = async () => {
    const next = new pg.Client({
      connectionString: url,
      application_name: 'larder-listen',
      connectionTimeoutMillis: 10_000,
    });
    next.on('notification', (message) => {
      if (message.channel === channel) onPayload(message.payload ?? '');
    });
    // Only a connection that was listening counts as lost; a failed connect rejects instead.
    const lost = (error?: Error) => {
      if (stopped || client !== next) return;
      client = undefined;
      logger.warn({ err: error, channel }, 'database listener lost; reconnecting');
      next.end().catch(() => undefined);
      schedule();
    };
    next.on('error', lost);
    next.on('end', () => {
      lost();
    });
    try {
      await next.connect();
      await next.query(`listen ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      await next.end().catch(() => undefined);
      throw error;
    }
    if (stopped) await next.end().catch(() => undefined);
    else client = next;
  };
  const schedule = () => {
    retry = setTimeout(() => {
      if (stopped) return;
      connect().catch((error: unknown) => {
        logger.warn({ err: error, channel }, 'database listener could not reconnect');
        schedule();
      });
    }, LISTEN_RECONNECT_MS);
    retry.unref();
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    const last = client;
    client = undefined;
    await last?.end().catch(() => undefined);
  };
}

/** Fails with an actionable message when the server cannot run Larder's schema. */
export async function assertServerRequirements(db: Db): Promise<void> {
  const { rows } = await sql<ServerFacts>`
    select current_setting('server_version_num')::int as version,
           exists(select 1 from pg_available_extensions where name = 'vector') as "vectorAvailable"`.execute(
    db,
  );
  const problem = rows[0]
    ? serverRequirementProblem(rows[0])
    : 'could not read the PostgreSQL server version';
  if (problem) throw new StartupError(problem);
}

export interface ServerFacts {
  /** `server_version_num`, e.g. 150019 */
  version: number;
  vectorAvailable: boolean;
}

/** What stops this server from running Larder, worded for the operator; undefined when fine. */
export function serverRequirementProblem(facts: ServerFacts): string | undefined {
  if (facts.version < 140000) {
    return `PostgreSQL ${Math.floor(facts.version / 10000)} is too old: Larder needs PostgreSQL 14 or newer.`;
  }
  if (!facts.vectorAvailable) {
    const major = Math.floor(facts.version / 10000);
    return [
      'The pgvector extension is not installed on this PostgreSQL server.',
      'Install it, then start Larder again (it runs CREATE EXTENSION vector itself):',
      `  - Debian/Ubuntu with the PGDG repository: apt-get install postgresql-${major}-pgvector`,
      '  - Debian without PGDG, from this repository: sudo scripts/install-pgvector.sh',
      '  - Docker: use the pgvector/pgvector image matching your PostgreSQL version',
      '  - managed services (RDS, Cloud SQL, Azure, Supabase, Neon): pgvector is available; allow it in the instance settings',
      'See https://github.com/pgvector/pgvector#installation',
    ].join('\n');
  }
  return undefined;
}
