/**
 * A collection `factor` times the size of an ingested one, built without ingesting it again: what 1M
 * chunks cost when ingesting them would take hours on this machine.
 *
 *   DATABASE_URL=… npx tsx bench/scale.ts --source bench-100000 [--factor 10] [--json FILE]
 *   DATABASE_URL=… npx tsx bench/search-latency.ts --reuse bench-100000-x10 [--json FILE]
 *   DATABASE_URL=… npx tsx bench/scale.ts --drop bench-100000-x10
 *
 * Builds the collection `<source>-x<factor>` beside the source (same workspace and settings: text
 * search configuration, BM25 parameters, embedding model) out of `factor` copies of the source's
 * documents and chunks, so that every search path works on it as on an ingested one:
 *
 *  - documents and chunks: copied with new ids (external ids get a `#k` suffix, k = copy number);
 *  - vectors: each chunk's vector of copy k is the source's, normalised, plus uniform noise of width
 *    `--noise` per component (default 0.07: cosine ≈ 0.9 to the source's, printed), normalised again,
 *    so the index holds `factor` distinct vectors per source chunk, clustered as near-duplicates are;
 *  - lexical index: N, every document frequency and every postings list exactly `factor` times the
 *    source's (copy k numbers its chunks from k × the source's numbering and its ranges point at copy
 *    k's documents), packed into lists of at most 65,536 postings, the shape compaction leaves;
 *  - HNSW: the index of the collection's dimension is dropped before the copy and built again after
 *    it (`CREATE INDEX`, with `--maintenance-work-mem`, default 8GB, so the graph is built in memory),
 *    as a bulk load would be; its build time is printed. The source's vectors stay in that index.
 *
 * Run it on a benchmark database only: it works in one transaction (a failure leaves nothing behind,
 * the dropped index included), which holds `chunk_embeddings` locked, so every search and embedding
 * write on that database waits until the index is built (~11 minutes for 1M 512-d vectors here).
 *
 * What it does not reproduce is the text variety of a really larger corpus: the copies' texts are the
 * source's. Measure the result with bench/search-latency.ts --reuse, and delete it with --drop (it is
 * an ordinary collection: deleting its workspace deletes it too).
 */
import { appendFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { sql, type Transaction } from 'kysely';
import { loadConfig } from '../src/config.js';
import { DEFAULT_COMPACTION, packLists } from '../src/modules/search/compaction.js';
import { POSTING_BYTES } from '../src/modules/search/lexical.js';
import { openDatabase } from '../src/platform/db/database.js';
import type { DB } from '../src/platform/db/schema.js';
import { createLogger } from '../src/platform/logger.js';
import { duration, int } from './lib/format.js';

const log = (line: string) => process.stderr.write(`${line}\n`);
const usage = (message: string): never => {
  log(`scale: ${message}`);
  log(
    'usage: DATABASE_URL=… npx tsx bench/scale.ts --source NAME|ID [--factor 10] [--noise 0.07]\n' +
      '         [--maintenance-work-mem 8GB] [--json FILE]\n' +
      '       DATABASE_URL=… npx tsx bench/scale.ts --drop NAME|ID',
  );
  process.exit(1);
};

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    drop: { type: 'string' },
    factor: { type: 'string', default: '10' },
    noise: { type: 'string', default: '0.07' },
    'maintenance-work-mem': { type: 'string', default: '8GB' },
    json: { type: 'string' },
  },
});
const factor = Number(values.factor);
const noise = Number(values.noise);
if (!Number.isInteger(factor) || factor < 2) usage('--factor must be an integer ≥ 2');
if (!(noise >= 0)) usage('--noise must be a number ≥ 0');
if (!/^\d+\s*[kMG]?B$/.test(values['maintenance-work-mem'])) usage('--maintenance-work-mem like 8GB');
if (!values.source === !values.drop) usage('give --source or --drop');
if (!process.env.DATABASE_URL) usage('set DATABASE_URL to the benchmark database');

type Trx = Transaction<DB>;
const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
const database = await openDatabase(config, createLogger(config));
const db = database.db;

