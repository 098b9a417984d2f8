/**
 * Search over the chunks of one or more collections: lexical (exact Okapi BM25 over the collection's
 * postings lists, lexical.ts), vector (pgvector HNSW, cosine) and hybrid (both fused: a convex
 * combination of normalised scores by default, reciprocal rank fusion on request; fusion.ts).
 *
 * A search reads the visible collections (one pipelined round trip, tenantRead), then ranks: the
 * lexical ranking starts at once, in its own REPEATABLE READ snapshot (BM25's statistics and postings
 * agree); the vector ranking starts as soon as the query is embedded (outside any transaction), so
 * the embedding round trip overlaps the lexical work instead of adding to it. The fused page's hits
 * (text, snippet, document) are read in one more round trip.
 *
 * Filters (documents, external ids, mime, metadata containment, dates) are part of the SQL of both
 * rankings, so a filtered search never loses results to a LIMIT applied first. Every query runs as the
 * caller's tenant (row-level security).
 */
import { type Compilable, sql } from 'kysely';
import type { EmbeddingProviderName, EmbeddingProviders } from '../../ai/embeddings/index.js';
import { EmbeddingError } from '../../ai/embeddings/types.js';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import type { Db } from '../../platform/db/database.js';
import { INDEXED_EMBEDDING_DIMENSIONS } from '../../platform/db/schema.js';
import { rawRead, tenantRead } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { visibleCollection } from '../../platform/auth/collection-access.js';
import { DEFAULT_FUSION, type FusionOptions, fuse } from './fusion.js';
import { type LexicalWork, lexicalRanking, type Ranked } from './lexical.js';
import type { PostingsCache } from './postings-cache.js';
import { type CacheOutcome, QueryVectorCache } from './query-vectors.js';

export type SearchMode = 'hybrid' | 'lexical' | 'vector';

export interface SearchFilters {
  documentIds?: string[] | undefined;
  externalIds?: string[] | undefined;
  mime?: string[] | undefined;
  /** JSON containment on the document's metadata. */
  metadata?: Record<string, unknown> | undefined;
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
}

export interface SearchRequest {
  query: string;
  /** Collection ids; empty = every collection of the workspace. */
  collections?: string[] | undefined;
  filters?: SearchFilters | undefined;
  k: number;
  /** Results to skip (pagination); offset + k ≤ MAX_SEARCH_DEPTH. */
  offset?: number | undefined;
  mode: SearchMode;
  /** How hybrid mode fuses the two lists (default {@link DEFAULT_FUSION}: convex combination). */
  fusion?: FusionOptions | undefined;
  /** Candidates taken from each list before fusion (default max(4k, 50)). */
  candidates?: number | undefined;
  /** HNSW search breadth (pgvector `hnsw.ef_search`, default max(2 × candidates, 40)). */
  efSearch?: number | undefined;
  /** Exact vector search (no index), e.g. for recall checks. */
  exact?: boolean | undefined;
}

export interface SearchHit {
  chunkId: string;
  documentId: string;
  collectionId: string;
  documentTitle: string;
  externalId: string | null;
  text: string;
  snippet: string;
  headingPath: string[];
  page: number | null;
  pageEnd: number | null;
  charStart: number;
  charEnd: number;
  scores: { lexical: number | null; vector: number | null; fused: number };
  ranks: { lexical: number | null; vector: number | null };
}

export interface SearchResult {
  hits: SearchHit[];
  mode: SearchMode;
  /** Where the query vector came from (null: none was needed). */
  queryVectorCache: CacheOutcome | null;
  /** What each collection's lexical ranking read (lists, postings), in collection order. */
  lexicalWork: LexicalWork[];
  /** The offset of the next page, or null when this is the last one. */
  nextOffset: number | null;
}

interface CollectionInfo {
  id: string;
  text_search_config: string;
  bm25_k1: number;
  bm25_b: number;
  embedding_provider: string | null;
  embedding_model: string | null;
  embedding_dimensions: number | null;
}

/**
 * Whether a collection's vectors are better scanned exactly than through the HNSW index: when it is
 * small (`exactBelow`), or when it is a small share of an index shared with other collections (then
 * the index walk visits mostly other collections' vectors, and pgvector's iterative scan may stop at
 * `hnsw.max_scan_tuples` before it has found enough of this one's) while an exact scan is still cheap.
 */
export function exactScan(chunks: number, indexRows: number, exactBelow: number): boolean {
  if (chunks < exactBelow) return true;
  return chunks < 10 * exactBelow && chunks < 0.2 * indexRows;
}

