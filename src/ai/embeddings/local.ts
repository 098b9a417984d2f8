/**
 * The `local` provider: Universal Sentence Encoder lite (512 dimensions, English), in-process and
 * offline, in a pool of worker threads so the event loop never blocks on the model.
 *
 * @example
 *   const local = new LocalEmbeddingProvider({ threads: 2, batchSize: 64 });
 *   const [vector] = await local.embedDocuments(['Larder stores documents.']);
 *   await local.close();
 */
import { setMaxListeners } from 'node:events';
import { LocalWorkerPool } from './local-pool.js';
import type { EmbeddingProvider } from './types.js';
import { raceAbort, throwIfAborted, toBatches } from './vectors.js';

/** The model id stored with every local vector. */
export const LOCAL_MODEL = 'use-lite';
/** USE lite's output size (asserted against the real model in local.test.ts). */
export const LOCAL_DIMENSIONS = 512;

export interface LocalProviderOptions {
  /** Worker threads, each with its own copy of the model. */
  threads: number;
  /** Texts per worker request; batches of one call may run on several workers at once. */
  batchSize: number;
}

export class LocalEmbeddingProvider implements EmbeddingProvider {
  readonly provider = 'local';
  readonly model = LOCAL_MODEL;
  readonly #pool: LocalWorkerPool;
  readonly #batchSize: number;

  constructor(options: LocalProviderOptions) {
    this.#pool = new LocalWorkerPool(options.threads);
    this.#batchSize = options.batchSize;
  }

  /** Model load time of each worker so far, in milliseconds. */
  get loadTimesMs(): readonly number[] {
    return this.#pool.loadTimesMs;
  }

  /**
   * The model's fixed size, without starting a worker: an API process that creates a collection
   * should not load a 150 MB model to learn a constant. `loadedDimensions` asks the model itself.
   */
  dimensions(signal?: AbortSignal): Promise<number> {
    throwIfAborted(signal);
    return Promise.resolve(LOCAL_DIMENSIONS);
  }

  /** The size reported by the loaded model (starts a worker). */
  loadedDimensions(signal?: AbortSignal): Promise<number> {
    return this.#pool.dimensions(signal);
  }

  async embedDocuments(texts: string[], signal?: AbortSignal): Promise<number[][]> {
    throwIfAborted(signal);
    if (texts.length === 0) return [];
    const batches = toBatches(texts, this.#batchSize);
    // One failed batch cancels its queued siblings instead of letting them run for nothing.
    const siblings = new AbortController();
    setMaxListeners(batches.length + 1, siblings.signal); // one listener per queued batch is expected
    const onAbort = (): void => {
      siblings.abort(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const runs = batches.map((batch) =>
        this.#pool.run(batch, siblings.signal).catch((error: unknown) => {
          siblings.abort(error);
          throw error;
        }),
      );
      const results = await raceAbort(Promise.all(runs), signal);
      return results.flat();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async embedQuery(text: string, signal?: AbortSignal): Promise<number[]> {
    const [vector] = await this.#pool.run([text], signal);
    if (!vector) throw new Error('unreachable: the pool checks the vector count');
    return vector;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
