/**
 * Lexical search at a multiple of an ingested collection's size, without ingesting it again: what 1M
 * chunks cost when ingesting them would take hours on this machine.
 *
 *   DATABASE_URL=… npx tsx bench/lexical-scale.ts --source bench-100000 --factor 10 [--queries 200]
 *
 * Builds a scratch collection beside the source (same workspace, text-search configuration and BM25
 * parameters) whose lexical index is the source's repeated `factor` times: the statistics are
 * multiplied, the ranges repeated (copy k numbers its chunks from k × the source's numbering, and
 * points at the same documents, so hits resolve to real chunks), and each lexeme's postings of every
 * copy are packed into lists of at most 65,536 postings, the shape compaction leaves. Then the same
 * covidqa questions as bench/search-latency.ts go through `SearchService.search` in lexical mode
 * (k = 10), and the scratch collection is deleted. Document frequencies, N and every posting count
 * scale exactly, so the work per query is that of a `factor`-times larger collection with the same
 * term distribution; what it does not reproduce is the text variety of a really larger corpus.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { operatorContext } from '../src/cli/ingest.js';
import { DEFAULT_COMPACTION, packLists } from '../src/modules/search/compaction.js';
import { POSTING_BYTES } from '../src/modules/search/lexical.js';
import { SearchService } from '../src/modules/search/service.js';
import { openDatabase } from '../src/platform/db/database.js';
import { createLogger } from '../src/platform/logger.js';
import { sampleQueries } from './lib/corpus.js';
import { runQueries } from './lib/measure.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    factor: { type: 'string', default: '10' },
    queries: { type: 'string', default: '200' },
    seed: { type: 'string', default: '42' },
    json: { type: 'string' },
  },
});
if (!values.source)
  throw new Error('usage: bench/lexical-scale.ts --source NAME|ID --factor N [--queries N]');
const factor = Number(values.factor);
const log = (line: string) => process.stderr.write(`${line}\n`);

const config = loadConfig(process.env);
const database = await openDatabase(config, createLogger({ ...config, logLevel: 'warn' }));
const db = database.db;
let scratchId: string | undefined;
try {
  const source = await db
    .selectFrom('collections')
    .selectAll()
    .where((eb) => eb.or([eb('name', '=', values.source ?? ''), eb(sql`id::text`, '=', values.source ?? '')]))
    .where('deleted_at', 'is', null)
    .executeTakeFirstOrThrow();
  const stats = await db
    .selectFrom('collection_stats')
    .selectAll()
    .where('collection_id', '=', source.id)
    .executeTakeFirstOrThrow();
  const span = Number(stats.next_seq);
  const started = performance.now();
  const scratch = await db
    .insertInto('collections')
    .values({
      workspace_id: source.workspace_id,
      name: `${source.name}-x${factor}-${Date.now().toString(36)}`,
      text_search_config: source.text_search_config,
      bm25_k1: source.bm25_k1,
      bm25_b: source.bm25_b,
      created_by: source.created_by,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  scratchId = scratch.id;
  await sql`
    insert into collection_stats (collection_id, workspace_id, chunk_count, total_length, next_seq)
    values (${scratch.id}, ${source.workspace_id}, ${Number(stats.chunk_count) * factor},
            ${Number(stats.total_length) * factor}, ${span * factor})`.execute(db);
  await sql`
    insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
    select r.workspace_id, ${scratch.id}::uuid, r.base + k * ${span}::bigint, r.chunk_count, r.document_id
    from lexical_ranges r cross join generate_series(0, ${factor - 1}) k
    where r.collection_id = ${source.id} and r.live`.execute(db);

  // Lexeme by lexeme (keyset), every copy's postings packed into lists of at most 65,536.
  let after = '';
  let lists = 0;
  let postings = 0;
  for (;;) {
    const { rows } = await sql<{ lexeme: string; data: Uint8Array }>`
      select lexeme, string_agg(data, ''::bytea) as data from lexical_postings
      where collection_id = ${source.id} and lexeme > ${after}
      group by lexeme order by lexeme limit 2000`.execute(db);
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
      select ${source.workspace_id}::uuid, ${scratch.id}::uuid, u.lexeme, u.n, u.first_seq, u.last_seq, true,
             substring(${blob}::bytea from u.offset_ for u.n * ${POSTING_BYTES})
      from unnest(${out.map((o) => o.lexeme)}::text[], ${out.map((o) => o.n)}::int[],
                  ${out.map((o) => o.first)}::int[], ${out.map((o) => o.last)}::int[], ${offsets}::int[])
        as u(lexeme, n, first_seq, last_seq, offset_)`.execute(db);
    lists += out.length;
    postings += out.reduce((sum, o) => sum + o.n, 0);
  }
  await sql`vacuum analyze lexical_postings`.execute(db);
  await sql`vacuum analyze lexical_ranges`.execute(db);
  const buildSeconds = (performance.now() - started) / 1000;
  log(
    `Built ${source.name} ×${factor}: ${(Number(stats.chunk_count) * factor).toLocaleString('en')} chunks, ` +
      `${lists.toLocaleString('en')} lists, ${postings.toLocaleString('en')} postings in ${buildSeconds.toFixed(1)} s`,
  );

  const queries = await sampleQueries(
    path.resolve(repo, '../shared/eval/covidqa/queries.jsonl'),
    Number(values.queries),
    Number(values.seed),
  );
  const search = new SearchService(db, undefined);
  const ws = operatorContext(source.workspace_id);
  const controller = new AbortController();
  const results = [];
  for (const [collectionId, chunks] of [
    [source.id, Number(stats.chunk_count)],
    [scratch.id, Number(stats.chunk_count) * factor],
  ] as const) {
    const common = { mode: 'lexical' as const, collectionId, k: 10, signal: controller.signal };
    await runQueries(search, ws, queries.slice(0, 20), { ...common, concurrency: 1 });
    for (const concurrency of [1, 4]) {
      const r = await runQueries(search, ws, queries, { ...common, concurrency });
      results.push({ chunks, ...r });
      log(
        `lexical at ${chunks.toLocaleString('en')} chunks ×${concurrency}: p50 ${r.latencyMs.p50} ms, ` +
          `p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms, ${r.qps} q/s`,
      );
    }
  }
  const { rows: size } = await sql<{ bytes: string }>`
    select coalesce(sum(pg_column_size(data) + 60), 0)::text as bytes from lexical_postings
    where collection_id = ${scratch.id}`.execute(db);
  log(`Lists of the ×${factor} collection: ~${(Number(size[0]?.bytes) / 2 ** 20).toFixed(0)} MiB`);
  if (values.json) {
    const { appendFile } = await import('node:fs/promises');
    await appendFile(
      values.json,
      `${JSON.stringify({ source: source.name, factor, buildSeconds, lists, postings, results })}\n`,
    );
  }
} finally {
  if (scratchId) await db.deleteFrom('collections').where('id', '=', scratchId).execute();
  await database.close();
}
