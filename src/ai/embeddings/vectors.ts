/** Helpers shared by the providers: batching, response validation, normalisation, abort handling. */
import { EmbeddingError } from './types.js';

/** Splits `items` into consecutive slices of at most `size` (≥ 1). */
export function toBatches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be a positive integer`);
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}

/** Scales `vector` to unit length; a zero or non-finite vector is a bad response. */
export function normalise(vector: readonly number[], source: string): number[] {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm) || norm === 0) {
    throw new EmbeddingError(
      'bad_response',
      `${source} returned a ${norm === 0 ? 'zero' : 'non-finite'} vector`,
    );
  }
  return vector.map((x) => x / norm);
}

/**
 * Checks a provider's answer: `count` vectors, each an array of finite numbers of length `dims`
 * (or, when `dims` is unknown, all of one positive length). Returns them unit length.
 */
export function checkVectors(
  vectors: readonly unknown[],
  count: number,
  dims: number | undefined,
  source: string,
): number[][] {
  if (vectors.length !== count) {
    throw new EmbeddingError(
      'bad_response',
      `${source} returned ${vectors.length} vectors for ${count} inputs`,
    );
  }
  const expected = dims ?? (Array.isArray(vectors[0]) ? vectors[0].length : 0);
  return vectors.map((vector, i) => {
    if (!Array.isArray(vector) || vector.length !== expected || expected === 0) {
      const got = Array.isArray(vector) ? `${vector.length} dimensions` : typeof vector;
      throw new EmbeddingError(
        'bad_response',
        `${source} returned ${got} for input ${i}, expected ${expected}`,
      );
    }
    for (const x of vector as unknown[]) {
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        throw new EmbeddingError('bad_response', `${source} returned a non-finite value for input ${i}`);
      }
    }
    return normalise(vector as number[], source);
  });
}

export function abortedError(signal: AbortSignal): EmbeddingError {
  return new EmbeddingError('aborted', 'embedding was aborted', { cause: signal.reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

/**
 * Settles with `promise`, or rejects with `EmbeddingError('aborted')` as soon as `signal` fires, even
 * when the underlying work cannot be interrupted (a retry back-off, a model call in a worker).
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortedError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => undefined);
      reject(abortedError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
