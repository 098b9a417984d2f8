import { describe, expect, it } from 'vitest';
import { PostingsCache } from './postings-cache.js';

const data = (bytes: number, fill = 1) => Buffer.alloc(bytes, fill);

describe('PostingsCache', () => {
  it('returns a row only at the version it was cached with', () => {
    const cache = new PostingsCache(1 << 20);
    cache.set('c1', 'appl', '1', '100:5', data(40));
    expect(cache.get('1', '100:5')?.byteLength).toBe(40);
    expect(cache.get('1', '101:5')).toBeUndefined();
    expect(cache.get('2', '100:5')).toBeUndefined();
    // A new version replaces the old one.
    cache.set('c1', 'appl', '1', '101:4', data(32));
    expect(cache.get('1', '100:5')).toBeUndefined();
    expect(cache.size).toBe(1);
  });

  it('lists what it holds per collection and lexeme', () => {
    const cache = new PostingsCache(1 << 20);
    cache.set('c1', 'appl', '1', 'a', data(8));
    cache.set('c1', 'appl', '2', 'b', data(8));
    cache.set('c1', 'pear', '3', 'c', data(8));
    cache.set('c2', 'appl', '4', 'd', data(8));
    expect(cache.known('c1', ['appl'])).toEqual({ ids: ['1', '2'], versions: ['a', 'b'] });
    expect(cache.known('c1', ['appl', 'pear', 'plum'])).toEqual({
      ids: ['1', '2', '3'],
      versions: ['a', 'b', 'c'],
    });
    expect(cache.known('c2', ['pear'])).toEqual({ ids: [], versions: [] });
  });

  it('evicts the least recently used beyond its budget, and keeps nothing bigger than the budget', () => {
    // Each entry costs its bytes plus an overhead under 1,000 bytes: room for two of 4,000.
    const cache = new PostingsCache(10_000);
    cache.set('c', 'a', '1', 'v', data(4000));
    cache.set('c', 'b', '2', 'v', data(4000));
    expect(cache.get('1', 'v')).toBeDefined(); // 1 is now the most recently used
    cache.set('c', 'c', '3', 'v', data(4000)); // evicts 2
    expect(cache.get('2', 'v')).toBeUndefined();
    expect(cache.get('1', 'v')).toBeDefined();
    expect(cache.get('3', 'v')).toBeDefined();
    expect(cache.known('c', ['b'])).toEqual({ ids: [], versions: [] });
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    cache.set('c', 'd', '4', 'v', data(20_000));
    expect(cache.get('4', 'v')).toBeUndefined();
    expect(cache.size).toBe(2);
  });
});
