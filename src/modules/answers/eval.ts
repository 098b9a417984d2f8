/**
 * Answer grounding on a BEIR dataset with gold answer spans (`larder eval --answers`): the questions go
 * through {@link AnswerService} on the eval's scratch collection, and each answer is scored here.
 *
 *  - `answered`: share of questions answered (`grounded`, not the no-answer reply);
 *  - `firstCitationHasAnswer`: share of questions whose first citation's chunk (the full source chunk)
 *    contains a gold answer; `firstQuoteHasAnswer` the stricter rate where the quoted sentence does,
 *    `anyCitationHasAnswer` the looser one over every citation, `anySourceHasAnswer` the retrieval
 *    ceiling (some source chunk holds it). Containment compares case-folded, whitespace-collapsed text;
 *  - `citationsResolve`: share of citations whose quote is exactly the stored chunk's text at the
 *    citation's span (`chunks.text.slice(charStart - char_start, charEnd - char_start)`): must be 1;
 *  - the weak-evidence trade-off: each question's best BM25 and cosine among its sources, on the
 *    dataset's questions and on {@link OFF_TOPIC_QUESTIONS}, with the share each threshold would refuse.
 *
 * Everything but {@link runAnswerEval} (which only calls the functions it is given) and
 * {@link loadChunkSpans} / {@link removeEvalConversations} (tenant-scoped reads and deletes) is pure.
 *
 * @example
 *   const run = await runAnswerEval({ answer, chunks: (ids) => loadChunkSpans(db, ws.id, ids) }, questions);
 *   const summary = summariseAnswerEval(run, { minBm25: 4, minCosine: 0.5 });
 */
import type { Db } from '../../platform/db/database.js';
import { withTenant } from '../../platform/db/tenant.js';
import type { Citation, AnswerSource } from './grounding.js';
import type { AnswerResult } from './service.js';

/**
 * Everyday questions that a COVID-19 / virology corpus cannot answer: the other side of the
 * weak-evidence threshold (they should be refused).
 */
export const OFF_TOPIC_QUESTIONS: readonly string[] = [
  'How do I reset my router password?',
  'What is the capital of Australia?',
  'How long should I boil an egg for a soft yolk?',
  'What is a good recipe for banana bread?',
  'Who won the FIFA World Cup in 2018?',
  'How many players are on a basketball team on the court?',
  'How do I file a W-2 form with my tax return?',
  'What is the deadline for filing federal income taxes?',
  'How do I reverse a linked list in Python?',
  'What is the difference between let and const in JavaScript?',
  'How do I change a flat tire on a bicycle?',
  'What is the best way to clean a cast iron skillet?',
  'How do I make a sourdough starter from scratch?',
  'When was the Eiffel Tower built?',
  'How tall is Mount Everest?',
  'What are the rules of chess castling?',
  'How do I set up a printer on Windows 11?',
  'What is the offside rule in football?',
  'How many teaspoons are in a tablespoon?',
  'How do I center a div with CSS flexbox?',
  'What time zone is Tokyo in?',
  'How do I renew my passport?',
  'What is the plot of Pride and Prejudice?',
  'How do I grow tomatoes on a balcony?',
  'Which planet has the most moons?',
  'How do I unclog a kitchen sink drain?',
  'What is the exchange rate between euros and dollars?',
  'How do I write a cover letter for a job application?',
  'What is the tallest building in the world?',
  'How do I train my dog to sit?',
  'How long does it take to learn to play the guitar?',
  'What is a Roth IRA and how much can I contribute?',
  'How do I merge two branches in git?',
  'What temperature should I roast a chicken at?',
  'Who painted the Mona Lisa?',
  'How many calories are in a slice of pizza?',
  'What are the best hiking trails in Yosemite?',
  'How do I convert Celsius to Fahrenheit?',
  'How does a mortgage refinance work?',
  'What is the marathon world record time?',
];