/** The SQL of the document-level filters, on `documents d`. */
function documentFilter(filters: SearchFilters | undefined) {
  const parts = [sql`d.deleted_at is null`, sql`d.status in ('searchable', 'ready')`];
  if (filters?.documentIds?.length) parts.push(sql`d.id = any(${filters.documentIds}::uuid[])`);
  if (filters?.externalIds?.length) parts.push(sql`d.external_id = any(${filters.externalIds}::text[])`);
  if (filters?.mime?.length) parts.push(sql`d.mime = any(${filters.mime}::text[])`);
  if (filters?.metadata) parts.push(sql`d.metadata @> ${JSON.stringify(filters.metadata)}::jsonb`);
  if (filters?.createdAfter) parts.push(sql`d.created_at >= ${filters.createdAfter}::timestamptz`);
  if (filters?.createdBefore) parts.push(sql`d.created_at < ${filters.createdBefore}::timestamptz`);
  return sql.join(parts, sql` and `);
}

/** Whether any document-level filter is set (they need a join from the postings to the documents). */
const hasDocumentFilter = (f: SearchFilters | undefined): boolean =>
  [f?.documentIds, f?.externalIds, f?.mime].some((list) => (list?.length ?? 0) > 0) ||
  [f?.metadata, f?.createdAfter, f?.createdBefore].some((value) => value !== undefined);

/** The HNSW settings of the vector statements that follow in the same tenant read. */
function hnswSettings(efSearch: number) {
  // iterative_scan: filtered-out candidates must not shrink the result (pgvector >= 0.8).
  return rawRead(sql<{ ef: string; scan: string }>`
    select set_config('hnsw.ef_search', ${String(efSearch)}, true) as ef,
           set_config('hnsw.iterative_scan', 'relaxed_order', true) as scan`);
}

/**
 * Nearest chunks by cosine distance (`distance`; score = 1 − distance): through the dimension's HNSW
 * index (after {@link hnswSettings} in the same tenant read) or, with `exact`, by a scan.
 */
function vectorStatement(
  collection: CollectionInfo,
  vector: number[],
  filters: SearchFilters | undefined,
  limit: number,
  indexed: boolean,
) {
  const dims = collection.embedding_dimensions ?? 0;
  const literal = `[${vector.join(',')}]`;
  // The index matches only when the query repeats its expression `embedding::vector(N)`.
  const distance = sql`e.embedding::vector(${sql.raw(String(dims))}) <=> ${literal}::vector(${sql.raw(String(dims))})`;
  return rawRead(
    indexed
      ? sql<{ id: string; distance: number }>`
        select c.id, ${distance} as distance
        from chunk_embeddings e
        join chunks c on c.id = e.chunk_id
        join documents d on d.id = c.document_id
        where e.collection_id = ${collection.id}::uuid and e.model = ${collection.embedding_model}
          and e.dimensions = ${dims} and ${documentFilter(filters)}
        order by ${distance}
        limit ${limit}
      `
      : // Exact: distances first (the fence keeps the 2 KB vectors out of the sort), then the filters.
        sql<{ id: string; distance: number }>`
        select c.id, x.distance
        from (select e.chunk_id, e.embedding <=> ${literal}::vector as distance
              from chunk_embeddings e
              where e.collection_id = ${collection.id}::uuid and e.model = ${collection.embedding_model}
                and e.dimensions = ${dims}
              offset 0) x
        join chunks c on c.id = x.chunk_id
        join documents d on d.id = c.document_id
        where ${documentFilter(filters)}
        order by x.distance, c.id
        limit ${limit}
      `,
  );
}

/** Below this many searchable chunks a collection's vectors are scanned exactly (no HNSW). */
export const DEFAULT_EXACT_BELOW = 5_000;
/** Deepest result a search can page to (offset + k). */
export const MAX_SEARCH_DEPTH = 1000;

export interface SearchServiceOptions {
  /** Shared query-vector cache (Redis when configured); default: this service's own in memory. */
  queryVectors?: QueryVectorCache | undefined;
  /** Collections with fewer searchable chunks get an exact vector scan: exact and as fast. */
  exactBelow?: number | undefined;
  /** The process's cache of postings lists (LARDER_SEARCH_POSTINGS_CACHE_MB); default: none. */
  postingsCache?: PostingsCache | undefined;
  /**
   * Called as each part of a search ends, with its duration in milliseconds (benchmarks break latency
   * down with it). `embed`: the query vectors; `lexical`, `vector`: the rankings; `hits`: reading them.
   */
  onPhase?: ((phase: SearchPhase, ms: number) => void) | undefined;
}

export type SearchPhase = 'collections' | 'embed' | 'lexical' | 'vector' | 'hits';

export class SearchService {
  readonly #queryVectors: QueryVectorCache;
  readonly #exactBelow: number;
  readonly #postingsCache: PostingsCache | undefined;
  readonly #onPhase: (phase: SearchPhase, ms: number) => void;

