/**
 * Retrieval metrics with textbook definitions, matching what BEIR reports (it calls pytrec_eval, i.e.
 * trec_eval's `ndcg_cut`, `recall`, and `recip_rank` cut at k).
 *
 * Conventions shared by every per-query metric here:
 * - `ranked` is the system's ranking, best first; ranks are 1-based in the formulas below.
 * - A document is relevant when its grade is > 0. Grades ≤ 0 (and documents missing from `grades`) count as
 *   non-relevant and never enter the ideal ranking.
 * - A document id repeated in `ranked` counts only at its first position (later copies earn nothing), so a
 *   buggy run cannot inflate its score by returning the same document twice.
 * - A query without any relevant document has no defined value: the metric returns `undefined`, and
 *   {@link meanOf} skips it. trec_eval does the same (it averages over queries with relevant documents).
 * - Ties in score must be broken by the caller before ranking; {@link rankByScore} breaks them by id ascending.
 *   trec_eval breaks ties by document id descending, so numbers can differ from trec_eval when scores tie.
 *
 * @example
 *   const grades = new Map([['d1', 2], ['d3', 1]]);
 *   ndcgAtK(['d3', 'd2', 'd1'], grades, 10); // (1/log2(2) + 2/log2(4)) / (2/log2(2) + 1/log2(3)) ≈ 0.7602
 */

/** A graded qrels row set for one query: document id → grade (0 or less = not relevant). */
export type Grades = ReadonlyMap<string, number>;

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
}

/** The top k ranks; a repeated id keeps its rank slot but becomes `undefined` (it earns nothing). */
function topK(ranked: readonly string[], k: number): (string | undefined)[] {
  const seen = new Set<string>();
  const out: (string | undefined)[] = [];
  for (const id of ranked) {
    if (out.length === k) break;
    if (seen.has(id)) {
      out.push(undefined);
      continue;
    }
    seen.add(id);
    out.push(id);
  }
  return out;
}

function gradeOf(grades: Grades, id: string | undefined): number {
  const g = id === undefined ? undefined : grades.get(id);
  return g !== undefined && g > 0 ? g : 0;
}

function relevantCount(grades: Grades): number {
  let n = 0;
  for (const g of grades.values()) if (g > 0) n++;
  return n;
}

/**
 * nDCG@k with linear gain (the trec_eval / pytrec_eval / BEIR convention, not the `2^rel − 1` of Burges et al.):
 *
 *   DCG@k  = Σ_{i=1..min(k,n)} rel_i / log2(i + 1)
 *   nDCG@k = DCG@k / IDCG@k
 *
 * where rel_i is the grade of the document at rank i and IDCG@k is the DCG@k of the relevant documents sorted
 * by grade descending. With binary grades both conventions agree. `undefined` when no document has grade > 0.
 */
export function ndcgAtK(ranked: readonly string[], grades: Grades, k: number): number | undefined {
  checkK(k);
  const ideal = [...grades.values()].filter((g) => g > 0).sort((a, b) => b - a);
  if (ideal.length === 0) return undefined;
  let idcg = 0;
  ideal.slice(0, k).forEach((grade, i) => {
    idcg += grade / Math.log2(i + 2);
  });
  let dcg = 0;
  topK(ranked, k).forEach((id, i) => {
    dcg += gradeOf(grades, id) / Math.log2(i + 2);
  });
  return dcg / idcg;
}

/**
 * Recall@k = |relevant ∩ top k| / |relevant|, relevant = grade > 0. This is BEIR's `Recall@k` (not its
 * `R_cap@k`, which divides by min(k, |relevant|)). `undefined` when nothing is relevant.
 */
export function recallAtK(ranked: readonly string[], grades: Grades, k: number): number | undefined {
  checkK(k);
  const relevant = relevantCount(grades);
  if (relevant === 0) return undefined;
  let found = 0;
  for (const id of topK(ranked, k)) if (gradeOf(grades, id) > 0) found++;
  return found / relevant;
}

/**
 * MRR@k for one query (the reciprocal rank): 1 / rank of the first relevant document within the top k, 0 if
 * none is there. Grades only matter as relevant (> 0) or not. `undefined` when nothing is relevant.
 */