/** Case-folded, whitespace collapsed: the form gold answers and chunk text are compared in. */
export function normaliseForMatch(text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').trim();
}

/** Whether `text` contains one of `golds` (normalised; empty golds never match). */
export function containsAnswer(text: string, golds: readonly string[]): boolean {
  const haystack = normaliseForMatch(text);
  return golds.some((gold) => {
    const needle = normaliseForMatch(gold);
    return needle.length > 0 && haystack.includes(needle);
  });
}

/** A chunk as stored: its text and where it starts in the document's extracted text. */
export interface ChunkSpan {
  text: string;
  charStart: number;
}

/** Whether the citation's quote is exactly the stored chunk's text at the citation's span. */
export function quoteResolves(
  citation: Pick<Citation, 'quote' | 'charStart' | 'charEnd'>,
  chunk: ChunkSpan | undefined,
): boolean {
  if (!chunk) return false;
  const start = citation.charStart - chunk.charStart;
  const end = citation.charEnd - chunk.charStart;
  if (start < 0 || end > chunk.text.length || end < start) return false;
  return chunk.text.slice(start, end) === citation.quote;
}

/** What scoring needs of an answer. */
export type ScoredAnswer = Pick<AnswerResult, 'grounded' | 'citations' | 'sources' | 'flags'>;

/** One question's outcome. */
export interface AnswerObservation {
  queryId: string;
  grounded: boolean;
  weakEvidence: boolean;
  /** Null when the question has no gold answer (off-topic questions). */
  firstCitationHasAnswer: boolean | null;
  firstQuoteHasAnswer: boolean | null;
  anyCitationHasAnswer: boolean | null;
  anySourceHasAnswer: boolean | null;
  /** Best BM25 / cosine among the sources; null when no source has one. */
  bestBm25: number | null;
  bestCosine: number | null;
  sources: number;
  citations: Pick<Citation, 'chunkId' | 'quote' | 'charStart' | 'charEnd'>[];
  ms: number;
}

function best(sources: readonly AnswerSource[], pick: (s: AnswerSource) => number | null): number | null {
  let top: number | null = null;
  for (const source of sources) {
    const value = pick(source);
    if (value !== null && (top === null || value > top)) top = value;
  }
  return top;
}

/** Scores one answer against its gold answers (`null`: an off-topic question, nothing to contain). */
export function observeAnswer(
  queryId: string,
  result: ScoredAnswer,
  golds: readonly string[] | null,
  ms: number,
): AnswerObservation {
  const chunkText = (chunkId: string) => result.sources.find((s) => s.chunkId === chunkId)?.text ?? '';
  const first = result.citations[0];
  const has = (text: string) => (golds ? containsAnswer(text, golds) : null);
  return {
    queryId,
    grounded: result.grounded,
    weakEvidence: result.flags.weakEvidence,
    firstCitationHasAnswer: golds
      ? first !== undefined && containsAnswer(chunkText(first.chunkId), golds)
      : null,
    firstQuoteHasAnswer: golds ? first !== undefined && containsAnswer(first.quote, golds) : null,
    anyCitationHasAnswer: golds ? result.citations.some((c) => has(chunkText(c.chunkId)) === true) : null,
    anySourceHasAnswer: golds ? result.sources.some((s) => has(s.text) === true) : null,
    bestBm25: best(result.sources, (s) => s.scores.lexical),
    bestCosine: best(result.sources, (s) => s.scores.vector),
    sources: result.sources.length,
    citations: result.citations.map((c) => ({
      chunkId: c.chunkId,
      quote: c.quote,
      charStart: c.charStart,
      charEnd: c.charEnd,
    })),
    ms,
  };
}

/** Whether the weak-evidence rule of AnswerService refuses evidence this strong. */
export function wouldRefuse(
  o: Pick<AnswerObservation, 'bestBm25' | 'bestCosine' | 'sources'>,
  thresholds: Thresholds,
): boolean {
  if (o.sources === 0) return true;
  return !(
    (o.bestBm25 ?? -Infinity) >= thresholds.minBm25 || (o.bestCosine ?? -Infinity) >= thresholds.minCosine
  );
}

