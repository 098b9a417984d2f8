/**
 * Scores a search run against a BEIR dataset: the reusable part of `larder eval`, free of I/O except
 * {@link runQueries}, which only calls {@link SearchService}.
 *
 * Document level: a hit is a chunk; a document's rank is the rank of its best (first) chunk in the
 * chunk ranking, and its later chunks keep their rank slots but earn nothing (the duplicate rule of
 * `metrics.ts`). So nDCG@10 / MRR@10 measure what a reader of the top 10 chunks sees, and Recall@k is
 * the share of relevant documents with a chunk among the top k chunks.
 *
 * Chunk level (datasets with `answers.jsonl`): whether a top-k chunk holds the answer span. Chunk
 * offsets index the document text as the pipeline stored it, answer offsets the BEIR text; they differ
 * where the pipeline normalised newlines (`\r\n`, lone `\r` → `\n`) or dropped a leading BOM, so spans
 * are moved into the pipeline's coordinates first ({@link pipelineSpan}).
 *
 * @example
 *   const runs = await runQueries(search, ws, { collectionId, mode: 'lexical', k: 10, queries });
 *   const metrics = scoreRun(topics, runs, { k: 10, texts, canonical });
 */
import { normaliseNewlines } from '../../../ai/parsing/decode.js';
import type { WorkspaceContext } from '../../../platform/auth/access.js';
import type { SearchMode, SearchService } from '../service.js';
import type { BeirAnswerSpan, BeirTopics } from './beir.js';
import { type AnswerSpan, answerInChunks, meanOf, mrrAtK, ndcgAtK, recallAtK } from './metrics.js';

/** What scoring needs of a hit. */
export interface RunHit {
  externalId: string | null;
  charStart: number;
  charEnd: number;
}

/** One query's hits, best first, and how long the search took. */
export interface QueryRun {
  queryId: string;
  hits: RunHit[];
  ms: number;
}

export interface ModeMetrics {
  /** Queries evaluated (those with a relevant document). */
  queries: number;
  ndcgAt10: number | null;
  recallAtK: number | null;
  mrrAt10: number | null;
  /** Chunk level, only when the dataset has answers; averaged over queries with a usable span. */
  answers: {
    queries: number;
    /** Share of queries whose answer lies wholly inside one of the top k chunks. */
    containedAtK: number | null;
    /** Share of queries with a top-k chunk covering ≥ 50 % of the answer. */
    overlapAtK: number | null;
    /** Mean reciprocal rank of the first chunk containing the answer, within the top 10. */
    mrrAt10: number | null;
  } | null;
  latencyMs: { p50: number; p95: number; mean: number };
}

export interface ScoreOptions {
  /** The cut-off of Recall@k and the answer-containment rates. */
  k: number;
  /** BEIR document id → its text as in `corpus.jsonl` (for moving answer spans). */
  texts: ReadonlyMap<string, string>;
  /**
   * BEIR document id → the external id of the document holding its content. Identity except for
   * documents whose text is byte-identical to an earlier one: the pipeline keeps one copy
   * (`duplicate`), and a hit on it counts for every BEIR id sharing that text.
   */
  canonical: ReadonlyMap<string, string>;
}

const round = (n: number | undefined, digits = 4) =>
  n === undefined ? null : Math.round(n * 10 ** digits) / 10 ** digits;

/** Nearest-rank percentile of ascending `sorted` (`p` in (0, 1]); 0 when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
}

/**
 * An answer span of a BEIR text in the coordinates of the pipeline's text of the same document
 * (`normaliseNewlines`, BOM dropped), or undefined if its text is not found there.
 */
export function pipelineSpan(text: string, span: BeirAnswerSpan): { start: number; end: number } | undefined {
  const bom = text.startsWith('\uFEFF') ? 1 : 0;
  // Characters the pipeline removed before `offset`: the BOM and the `\r` of every `\r\n`.
  const removedBefore = (offset: number) => {
    let removed = offset > 0 ? bom : 0;
    for (let i = text.indexOf('\r\n'); i !== -1 && i < offset; i = text.indexOf('\r\n', i + 2)) removed += 1;
    return removed;
  };
  const start = span.start - removedBefore(span.start);
  const end = span.end - removedBefore(span.end);
  const stored = normaliseNewlines(text.slice(bom));
  return stored.slice(start, end) === normaliseNewlines(span.text) ? { start, end } : undefined;
}

