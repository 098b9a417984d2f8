import { describe, expect, it } from 'vitest';
import { DEFAULT_FUSION, fuse, normalise, type ScoredItem } from './fusion.js';

const list = (...items: [string, number][]): ScoredItem[] => items.map(([id, score]) => ({ id, score }));

// BM25 scores and cosine similarities, best first.
const lexical = list(['a', 10], ['b', 6], ['c', 2]);
const vector = list(['c', 0.8], ['d', 0.6], ['a', 0.4]);

/** The ids in order and each fused score to 12 decimals. */
function expectScores(items: { id: string; score: number }[], expected: [string, number][]): void {
  expect(items.map((i) => i.id)).toEqual(expected.map(([id]) => id));
  items.forEach((item, i) => {
    expect(item.score).toBeCloseTo(expected[i]![1], 12);
  });
}

describe('fuse: rrf', () => {
  it('sums w / (k + rank) over the lists', () => {
    const out = fuse(lexical, vector, { method: 'rrf', k: 60 });
    // a: 1/61 + 1/63, c: 1/63 + 1/61 (a tie, broken by id), b: 1/62, d: 1/62 (tie).
    expect(out.map((i) => i.id)).toEqual(['a', 'c', 'b', 'd']);
    expect(out[0]!.score).toBeCloseTo(1 / 61 + 1 / 63, 12);
    expect(out[2]!.score).toBeCloseTo(1 / 62, 12);
    expect(out[0]).toEqual({
      id: 'a',
      score: out[0]!.score,
      lexical: { score: 10, rank: 1, contribution: 1 / 61 },
      vector: { score: 0.4, rank: 3, contribution: 1 / 63 },
    });
    expect(out[3]!.lexical).toBeNull();
  });

  it('weights each list and defaults to k 60 with equal weights', () => {
    const out = fuse(lexical, vector, { method: 'rrf', k: 0, weights: { vector: 0.5 } });
    // a: 1/1 + 0.5/3 = 7/6, b: 1/2, c: 1/3 + 0.5/1 = 5/6, d: 0.5/2 = 1/4.
    expectScores(out, [
      ['a', 7 / 6],
      ['c', 5 / 6],
      ['b', 1 / 2],
      ['d', 1 / 4],
    ]);
    expect(fuse(lexical, vector, { method: 'rrf' })).toEqual(
      fuse(lexical, vector, { method: 'rrf', k: 60, weights: { lexical: 1, vector: 1 } }),
    );
  });
});

describe('fuse: convex', () => {
  it('combines min-max normalised scores, a missing list counting 0', () => {
    // lexical: a 1, b (6 − 2)/8 = 0.5, c 0; vector: c 1, d 0.5, a 0.
    const out = fuse(lexical, vector, { method: 'convex', alpha: 0.8, normalisation: 'minmax' });
    // a 0.8, b 0.4, c 0.2, d 0.1.
    expectScores(out, [
      ['a', 0.8],
      ['b', 0.4],
      ['c', 0.2],
      ['d', 0.2 * 0.5],
    ]);
    expect(out[2]!.lexical).toEqual({ score: 2, rank: 3, contribution: 0 });
    expect(out[2]!.vector).toEqual({ score: 0.8, rank: 1, contribution: expect.closeTo(0.2, 12) as number });
    expect(out[3]!.lexical).toBeNull();
  });

  it('α 1 keeps the lexical order; α 0 the vector order', () => {
    expect(fuse(lexical, vector, { method: 'convex', alpha: 1 }).map((i) => i.id)).toEqual([
      'a',
      'b',
      'c',
      'd',
    ]);
    // c 1, d 0.5, then a and b both 0: by id.
    expect(fuse(lexical, vector, { method: 'convex', alpha: 0 }).map((i) => i.id)).toEqual([
      'c',
      'd',
      'a',
      'b',
    ]);
  });

  it('tmm: BM25 / max, cosine (s − lower) / (max − lower)', () => {
    const out = fuse(lexical, vector, {
      method: 'convex',
      alpha: 0.5,
      normalisation: 'tmm',
      cosineLower: -1,
      missing: 'zero',
    });
    // lexical: a 1, b 0.6, c 0.2; vector (lower −1): c 1, d 1.6/1.8, a 1.4/1.8.
    const expected = new Map([
      ['a', 0.5 + 0.5 * (1.4 / 1.8)],
      ['b', 0.3],
      ['c', 0.1 + 0.5],
      ['d', 0.5 * (1.6 / 1.8)],
    ]);
    expect(out.map((i) => i.id)).toEqual(['a', 'c', 'd', 'b']);
    for (const item of out) expect(item.score).toBeCloseTo(expected.get(item.id)!, 12);
  });

  it('tmm with cosine lower bound 0', () => {
    const out = fuse(lexical, vector, {
      method: 'convex',
      alpha: 0.5,
      normalisation: 'tmm',
      cosineLower: 0,
      missing: 'zero',
    });
    // vector: c 1, d 0.75, a 0.5 → a 0.75, c 0.6, d 0.375, b 0.3.
    expectScores(out, [
      ['a', 0.75],
      ['c', 0.6],
      ['d', 0.375],
      ['b', 0.3],
    ]);
  });

  it('tmm with missing = listMin: a list misses an item at its lowest normalised score', () => {
    const out = fuse(lexical, vector, {
      method: 'convex',
      alpha: 0.5,
      normalisation: 'tmm',
      cosineLower: 0,
      missing: 'listMin',
    });
    // lexical: a 1, b 0.6, c 0.2 (missing: 0.5 × 0.2); vector: c 1, d 0.75, a 0.5 (missing: 0.5 × 0.5).
    // a 0.5 + 0.25, c 0.1 + 0.5, b 0.3 + 0.25, d 0.1 + 0.375.
    expectScores(out, [
      ['a', 0.75],
      ['c', 0.6],
      ['b', 0.55],
      ['d', 0.475],
    ]);
    expect(out[2]!.vector).toBeNull();
  });

  it('minmax ignores missing = listMin (a missing item counts 0)', () => {
    const minmax = { method: 'convex', alpha: 0.7, normalisation: 'minmax' } as const;
    expect(fuse(lexical, vector, { ...minmax, missing: 'listMin' })).toEqual(
      fuse(lexical, vector, { ...minmax, missing: 'zero' }),
    );
  });

  it('defaults: convex, tmm, cosine lower 0, missing listMin, α 0.7', () => {
    expect(DEFAULT_FUSION).toEqual({
      method: 'convex',
      alpha: 0.7,
      normalisation: 'tmm',
      cosineLower: 0,
      missing: 'listMin',
    });
    expect(fuse(lexical, vector, { method: 'convex' })).toEqual(fuse(lexical, vector, DEFAULT_FUSION));
  });
});

