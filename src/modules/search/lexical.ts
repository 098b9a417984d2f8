/**
 * Lexical ranking: exact Okapi BM25 (Lucene idf) over a collection's postings lists
 * (migrations/0011_lexical_postings.sql), best `limit` first, candidates matching ANY query term.
 *
 *   score(c) = Σ_t w_t · tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avgdl)),  w_t = ln(1 + (N − df + 0.5)/(df + 0.5))
 *
 Two round trips, each one tenant read (`tenantRead`: settings and statement pipelined):
 *  1. one statement, so one snapshot for all of it: the collection's N, total length and numbering,
 *     the dead ranges (documents that left the index, not yet purged), the postings lists of the
 *     query's lexemes (the collection's text-search configuration), 8 bytes per posting, and with
 *     document filters the ranges of the documents that pass them;
 *  2. here: each term's document frequency (its live postings), weight, and every live posting's
 *     contribution summed per chunk in a dense array indexed by sequence number; the best `limit`;
 *  3. their chunk ids, from the sequence numbers (a later snapshot: see `chunkIds`).
 *
 * With a postings cache (postings-cache.ts), step 1 is sent the id and version of every cached list of
 * the query's lexemes and returns just that for them, not data.
 *
 * Every posting of every query term is read, so the result is exact; what makes it fast is that a
 * posting is 8 bytes in a list read whole (a few dozen rows per term) instead of an index tuple, and
 * that the sum is a typed-array loop instead of a hash aggregate.
 */
import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { rawRead, tenantRead } from '../../platform/db/tenant.js';
import type { PostingsCache } from './postings-cache.js';

export interface LexicalCollection {
  id: string;
  bm25_k1: number;
  bm25_b: number;
  /**
   * The query's distinct lexemes in this collection's text-search configuration (the search reads
   * them with the collections, in the same round trip).
   */
  lexemes: string[];
}

export interface Ranked {
  id: string;
  score: number;
}

/** Bytes per posting in `lexical_postings.data`: sequence number int4, tf int2, length int2. */
export const POSTING_BYTES = 8;

/** What one ranking read (for benchmarks and `explain`). */
export interface LexicalWork {
  terms: number;
  lists: number;
  postings: number;
  /** Lists taken from the process's postings cache instead of being sent again. */
  cached: number;
}