  constructor(
    private readonly db: Db,
    private readonly embeddings: EmbeddingProviders | undefined,
    options: SearchServiceOptions = {},
  ) {
    this.#queryVectors = options.queryVectors ?? new QueryVectorCache();
    this.#exactBelow = options.exactBelow ?? DEFAULT_EXACT_BELOW;
    this.#postingsCache = options.postingsCache;
    this.#onPhase = options.onPhase ?? (() => undefined);
  }

  /** Runs `work` and reports its duration as `phase`. */
  async #timed<T>(phase: SearchPhase, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const result = await work();
    this.#onPhase(phase, performance.now() - started);
    return result;
  }

  async search(ws: WorkspaceContext, request: SearchRequest): Promise<SearchResult> {
    assertPermission(ws, 'search');
    const offset = request.offset ?? 0;
    if (offset + request.k > MAX_SEARCH_DEPTH)
      throw new AppError('validation_failed', {
        detail: `Results can be paged to a depth of ${MAX_SEARCH_DEPTH}`,
        extensions: { errors: [{ in: 'body', path: '/cursor', message: 'pages too deep' }] },
      });
    const depth = offset + request.k;
    const candidates = Math.max(request.candidates ?? Math.max(4 * request.k, 50), depth);
    const fusion = request.fusion ?? DEFAULT_FUSION;
    const [collections] = await this.#timed('collections', () =>
      tenantRead(this.db, ws.id, (q) => {
        let query = q
          .selectFrom('collections')
          .leftJoin('collection_stats as s', 's.collection_id', 'collections.id')
          .select([
            'collections.id',
            'text_search_config',
            'bm25_k1',
            'bm25_b',
            'embedding_provider',
            'embedding_model',
            'embedding_dimensions',
            sql<number>`coalesce(s.chunk_count, 0)::float8`.as('chunk_count'),
            // The query's lexemes in the collection's configuration (the lexical ranking's terms; a
            // tsvector holds each lexeme once).
            sql<string[]>`tsvector_to_array(to_tsvector(text_search_config::regconfig, ${request.query}))`.as(
              'lexemes',
            ),
            // Vectors in the shared HNSW index of this dimension (all collections; planner estimate).
            sql<number>`coalesce((select greatest(reltuples, 0) from pg_class
                                where oid = to_regclass('chunk_embeddings_hnsw_' || embedding_dimensions)), 0)::float8`.as(
              'index_rows',
            ),
          ])
          .where('collections.workspace_id', '=', ws.id)
          .where('deleted_at', 'is', null)
          // Collections the caller may not see (their role, or the key's allowlist) do not exist here.
          .where(visibleCollection(ws));
        if (request.collections?.length) query = query.where('collections.id', 'in', request.collections);
        return [query];
      }),
    );
    if (request.collections?.length && collections.length !== new Set(request.collections).size)
      throw new AppError('not_found', { detail: 'No such collection' });

    // The lexical ranking starts at once; the vector ranking once the query is embedded (outside any
    // transaction), so a slow embedding provider hides the lexical side instead of adding to it. Each
    // ranking has its own snapshot (on PGlite, which has one connection, they take turns): BM25's
    // statistics and postings must agree with each other, not with the vectors; a chunk deleted
    // meanwhile is simply missing when the hits are read.
    const documentCondition = hasDocumentFilter(request.filters)
      ? documentFilter(request.filters)
      : undefined;
    const lexicalWork: LexicalWork[] = [];
    const lexicalLists: Promise<Ranked[][]> =
      request.mode === 'vector'
        ? Promise.resolve([])
        : this.#timed('lexical', async () => {
            const lists: Ranked[][] = [];
            for (const c of collections) {
              const { ranked, work } = await lexicalRanking(this.db, ws.id, c, candidates, {
                documentFilter: documentCondition,
                cache: this.#postingsCache,
              });
              lists.push(ranked);
              lexicalWork.push(work);
            }
            return lists;
          });
    let queryVectorCache: CacheOutcome | null = null;
    const vectorLists = async (): Promise<Ranked[][]> => {
      if (request.mode === 'lexical') return [];
      // Query vectors, one per distinct model.
      const embedStarted = performance.now();
      const vectors = new Map<string, number[]>();
      for (const c of collections) {
        if (!c.embedding_provider || !c.embedding_model || vectors.has(modelKey(c))) continue;
        const provider = this.embeddings?.get({
          provider: c.embedding_provider as EmbeddingProviderName,
          model: c.embedding_model,
        });
        if (!provider) continue;
        try {
          const { vector, cache } = await this.#queryVectors.get(ws.id, provider, request.query);
          vectors.set(modelKey(c), vector);
          queryVectorCache = cache;
        } catch (error) {
          if (!(error instanceof EmbeddingError) || request.mode === 'vector')
            throw embeddingUnavailable(error);
          // Hybrid degrades to lexical when the embedding provider is down.
        }
      }
      this.#onPhase('embed', performance.now() - embedStarted);
      if (request.mode === 'vector' && vectors.size === 0)
        throw new AppError('validation_failed', {
          detail: 'vector search needs a collection with an embedding model',
          extensions: { errors: [{ in: 'body', path: '/mode', message: 'no collection has embeddings' }] },
        });
      if (vectors.size === 0) return [];
      // One tenant read for every collection: the HNSW settings, then one statement per collection.
      const statements: Compilable<{ id: string; distance: number }>[] = [];
      let indexed = false;
      for (const c of collections) {
        const v = vectors.get(modelKey(c));
        if (!v) continue;
        const exact = request.exact ?? exactScan(c.chunk_count, c.index_rows, this.#exactBelow);
        const useIndex =
          !exact && (INDEXED_EMBEDDING_DIMENSIONS as readonly number[]).includes(c.embedding_dimensions ?? 0);
        indexed ||= useIndex;
        statements.push(vectorStatement(c, v, request.filters, candidates, useIndex));
      }
      const settings = indexed ? [hnswSettings(request.efSearch ?? Math.max(2 * candidates, 40))] : [];
      return this.#timed('vector', async () => {
        const results = await tenantRead(this.db, ws.id, () => [...settings, ...statements]);
        return (results.slice(settings.length) as { id: string; distance: number }[][]).map((rows) =>
          rows.map((r) => ({ id: r.id, score: 1 - r.distance })),
        );
      });
    };
    const [lexical, vector] = await Promise.all([lexicalLists, vectorLists()]);

    // Several collections: each list is already best-first; merge by score within a kind.
    const lexicalList = mergeByScore(lexical).slice(0, candidates);
    const vectorList = mergeByScore(vector).slice(0, candidates);
    const ranked = fuse(lexicalList, vectorList, fusion);
    const top = ranked.slice(offset, depth);
    const result = {
      mode: request.mode,
      queryVectorCache,
      lexicalWork,
      // Another page exists when the ranking goes on and the depth limit allows one more result.
      nextOffset: ranked.length > depth && depth < MAX_SEARCH_DEPTH ? depth : null,
    };
    if (top.length === 0) return { ...result, hits: [] };
    const ids = top.map((item) => item.id);
    const [rows] = await this.#timed('hits', () =>
      tenantRead(this.db, ws.id, (q) => [
        q
          .selectFrom('chunks as c')
          .innerJoin('documents as d', 'd.id', 'c.document_id')
          .innerJoin('collections as col', 'col.id', 'c.collection_id')
          .select([
            'c.id',
            'c.document_id',
            'c.collection_id',
            'd.title',
            'd.external_id',
            'c.text',
            'c.heading_path',
            'c.page',
            'c.page_end',
            'c.char_start',
            'c.char_end',
            sql<string>`ts_headline(col.text_search_config::regconfig, c.text,
                        websearch_to_tsquery(col.text_search_config::regconfig, ${request.query}),
                        'StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=15, MaxFragments=2')`.as(
              'snippet',
            ),
          ])
          .where('c.id', '=', sql<string>`any(${ids}::uuid[])`)
          // Read after the rankings: a document deleted or re-queued since then is not a hit.
          .where('d.deleted_at', 'is', null)
          .where('d.status', 'in', ['searchable', 'ready']),
      ]),
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const hits: SearchHit[] = [];
    for (const s of top) {
      const r = byId.get(s.id);
      if (!r) continue;
      hits.push({
        chunkId: r.id,
        documentId: r.document_id,
        collectionId: r.collection_id,
        documentTitle: r.title,
        externalId: r.external_id,
        text: r.text,
        snippet: r.snippet,
        headingPath: r.heading_path,
        page: r.page,
        pageEnd: r.page_end,
        charStart: r.char_start,
        charEnd: r.char_end,
        scores: {
          lexical: s.lexical?.score ?? null,
          vector: s.vector?.score ?? null,
          // One list alone: its own score (BM25, cosine) says more than an RRF value.
          fused:
            request.mode === 'lexical'
              ? (s.lexical?.score ?? 0)
              : request.mode === 'vector'
                ? (s.vector?.score ?? 0)
                : s.score,
        },
        ranks: { lexical: s.lexical?.rank ?? null, vector: s.vector?.rank ?? null },
      });
    }
    return { ...result, hits };
  }
}

const modelKey = (c: CollectionInfo) => `${c.embedding_provider ?? ''}\u0000${c.embedding_model ?? ''}`;

function mergeByScore(lists: Ranked[][]): Ranked[] {
  if (lists.length === 1) return lists[0] ?? [];
  return lists.flat().sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
}

function embeddingUnavailable(error: unknown): unknown {
  if (!(error instanceof EmbeddingError)) return error;
  return new AppError('embedding_provider_failed', {
    detail: `The query could not be embedded: ${error.message}`,
    extensions: { reason: error.reason },
  });
}
