import { describe, expect, it } from 'vitest';
import { exactScan } from './service.js';

describe('exactScan', () => {
  it('scans small collections exactly and large ones through the index', () => {
    expect(exactScan(9_999, 10_000, 10_000)).toBe(true);
    expect(exactScan(10_000, 10_000, 10_000)).toBe(false);
    expect(exactScan(500_000, 1_000_000, 10_000)).toBe(false);
  });

  it('scans exactly a collection that is a small share of a shared index, while that stays cheap', () => {
    // 10k of 110k vectors: the index walk would mostly visit other collections' vectors.
    expect(exactScan(10_030, 110_000, 10_000)).toBe(true);
    expect(exactScan(50_000, 1_000_000, 10_000)).toBe(true);
    // Too large to scan, however small its share: the index it is.
    expect(exactScan(100_000, 10_000_000, 10_000)).toBe(false);
    // The index's estimate is unknown (never analysed): only the size rule applies.
    expect(exactScan(20_000, 0, 10_000)).toBe(false);
  });

  it('never scans exactly with exactBelow = 0', () => {
    expect(exactScan(5, 1_000_000, 0)).toBe(false);
  });
});