export function mrrAtK(ranked: readonly string[], grades: Grades, k: number): number | undefined {
  checkK(k);
  if (relevantCount(grades) === 0) return undefined;
  const top = topK(ranked, k);
  const at = top.findIndex((id) => gradeOf(grades, id) > 0);
  return at === -1 ? 0 : 1 / (at + 1);
}

/**
 * Mean over queries, skipping `undefined` (queries the metric is not defined for). `undefined` when nothing is
 * left to average, so an empty evaluation is never reported as 0.
 */
export function meanOf(values: Iterable<number | undefined>): number | undefined {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v === undefined) continue;
    sum += v;
    n++;
  }
  return n === 0 ? undefined : sum / n;
}

/** Orders scored ids best first; equal scores are ordered by id ascending (code-unit order) for determinism. */
export function rankByScore(scored: readonly { id: string; score: number }[]): string[] {
  return [...scored].sort((a, b) => b.score - a.score || compareIds(a.id, b.id)).map((s) => s.id);
}

/** Code-unit order, independent of locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------
// Chunk level: did retrieval surface a passage that holds the answer?

/** A retrieved chunk: `[charStart, charEnd)` in its document's text (the same text the answer offsets use). */
export interface RankedChunk {
  documentId: string;
  charStart: number;
  charEnd: number;
}

/** A gold answer: `[start, end)` in document `docId`. Ids must be in the same id space as the chunks'. */
export interface AnswerSpan {
  docId: string;
  start: number;
  end: number;
}

export interface ChunkHit {
  /** Whether one of the top k chunks matches. */
  hit: boolean;
  /** 1-based rank of the first matching chunk within the top k, `undefined` if none. */
  rank: number | undefined;
  /** 1 / rank, or 0: average this over queries for chunk-level MRR@k. */
  reciprocalRank: number;
}

export interface AnswerInChunks {
  /** A chunk contains an answer: same document and `charStart ≤ start` and `end ≤ charEnd`. */
  contained: ChunkHit;
  /**
   * A chunk covers at least half of an answer: same document and
   * `min(end, charEnd) − max(start, charStart) ≥ 0.5 · (end − start)`. Each chunk is judged on its own (an
   * answer split 50/50 across two chunks counts; split 30/30/40 across three does not). Implied by `contained`.
   */
  overlapping: ChunkHit;
}

/** The fraction of an answer covered by a chunk must be at least this for the `overlapping` variant. */
export const OVERLAP_THRESHOLD = 0.5;

function hitAt(rank: number | undefined): ChunkHit {
  return { hit: rank !== undefined, rank, reciprocalRank: rank === undefined ? 0 : 1 / rank };
}

/**
 * Whether any of the top k chunks holds one of the answers, in two strictnesses (see {@link AnswerInChunks}).
 * Empty answer spans (`end ≤ start`) are ignored: they cannot be located. With no usable span both variants
 * report no hit; callers should skip such queries rather than count them as misses.
 *
 * @example
 *   answerInChunks([{ documentId: 'd1', charStart: 0, charEnd: 500 }], [{ docId: 'd1', start: 370, end: 470 }], 5)
 *   // → contained and overlapping both { hit: true, rank: 1, reciprocalRank: 1 }
 */
export function answerInChunks(
  rankedChunks: readonly RankedChunk[],
  answerSpans: readonly AnswerSpan[],
  k: number,
): AnswerInChunks {
  checkK(k);
  const spans = answerSpans.filter((s) => s.end > s.start);
  let contained: number | undefined;
  let overlapping: number | undefined;
  for (const [i, c] of rankedChunks.slice(0, k).entries()) {
    if (contained !== undefined) break;
    for (const s of spans) {
      if (s.docId !== c.documentId) continue;
      if (c.charStart <= s.start && s.end <= c.charEnd) contained ??= i + 1;
      const covered = Math.min(s.end, c.charEnd) - Math.max(s.start, c.charStart);
      if (covered >= OVERLAP_THRESHOLD * (s.end - s.start)) overlapping ??= i + 1;
    }
  }
  return { contained: hitAt(contained), overlapping: hitAt(overlapping) };
}
