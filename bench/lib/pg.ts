/**
 * Read-only PostgreSQL diagnostics for the benchmarks (sizes, document statuses, job timings) and
 * VACUUM ANALYZE. Nothing here writes application rows: ingestion goes through the real pipeline.
 */
import { sql } from 'kysely';
import type { Db } from '../../src/platform/db/database.js';
import type { DocumentStatus } from '../../src/platform/db/schema.js';
import { JOB_SCHEMA } from '../../src/platform/jobs/queue.js';

/** int8/numeric as the driver may return them (this app's pool parses int8 to numbers; be safe). */
type Int8 = number | string;

/** `chunks`, `chunk_embeddings` and every other table named `chunk_…` or `collection_…` (public schema). */
export async function indexTables(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select tablename as name from pg_tables
    where schemaname = current_schema()
      and (tablename in ('chunks', 'chunk_embeddings') or tablename like 'chunk\\_%' or tablename like 'collection\\_%'
           or tablename like 'lexical\\_%')
    order by tablename = 'chunks' desc, tablename = 'chunk_embeddings' desc, tablename
  `.execute(db);
  return rows.map((r) => r.name);
}

export async function vacuumAnalyze(db: Db, tables: readonly string[]): Promise<void> {
  for (const table of tables) await sql`vacuum analyze ${sql.table(table)}`.execute(db);
}

export interface TableSize {
  table: string;
  rows: number;
  totalBytes: number;
  heapBytes: number;
  indexBytes: number;
  /** TOAST (and free-space/visibility maps): total − heap − indexes. */
  toastBytes: number;
  indexes: { name: string; bytes: number }[];
}

/** Sizes of whole tables (every collection in the database, not only the benchmarked one). */
export async function tableSizes(db: Db, tables: readonly string[]): Promise<TableSize[]> {
  const out: TableSize[] = [];
  for (const table of tables) {
    const { rows } = await sql<{ total: Int8; heap: Int8; indexes: Int8; rows: Int8 }>`
      select pg_total_relation_size(c.oid)::int8 as total, pg_relation_size(c.oid)::int8 as heap,
             pg_indexes_size(c.oid)::int8 as indexes, greatest(c.reltuples, 0)::int8 as rows
      from pg_class c where c.oid = to_regclass(${table})
    `.execute(db);
    const row = rows[0];
    if (!row) continue;
    const indexes = await sql<{ name: string; bytes: Int8 }>`
      select i.relname as name, pg_relation_size(i.oid)::int8 as bytes
      from pg_index x join pg_class i on i.oid = x.indexrelid
      where x.indrelid = to_regclass(${table})
      order by pg_relation_size(i.oid) desc, i.relname
    `.execute(db);
    out.push({
      table,
      rows: Number(row.rows),
      totalBytes: Number(row.total),
      heapBytes: Number(row.heap),
      indexBytes: Number(row.indexes),
      toastBytes: Number(row.total) - Number(row.heap) - Number(row.indexes),
      indexes: indexes.rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) })),
    });
  }
  return out;
}

export interface StatusCounts {
  documents: Partial<Record<DocumentStatus, number>>;
  /** Chunks of documents in each status (`chunk_count`, written when the document is chunked). */
  chunks: Partial<Record<DocumentStatus, number>>;
}

/** Documents and their chunks per status in one collection (as superuser: no row-level security). */
export async function statusCounts(db: Db, collectionId: string): Promise<StatusCounts> {
  const { rows } = await sql<{ status: DocumentStatus; n: Int8; chunks: Int8 }>`
    select status, count(*)::int8 as n, coalesce(sum(chunk_count), 0)::int8 as chunks
    from documents where collection_id = ${collectionId}::uuid and deleted_at is null
    group by status
  `.execute(db);
  const out: StatusCounts = { documents: {}, chunks: {} };
  for (const r of rows) {
    out.documents[r.status] = Number(r.n);
    out.chunks[r.status] = Number(r.chunks);
  }
  return out;
}

export async function chunkCount(
  db: Db,
  collectionId: string,
): Promise<{ chunks: number; documents: number }> {
  const { rows } = await sql<{ chunks: Int8; documents: Int8 }>`
    select (select count(*) from chunks where collection_id = ${collectionId}::uuid)::int8 as chunks,
           (select count(*) from documents where collection_id = ${collectionId}::uuid
              and deleted_at is null)::int8 as documents
  `.execute(db);
  return { chunks: Number(rows[0]?.chunks ?? 0), documents: Number(rows[0]?.documents ?? 0) };
}

export interface JobTiming {
  queue: string;
  completed: number;
  failedOrRetried: number;
  /** Sum of run times (started → completed) of the completed jobs. */
  busySeconds: number;
  meanMs: number;
  p95Ms: number;
  maxMs: number;
}

/**
 * Run times of the workspace's jobs, from pg-boss's tables (`job` and `archive`): where ingestion time
 * goes (parse/chunk/lexical index vs embedding). Diagnostics only; empty if the tables differ.
 */
export async function jobTimings(db: Db, workspaceId: string): Promise<JobTiming[]> {
  try {
    const { rows } = await sql<{
      queue: string;
      completed: Int8;
      other: Int8;
      busy: Int8 | null;
      mean: Int8 | null;
      p95: Int8 | null;
      max: Int8 | null;
    }>`
      with j as (
        select name, state, retry_count, extract(epoch from completed_on - started_on) * 1000 as ms
        from ${sql.table(`${JOB_SCHEMA}.job`)} where data ->> 'workspaceId' = ${workspaceId}
        union all
        select name, state, retry_count, extract(epoch from completed_on - started_on) * 1000 as ms
        from ${sql.table(`${JOB_SCHEMA}.archive`)} where data ->> 'workspaceId' = ${workspaceId}
      )
      select name as queue,
             count(*) filter (where state = 'completed')::int8 as completed,
             (count(*) filter (where state <> 'completed') + coalesce(sum(retry_count), 0))::int8 as other,
             (sum(ms) filter (where state = 'completed') / 1000)::float8 as busy,
             (avg(ms) filter (where state = 'completed'))::float8 as mean,
             (percentile_cont(0.95) within group (order by ms) filter (where state = 'completed'))::float8 as p95,
             (max(ms) filter (where state = 'completed'))::float8 as max
      from j group by name order by name
    `.execute(db);
    return rows.map((r) => ({
      queue: r.queue,
      completed: Number(r.completed),
      failedOrRetried: Number(r.other),
      busySeconds: Number(r.busy ?? 0),
      meanMs: Number(r.mean ?? 0),
      p95Ms: Number(r.p95 ?? 0),
      maxMs: Number(r.max ?? 0),
    }));
  } catch {
    return [];
  }
}

export async function serverInfo(db: Db): Promise<{ postgres: string; pgvector: string | null }> {
  const { rows } = await sql<{ postgres: string; pgvector: string | null }>`
    select current_setting('server_version') as postgres,
           (select extversion from pg_extension where extname = 'vector') as pgvector
  `.execute(db);
  return rows[0] ?? { postgres: 'unknown', pgvector: null };
}

/**
 * Deletes a bench workspace (cascading to its collections, chunks and postings) without the
 * statement timeout: a 10k-chunk collection's cascade takes longer than the default 30 s.
 */
export async function dropWorkspace(db: Db, workspaceId: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = 0`.execute(trx);
    await trx.deleteFrom('workspaces').where('id', '=', workspaceId).execute();
  });
}