async function findCollection(trx: Trx, wanted: string) {
  return trx
    .selectFrom('collections')
    .selectAll()
    .where((eb) => eb.or([eb('name', '=', wanted), eb(sql`id::text`, '=', wanted)]))
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

/** A table's stored columns in order, as `select` expressions with some replaced. */
async function columns(trx: Trx, table: string, replace: Record<string, ReturnType<typeof sql>>) {
  const { rows } = await sql<{ name: string }>`
    select column_name as name from information_schema.columns
    where table_schema = current_schema() and table_name = ${table} and is_generated = 'NEVER'
    order by ordinal_position`.execute(trx);
  const names = rows.map((r) => r.name);
  return {
    names: sql.join(names.map((n) => sql.id(n))),
    values: sql.join(names.map((n) => replace[n] ?? sql`t.${sql.id(n)}`)),
  };
}

async function drop(wanted: string) {
  await db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = 0`.execute(trx);
    const target = await findCollection(trx, wanted);
    if (!target) throw new Error(`no collection ${wanted}`);
    const started = performance.now();
    await trx.deleteFrom('collections').where('id', '=', target.id).execute();
    log(`Deleted ${target.name} in ${duration((performance.now() - started) / 1000)}`);
  });
}

async function build(wanted: string) {
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await work();
    timings[name] = Math.round(performance.now() - t0) / 1000;
    log(`${name}: ${duration(timings[name] ?? 0)}`);
    return result;
  };
  // One transaction: the temporary id maps live on its connection, and a failure leaves nothing
  // behind (the dropped HNSW index included).
  const summary = await db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = 0`.execute(trx);
    await sql`set local maintenance_work_mem = ${sql.lit(values['maintenance-work-mem'])}`.execute(trx);
    const source = await findCollection(trx, wanted);
    if (!source) throw new Error(`no collection ${wanted}`);
    const stats = await trx
      .selectFrom('collection_stats')
      .selectAll()
      .where('collection_id', '=', source.id)
      .executeTakeFirstOrThrow();
    const span = Number(stats.next_seq);
    const name = `${source.name}-x${factor}`;
    const collection = await columns(trx, 'collections', {
      id: sql`larder_uuid_v7()`,
      name: sql`${name}::text`,
      created_at: sql`now()`,
      updated_at: sql`now()`,
    });
    const { rows: created } = await sql<{ id: string }>`
      insert into collections (${collection.names}) select ${collection.values}
      from collections t where t.id = ${source.id} returning id`.execute(trx);
    const scratch = { id: created[0]?.id ?? '' };
    await sql`
      insert into collection_stats (collection_id, workspace_id, chunk_count, total_length, version,
                                    vectors_version, next_seq)
      values (${scratch.id}, ${source.workspace_id}, ${Number(stats.chunk_count) * factor},
              ${Number(stats.total_length) * factor}, ${stats.version}, ${stats.vectors_version},
              ${span * factor})`.execute(trx);

    await step('id maps', async () => {
      await sql`
        create temporary table doc_map on commit drop as
        select k, d.id as old_id, larder_uuid_v7() as new_id
        from documents d cross join generate_series(0, ${factor - 1}) k
        where d.collection_id = ${source.id} and d.deleted_at is null`.execute(trx);
      await sql`
        create temporary table chunk_map on commit drop as
        select m.k, c.id as old_id, larder_uuid_v7() as new_id
        from chunks c join doc_map m on m.old_id = c.document_id`.execute(trx);
      await sql`create index on doc_map (old_id, k)`.execute(trx);
      await sql`create index on chunk_map (old_id, k)`.execute(trx);
    });

    // The HNSW index of the collection's dimension (a partial index `where dimensions = N`).
    const dims = source.embedding_dimensions;
    const { rows: hnsw } = dims
      ? await sql<{ name: string; def: string }>`
          select indexname as name, indexdef as def from pg_indexes
          where schemaname = current_schema() and tablename = 'chunk_embeddings'
            and indexdef ilike '%using hnsw%' and indexdef like ${`%dimensions = ${dims})%`}`.execute(trx)
      : { rows: [] };
    for (const index of hnsw) await sql`drop index ${sql.id(index.name)}`.execute(trx);

    const doc = await columns(trx, 'documents', {
      id: sql`m.new_id`,
      collection_id: sql`${scratch.id}::uuid`,
      external_id: sql`t.external_id || '#' || m.k`,
    });
    const chunk = await columns(trx, 'chunks', {
      id: sql`m.new_id`,
      collection_id: sql`${scratch.id}::uuid`,
      document_id: sql`dm.new_id`,
    });
    const vector = await columns(trx, 'chunk_embeddings', {
      chunk_id: sql`m.new_id`,
      collection_id: sql`${scratch.id}::uuid`,
      embedding: sql`l2_normalize(l2_normalize(t.embedding)
        + array(select (random() - 0.5) * ${noise} from generate_series(1, t.dimensions))::vector)`,
    });
    let vectors = 0;
    await step('documents, chunks and vectors', async () => {
      for (let k = 0; k < factor; k++) {
        const t0 = performance.now();
        await sql`insert into documents (${doc.names}) select ${doc.values}
          from documents t join doc_map m on m.old_id = t.id and m.k = ${k}`.execute(trx);
        await sql`insert into chunks (${chunk.names}) select ${chunk.values}
          from chunks t join chunk_map m on m.old_id = t.id and m.k = ${k}
          join doc_map dm on dm.old_id = t.document_id and dm.k = ${k}`.execute(trx);
        const inserted = await sql`insert into chunk_embeddings (${vector.names}) select ${vector.values}
          from chunk_embeddings t join chunk_map m on m.old_id = t.chunk_id and m.k = ${k}`.execute(trx);
        vectors += Number(inserted.numAffectedRows ?? 0);
        log(`  copy ${k + 1}/${factor}: ${duration((performance.now() - t0) / 1000)}`);
      }
    });
    const { rows: similarity } = await sql<{ cos: number | null }>`
      select avg(1 - (c.embedding <=> s.embedding))::float8 as cos
      from chunk_map m
      join chunk_embeddings s on s.chunk_id = m.old_id
      join chunk_embeddings c on c.chunk_id = m.new_id and c.model = s.model
      where m.k = 0 and m.old_id in (select old_id from chunk_map where k = 0 limit 1000)`.execute(trx);
    if (similarity[0]?.cos != null)
      log(`Mean cosine of a copy's vector to its source's: ${similarity[0].cos.toFixed(3)}`);

    const lexical = await step('lexical index', async () => {
      await sql`
        insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
        select r.workspace_id, ${scratch.id}::uuid, r.base + m.k * ${span}::bigint, r.chunk_count, m.new_id
        from lexical_ranges r join doc_map m on m.old_id = r.document_id
        where r.collection_id = ${source.id} and r.live`.execute(trx);
      return copyPostings(trx, source.id, scratch.id, source.workspace_id, span);
    });
    for (const index of hnsw) await step(`create index ${index.name}`, () => sql.raw(index.def).execute(trx));
    return {
      source: source.name,
      name,
      chunks: Number(stats.chunk_count) * factor,
      vectors,
      ...lexical,
      cosine: similarity[0]?.cos ?? null,
    };
  });
  await step('vacuum analyze', async () => {
    for (const table of ['documents', 'chunks', 'chunk_embeddings', 'lexical_ranges', 'lexical_postings'])
      await sql`vacuum analyze ${sql.table(table)}`.execute(db);
  });
  log(
    `Built ${summary.name}: ${int(summary.chunks)} chunks, ${int(summary.vectors)} vectors, ` +
      `${int(summary.lists)} lists, ${int(summary.postings)} postings`,
  );
  if (values.json)
    await appendFile(
      values.json,
      `${JSON.stringify({ ...summary, factor, noise, at: new Date().toISOString(), timings })}\n`,
    );
}

