import { describe, expect, it } from 'vitest';
import { parseTsvector, ReferenceBm25, TsvectorFormatError, type Bm25Document } from './reference-bm25.js';

// N = 4, lengths 3 + 2 + 6 + 1 → avgdl = 3.
// df: cat 2, dog 2, sat 2 → idf = ln(1 + 2.5/2.5) = ln 2;  mat, on, bird 1 → idf = ln(1 + 3.5/1.5) = ln(10/3).
const docs: Bm25Document[] = [
  {
    id: 'd1',
    tf: new Map([
      ['cat', 2],
      ['sat', 1],
    ]),
    length: 3,
  },
  {
    id: 'd2',
    tf: new Map([
      ['dog', 1],
      ['sat', 1],
    ]),
    length: 2,
  },
  {
    id: 'd3',
    tf: new Map([
      ['cat', 1],
      ['dog', 2],
      ['mat', 1],
      ['on', 2],
    ]),
    length: 6,
  },
  { id: 'd4', tf: new Map([['bird', 1]]), length: 1 },
];
const LN2 = Math.LN2;
const LN10_3 = Math.log(10 / 3);

describe('ReferenceBm25', () => {
  it('computes corpus statistics and the Lucene idf', () => {
    const bm25 = new ReferenceBm25(docs, { k1: 1.2, b: 0.75 });
    expect(bm25.documentCount).toBe(4);
    expect(bm25.averageLength).toBe(3);
    expect(bm25.df('cat')).toBe(2);
    expect(bm25.idf('cat')).toBeCloseTo(LN2, 12);
    expect(bm25.idf('mat')).toBeCloseTo(LN10_3, 12);
  });

  it('scores with k1 = 1.2, b = 0.75 (hand-computed)', () => {
    // norm(D) = 1.2 · (0.25 + 0.75 · |D|/3): d1 1.2, d2 0.9, d3 2.1, d4 0.6
    // d1: cat tf 2 → ln2 · 2·2.2/(2 + 1.2) = ln2 · 1.375
    // d2: dog tf 1 → ln2 · 2.2/(1 + 0.9)
    // d3: cat tf 1 → ln2 · 2.2/(1 + 2.1); dog tf 2 → ln2 · 4.4/(2 + 2.1)
    const scores = new ReferenceBm25(docs, { k1: 1.2, b: 0.75 }).score(['cat', 'dog']);
    expect(scores.map((s) => s.id)).toEqual(['d3', 'd1', 'd2']);
    expect(scores[0]!.score).toBeCloseTo(LN2 * (2.2 / 3.1 + 4.4 / 4.1), 12);
    expect(scores[0]!.score).toBeCloseTo(1.2357761693, 9);
    expect(scores[1]!.score).toBeCloseTo(LN2 * 1.375, 12);
    expect(scores[2]!.score).toBeCloseTo(LN2 * (2.2 / 1.9), 12);
  });

  it('ignores document length with b = 0', () => {
    // norm = k1 = 1.2 for every document
    const scores = new ReferenceBm25(docs, { k1: 1.2, b: 0 }).score(['cat', 'dog']);
    expect(scores).toEqual([
      { id: 'd3', score: expect.closeTo(LN2 * (2.2 / 2.2 + 4.4 / 3.2), 12) as number },
      { id: 'd1', score: expect.closeTo(LN2 * (4.4 / 3.2), 12) as number },
      { id: 'd2', score: expect.closeTo(LN2, 12) as number },
    ]);
  });

  it('is binary with k1 = 0 and breaks ties by id', () => {
    // each present term contributes exactly its idf: d1 = d2 = ln2, d3 = 2·ln2
    const scores = new ReferenceBm25(docs, { k1: 0, b: 0.75 }).score(['cat', 'dog']);
    expect(scores.map((s) => s.id)).toEqual(['d3', 'd1', 'd2']);
    expect(scores[0]!.score).toBeCloseTo(2 * LN2, 12);
    expect(scores[1]!.score).toBe(scores[2]!.score);
  });

  it('counts a repeated query term once', () => {
    const bm25 = new ReferenceBm25(docs, { k1: 1.2, b: 0.75 });
    expect(bm25.score(['cat', 'cat', 'cat'])).toEqual(bm25.score(['cat']));
  });

  it('ignores terms absent from the corpus and returns only matching documents', () => {
    const bm25 = new ReferenceBm25(docs, { k1: 1.2, b: 0.75 });
    expect(bm25.score(['unicorn'])).toEqual([]);
    // d4: norm = 1.2 · (0.25 + 0.75/3) = 0.6 → ln(10/3) · 2.2/1.6
    expect(bm25.score(['unicorn', 'bird'])).toEqual([
      { id: 'd4', score: expect.closeTo(LN10_3 * 1.375, 12) as number },
    ]);
  });

  it('returns nothing for an empty query or an empty corpus', () => {
    expect(new ReferenceBm25(docs, { k1: 1.2, b: 0.75 }).score([])).toEqual([]);
    expect(new ReferenceBm25([], { k1: 1.2, b: 0.75 }).score(['cat'])).toEqual([]);
  });

  it('keeps idf positive for a term in every document', () => {
    const bm25 = new ReferenceBm25(
      [
        { id: 'a', tf: new Map([['x', 1]]), length: 1 },
        { id: 'b', tf: new Map([['x', 1]]), length: 1 },
      ],
      { k1: 1.2, b: 0.75 },
    );
    expect(bm25.idf('x')).toBeCloseTo(Math.log(1.2), 12); // ln(1 + 0.5/2.5)
    expect(bm25.score(['x']).map((s) => s.score)).toEqual([bm25.idf('x'), bm25.idf('x')]);
  });

  it('rejects parameters out of range', () => {
    expect(() => new ReferenceBm25(docs, { k1: -1, b: 0.75 })).toThrow(RangeError);
    expect(() => new ReferenceBm25(docs, { k1: 1.2, b: 1.5 })).toThrow(RangeError);
    expect(() => new ReferenceBm25(docs, { k1: Number.NaN, b: 0.5 })).toThrow(RangeError);
  });

  it('scores documents read from tsvector text', () => {
    const bm25 = new ReferenceBm25(
      [
        { id: 'a', ...parseTsvector("'cat':1 'sat':2") },
        { id: 'b', ...parseTsvector("'dog':1,3 'sat':2") },
      ],
      { k1: 1.2, b: 0.75 },
    );
    // a: idf(cat) = ln(1 + 1.5/1.5) = ln 2; |a| = 2, avgdl = 2.5 → norm = 1.2 · (0.25 + 0.6) = 1.02
    expect(bm25.score(['cat'])).toEqual([
      { id: 'a', score: expect.closeTo(LN2 * (2.2 / 2.02), 12) as number },
    ]);
  });
});