/** Scores one mode's run; queries missing from `runs` count as returning nothing. */
export function scoreRun(topics: BeirTopics, runs: readonly QueryRun[], options: ScoreOptions): ModeMetrics {
  const byQuery = new Map(runs.map((r) => [r.queryId, r]));
  // External id → the BEIR ids whose content it holds.
  const holders = new Map<string, string[]>();
  for (const [beirId, externalId] of options.canonical) {
    const list = holders.get(externalId) ?? [];
    list.push(beirId);
    holders.set(externalId, list);
  }
  const spans = answerSpans(topics, options);

  const ndcg: (number | undefined)[] = [];
  const recall: (number | undefined)[] = [];
  const mrr: (number | undefined)[] = [];
  const contained: number[] = [];
  const overlap: number[] = [];
  const chunkMrr: number[] = [];
  for (const [queryId, grades] of topics.qrels) {
    if (!topics.queries.has(queryId)) continue;
    const hits = byQuery.get(queryId)?.hits ?? [];
    // A hit on a shared copy counts as the relevant BEIR id it holds, if any.
    const ranked = hits.map((h) => {
      const ids = h.externalId === null ? [] : (holders.get(h.externalId) ?? [h.externalId]);
      return ids.find((id) => (grades.get(id) ?? 0) > 0) ?? ids[0] ?? '';
    });
    ndcg.push(ndcgAtK(ranked, grades, 10));
    recall.push(recallAtK(ranked, grades, options.k));
    mrr.push(mrrAtK(ranked, grades, 10));
    const answer = spans.get(queryId);
    if (answer && answer.length > 0) {
      const chunks = hits.map((h) => ({
        documentId: h.externalId ?? '',
        charStart: h.charStart,
        charEnd: h.charEnd,
      }));
      const atK = answerInChunks(chunks, answer, options.k);
      contained.push(atK.contained.hit ? 1 : 0);
      overlap.push(atK.overlapping.hit ? 1 : 0);
      chunkMrr.push(answerInChunks(chunks, answer, 10).contained.reciprocalRank);
    }
  }
  const times = runs.map((r) => r.ms).sort((a, b) => a - b);
  return {
    queries: ndcg.filter((v) => v !== undefined).length,
    ndcgAt10: round(meanOf(ndcg)),
    recallAtK: round(meanOf(recall)),
    mrrAt10: round(meanOf(mrr)),
    answers: topics.answers
      ? {
          queries: contained.length,
          containedAtK: round(meanOf(contained)),
          overlapAtK: round(meanOf(overlap)),
          mrrAt10: round(meanOf(chunkMrr)),
        }
      : null,
    latencyMs: {
      p50: round(percentile(times, 0.5), 1) ?? 0,
      p95: round(percentile(times, 0.95), 1) ?? 0,
      mean: round(meanOf(times) ?? 0, 1) ?? 0,
    },
  };
}

/** Each query's answer spans in pipeline coordinates, on the external id holding the document. */
function answerSpans(topics: BeirTopics, options: ScoreOptions): Map<string, AnswerSpan[]> {
  const out = new Map<string, AnswerSpan[]>();
  for (const [queryId, answer] of topics.answers ?? []) {
    const text = options.texts.get(answer.docId);
    const docId = options.canonical.get(answer.docId);
    if (text === undefined || docId === undefined) continue;
    const spans: AnswerSpan[] = [];
    for (const span of answer.spans) {
      const moved = pipelineSpan(text, span);
      if (moved) spans.push({ docId, ...moved });
    }
    out.set(queryId, spans);
  }
  return out;
}

export interface RunQueriesOptions {
  collectionId: string;
  mode: SearchMode;
  k: number;
  queries: ReadonlyMap<string, string>;
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number) => void) | undefined;
}

/**
 * Runs every query one after the other (latency is per query, not under load). The first query is run
 * once untimed first, so loading a model or warming caches does not land in the percentiles.
 */
export async function runQueries(
  search: Pick<SearchService, 'search'>,
  ws: WorkspaceContext,
  options: RunQueriesOptions,
): Promise<QueryRun[]> {
  const request = (query: string) =>
    search.search(ws, { query, collections: [options.collectionId], k: options.k, mode: options.mode });
  const first = options.queries.values().next();
  if (!first.done) await request(first.value);
  const runs: QueryRun[] = [];
  for (const [queryId, query] of options.queries) {
    if (options.signal?.aborted) break;
    const started = performance.now();
    const { hits } = await request(query);
    runs.push({ queryId, hits, ms: performance.now() - started });
    options.onProgress?.(runs.length);
  }
  return runs;
}