/** Lexeme by lexeme (keyset): every copy's postings, packed into lists of at most 65,536. */
async function copyPostings(
  trx: Trx,
  sourceId: string,
  scratchId: string,
  workspaceId: string,
  span: number,
) {
  let after = '';
  let lists = 0;
  let postings = 0;
  for (;;) {
    const { rows } = await sql<{ lexeme: string; data: Uint8Array }>`
      select lexeme, string_agg(data, ''::bytea) as data from lexical_postings
      where collection_id = ${sourceId} and lexeme > ${after}
      group by lexeme order by lexeme limit 2000`.execute(trx);
    if (rows.length === 0) break;
    after = rows.at(-1)?.lexeme ?? after;
    const out: { lexeme: string; first: number; last: number; n: number; data: Buffer }[] = [];
    for (const row of rows) {
      const n = row.data.byteLength / POSTING_BYTES;
      const all = Buffer.alloc(n * factor * POSTING_BYTES);
      for (let k = 0; k < factor; k++) {
        all.set(row.data, k * row.data.byteLength);
        for (let i = 0; i < n; i++) {
          const at = (k * n + i) * POSTING_BYTES;
          all.writeInt32BE(all.readInt32BE(at) + k * span, at);
        }
      }
      const cap = DEFAULT_COMPACTION.maxPostings;
      for (let from = 0; from < n * factor; from += cap) {
        const part = all.subarray(from * POSTING_BYTES, Math.min(n * factor, from + cap) * POSTING_BYTES);
        let first = Infinity;
        let last = -Infinity;
        for (let at = 0; at < part.byteLength; at += POSTING_BYTES) {
          const seq = part.readInt32BE(at);
          first = Math.min(first, seq);
          last = Math.max(last, seq);
        }
        out.push({ lexeme: row.lexeme, first, last, n: part.byteLength / POSTING_BYTES, data: part });
      }
    }
    // One statement per batch: the lists travel as one byte string, cut by offsets.
    const { blob, offsets } = packLists(out.map((o) => o.data));
    await sql`
      insert into lexical_postings (workspace_id, collection_id, lexeme, postings, first_seq, last_seq, merged, data)
      select ${workspaceId}::uuid, ${scratchId}::uuid, u.lexeme, u.n, u.first_seq, u.last_seq, true,
             substring(${blob}::bytea from u.offset_ for u.n * ${POSTING_BYTES})
      from unnest(${out.map((o) => o.lexeme)}::text[], ${out.map((o) => o.n)}::int[],
                  ${out.map((o) => o.first)}::int[], ${out.map((o) => o.last)}::int[], ${offsets}::int[])
        as u(lexeme, n, first_seq, last_seq, offset_)`.execute(trx);
    lists += out.length;
    postings += out.reduce((sum, o) => sum + o.n, 0);
  }
  return { lists, postings };
}

try {
  if (values.drop) await drop(values.drop);
  else await build(values.source ?? '');
} finally {
  await database.close();
}