export interface Thresholds {
  minBm25: number;
  minCosine: number;
}

/** Nearest-rank percentile of unsorted `values` (`p` in (0, 1]); null when empty. */
export function percentileOf(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? null;
}

const round = (n: number | null, digits = 4) =>
  n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits;
const share = (count: number, total: number) => (total === 0 ? null : round(count / total));

export interface Distribution {
  /** Questions with a value (sources scored on that signal). */
  n: number;
  p10: number | null;
  p50: number | null;
  p90: number | null;
}

function distribution(values: readonly (number | null)[]): Distribution {
  const present = values.filter((v): v is number => v !== null);
  return {
    n: present.length,
    p10: round(percentileOf(present, 0.1), 3),
    p50: round(percentileOf(present, 0.5), 3),
    p90: round(percentileOf(present, 0.9), 3),
  };
}

/** Candidate BM25 thresholds of the sweep (the cosine threshold is held at the configured one). */
export const BM25_SWEEP: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20];
/** Candidate cosine thresholds of the sweep (the BM25 threshold is held at the configured one). */
export const COSINE_SWEEP: readonly number[] = [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8];

export interface AnswerEvalRun {
  /** The dataset's questions that have gold answers. */
  onTopic: AnswerObservation[];
  offTopic: AnswerObservation[];
  /** Stored chunks of every cited chunk id (absent: not found). */
  chunks: ReadonlyMap<string, ChunkSpan>;
}

export interface AnswerEvalSummary {
  questions: number;
  answered: number | null;
  weakEvidence: number | null;
  firstCitationHasAnswer: number | null;
  /** Among the answered questions only. */
  firstCitationHasAnswerWhenAnswered: number | null;
  firstQuoteHasAnswer: number | null;
  anyCitationHasAnswer: number | null;
  /** Retrieval ceiling: some source chunk contains a gold answer. */
  anySourceHasAnswer: number | null;
  citations: {
    total: number;
    resolved: number;
    citationsResolve: number | null;
    /** The first few that did not resolve (chunk id and span), for diagnosis. */
    unresolved: { chunkId: string; charStart: number; charEnd: number }[];
  };
  latencyMs: { p50: number | null; p95: number | null };
  offTopic: {
    questions: number;
    /** Not grounded: the no-answer reply (weak evidence, or nothing quotable). */
    refused: number | null;
    weakEvidence: number | null;
  };
  thresholds: {
    configured: Thresholds & { onTopicRefused: number | null; offTopicRefused: number | null };
    bm25: { onTopic: Distribution; offTopic: Distribution };
    cosine: { onTopic: Distribution; offTopic: Distribution };
    /** Share refused at each candidate BM25 threshold (cosine held at the configured one). */
    bm25Sweep: { minBm25: number; onTopicRefused: number | null; offTopicRefused: number | null }[];
    /** Share refused at each candidate cosine threshold (only with vector scores). */
    cosineSweep: { minCosine: number; onTopicRefused: number | null; offTopicRefused: number | null }[];
    /** Both thresholds together (only with vector scores): the rule refuses below both. */
    grid: {
      minBm25: number;
      minCosine: number;
      onTopicRefused: number | null;
      offTopicRefused: number | null;
    }[];
  };
}

const count = <T>(items: readonly T[], test: (item: T) => boolean) => items.filter(test).length;

