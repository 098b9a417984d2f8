/**
 * Hybrid fusion: merges a lexical list (BM25 scores) and a vector list (cosine similarities), each best
 * first, into one best-first list. Pure functions, no I/O.
 *
 * Ranks are 1-based positions in the input lists (the caller's order is trusted; an id repeated within a
 * list counts at its first position only). Every fused item keeps its component scores and ranks and the
 * term each list added to its fused score (`contribution`), so a caller can explain a ranking.
 *
 * Methods:
 *
 * - `rrf` (reciprocal rank fusion, Cormack et al. 2009; scores are ignored):
 *
 *     fused(d) = Σ_list w_list / (k + rank_list(d))          (a list missing d adds nothing)
 *
 *   defaults k = 60, w_lexical = w_vector = 1.
 *
 * - `convex` (convex combination of normalised scores, Bruch et al. 2022, "An Analysis of Fusion Functions
 *   for Hybrid Retrieval"):
 *
 *     fused(d) = α · norm_lexical(d) + (1 − α) · norm_vector(d)
 *
 *   with α ∈ [0, 1] the weight of the lexical list. A list missing d counts as the normalised score of
 *   its lowest item (`missing: 'listMin'`, the default) or as 0 (`missing: 'zero'`) under `tmm`, and
 *   always as 0 under `minmax`. Normalisations, each of one list, results clamped to [0, 1]:
 *
 *   - `minmax`: (s − min) / (max − min) over the list's scores. The list's last item gets 0 (like an item
 *     the list missed); when max = min (one item, or all equal) every item of the list gets 1.
 *   - `tmm` (theoretical-min-max): the theoretical lower bound instead of the observed minimum, the
 *     observed maximum as upper bound:
 *       lexical: s / max                        (BM25 ≥ 0)
 *       vector:  (s − lower) / (max − lower)    (`cosineLower`, default 0)
 *     When max ≤ the lower bound every item of the list gets 1.
 *
 * Ties in the fused score are broken by id ascending (deterministic, as in the SQL rankings).
 *
 * Defaults ({@link DEFAULT_FUSION}): convex, tmm, cosineLower 0, missing listMin, α 0.7.
 *
 * @example
 *   fuse(lexical, vector, DEFAULT_FUSION).slice(0, 10);
 *   fuse(lexical, vector, { method: 'rrf', k: 60 }); // the service's fusion before fusion.ts
 */

/** One item of an input list: a chunk id and its score in that list (BM25 or cosine similarity). */
export interface ScoredItem {
  id: string;
  score: number;
}

/** What one list says about a fused item. */
export interface FusionComponent {
  /** The list's own score (BM25 or cosine). */
  score: number;
  /** 1-based position in the list. */
  rank: number;
  /** The term this list added to the fused score: w / (k + rank) for RRF, α · norm(score) for convex. */
  contribution: number;
}

export interface FusedItem {
  id: string;
  /** The fused score the list is sorted by (descending). */
  score: number;
  /** Null when the item is not in that list. */
  lexical: FusionComponent | null;
  vector: FusionComponent | null;
}

export type Normalisation = 'minmax' | 'tmm';

export interface RrfOptions {
  method: 'rrf';
  /** Rank offset k (≥ 0), default {@link DEFAULT_RRF_K}. */
  k?: number | undefined;
  /** List weights (≥ 0), default 1 each. */
  weights?: { lexical?: number | undefined; vector?: number | undefined } | undefined;
}

export interface ConvexOptions {
  method: 'convex';
  /** Weight of the lexical list, in [0, 1]; the vector list gets 1 − α. Default {@link DEFAULT_CONVEX_ALPHA}. */
  alpha?: number | undefined;
  /** Default {@link DEFAULT_NORMALISATION}. */
  normalisation?: Normalisation | undefined;
  /**
   * Lower bound of the vector scores for `tmm`, default {@link DEFAULT_COSINE_LOWER} (0: text embeddings'
   * cosines are rarely negative, and a negative one clamps to 0; −1 is the cosine's strict bound, which
   * squeezes a list's scores into a narrow band near 1).
   */
  cosineLower?: number | undefined;
  /**
   * What an item missing from a list scores in it: `zero`, or `listMin` (default), the normalised score
   * of the list's lowest item (a bound: a truncated list only says the item scores no more than that;
   * `zero` would give every item a list holds a bonus for being there). Only under `tmm`: under
   * `minmax` a missing item counts 0, the lowest item's value (but for an all-equal list).
   */
  missing?: 'zero' | 'listMin' | undefined;
}

export type FusionOptions = RrfOptions | ConvexOptions;

export const DEFAULT_RRF_K = 60;
export const DEFAULT_CONVEX_ALPHA = 0.7;
export const DEFAULT_NORMALISATION: Normalisation = 'tmm';
export const DEFAULT_COSINE_LOWER = 0;
export const DEFAULT_MISSING: NonNullable<ConvexOptions['missing']> = 'listMin';