describe('parseTsvector', () => {
  // Inputs are PostgreSQL 17's own `::text` output, captured from PGlite.
  it('reads positions as term frequencies', () => {
    const { tf, length } = parseTsvector("'compost':4 'kitchen':5 'note':2,7 'plain':1");
    expect(Object.fromEntries(tf)).toEqual({ compost: 1, kitchen: 1, note: 2, plain: 1 });
    expect(length).toBe(5);
    const english = parseTsvector("'anoth':8 'compost':7 'kitchen':6 'note':2,4,9 'plain':1");
    expect(english.tf.get('note')).toBe(3);
    expect(english.length).toBe(7);
  });

  it('ignores weights and counts a lexeme without positions once', () => {
    // select $$'it''s' 'back\\slash' 'a b':3A,4B 'c':5C,6 'd':1D$$::tsvector::text
    const { tf, length } = parseTsvector("'a b':3A,4B 'backslash' 'c':5C,6 'd':1 'it''s'");
    expect(Object.fromEntries(tf)).toEqual({ 'a b': 2, backslash: 1, c: 2, d: 1, "it's": 1 });
    expect(length).toBe(7);
    expect(Object.fromEntries(parseTsvector("'don':1A 'stop':3A 't':2a").tf)).toEqual({
      don: 1,
      stop: 1,
      t: 1,
    });
  });

  it('reads stripped tsvectors (no positions) as tf 1, like chunks.lexeme_count', () => {
    expect(parseTsvector("'cat' 'mat' 'sat'").length).toBe(3);
    // select sum(greatest(cardinality(positions), 1)) from unnest($$'a':1,2 'b' 'c':3A$$::tsvector) → 4
    expect(parseTsvector("'a':1,2 'b' 'c':3A").length).toBe(4);
  });

  it('unescapes doubled quotes and backslashes', () => {
    // array_to_tsvector(array['it''s', 'a\b', 'x y', '''']) prints as: '''' 'a\\b' 'it''s' 'x y'
    const { tf } = parseTsvector(String.raw`'''' 'a\\b' 'it''s' 'x y'`);
    expect([...tf.keys()]).toEqual(["'", 'a\\b', "it's", 'x y']);
    const more = parseTsvector(String.raw`'back\\slash':1 'both\\''':3 'q''uote':2`);
    expect([...more.tf.keys()]).toEqual(['back\\slash', "both\\'", "q'uote"]);
  });

  it('reads non-ASCII lexemes, unquoted input syntax and the empty tsvector', () => {
    expect([...parseTsvector("'café':2 'naïve':1 'x':4 '日本語':3").tf.keys()]).toEqual([
      'café',
      'naïve',
      'x',
      '日本語',
    ]);
    expect(Object.fromEntries(parseTsvector("a:1 b 'c d':2,3").tf)).toEqual({ a: 1, b: 1, 'c d': 2 });
    expect(parseTsvector('')).toEqual({ tf: new Map(), length: 0 });
    expect(parseTsvector('  ').length).toBe(0);
  });

  it('rejects malformed text', () => {
    for (const bad of ["'unterminated", "'a':", "'a':x", "'a'b", "'a':1,", "''", "'a':1 'b\\"]) {
      expect(() => parseTsvector(bad), bad).toThrow(TsvectorFormatError);
    }
  });
});