/** The report of a run: rates over the dataset's questions, the citation check and the threshold trade-off. */
export function summariseAnswerEval(run: AnswerEvalRun, thresholds: Thresholds): AnswerEvalSummary {
  const { onTopic, offTopic } = run;
  const n = onTopic.length;
  const answered = onTopic.filter((o) => o.grounded);
  const all = [...onTopic, ...offTopic];
  const citations = all.flatMap((o) => o.citations);
  const unresolved = citations.filter((c) => !quoteResolves(c, run.chunks.get(c.chunkId)));
  const refusedShare = (items: readonly AnswerObservation[], t: Thresholds) =>
    share(
      count(items, (o) => wouldRefuse(o, t)),
      items.length,
    );
  const hasCosine = all.some((o) => o.bestCosine !== null);
  const times = onTopic.map((o) => o.ms);
  return {
    questions: n,
    answered: share(answered.length, n),
    weakEvidence: share(
      count(onTopic, (o) => o.weakEvidence),
      n,
    ),
    firstCitationHasAnswer: share(
      count(onTopic, (o) => o.firstCitationHasAnswer === true),
      n,
    ),
    firstCitationHasAnswerWhenAnswered: share(
      count(answered, (o) => o.firstCitationHasAnswer === true),
      answered.length,
    ),
    firstQuoteHasAnswer: share(
      count(onTopic, (o) => o.firstQuoteHasAnswer === true),
      n,
    ),
    anyCitationHasAnswer: share(
      count(onTopic, (o) => o.anyCitationHasAnswer === true),
      n,
    ),
    anySourceHasAnswer: share(
      count(onTopic, (o) => o.anySourceHasAnswer === true),
      n,
    ),
    citations: {
      total: citations.length,
      resolved: citations.length - unresolved.length,
      citationsResolve: share(citations.length - unresolved.length, citations.length),
      unresolved: unresolved
        .slice(0, 10)
        .map((c) => ({ chunkId: c.chunkId, charStart: c.charStart, charEnd: c.charEnd })),
    },
    latencyMs: { p50: round(percentileOf(times, 0.5), 1), p95: round(percentileOf(times, 0.95), 1) },
    offTopic: {
      questions: offTopic.length,
      refused: share(
        count(offTopic, (o) => !o.grounded),
        offTopic.length,
      ),
      weakEvidence: share(
        count(offTopic, (o) => o.weakEvidence),
        offTopic.length,
      ),
    },
    thresholds: {
      configured: {
        ...thresholds,
        onTopicRefused: refusedShare(onTopic, thresholds),
        offTopicRefused: refusedShare(offTopic, thresholds),
      },
      bm25: {
        onTopic: distribution(onTopic.map((o) => o.bestBm25)),
        offTopic: distribution(offTopic.map((o) => o.bestBm25)),
      },
      cosine: {
        onTopic: distribution(onTopic.map((o) => o.bestCosine)),
        offTopic: distribution(offTopic.map((o) => o.bestCosine)),
      },
      bm25Sweep: BM25_SWEEP.map((minBm25) => {
        const t = { ...thresholds, minBm25 };
        return {
          minBm25,
          onTopicRefused: refusedShare(onTopic, t),
          offTopicRefused: refusedShare(offTopic, t),
        };
      }),
      cosineSweep: hasCosine
        ? COSINE_SWEEP.map((minCosine) => {
            const t = { ...thresholds, minCosine };
            return {
              minCosine,
              onTopicRefused: refusedShare(onTopic, t),
              offTopicRefused: refusedShare(offTopic, t),
            };
          })
        : [],
      grid: hasCosine
        ? BM25_SWEEP.flatMap((minBm25) =>
            COSINE_SWEEP.map((minCosine) => ({
              minBm25,
              minCosine,
              onTopicRefused: refusedShare(onTopic, { minBm25, minCosine }),
              offTopicRefused: refusedShare(offTopic, { minBm25, minCosine }),
            })),
          )
        : [],
    },
  };
}

export interface EvalQuestion {
  queryId: string;
  question: string;
  /** Gold answer texts; null for an off-topic question. */
  golds: readonly string[] | null;
}

