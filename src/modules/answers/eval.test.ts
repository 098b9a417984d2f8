import { describe, expect, it } from 'vitest';
import type { AnswerSource, Citation } from './grounding.js';
import {
  type AnswerObservation,
  BM25_SWEEP,
  COSINE_SWEEP,
  containsAnswer,
  normaliseForMatch,
  observeAnswer,
  OFF_TOPIC_QUESTIONS,
  percentileOf,
  quoteResolves,
  runAnswerEval,
  type ScoredAnswer,
  summariseAnswerEval,
  wouldRefuse,
} from './eval.js';

const DOC = 'Intro line. The incubation period is 5 days on average. Masks help.';

function source(n: number, chunkId: string, text: string, lexical: number | null, vector: number | null) {
  return {
    n,
    chunkId,
    documentId: 'doc',
    collectionId: 'col',
    documentTitle: 'Doc',
    externalId: null,
    text,
    headingPath: [],
    page: null,
    charStart: 0,
    charEnd: text.length,
    score: 1,
    scores: { lexical, vector },
    flagged: false,
  } satisfies AnswerSource;
}

function citation(n: number, chunkId: string, quote: string, charStart: number): Citation {
  return {
    n,
    chunkId,
    documentId: 'doc',
    collectionId: 'col',
    documentTitle: 'Doc',
    page: null,
    quote,
    charStart,
    charEnd: charStart + quote.length,
  };
}

function answer(partial: Partial<ScoredAnswer>): ScoredAnswer {
  return {
    grounded: true,
    citations: [],
    sources: [],
    flags: {
      weakEvidence: false,
      uncitedClaims: [],
      invalidCitations: 0,
      injection: { dropped: 0, marked: 0 },
      priceUnknown: false,
    },
    ...partial,
  };
}

function obs(partial: Partial<AnswerObservation>): AnswerObservation {
  return {
    queryId: 'q',
    grounded: true,
    weakEvidence: false,
    firstCitationHasAnswer: null,
    firstQuoteHasAnswer: null,
    anyCitationHasAnswer: null,
    anySourceHasAnswer: null,
    bestBm25: null,
    bestCosine: null,
    sources: 1,
    citations: [],
    ms: 1,
    ...partial,
  };
}

describe('containsAnswer', () => {
  it('compares case-folded text with whitespace collapsed', () => {
    expect(normaliseForMatch('  The  Incubation\n\tPeriod ')).toBe('the incubation period');
    expect(containsAnswer(DOC, ['INCUBATION   period is\n5 days'])).toBe(true);
    expect(containsAnswer(DOC, ['7 days', 'masks help'])).toBe(true);
    expect(containsAnswer(DOC, ['7 days'])).toBe(false);
    expect(containsAnswer(DOC, ['  '])).toBe(false);
    expect(containsAnswer(DOC, [])).toBe(false);
  });
});

describe('quoteResolves', () => {
  const chunk = { text: DOC.slice(12), charStart: 12 };
  it('re-reads the quote from the stored chunk at the citation span (document offsets)', () => {
    const quote = 'The incubation period is 5 days on average.';
    expect(quoteResolves(citation(1, 'c', quote, DOC.indexOf(quote)), chunk)).toBe(true);
  });
  it('fails on a shifted span, a span outside the chunk, or a missing chunk', () => {
    const quote = 'The incubation period is 5 days on average.';
    expect(quoteResolves(citation(1, 'c', quote, DOC.indexOf(quote) + 1), chunk)).toBe(false);
    expect(quoteResolves(citation(1, 'c', 'Intro line.', 0), chunk)).toBe(false);
    expect(quoteResolves(citation(1, 'c', quote, DOC.indexOf(quote)), undefined)).toBe(false);
  });
});

describe('observeAnswer', () => {
  const golds = ['5 days on average'];
  const chunkA = source(1, 'a', 'Masks help. Nothing on timing here.', 6.5, null);
  const chunkB = source(2, 'b', DOC, 3.2, 0.61);

  it('checks the first citation’s whole chunk, its quote, and every citation', () => {
    const result = answer({
      sources: [chunkA, chunkB],
      citations: [citation(2, 'b', 'Intro line.', 0), citation(1, 'a', 'Masks help.', 0)],
    });
    const o = observeAnswer('q1', result, golds, 12);
    expect(o).toMatchObject({
      queryId: 'q1',
      grounded: true,
      firstCitationHasAnswer: true,
      firstQuoteHasAnswer: false,
      anyCitationHasAnswer: true,
      anySourceHasAnswer: true,
      bestBm25: 6.5,
      bestCosine: 0.61,
      sources: 2,
      ms: 12,
    });
    expect(o.citations).toHaveLength(2);
  });

  it('counts an answer found only in a later citation or an uncited source', () => {
    const later = observeAnswer(
      'q',
      answer({
        sources: [chunkA, chunkB],
        citations: [citation(1, 'a', 'Masks help.', 0), citation(2, 'b', DOC, 0)],
      }),
      golds,
      1,
    );
    expect(later).toMatchObject({ firstCitationHasAnswer: false, anyCitationHasAnswer: true });
    const refused = observeAnswer('q', answer({ grounded: false, sources: [chunkA, chunkB] }), golds, 1);
    expect(refused).toMatchObject({
      firstCitationHasAnswer: false,
      firstQuoteHasAnswer: false,
      anyCitationHasAnswer: false,
      anySourceHasAnswer: true,
    });
  });

  it('leaves the containment checks null without gold answers, and best scores null without sources', () => {
    const o = observeAnswer('off', answer({ grounded: false }), null, 1);
    expect(o).toMatchObject({
      firstCitationHasAnswer: null,
      anySourceHasAnswer: null,
      bestBm25: null,
      bestCosine: null,
      sources: 0,
    });
  });
});

