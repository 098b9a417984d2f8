/** The local provider with the real model in real worker threads (no network: bundled weights). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalWorkerPool } from './local-pool.js';
import { LocalEmbeddingProvider } from './local.js';
import { EmbeddingError } from './types.js';

const dot = (a: number[], b: number[]): number => a.reduce((sum, x, i) => sum + x * (b[i] ?? NaN), 0);
const norm = (v: number[]): number => Math.sqrt(dot(v, v));

/** ~250-token English passages, each different. */
function passages(count: number): string[] {
  const sentence =
    'Larder ingests documents into PostgreSQL, splits them into chunks along headings and sentences, and answers questions with cited sources. ';
  return Array.from({ length: count }, (_, i) => `Passage ${i}. ${sentence.repeat(7)}`);
}

describe('LocalEmbeddingProvider', () => {
  const provider = new LocalEmbeddingProvider({ threads: 2, batchSize: 8 });
  beforeAll(async () => {
    await provider.loadedDimensions();
  });
  afterAll(async () => {
    await provider.close();
  });

  it('reports model id use-lite and 512 dimensions, loaded from the bundled weights', async () => {
    expect(provider.provider).toBe('local');
    expect(provider.model).toBe('use-lite');
    // The constant the provider reports without loading is what the loaded model really outputs.
    expect(await provider.dimensions()).toBe(512);
    expect(await provider.loadedDimensions()).toBe(512);
    expect(provider.loadTimesMs.length).toBeGreaterThanOrEqual(1);
  });

  it('returns finite unit-length vectors of 512 dimensions, deterministically', async () => {
    const texts = ['The cat sat on the mat.', '', 'Ünïcödé and emoji 😀 are fine.'];
    const first = await provider.embedDocuments(texts);
    expect(first).toHaveLength(3);
    for (const vector of first) {
      expect(vector).toHaveLength(512);
      expect(vector.every(Number.isFinite)).toBe(true);
      expect(norm(vector)).toBeCloseTo(1, 6);
    }
    expect(await provider.embedDocuments(texts)).toEqual(first);
    // A query and the same text as a document embed alike (no prefixes for this model).
    const query = await provider.embedQuery(texts[0]!);
    expect(dot(query, first[0]!)).toBeCloseTo(1, 5);
  });

  it('puts semantically similar sentences closer than unrelated ones', async () => {
    const [cat, kitten, stocks] = await provider.embedDocuments([
      'The cat is sleeping on the sofa.',
      'A kitten naps on the couch.',
      'Interest rates rose and the stock market fell sharply.',
    ]);
    const similar = dot(cat!, kitten!);
    expect(similar).toBeGreaterThan(dot(cat!, stocks!));
    expect(similar).toBeGreaterThan(dot(kitten!, stocks!));
  });

  it('keeps input order across batches and workers', async () => {
    const texts = Array.from({ length: 20 }, (_, i) => `Sentence number ${i} talks about topic ${i * 7}.`);
    const batched = await provider.embedDocuments(texts);
    expect(batched).toHaveLength(20);
    const oneByOne = await Promise.all(texts.map((text) => provider.embedQuery(text)));
    batched.forEach((vector, i) => {
      expect(dot(vector, oneByOne[i]!)).toBeCloseTo(1, 5);
    });
  });

  it('keeps the event loop responsive while embedding a large batch', async () => {
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    try {
      const vectors = await provider.embedDocuments(passages(32));
      expect(vectors).toHaveLength(32);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it('serves concurrent callers', async () => {
    const callers = Array.from({ length: 6 }, (_, c) =>
      provider.embedDocuments(Array.from({ length: 5 }, (_, i) => `caller ${c} text ${i}`)),
    );
    const results = await Promise.all(callers);
    for (const vectors of results) expect(vectors).toHaveLength(5);
    expect(dot(results[0]![0]!, results[1]![0]!)).toBeLessThan(1 - 1e-6);
  });

  it('rejects an aborted call with reason aborted, and keeps working', async () => {
    const controller = new AbortController();
    const pending = provider.embedDocuments(passages(40), controller.signal);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'EmbeddingError', reason: 'aborted' });
    const already = provider.embedQuery('x', AbortSignal.abort());
    await expect(already).rejects.toMatchObject({ reason: 'aborted' });
    expect(await provider.embedQuery('still fine')).toHaveLength(512);
  });
});

describe('LocalWorkerPool', () => {
  it('starts lazily, replaces a crashed worker and fails its in-flight request as unavailable', async () => {
    const pool = new LocalWorkerPool(1);
    try {
      expect(pool.threads).toHaveLength(0);
      expect(await pool.dimensions()).toBe(512);
      expect(pool.threads).toHaveLength(1);
      const [worker] = pool.threads;
      const inFlight = pool.run(passages(32));
      await worker!.terminate(); // what a crash looks like from the pool: the thread exits mid-request
      const error = await inFlight.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(EmbeddingError);
      expect(error).toMatchObject({ reason: 'unavailable', retryable: true });
      const [vector] = await pool.run(['after the crash']);
      expect(vector).toHaveLength(512);
      expect(pool.threads).toHaveLength(1);
      expect(pool.threads[0]).not.toBe(worker);
    } finally {
      await pool.close();
    }
  });

  it('close() terminates the workers and fails pending and later requests', async () => {
    const pool = new LocalWorkerPool(2);
    await pool.dimensions();
    const threads = [...pool.threads];
    expect(threads).toHaveLength(2);
    const exits = threads.map((thread) => new Promise<number>((resolve) => thread.once('exit', resolve)));
    // Two in flight (one per worker), one queued.
    const requests = Promise.allSettled([1, 2, 3].map(() => pool.run(passages(32))));
    await pool.close();
    await Promise.all(exits);
    expect(pool.threads).toHaveLength(0);
    for (const outcome of await requests) {
      expect(outcome).toMatchObject({ status: 'rejected', reason: { reason: 'unavailable' } });
    }
    await expect(pool.run(['late'])).rejects.toMatchObject({ reason: 'unavailable' });
  });
});
