/**
 * Lexical ranking: exact Okapi BM25 (Lucene idf) over a collection's lexical index
 * (migrations/0007_lexical_index.sql), best `limit` first, candidates matching ANY query term.
 *
 *   score(c) = Σ_t w_t · tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avgdl)),  w_t = ln(1 + (N − df + 0.5)/(df + 0.5))
 *
 * Three statements, in one REPEATABLE READ transaction so that all of them read the same snapshot:
 *  1. the query's lexemes (the collection's text-search configuration) and the collection's N, total
 *     length and postings version;
 *  2. document frequencies: counted from the postings (one index range per term), cached per
 *     collection and postings version, so they are recounted only after the collection changed;
 *  3. the scores, by one of two exact plans:
 *     - full: every posting of every query term, summed per chunk;
 *     - pruned (MaxScore): when the query has very common terms (together worth less than half the
 *       rarest term, and holding most of the postings), only the other ("essential") terms'
 *       postings are summed; the best of those candidates get the common terms' contributions by
 *       single-posting lookups. A term's contribution is below w_t·(k1 + 1) whatever the chunk, so if
 *       the limit-th complete score beats every remaining candidate's partial score plus that bound for
 *       the common terms, no other chunk can enter the top `limit`; otherwise the full plan runs.
 *     Both give identical results (tested against each other and against a reference BM25).
 */
import { type RawBuilder, sql, type Transaction } from 'kysely';
import type { DB } from '../../platform/db/schema.js';
import { LruMap } from '../../platform/lru.js';

type Trx = Transaction<DB>;

export interface LexicalCollection {
  id: string;
  text_search_config: string;
  bm25_k1: number;
  bm25_b: number;
}

export interface Ranked {
  id: string;
  score: number;
}

/** How the scores were computed: `none` = no query term occurs in the collection. */
export type LexicalPlan = 'none' | 'full' | 'pruned';

export interface LexicalOptions {
  /** Below this many postings over all query terms, score them all (default 20,000). */
  pruneAbove: number;
  /**
   * The common terms: the most frequent ones whose bounds together stay below this share of the rarest
   * term's bound (default 0.5). Pruning can only prove the top when the common terms' bound is below
   * the limit-th score, which is at least about the rarest term's contribution.
   */
  commonBoundShare: number;
  /** Prune only when the common terms hold at least this share of the postings (default 0.5). */
  minCommonPostings: number;
  /** Candidates completed with the common terms' contributions: max(this, 4 × limit) (default 200). */
  completed: number;
}

export const DEFAULT_LEXICAL_OPTIONS: LexicalOptions = {
  pruneAbove: 20_000,
  commonBoundShare: 0.5,
  minCommonPostings: 0.5,
  completed: 200,
};

/**
 * work_mem of the search transaction (PostgreSQL's default is 4 MB): scoring hashes one entry per
 * matching chunk (70k for a typical question at 100k chunks, ~11 MB), and under 4 MB the aggregate
 * spilled to disk. Set in the first statement, transaction-local.
 */
const SCORING_WORK_MEM = '64MB';

interface Term {
  lexeme: string;
  df: number;
  weight: number;
}

/** Document frequencies per collection and postings version (a new version replaces the entry). */
export class DocumentFrequencyCache {
  readonly #entries: LruMap<string, { version: string; df: Map<string, number> }>;

  constructor(
    maxCollections = 200,
    private readonly maxTerms = 20_000,
  ) {
    this.#entries = new LruMap(maxCollections);
  }

  lookup(collectionId: string, version: string): Map<string, number> {
    let entry = this.#entries.get(collectionId);
    if (entry?.version !== version || entry.df.size > this.maxTerms) {
      entry = { version, df: new Map() };
      this.#entries.set(collectionId, entry);
    }
    return entry.df;
  }
}

/** SQL of one term's BM25 contribution, for postings `p` (tf, length) and weight `w`. */
const contribution = (k1: number, b: number, avgdl: number) =>
  sql`w * p.tf * ${k1 + 1}::float8 / (p.tf + ${k1}::float8 * (1 - ${b}::float8 + ${b}::float8 * p.length / ${avgdl}::float8))`;

