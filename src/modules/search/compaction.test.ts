import { describe, expect, it } from 'vitest';
import { mergePlan } from './compaction.js';
import { best, int16At, POSTING_BYTES, postingsView, seqAt } from './lexical.js';

const list = (id: string, postings: number, merged = true) => ({ id, lexeme: 'x', postings, merged });
const tier = (postings: number) => Math.floor(Math.log2(postings) / 2);

/** Applies a plan to the lists: what the lexeme holds afterwards (postings per list). */
function apply(lists: ReturnType<typeof list>[], plan: string[][]): number[] {
  const size = new Map(lists.map((l) => [l.id, l.postings]));
  const planned = new Set(plan.flat());
  return [
    ...lists.filter((l) => !planned.has(l.id)).map((l) => l.postings),
    ...plan.map((ids) => ids.reduce((n, id) => n + (size.get(id) ?? 0), 0)),
  ].sort((a, b) => a - b);
}

describe('mergePlan', () => {
  const o = { fanIn: 4, maxPostings: 1000 };

  it('merges the new lists into one and leaves settled tiers alone', () => {
    const lists = [list('m1', 300), list('m2', 40), list('n1', 2, false), list('n2', 5, false)];
    const plan = mergePlan(lists, o);
    expect(plan).toEqual([['n1', 'n2']]);
    expect(apply(lists, plan)).toEqual([7, 40, 300]);
  });

  it('merges a tier that reaches fanIn lists, and cascades to the next tier', () => {
    // Tier 2 (16–63) holds 3 lists; the new lists (20 together) make a 4th, and the merged 150 joins
    // tier 3 (64–255) with three others: four again, merged once more.
    const lists = [
      list('a', 30),
      list('b', 40),
      list('c', 60),
      list('d', 70),
      list('e', 80),
      list('f', 90),
      list('n1', 8, false),
      list('n2', 12, false),
    ];
    const plan = mergePlan(lists, o);
    const after = apply(lists, plan);
    expect(after.reduce((a, b) => a + b, 0)).toBe(390);
    expect(after).toEqual([390]);
    expect(plan).toHaveLength(1);
  });

  it('keeps fewer than fanIn lists per tier below the cap, never exceeds the cap, loses no list', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    let lists = [list('0', 1)];
    let next = 1;
    let total = 1;
    for (let round = 0; round < 300; round++) {
      const fresh = Array.from({ length: 1 + Math.floor(rand() * 6) }, () =>
        list(String(next++), 1 + Math.floor(rand() * 30), false),
      );
      const all = [...lists, ...fresh];
      total = all.reduce((n, l) => n + l.postings, 0);
      const plan = mergePlan(all, o);
      const ids = plan.flat();
      expect(new Set(ids).size).toBe(ids.length);
      const sizes = apply(all, plan);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(total);
      const below = sizes.filter((s) => s < o.maxPostings);
      const perTier = new Map<number, number>();
      for (const s of below) perTier.set(tier(s), (perTier.get(tier(s)) ?? 0) + 1);
      // A full tier may stay only when merging it would pass the cap.
      for (const [t, n] of perTier) {
        if (n < o.fanIn) continue;
        const sum = below.filter((s) => tier(s) === t).reduce((a, b) => a + b, 0);
        expect(sum).toBeGreaterThan(o.maxPostings);
      }
      expect(Math.max(...sizes)).toBeLessThanOrEqual(o.maxPostings);
      lists = sizes.map((postings, i) => list(`r${round}-${i}`, postings));
    }
    // Over a thousand small lists became few: under fanIn per tier up to 4⁴, then lists of ≥ 256.
    expect(next).toBeGreaterThan(1000);
    expect(lists.length).toBeLessThanOrEqual(4 * (o.fanIn - 1) + Math.floor(total / 256));
  });
});

describe('best', () => {
  it('returns the top scores, ties broken by the lower number', () => {
    const scores = new Float64Array([0, 3, 1, 3, 2, 5, 0, 2]);
    const candidates = [1, 2, 3, 4, 5, 7];
    expect(best(scores, candidates, 3)).toEqual([5, 1, 3]);
    expect(best(scores, candidates, 5)).toEqual([5, 1, 3, 4, 7]);
    expect(best(scores, candidates, 10)).toEqual([5, 1, 3, 4, 7, 2]);
    expect(best(scores, candidates, 0)).toEqual([]);
  });

  it('agrees with a full sort on random scores', () => {
    let seed = 11;
    const scores = new Float64Array(5000).map(() => {
      seed = (seed * 48271) % 2147483647;
      return Math.floor((seed / 2147483647) * 200) / 10;
    });
    const candidates = Array.from({ length: 5000 }, (_, i) => i).filter((i) => i % 3 !== 0);
    const sorted = [...candidates].sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0) || a - b);
    for (const k of [1, 10, 50, 1000]) expect(best(scores, candidates, k)).toEqual(sorted.slice(0, k));
  });
});

describe('posting reads', () => {
  it('decode big-endian int4 and int2 exactly like a DataView, whatever the byte values', () => {
    const data = new Uint8Array(POSTING_BYTES * 4096);
    let seed = 7;
    for (let i = 0; i < data.length; i++) {
      seed = (seed * 48271) % 2147483647;
      data[i] = seed & 0xff;
    }
    // And the extremes: the largest numbers and the values with the high bit set.
    new DataView(data.buffer).setInt32(0, 2147483647);
    new DataView(data.buffer).setInt16(4, 32767);
    new DataView(data.buffer).setInt16(6, -1);
    const view = postingsView(data);
    for (let at = 0; at < data.length; at += POSTING_BYTES) {
      expect(seqAt(data, at)).toBe(view.getInt32(at));
      expect(int16At(data, at + 4)).toBe(view.getInt16(at + 4));
      expect(int16At(data, at + 6)).toBe(view.getInt16(at + 6));
    }
  });
});
