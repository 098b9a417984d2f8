/**
 * Experiment: BM25 from only the first M postings of each query term in impact order (tf descending,
 * then shorter chunks first) against exact BM25 over all postings, on a kept benchmark collection.
 * Reports, per M, how far the top 10 moves (overlap@10, nDCG@10 with the exact scores as gains) and the
 * latency of both. Needs the index `chunk_terms (collection_id, lexeme, tf desc, length, chunk_id)`.
 *
 *   DATABASE_URL=… npx tsx bench/lexical-topm.ts bench-100000 [questions=100] [M=1000,3000,10000]
 */
import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { DocumentFrequencyCache, lexicalRanking } from '../src/modules/search/lexical.js';
import { percentile } from '../src/modules/search/eval/run.js';
import { openDatabase } from '../src/platform/db/database.js';
import { withTenant } from '../src/platform/db/tenant.js';
import { createLogger } from '../src/platform/logger.js';

const [name = 'bench-100000', count = '100', ms = '1000,3000,10000'] = process.argv.slice(2);
const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
const database = await openDatabase(config, createLogger(config));
const collection = await database.db
  .selectFrom('collections')
  .selectAll()
  .where('name', '=', name)
  .executeTakeFirstOrThrow();
const questions = readFileSync('../shared/eval/covidqa/queries.jsonl', 'utf8')
  .trim()
  .split('\n')
  .slice(0, Number(count))
  .map((line) => (JSON.parse(line) as { text: string }).text);
const cache = new DocumentFrequencyCache();
const K = 10;

async function topM(query: string, m: number) {
  return withTenant(
    database.db,
    collection.workspace_id,
    async (trx) => {
      const { rows } = await sql<{ id: string; score: number }>`
        with q as (select distinct t.lexeme from unnest(to_tsvector(${collection.text_search_config}::regconfig, ${query})) t),
        s as (select chunk_count::float8 as n, total_length::float8 / chunk_count as avgdl from collection_stats where collection_id = ${collection.id}),
        terms as (select q.lexeme, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) as w
                  from q cross join s cross join lateral (select count(*)::float8 as df from chunk_terms p
                    where p.collection_id = ${collection.id} and p.lexeme = q.lexeme) d where d.df > 0)
        select p.chunk_id as id,
               sum(t.w * p.tf * ${collection.bm25_k1 + 1}::float8 / (p.tf + ${collection.bm25_k1}::float8 *
                   (1 - ${collection.bm25_b}::float8 + ${collection.bm25_b}::float8 * p.length / s.avgdl))) as score
        from terms t cross join s
        cross join lateral (select p.chunk_id, p.tf, p.length from chunk_terms p
                            where p.collection_id = ${collection.id} and p.lexeme = t.lexeme
                            order by p.tf desc, p.length limit ${m}) p
        group by p.chunk_id order by score desc, p.chunk_id limit ${K}`.execute(trx);
      return rows;
    },
    { snapshot: true },
  );
}

const exact: { ids: string[]; scores: Map<string, number>; ms: number }[] = [];
for (const q of questions) {
  const started = performance.now();
  const { ranked } = await withTenant(
    database.db,
    collection.workspace_id,
    (trx) => lexicalRanking(trx, collection, q, 200, { cache }),
    { snapshot: true },
  );
  exact.push({
    ids: ranked.slice(0, K).map((r) => r.id),
    scores: new Map(ranked.map((r) => [r.id, r.score])),
    ms: performance.now() - started,
  });
}
const dcg = (gains: number[]) => gains.reduce((sum, g, i) => sum + g / Math.log2(i + 2), 0);
const lat = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return `${percentile(sorted, 0.5).toFixed(1)} / ${percentile(sorted, 0.95).toFixed(1)} ms`;
};
console.log(`exact: p50 / p95 ${lat(exact.map((e) => e.ms))}`);
for (const m of ms.split(',').map(Number)) {
  const times: number[] = [];
  let overlap = 0;
  let ndcg = 0;
  for (const [i, q] of questions.entries()) {
    const started = performance.now();
    const rows = await topM(q, m);
    times.push(performance.now() - started);
    const gold = exact[i];
    if (!gold) continue;
    overlap += rows.filter((r) => gold.ids.includes(r.id)).length / Math.max(1, gold.ids.length);
    const ideal = dcg(gold.ids.map((id) => gold.scores.get(id) ?? 0));
    ndcg += ideal === 0 ? 1 : dcg(rows.map((r) => gold.scores.get(r.id) ?? 0)) / ideal;
  }
  console.log(
    `M=${m}: overlap@10 ${(overlap / questions.length).toFixed(3)}, nDCG@10 vs exact ${(ndcg / questions.length).toFixed(4)}, p50 / p95 ${lat(times)}`,
  );
}
await database.close();