describe('fuse: edge cases', () => {
  it('returns nothing for two empty lists', () => {
    expect(fuse([], [], { method: 'rrf' })).toEqual([]);
    expect(fuse([], [], { method: 'convex' })).toEqual([]);
    expect(fuse([], [], { method: 'convex', normalisation: 'tmm' })).toEqual([]);
  });

  it('keeps the order of the only non-empty list', () => {
    for (const method of ['rrf', 'convex'] as const) {
      expect(fuse(lexical, [], { method }).map((i) => i.id)).toEqual(['a', 'b', 'c']);
      expect(fuse([], vector, { method }).map((i) => i.id)).toEqual(['c', 'd', 'a']);
    }
    // Convex, lexical only, α 0.8: 0.8 × (1, 0.5, 0).
    expectScores(fuse(lexical, [], { method: 'convex', alpha: 0.8, normalisation: 'minmax' }), [
      ['a', 0.8],
      ['b', 0.4],
      ['c', 0],
    ]);
  });

  it('gives a single item or all-equal scores the maximum under min-max', () => {
    const out = fuse(list(['x', 3]), list(['y', 0.5], ['z', 0.5]), {
      method: 'convex',
      alpha: 0.6,
      normalisation: 'minmax',
      missing: 'listMin', // ignored under min-max: a missing item counts 0
    });
    // x 0.6 × 1; y and z 0.4 × 1 each (tie by id).
    expectScores(out, [
      ['x', 0.6],
      ['y', 0.4],
      ['z', 0.4],
    ]);
    expect(normalise([2, 2, 2])).toEqual([1, 1, 1]);
    expect(normalise([7])).toEqual([1]);
    expect(normalise([])).toEqual([]);
  });

  it('normalise: min-max, theoretical lower bound, clamping', () => {
    expect(normalise([4, 3, 2])).toEqual([1, 0.5, 0]);
    expect(normalise([4, 3, 2], 0)).toEqual([1, 0.75, 0.5]);
    // A cosine below the lower bound 0 is clamped to 0; max ≤ lower gives 1.
    expect(normalise([0.5, -0.5], 0)).toEqual([1, 0]);
    expect(normalise([-0.2, -0.4], 0)).toEqual([1, 1]);
  });

  it('counts an id repeated within a list at its first position only', () => {
    const out = fuse(list(['a', 5], ['b', 4], ['a', 3]), [], { method: 'rrf', k: 0 });
    expectScores(out, [
      ['a', 1],
      ['b', 0.5],
    ]);
  });

  it('breaks ties by id, whatever the input order', () => {
    const out = fuse(list(['b', 1]), list(['a', 1]), { method: 'rrf' });
    expect(out.map((i) => i.id)).toEqual(['a', 'b']);
  });

  it('rejects invalid parameters and scores', () => {
    expect(() => fuse(lexical, vector, { method: 'convex', alpha: 1.5 })).toThrow(RangeError);
    expect(() => fuse(lexical, vector, { method: 'rrf', k: -1 })).toThrow(RangeError);
    expect(() => fuse(lexical, vector, { method: 'rrf', weights: { vector: -1 } })).toThrow(RangeError);
    expect(() => fuse(list(['a', Number.NaN]), [], { method: 'convex' })).toThrow(RangeError);
  });
});