export async function lexicalRanking(
  db: Db,
  workspaceId: string,
  collection: LexicalCollection,
  limit: number,
  options: {
    /** A condition on a document `d` (the search filters), or undefined for none. */
    documentFilter?: RawBuilder<unknown> | undefined;
    /** The process's postings cache: lists it holds are not sent again. */
    cache?: PostingsCache | undefined;
  } = {},
): Promise<{ ranked: Ranked[]; work: LexicalWork }> {
  const work: LexicalWork = { terms: 0, lists: 0, postings: 0, cached: 0 };
  // Only stop words (or nothing): no term to rank by, and no round trip.
  if (collection.lexemes.length === 0) return { ranked: [], work };
  const { cache } = options;
  const known = cache ? cache.known(collection.id, collection.lexemes) : { ids: [], versions: [] };
  const [rows] = await tenantRead(db, workspaceId, () => [
    readIndex(collection, options.documentFilter, known),
  ]);
  const head = rows.find((r) => r.kind === 'head');
  if (!head?.n || head.next_seq === null) return { ranked: [], work };
  const nextSeq = head.next_seq;
  const lists: { lexeme: string; postings: number; data: Buffer }[] = [];
  const listRows = rows.filter(
    (r): r is IndexRow & { lexeme: string; id: string; version: string } =>
      r.kind === 'list' && r.lexeme !== null && r.id !== null && r.version !== null,
  );
  // The cached lists first: taking them marks them recently used, so caching this query's new lists
  // below cannot evict them before they are read.
  const held = listRows.map((r) => (r.data === null ? cache?.get(r.id, r.version) : undefined));
  for (const [i, r] of listRows.entries()) {
    let data = held[i];
    if (r.data === null) {
      // Evicted since `known` (by a concurrent search's lists): read it again.
      data ??= await listData(db, workspaceId, r.id, r.version);
      if (data === undefined) continue;
      work.cached++;
    } else {
      data = Buffer.from(r.data, 'base64');
      cache?.set(collection.id, r.lexeme, r.id, r.version, data);
    }
    lists.push({ lexeme: r.lexeme, postings: r.postings ?? 0, data });
  }
  if (lists.length === 0) return { ranked: [], work };

  // Postings to skip: dead ranges, and with filters every chunk outside the passing documents.
  let skip: Uint8Array | undefined;
  if (options.documentFilter) {
    const allowed = rows.find((r) => r.kind === 'allowed');
    if (!allowed?.bases?.length) return { ranked: [], work };
    skip = new Uint8Array(nextSeq).fill(1);
    allowed.bases.forEach((base, i) => skip?.fill(0, base, base + (allowed.counts?.[i] ?? 0)));
  }
  if (head.bases?.length) {
    skip ??= new Uint8Array(nextSeq);
    head.bases.forEach((base, i) => skip?.fill(1, base, base + (head.counts?.[i] ?? 0)));
  }

  // Document frequencies: the live postings of each term.
  const df = new Map<string, number>();
  for (const list of lists) {
    let live = list.postings;
    if (skip) {
      const d = list.data;
      for (let at = 0; at < d.byteLength; at += POSTING_BYTES) if (skip[seqAt(d, at)] === 1) live--;
    }
    df.set(list.lexeme, (df.get(list.lexeme) ?? 0) + live);
    work.lists++;
    work.postings += list.postings;
  }
  work.terms = [...df.values()].filter((n) => n > 0).length;

  const k1 = collection.bm25_k1;
  const b = collection.bm25_b;
  // tf·(k1 + 1) / (tf + k1·(1 − b) + (k1·b / avgdl)·len)
  const norm0 = k1 * (1 - b);
  const normLength = (k1 * b) / (head.avgdl ?? 1);
  // Typed arrays and byte reads: ~15 ns per posting, a third of a DataView and a growing array.
  const scratch = takeScratch(nextSeq, work.postings);
  const { scores, touched } = scratch;
  let candidates = 0;
  let top: number[];
  let topScores: number[];
  try {
    for (const list of lists) {
      const n = df.get(list.lexeme) ?? 0;
      if (n === 0) continue;
      const w = Math.log(1 + (head.n - n + 0.5) / (n + 0.5)) * (k1 + 1);
      const d = list.data;
      for (let at = 0; at < d.byteLength; at += POSTING_BYTES) {
        const seq = seqAt(d, at);
        if (skip?.[seq] === 1) continue;
        const tf = int16At(d, at + 4);
        const before = scores[seq] ?? 0;
        if (before === 0) touched[candidates++] = seq;
        scores[seq] = before + (w * tf) / (tf + norm0 + normLength * int16At(d, at + 6));
      }
    }

    top = best(scores, touched.subarray(0, candidates), limit);
    topScores = top.map((seq) => scores[seq] ?? 0);
  } finally {
    releaseScratch(scratch, candidates);
  }
  if (top.length === 0) return { ranked: [], work };
  const [found] = await tenantRead(db, workspaceId, () => [chunkIds(collection.id, top)]);
  const ids = new Map(found.map((r) => [r.seq, r.id]));
  const ranked: Ranked[] = [];
  top.forEach((seq, i) => {
    const id = ids.get(seq);
    // Missing only when its document left the index since the postings were read.
    if (id !== undefined) ranked.push({ id, score: topScores[i] ?? 0 });
  });
  return { ranked, work };
}

/** A ranking's working arrays: scores by sequence number (all zero when free) and the touched numbers. */
interface Scratch {
  scores: Float64Array;
  touched: Int32Array;
}

/**
 * Free working arrays, reused: at 100k chunks a ranking needs ~1.2 MB of them, and allocating that per
 * query (memory outside the JS heap) made V8 run a full garbage collection every few dozen queries,
 * 5–7 ms each, in the middle of searches. A few sets are kept (concurrent searches), largest first.
 */
const scratchPool: Scratch[] = [];
const SCRATCH_POOL_SIZE = 4;

function takeScratch(numbers: number, postings: number): Scratch {
  const at = scratchPool.findIndex((s) => s.scores.length >= numbers && s.touched.length >= postings);
  const [free] = at === -1 ? [] : scratchPool.splice(at, 1);
  if (free) return free;
  // Room to grow: the collection's numbers and a query's postings vary a little from query to query.
  return {
    scores: new Float64Array(Math.ceil(numbers * 1.25)),
    touched: new Int32Array(Math.ceil(postings * 1.25)),
  };
}