export interface RunAnswerEvalDeps {
  answer: (question: string) => Promise<ScoredAnswer & { conversationId?: string }>;
  chunks: (chunkIds: readonly string[]) => Promise<Map<string, ChunkSpan>>;
  signal?: AbortSignal | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * Asks every question one after the other (latency per answer, not under load), then reads the cited
 * chunks back. The first question is asked once untimed first (warm-up). Returns the run and the ids of
 * the conversations the answers created.
 */
export async function runAnswerEval(
  deps: RunAnswerEvalDeps,
  onTopic: readonly EvalQuestion[],
  offTopic: readonly EvalQuestion[],
): Promise<{ run: AnswerEvalRun; conversationIds: string[] }> {
  const conversationIds: string[] = [];
  const ask = async (q: EvalQuestion) => {
    const started = performance.now();
    const result = await deps.answer(q.question);
    const ms = performance.now() - started;
    if (result.conversationId) conversationIds.push(result.conversationId);
    return observeAnswer(q.queryId, result, q.golds, ms);
  };
  const total = onTopic.length + offTopic.length;
  const warmUp = onTopic[0] ?? offTopic[0];
  if (warmUp) {
    const result = await deps.answer(warmUp.question);
    if (result.conversationId) conversationIds.push(result.conversationId);
  }
  const observed: { onTopic: AnswerObservation[]; offTopic: AnswerObservation[] } = {
    onTopic: [],
    offTopic: [],
  };
  let done = 0;
  for (const [list, into] of [
    [onTopic, observed.onTopic],
    [offTopic, observed.offTopic],
  ] as const) {
    for (const q of list) {
      if (deps.signal?.aborted) break;
      into.push(await ask(q));
      deps.onProgress?.(++done, total);
    }
  }
  const ids = [
    ...new Set([...observed.onTopic, ...observed.offTopic].flatMap((o) => o.citations.map((c) => c.chunkId))),
  ];
  return { run: { ...observed, chunks: await deps.chunks(ids) }, conversationIds };
}

/** The stored text and start offset of `chunkIds` (tenant-scoped). */
export async function loadChunkSpans(
  db: Db,
  workspaceId: string,
  chunkIds: readonly string[],
): Promise<Map<string, ChunkSpan>> {
  const spans = new Map<string, ChunkSpan>();
  if (chunkIds.length === 0) return spans;
  await withTenant(db, workspaceId, async (trx) => {
    for (let i = 0; i < chunkIds.length; i += 500) {
      const rows = await trx
        .selectFrom('chunks')
        .select(['id', 'text', 'char_start'])
        .where('workspace_id', '=', workspaceId)
        .where('id', 'in', chunkIds.slice(i, i + 500))
        .execute();
      for (const row of rows) spans.set(row.id, { text: row.text, charStart: row.char_start });
    }
  });
  return spans;
}

/**
 * Removes what the eval's answers left behind: their conversations, messages and review-queue items
 * (an eval's refusals are not for reviewers). Usage rows stay (they are the accounting record).
 */
export async function removeEvalConversations(
  db: Db,
  workspaceId: string,
  conversationIds: readonly string[],
): Promise<void> {
  if (conversationIds.length === 0) return;
  await withTenant(db, workspaceId, async (trx) => {
    for (let i = 0; i < conversationIds.length; i += 500) {
      const ids = conversationIds.slice(i, i + 500);
      const messages = trx
        .selectFrom('messages')
        .select('id')
        .where('workspace_id', '=', workspaceId)
        .where('conversation_id', 'in', ids);
      await trx
        .deleteFrom('review_items')
        .where('workspace_id', '=', workspaceId)
        .where('message_id', 'in', messages)
        .execute();
      await trx
        .deleteFrom('messages')
        .where('workspace_id', '=', workspaceId)
        .where('conversation_id', 'in', ids)
        .execute();
      await trx
        .deleteFrom('conversations')
        .where('workspace_id', '=', workspaceId)
        .where('id', 'in', ids)
        .execute();
    }
  });
}