/**
 * The recommended fusion, measured on covidqa (bench/hybrid-sweep.ts, all 1,380 questions): never worse
 * than lexical alone over α 0.5–0.95 with the offline model, and the vector list's say grows with the
 * spread of its own cosines, so a flat (weak) list barely moves the ranking and a discriminative one does.
 */
export const DEFAULT_FUSION: Readonly<ConvexOptions> = {
  method: 'convex',
  alpha: DEFAULT_CONVEX_ALPHA,
  normalisation: DEFAULT_NORMALISATION,
  cosineLower: DEFAULT_COSINE_LOWER,
  missing: DEFAULT_MISSING,
};

/** Fuses the two best-first lists into one best-first list (every item of either list, once). */
export function fuse(
  lexical: readonly ScoredItem[],
  vector: readonly ScoredItem[],
  options: FusionOptions,
): FusedItem[] {
  const lex = firstOccurrences(lexical);
  const vec = firstOccurrences(vector);
  let lexTerm: (s: number, rank: number) => number;
  let vecTerm: (s: number, rank: number) => number;
  // What a list adds for an item it misses.
  let lexMissing = 0;
  let vecMissing = 0;
  switch (options.method) {
    case 'rrf': {
      const k = options.k ?? DEFAULT_RRF_K;
      const wl = options.weights?.lexical ?? 1;
      const wv = options.weights?.vector ?? 1;
      check(k >= 0, `rrf k must be ≥ 0, got ${k}`);
      check(wl >= 0 && wv >= 0, `rrf weights must be ≥ 0, got ${wl} and ${wv}`);
      lexTerm = (_s, rank) => wl / (k + rank);
      vecTerm = (_s, rank) => wv / (k + rank);
      break;
    }
    case 'convex': {
      const alpha = options.alpha ?? DEFAULT_CONVEX_ALPHA;
      check(alpha >= 0 && alpha <= 1, `convex alpha must be in [0, 1], got ${alpha}`);
      const normalisation = options.normalisation ?? DEFAULT_NORMALISATION;
      const tmm = normalisation === 'tmm';
      const nl = normaliser(
        lex.map((r) => r.score),
        tmm ? 0 : undefined,
      );
      const nv = normaliser(
        vec.map((r) => r.score),
        tmm ? (options.cosineLower ?? DEFAULT_COSINE_LOWER) : undefined,
      );
      lexTerm = (s) => alpha * nl(s);
      vecTerm = (s) => (1 - alpha) * nv(s);
      if (tmm && (options.missing ?? DEFAULT_MISSING) === 'listMin') {
        lexMissing = lowest(lex, lexTerm);
        vecMissing = lowest(vec, vecTerm);
      }
      break;
    }
  }
  const fused = new Map<string, FusedItem>();
  const entry = (id: string) => {
    let item = fused.get(id);
    if (!item) {
      item = { id, score: 0, lexical: null, vector: null };
      fused.set(id, item);
    }
    return item;
  };
  lex.forEach((r, i) => {
    const item = entry(r.id);
    item.lexical = { score: r.score, rank: i + 1, contribution: lexTerm(r.score, i + 1) };
  });
  vec.forEach((r, i) => {
    const item = entry(r.id);
    item.vector = { score: r.score, rank: i + 1, contribution: vecTerm(r.score, i + 1) };
  });
  // Summed in a fixed order (lexical + vector) so equal inputs give bit-equal scores.
  for (const item of fused.values())
    item.score = (item.lexical?.contribution ?? lexMissing) + (item.vector?.contribution ?? vecMissing);
  return [...fused.values()].sort(byFusedScore);
}

/**
 * The normalised scores of one list, in its order: `minmax` without `lower`, otherwise
 * (s − lower) / (max − lower) (theoretical-min-max). See the header for the degenerate cases.
 */
export function normalise(scores: readonly number[], lower?: number): number[] {
  return scores.map(normaliser(scores, lower));
}

function normaliser(scores: readonly number[], lower: number | undefined): (s: number) => number {
  let max = -Infinity;
  let min = Infinity;
  for (const score of scores) {
    check(Number.isFinite(score), `fusion scores must be finite numbers, got ${score}`);
    if (score > max) max = score;
    if (score < min) min = score;
  }
  if (scores.length === 0) return () => 0;
  const low = lower ?? min;
  const span = max - low;
  if (!(span > 0)) return () => 1;
  return (s) => Math.min(1, Math.max(0, (s - low) / span));
}

/** The smallest term of a list's items (0 for an empty list). */
function lowest(list: readonly ScoredItem[], term: (s: number, rank: number) => number): number {
  let min = Infinity;
  list.forEach((r, i) => {
    min = Math.min(min, term(r.score, i + 1));
  });
  return list.length === 0 ? 0 : min;
}

function firstOccurrences(list: readonly ScoredItem[]): ScoredItem[] {
  const seen = new Set<string>();
  return list.filter((r) => {
    if (seen.has(r.id)) return false;
    seen.add(r.id);
    return true;
  });
}

function byFusedScore(a: FusedItem, b: FusedItem): number {
  return b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new RangeError(message);
}