/** Zeroes the scores `candidates` numbers touched and returns the arrays to the pool. */
function releaseScratch(scratch: Scratch, candidates: number): void {
  const { scores, touched } = scratch;
  for (let i = 0; i < candidates; i++) scores[touched[i] ?? 0] = 0;
  if (scratchPool.length >= SCRATCH_POOL_SIZE) {
    // Keep the largest sets: a small one is dropped rather than a big one.
    const smallest = scratchPool.reduce(
      (m, s, i, all) => (s.scores.length < (all[m]?.scores.length ?? 0) ? i : m),
      0,
    );
    if ((scratchPool[smallest]?.scores.length ?? 0) >= scores.length) return;
    scratchPool.splice(smallest, 1);
  }
  scratchPool.push(scratch);
}

/** One row of {@link readIndex}: the statistics (`head`), a postings list, or the filter's ranges. */
interface IndexRow {
  kind: 'head' | 'list' | 'allowed';
  lexeme: string | null;
  /** A list's row id and version (`xmin`, postings): what the postings cache is keyed by. */
  id: string | null;
  version: string | null;
  postings: number | null;
  /** The list's postings, base64; null when the caller holds this version of it. */
  data: string | null;
  n: number | null;
  avgdl: number | null;
  next_seq: number | null;
  /** `head`: the dead ranges; `allowed`: the live ranges of the documents passing the filter. */
  bases: number[] | null;
  counts: number[] | null;
}

/**
 * Everything the ranking reads, as ONE statement so that it reads one snapshot (BM25's statistics,
 * the dead ranges and the postings agree) in one round trip: the statistics row, the lists of the
 * query's lexemes, and with a filter the ranges of the documents that pass it.
 *
 * One index range per term, as a lateral join: robust when the planner's statistics are stale (a bulk
 * load), where `lexeme = any(…)` may be planned as a scan of the whole collection. The lists travel as
 * base64, not as bytea's hex text: a third fewer bytes to encode, send and parse (the lists dominate
 * a query's time; measured 8.5 against 11.8 ms for 2.2 MB).
 */
function readIndex(
  collection: LexicalCollection,
  documentFilter: RawBuilder<unknown> | undefined,
  known: { ids: string[]; versions: string[] },
) {
  const id = sql`${collection.id}::uuid`;
  const allowed = documentFilter
    ? sql`
      union all
      select 'allowed', null, null, null, null, null, null, null, null,
             array_agg(r.base::int), array_agg(r.chunk_count)
      from lexical_ranges r join documents d on d.id = r.document_id
      where r.collection_id = ${id} and r.live and ${documentFilter}`
    : sql``;
  // The cached lists: sent as parallel arrays, matched on id and version.
  const cached =
    known.ids.length > 0
      ? sql`left join unnest(${known.ids}::bigint[], ${known.versions}::text[]) k(id, version)
              on k.id = p.id and k.version = p.version`
      : sql`left join (select null::bigint as id) k on false`;
  return rawRead(sql<IndexRow>`
    select 'head' as kind, null::text as lexeme, null::text as id, null::text as version,
           null::int as postings, null::text as data,
           s.chunk_count::float8 as n,
           coalesce(s.total_length::float8 / nullif(s.chunk_count, 0), 1) as avgdl,
           s.next_seq::int as next_seq,
           (select array_agg(r.base::int order by r.base) from lexical_ranges r
            where r.collection_id = ${id} and not r.live) as bases,
           (select array_agg(r.chunk_count order by r.base) from lexical_ranges r
            where r.collection_id = ${id} and not r.live) as counts
    from collection_stats s where s.collection_id = ${id}
    union all
    select 'list', t.lexeme, p.id::text, p.version, p.postings,
           case when k.id is null then encode(p.data, 'base64') end, null, null, null, null, null
    from unnest(${collection.lexemes}::text[]) t(lexeme)
    cross join lateral (select p.id, p.xmin::text || ':' || p.postings as version, p.postings, p.data
                        from lexical_postings p
                        where p.collection_id = ${id} and p.lexeme = t.lexeme offset 0) p
    ${cached}
    ${allowed}
  `);
}