describe('wouldRefuse', () => {
  const t = { minBm25: 4, minCosine: 0.5 };
  it('refuses unless BM25 or cosine reaches its threshold, and always without sources', () => {
    expect(wouldRefuse({ bestBm25: 4, bestCosine: null, sources: 1 }, t)).toBe(false);
    expect(wouldRefuse({ bestBm25: 3.9, bestCosine: 0.5, sources: 1 }, t)).toBe(false);
    expect(wouldRefuse({ bestBm25: 3.9, bestCosine: 0.49, sources: 1 }, t)).toBe(true);
    expect(wouldRefuse({ bestBm25: null, bestCosine: null, sources: 1 }, t)).toBe(true);
    expect(wouldRefuse({ bestBm25: 99, bestCosine: 1, sources: 0 }, t)).toBe(true);
  });
});

describe('percentileOf', () => {
  it('takes the nearest rank of unsorted values', () => {
    expect(percentileOf([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 0.5)).toBe(5);
    expect(percentileOf([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 0.1)).toBe(1);
    expect(percentileOf([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 0.9)).toBe(9);
    expect(percentileOf([], 0.5)).toBeNull();
  });
});

describe('summariseAnswerEval', () => {
  it('reports the rates, the citation check and the threshold trade-off', () => {
    const good = { chunkId: 'a', quote: 'bc', charStart: 11, charEnd: 13 };
    const bad = { chunkId: 'a', quote: 'xx', charStart: 11, charEnd: 13 };
    const missing = { chunkId: 'gone', quote: 'bc', charStart: 11, charEnd: 13 };
    const onTopic = [
      obs({
        firstCitationHasAnswer: true,
        firstQuoteHasAnswer: true,
        anyCitationHasAnswer: true,
        anySourceHasAnswer: true,
        bestBm25: 10,
        citations: [good],
        ms: 10,
      }),
      obs({
        firstCitationHasAnswer: false,
        firstQuoteHasAnswer: false,
        anyCitationHasAnswer: true,
        anySourceHasAnswer: true,
        bestBm25: 5,
        citations: [good, bad],
        ms: 20,
      }),
      obs({
        firstCitationHasAnswer: true,
        firstQuoteHasAnswer: false,
        anyCitationHasAnswer: true,
        anySourceHasAnswer: true,
        bestBm25: 8,
        citations: [good],
        ms: 30,
      }),
      obs({
        grounded: false,
        weakEvidence: true,
        firstCitationHasAnswer: false,
        firstQuoteHasAnswer: false,
        anyCitationHasAnswer: false,
        anySourceHasAnswer: false,
        bestBm25: 2,
        ms: 40,
      }),
    ];
    const offTopic = [
      obs({ grounded: false, weakEvidence: true, bestBm25: 1, ms: 5 }),
      obs({ grounded: false, weakEvidence: true, bestBm25: null, sources: 0, ms: 5 }),
      obs({ grounded: true, bestBm25: 4.5, citations: [missing], ms: 5 }),
    ];
    const chunks = new Map([['a', { text: 'abc', charStart: 10 }]]);
    const s = summariseAnswerEval({ onTopic, offTopic, chunks }, { minBm25: 4, minCosine: 0.5 });
    expect(s).toMatchObject({
      questions: 4,
      answered: 0.75,
      weakEvidence: 0.25,
      firstCitationHasAnswer: 0.5,
      firstCitationHasAnswerWhenAnswered: 0.6667,
      firstQuoteHasAnswer: 0.25,
      anyCitationHasAnswer: 0.75,
      anySourceHasAnswer: 0.75,
      latencyMs: { p50: 20, p95: 40 },
      offTopic: { questions: 3, refused: 0.6667, weakEvidence: 0.6667 },
    });
    expect(s.citations).toEqual({
      total: 5,
      resolved: 3,
      citationsResolve: 0.6,
      unresolved: [
        { chunkId: 'a', charStart: 11, charEnd: 13 },
        { chunkId: 'gone', charStart: 11, charEnd: 13 },
      ],
    });
    expect(s.thresholds.configured).toEqual({
      minBm25: 4,
      minCosine: 0.5,
      onTopicRefused: 0.25,
      offTopicRefused: 0.6667,
    });
    expect(s.thresholds.bm25.onTopic).toEqual({ n: 4, p10: 2, p50: 5, p90: 10 });
    expect(s.thresholds.bm25.offTopic).toEqual({ n: 2, p10: 1, p50: 1, p90: 4.5 });
    expect(s.thresholds.cosine.onTopic.n).toBe(0);
    expect(s.thresholds.bm25Sweep.find((r) => r.minBm25 === 6)).toEqual({
      minBm25: 6,
      onTopicRefused: 0.5,
      offTopicRefused: 1,
    });
    expect(s.thresholds.bm25Sweep.find((r) => r.minBm25 === 0)).toMatchObject({
      onTopicRefused: 0,
      offTopicRefused: 0.3333,
    });
    expect(s.thresholds.cosineSweep).toEqual([]);
    expect(s.thresholds.grid).toEqual([]);
  });

  it('sweeps the cosine threshold and both together when the sources have vector scores', () => {
    const onTopic = [obs({ bestBm25: 2, bestCosine: 0.7 }), obs({ bestBm25: 9, bestCosine: 0.35 })];
    const offTopic = [obs({ bestBm25: 5, bestCosine: 0.42 }), obs({ bestBm25: 1, bestCosine: 0.2 })];
    const s = summariseAnswerEval({ onTopic, offTopic, chunks: new Map() }, { minBm25: 4, minCosine: 0.5 });
    expect(s.thresholds.cosine.onTopic).toEqual({ n: 2, p10: 0.35, p50: 0.35, p90: 0.7 });
    // BM25 held at 4: the second on-topic and the first off-topic question pass on BM25 alone.
    expect(s.thresholds.cosineSweep.find((r) => r.minCosine === 0.4)).toEqual({
      minCosine: 0.4,
      onTopicRefused: 0,
      offTopicRefused: 0.5,
    });
    expect(s.thresholds.grid).toHaveLength(BM25_SWEEP.length * COSINE_SWEEP.length);
    expect(s.thresholds.grid.find((r) => r.minBm25 === 10 && r.minCosine === 0.45)).toEqual({
      minBm25: 10,
      minCosine: 0.45,
      onTopicRefused: 0.5,
      offTopicRefused: 1,
    });
  });

  it('reports null rates when there is nothing to rate', () => {
    const s = summariseAnswerEval(
      { onTopic: [], offTopic: [], chunks: new Map() },
      { minBm25: 4, minCosine: 0.5 },
    );
    expect(s).toMatchObject({
      questions: 0,
      answered: null,
      citations: { total: 0, citationsResolve: null },
    });
    expect(s.latencyMs).toEqual({ p50: null, p95: null });
  });
});

describe('runAnswerEval', () => {
  it('asks every question in order after a warm-up, then reads the cited chunks once', async () => {
    const asked: string[] = [];
    const requested: string[][] = [];
    const { run, conversationIds } = await runAnswerEval(
      {
        answer: (question) => {
          asked.push(question);
          const hit = question.startsWith('incubation');
          return Promise.resolve({
            ...answer({
              grounded: hit,
              sources: [source(1, 'b', DOC, hit ? 9 : 1, null)],
              citations: hit ? [citation(1, 'b', 'Masks help.', DOC.indexOf('Masks'))] : [],
            }),
            conversationId: `conv-${asked.length}`,
          });
        },
        chunks: (ids) => {
          requested.push([...ids]);
          return Promise.resolve(new Map([['b', { text: DOC, charStart: 0 }]]));
        },
      },
      [{ queryId: 'q1', question: 'incubation period?', golds: ['5 days'] }],
      [{ queryId: 'off-1', question: OFF_TOPIC_QUESTIONS[0]!, golds: null }],
    );
    expect(asked).toEqual(['incubation period?', 'incubation period?', OFF_TOPIC_QUESTIONS[0]]);
    expect(conversationIds).toEqual(['conv-1', 'conv-2', 'conv-3']);
    expect(requested).toEqual([['b']]);
    expect(run.onTopic[0]).toMatchObject({
      queryId: 'q1',
      firstCitationHasAnswer: true,
      firstQuoteHasAnswer: false,
    });
    expect(run.offTopic[0]).toMatchObject({
      queryId: 'off-1',
      grounded: false,
      firstCitationHasAnswer: null,
    });
    const s = summariseAnswerEval(run, { minBm25: 4, minCosine: 0.5 });
    expect(s.citations.citationsResolve).toBe(1);
  });

  it('has about forty distinct off-topic questions', () => {
    expect(OFF_TOPIC_QUESTIONS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(OFF_TOPIC_QUESTIONS).size).toBe(OFF_TOPIC_QUESTIONS.length);
  });
});