export async function lexicalRanking(
  trx: Trx,
  collection: LexicalCollection,
  query: string,
  limit: number,
  options: {
    cache: DocumentFrequencyCache;
    /** A condition on the chunk's document `d` (the search filters), or undefined for none. */
    documentFilter?: RawBuilder<unknown> | undefined;
    tuning?: LexicalOptions | undefined;
  },
): Promise<{ ranked: Ranked[]; plan: LexicalPlan }> {
  const tuning = options.tuning ?? DEFAULT_LEXICAL_OPTIONS;
  const { rows: heads } = await sql<{
    lexemes: string[];
    n: number;
    avgdl: number;
    version: string;
  }>`
    select set_config('work_mem', ${SCORING_WORK_MEM}, true) as work_mem,
           (select coalesce(array_agg(distinct t.lexeme order by t.lexeme), '{}')
            from unnest(to_tsvector(${collection.text_search_config}::regconfig, ${query})) t) as lexemes,
           coalesce(max(s.chunk_count), 0)::float8 as n,
           coalesce(max(s.total_length::float8 / nullif(s.chunk_count, 0)), 1) as avgdl,
           coalesce(max(s.version), -1)::text as version
    from collection_stats s where s.collection_id = ${collection.id}::uuid
  `.execute(trx);
  const head = heads[0];
  if (!head || head.n === 0 || head.lexemes.length === 0) return { ranked: [], plan: 'none' };

  const cached = options.cache.lookup(collection.id, head.version);
  const missing = head.lexemes.filter((l) => !cached.has(l));
  if (missing.length > 0) {
    const { rows } = await sql<{ lexeme: string; df: number }>`
      select t.lexeme, (select count(*) from chunk_terms p
                        where p.collection_id = ${collection.id}::uuid and p.lexeme = t.lexeme)::float8 as df
      from unnest(${missing}::text[]) t(lexeme)
    `.execute(trx);
    for (const r of rows) cached.set(r.lexeme, r.df);
  }
  const terms: Term[] = head.lexemes
    .map((lexeme) => ({ lexeme, df: cached.get(lexeme) ?? 0 }))
    .filter((t) => t.df > 0)
    .map((t) => ({ ...t, weight: Math.log(1 + (head.n - t.df + 0.5) / (t.df + 0.5)) }))
    .sort((a, b) => a.df - b.df || (a.lexeme < b.lexeme ? -1 : 1));
  if (terms.length === 0) return { ranked: [], plan: 'none' };

  const k1 = collection.bm25_k1;
  const b = collection.bm25_b;
  const score = contribution(k1, b, head.avgdl);
  const postingsOf = (list: Term[]) => sql`
    unnest(${list.map((t) => t.lexeme)}::text[], ${list.map((t) => t.weight)}::float8[]) t(lexeme, w)
    cross join lateral (select p.chunk_id, p.tf, p.length from chunk_terms p
                        where p.collection_id = ${collection.id}::uuid and p.lexeme = t.lexeme offset 0) p`;
  const filter = options.documentFilter
    ? sql`where p.chunk_id in (select c.id from chunks c join documents d on d.id = c.document_id
                               where c.collection_id = ${collection.id}::uuid and ${options.documentFilter})`
    : sql``;

  const total = terms.reduce((sum, t) => sum + t.df, 0);
  const full = async () => {
    const { rows } = await sql<Ranked>`
      select p.chunk_id as id, sum(${score}) as score
      from ${postingsOf(terms)}
      ${filter}
      group by p.chunk_id
      order by score desc, p.chunk_id
      limit ${limit}
    `.execute(trx);
    return { ranked: rows, plan: 'full' as const };
  };

  // Common terms: the most frequent ones, while their bounds stay small next to the rarest term's.
  const bound = (t: Term) => t.weight * (k1 + 1);
  const rarest = terms[0] ? bound(terms[0]) : 0;
  let split = terms.length;
  let commonSum = 0;
  for (const term of [...terms].reverse()) {
    if (split <= 1 || commonSum + bound(term) >= tuning.commonBoundShare * rarest) break;
    commonSum += bound(term);
    split--;
  }
  const commonPostings = terms.slice(split).reduce((sum, t) => sum + t.df, 0);
  if (
    options.documentFilter ||
    total <= tuning.pruneAbove ||
    commonPostings < tuning.minCommonPostings * total
  )
    return full();
  const essential = terms.slice(0, split);
  const common = terms.slice(split);
  const commonBound = common.reduce((sum, t) => sum + t.weight * (k1 + 1), 0);
  const completed = Math.max(tuning.completed, 4 * limit);

  const { rows } = await sql<{ id: string; score: number; next_partial: number | null }>`
    with partial as (
      select p.chunk_id, sum(${score}) as partial
      from ${postingsOf(essential)}
      group by p.chunk_id
    ),
    ranked as (
      select chunk_id, partial, row_number() over (order by partial desc, chunk_id) as rn from partial
    ),
    complete as (
      select r.chunk_id as id,
             r.partial + coalesce((
               select sum(${score})
               from unnest(${common.map((t) => t.lexeme)}::text[], ${common.map((t) => t.weight)}::float8[]) t(lexeme, w)
               join chunk_terms p on p.collection_id = ${collection.id}::uuid and p.lexeme = t.lexeme
                                 and p.chunk_id = r.chunk_id), 0) as score
      from ranked r where r.rn <= ${completed}
    )
    select c.id, c.score, (select max(partial) from ranked where rn > ${completed}) as next_partial
    from complete c
    order by c.score desc, c.id
    limit ${limit}
  `.execute(trx);
  const threshold = rows.length === limit ? (rows[limit - 1]?.score ?? 0) : 0;
  // Every chunk not scored completely is below the threshold (strictly: ties order by id).
  const bestOutside = (rows[0]?.next_partial ?? 0) + commonBound;
  if (rows.length === limit && bestOutside < threshold)
    return { ranked: rows.map((r) => ({ id: r.id, score: r.score })), plan: 'pruned' };
  return full();
}