/**
 * One list row's data if it still has this version (a cached list evicted between choosing what to
 * send and reading the answer; rare). Under row-level security, as every read here.
 */
async function listData(db: Db, workspaceId: string, id: string, version: string) {
  const [rows] = await tenantRead(db, workspaceId, () => [
    rawRead(sql<{ data: string }>`
      select encode(p.data, 'base64') as data from lexical_postings p
      where p.id = ${id}::bigint and p.xmin::text || ':' || p.postings = ${version}`),
  ]);
  const data = rows[0]?.data;
  return data === undefined ? undefined : Buffer.from(data, 'base64');
}

/**
 * The chunk ids of sequence numbers: each number's range (the last one starting at or below it) and
 * the chunk at that ordinal of the range's document. Read after the postings, in a later snapshot, so
 * a number whose document has left the index meanwhile (its range dead, or purged so that an earlier
 * range is found) yields nothing instead of another document's chunk.
 */
export function chunkIds(collectionId: string, seqs: number[]) {
  return rawRead(sql<{ seq: number; id: string }>`
    select s.seq, c.id
    from unnest(${seqs}::int[]) s(seq)
    cross join lateral (select r.document_id, r.base, r.chunk_count, r.live from lexical_ranges r
                        where r.collection_id = ${collectionId}::uuid and r.base <= s.seq
                        order by r.base desc limit 1) r
    join chunks c on c.document_id = r.document_id and c.ordinal = s.seq - r.base
    where r.live and s.seq < r.base + r.chunk_count
  `);
}

/** A view for reading a list's postings (big-endian int4, int2, int2 at each multiple of 8). */
export function postingsView(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** The big-endian int4 at `at`: a posting's sequence number. */
export const seqAt = (d: Uint8Array, at: number) =>
  ((d[at] ?? 0) << 24) | ((d[at + 1] ?? 0) << 16) | ((d[at + 2] ?? 0) << 8) | (d[at + 3] ?? 0);

/** The big-endian int2 at `at`: a posting's term frequency or chunk length. */
export const int16At = (d: Uint8Array, at: number) => (((d[at] ?? 0) << 24) >> 16) | (d[at + 1] ?? 0);

/**
 * The `limit` best sequence numbers among `candidates` by score (ties: lower number first, i.e. the
 * chunk indexed earlier), best first. A bounded min-heap of (score, number) in typed arrays, whose
 * root rejects most candidates with one comparison: O(candidates · log limit).
 */
export function best(scores: Float64Array, candidates: Iterable<number>, limit: number): number[] {
  if (limit <= 0) return [];
  const heapScores = new Float64Array(limit);
  const heapSeqs = new Int32Array(limit);
  let size = 0;
  // (sa, a) ranks below (sb, b)
  const below = (sa: number, a: number, sb: number, b: number) => sa < sb || (sa === sb && a > b);
  for (const seq of candidates) {
    const score = scores[seq] ?? 0;
    let at: number;
    if (size < limit) {
      // Sift up from the new leaf.
      at = size++;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (!below(score, seq, heapScores[parent] ?? 0, heapSeqs[parent] ?? 0)) break;
        heapScores[at] = heapScores[parent] ?? 0;
        heapSeqs[at] = heapSeqs[parent] ?? 0;
        at = parent;
      }
    } else {
      const rootScore = heapScores[0] ?? 0;
      if (score < rootScore || !below(rootScore, heapSeqs[0] ?? 0, score, seq)) continue;
      // Replace the root: sift down.
      at = 0;
      for (;;) {
        const left = 2 * at + 1;
        if (left >= size) break;
        const right = left + 1;
        const child =
          right < size &&
          below(heapScores[right] ?? 0, heapSeqs[right] ?? 0, heapScores[left] ?? 0, heapSeqs[left] ?? 0)
            ? right
            : left;
        if (!below(heapScores[child] ?? 0, heapSeqs[child] ?? 0, score, seq)) break;
        heapScores[at] = heapScores[child] ?? 0;
        heapSeqs[at] = heapSeqs[child] ?? 0;
        at = child;
      }
    }
    heapScores[at] = score;
    heapSeqs[at] = seq;
  }
  return Array.from(heapSeqs.subarray(0, size)).sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0) || a - b);
}
