import { describe, expect, it } from 'vitest';
import { answerInChunks, meanOf, mrrAtK, ndcgAtK, rankByScore, recallAtK } from './metrics.js';

const LOG2_3 = Math.log2(3);

describe('ndcgAtK (linear gain, rel / log2(i + 1) with 1-based i)', () => {
  const graded = new Map([
    ['d1', 2],
    ['d3', 1],
  ]);

  it('uses the grade as the gain', () => {
    // DCG = 1/log2(2) + 0/log2(3) + 2/log2(4) = 2;  IDCG = 2/log2(2) + 1/log2(3)
    expect(ndcgAtK(['d3', 'd2', 'd1'], graded, 10)).toBeCloseTo(2 / (2 + 1 / LOG2_3), 12);
    expect(ndcgAtK(['d3', 'd2', 'd1'], graded, 10)).toBeCloseTo(0.7601875334, 9);
  });

  it('cuts both the ranking and the ideal ranking at k', () => {
    // DCG@1 = 1 (d3); IDCG@1 = 2 (d1)
    expect(ndcgAtK(['d3', 'd2', 'd1'], graded, 1)).toBe(0.5);
    // DCG@2 = 1; IDCG@2 = 2 + 1/log2(3)
    expect(ndcgAtK(['d3', 'd2', 'd1'], graded, 2)).toBeCloseTo(1 / (2 + 1 / LOG2_3), 12);
  });

  it('is 1 for the ideal order and handles k larger than the list', () => {
    expect(ndcgAtK(['d1', 'd3'], graded, 10)).toBe(1);
    // only d1 retrieved: DCG = 2, IDCG@10 still counts d3
    expect(ndcgAtK(['d1'], graded, 10)).toBeCloseTo(2 / (2 + 1 / LOG2_3), 12);
    expect(ndcgAtK([], graded, 10)).toBe(0);
  });

  it('keeps grade-0 and negative judgements out of the ideal DCG', () => {
    const grades = new Map([
      ['a', 1],
      ['b', 0],
      ['c', -1],
    ]);
    // DCG = 0 + 1/log2(3); IDCG = 1 (only a is relevant)
    expect(ndcgAtK(['b', 'a', 'c'], grades, 10)).toBeCloseTo(1 / LOG2_3, 12);
  });

  it('is undefined when no document is relevant', () => {
    expect(ndcgAtK(['a'], new Map(), 10)).toBeUndefined();
    expect(ndcgAtK(['a'], new Map([['a', 0]]), 10)).toBeUndefined();
  });

  it('handles tied grades in the ideal ranking', () => {
    const grades = new Map([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    // DCG = 1/log2(3) + 1/log2(4) = 1/log2(3) + 0.5; IDCG@3 = 1 + 1/log2(3) + 0.5
    expect(ndcgAtK(['x', 'b', 'c'], grades, 3)).toBeCloseTo((1 / LOG2_3 + 0.5) / (1.5 + 1 / LOG2_3), 12);
  });

  it('credits a repeated document only once, at its first rank', () => {
    const grades = new Map([
      ['a', 1],
      ['b', 1],
    ]);
    // ranks: a (1), a again (earns 0), b (1/log2(4)) → DCG 1.5; IDCG 1 + 1/log2(3)
    expect(ndcgAtK(['a', 'a', 'b'], grades, 3)).toBeCloseTo(1.5 / (1 + 1 / LOG2_3), 12);
    expect(ndcgAtK(['a', 'a', 'b'], grades, 3)).toBeCloseTo(0.9197207891, 9);
  });

  it('rejects a k that is not a positive integer', () => {
    expect(() => ndcgAtK([], graded, 0)).toThrow(RangeError);
    expect(() => recallAtK([], graded, 1.5)).toThrow(RangeError);
  });
});

describe('recallAtK', () => {
  const grades = new Map([
    ['a', 1],
    ['b', 2],
    ['c', 1],
    ['z', 0],
  ]);

  it('divides the relevant documents found in the top k by all relevant documents', () => {
    expect(recallAtK(['x', 'a', 'y', 'b'], grades, 2)).toBeCloseTo(1 / 3, 12);
    expect(recallAtK(['x', 'a', 'y', 'b'], grades, 4)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(['x', 'a', 'y', 'b'], grades, 100)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(['c', 'b', 'a'], grades, 3)).toBe(1);
  });

  it('ignores grade-0 judgements and duplicates', () => {
    expect(recallAtK(['z', 'a', 'a'], grades, 3)).toBeCloseTo(1 / 3, 12);
  });

  it('is undefined when nothing is relevant', () => {
    expect(recallAtK(['a'], new Map([['a', 0]]), 10)).toBeUndefined();
  });
});

describe('mrrAtK', () => {
  const grades = new Map([
    ['a', 1],
    ['b', 3],
  ]);

  it('is the reciprocal rank of the first relevant document within k', () => {
    expect(mrrAtK(['x', 'y', 'b', 'a'], grades, 10)).toBeCloseTo(1 / 3, 12);
    expect(mrrAtK(['a'], grades, 10)).toBe(1);
    expect(mrrAtK(['x', 'y', 'b'], grades, 2)).toBe(0);
    expect(mrrAtK([], grades, 10)).toBe(0);
  });

  it('is undefined when nothing is relevant', () => {
    expect(mrrAtK(['a'], new Map(), 10)).toBeUndefined();
  });
});

describe('rankByScore', () => {
  it('orders by score descending, ties by id ascending', () => {
    const ranked = rankByScore([
      { id: 'b', score: 1 },
      { id: 'c', score: 2 },
      { id: 'a', score: 1 },
      { id: 'B', score: 1 },
    ]);
    expect(ranked).toEqual(['c', 'B', 'a', 'b']);
    // the tie-break decides the metric: relevant b lands at rank 4
    expect(mrrAtK(ranked, new Map([['b', 1]]), 10)).toBe(0.25);
  });
});

describe('meanOf', () => {
  it('averages defined values and skips undefined ones', () => {
    expect(meanOf([1, undefined, 0.5])).toBe(0.75);
    expect(meanOf([0, 0])).toBe(0);
  });

  it('is undefined when there is nothing to average', () => {
    expect(meanOf([])).toBeUndefined();
    expect(meanOf([undefined])).toBeUndefined();
  });
});

describe('answerInChunks', () => {
  const answer = [{ docId: 'd1', start: 100, end: 150 }];

  it('finds the first chunk that contains the whole answer in the same document', () => {
    const chunks = [
      { documentId: 'd2', charStart: 0, charEnd: 1000 }, // other document
      { documentId: 'd1', charStart: 0, charEnd: 120 }, // 20 of 50 characters: 40 %
      { documentId: 'd1', charStart: 90, charEnd: 160 }, // contains it
    ];
    const result = answerInChunks(chunks, answer, 10);
    expect(result.contained).toEqual({ hit: true, rank: 3, reciprocalRank: 1 / 3 });
    expect(result.overlapping).toEqual({ hit: true, rank: 3, reciprocalRank: 1 / 3 });
  });

  it('treats chunk boundaries as half-open', () => {
    expect(
      answerInChunks([{ documentId: 'd1', charStart: 100, charEnd: 150 }], answer, 1).contained.hit,
    ).toBe(true);
    const short = answerInChunks([{ documentId: 'd1', charStart: 100, charEnd: 149 }], answer, 1);
    expect(short.contained.hit).toBe(false);
    expect(short.overlapping.rank).toBe(1); // 49 of 50
  });

  it('counts overlap from 50 % of the answer', () => {
    const half = answerInChunks(
      [
        { documentId: 'd1', charStart: 126, charEnd: 400 }, // 24 of 50
        { documentId: 'd1', charStart: 0, charEnd: 125 }, // 25 of 50: exactly half
      ],
      answer,
      10,
    );
    expect(half.contained).toEqual({ hit: false, rank: undefined, reciprocalRank: 0 });
    expect(half.overlapping).toEqual({ hit: true, rank: 2, reciprocalRank: 0.5 });
  });

  it('only looks at the top k', () => {
    const chunks = [
      { documentId: 'd1', charStart: 500, charEnd: 900 },
      { documentId: 'd1', charStart: 0, charEnd: 900 },
    ];
    expect(answerInChunks(chunks, answer, 1).contained.hit).toBe(false);
    expect(answerInChunks(chunks, answer, 2).contained.rank).toBe(2);
    expect(answerInChunks(chunks, answer, 50).contained.rank).toBe(2);
  });

  it('accepts any of several answers and ignores empty spans', () => {
    const spans = [
      { docId: 'd1', start: 10, end: 10 }, // empty: ignored
      { docId: 'd1', start: 100, end: 150 },
      { docId: 'd2', start: 0, end: 5 },
    ];
    expect(answerInChunks([{ documentId: 'd1', charStart: 0, charEnd: 50 }], spans, 5).contained.hit).toBe(
      false,
    );
    expect(answerInChunks([{ documentId: 'd2', charStart: 0, charEnd: 50 }], spans, 5).contained.rank).toBe(
      1,
    );
    expect(answerInChunks([{ documentId: 'd1', charStart: 0, charEnd: 50 }], [], 5).overlapping.hit).toBe(
      false,
    );
  });

  it('reports a contained hit no later than the first overlapping one', () => {
    const chunks = [
      { documentId: 'd1', charStart: 0, charEnd: 130 }, // 30 of 50: overlaps only
      { documentId: 'd1', charStart: 0, charEnd: 200 }, // contains
    ];
    const result = answerInChunks(chunks, answer, 10);
    expect(result.overlapping.rank).toBe(1);
    expect(result.contained.rank).toBe(2);
  });
});
