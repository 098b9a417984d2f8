/**
 * A fixed-size pool of worker threads running the local model (`local-worker.ts`). Workers start on
 * first use and load the model once each; requests wait in one FIFO queue and go to idle workers, one
 * request per worker at a time. A worker that dies is replaced and its request fails with
 * `EmbeddingError('unavailable')`; a worker that dies while loading is not retried in a loop: what waits
 * fails, and the next request tries again. Idle workers are unref'd, so they never keep a process alive.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../../platform/threads/module-worker.js';
import type { EmbedRequest, WorkerMessage } from './local-protocol.js';
import { EmbeddingError } from './types.js';
import { abortedError, checkVectors, raceAbort, throwIfAborted } from './vectors.js';

interface Job {
  id: number;
  texts: string[];
  settled: boolean;
  resolve(vectors: number[][]): void;
  reject(error: EmbeddingError): void;
  /** Removes the abort listener. */
  release(): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | undefined;
  lastError: string | undefined;
}

interface Waiter {
  resolve(dimensions: number): void;
  reject(error: EmbeddingError): void;
}

const closedError = (): EmbeddingError =>
  new EmbeddingError('unavailable', 'the local embedding model is closed');

export class LocalWorkerPool {
  readonly #size: number;
  readonly #slots = new Set<Slot>();
  readonly #queue: Job[] = [];
  #waiters: Waiter[] = [];
  #dimensions: number | undefined;
  #nextId = 1;
  #closed = false;
  /** Model load time of each worker started so far, in milliseconds (for diagnostics). */
  readonly loadTimesMs: number[] = [];

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('the pool needs at least one thread');
    this.#size = size;
  }

  /** The live worker threads (loading or ready), for diagnostics and tests. */
  get threads(): readonly Worker[] {
    return [...this.#slots].map((slot) => slot.worker);
  }

  /** The model's vector size, known once a worker has loaded it. */
  dimensions(signal?: AbortSignal): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    throwIfAborted(signal);
    if (this.#dimensions !== undefined) return Promise.resolve(this.#dimensions);
    const known = new Promise<number>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#start();
    return raceAbort(known, signal);
  }

  /** Embeds `texts` on the next idle worker; unit-length vectors in input order. */
  run(texts: string[], signal?: AbortSignal): Promise<number[][]> {
    if (this.#closed) return Promise.reject(closedError());
    throwIfAborted(signal);
    return new Promise<number[][]>((resolve, reject) => {
      const job: Job = {
        id: this.#nextId++,
        texts,
        settled: false,
        resolve,
        reject,
        release: () => undefined,
      };
      if (signal) {
        // A queued job leaves the queue; a running one cannot be interrupted, its result is dropped.
        const onAbort = (): void => {
          const queued = this.#queue.indexOf(job);
          if (queued >= 0) this.#queue.splice(queued, 1);
          this.#fail(job, abortedError(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        job.release = () => {
          signal.removeEventListener('abort', onAbort);
        };
      }
      this.#queue.push(job);
      this.#start();
      this.#dispatch();
    });
  }

  /** Fails everything pending and terminates the workers. Later calls fail with 'unavailable'. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = closedError();
    for (const job of this.#queue.splice(0)) this.#fail(job, error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    const slots = [...this.#slots];
    this.#slots.clear();
    for (const slot of slots) if (slot.job) this.#fail(slot.job, error);
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  #start(): void {
    while (!this.#closed && this.#slots.size < this.#size) this.#spawn();
  }

  #spawn(): void {
    const worker = startModuleWorker(import.meta.url, 'local-worker');
    const slot: Slot = { worker, ready: false, job: undefined, lastError: undefined };
    this.#slots.add(slot);
    worker.on('message', (message: WorkerMessage) => {
      this.#onMessage(slot, message);
    });
    worker.on('error', (error) => {
      slot.lastError = error.message;
    });
    worker.on('exit', (code) => {
      this.#onExit(slot, code);
    });
  }

  #onMessage(slot: Slot, message: WorkerMessage): void {
    switch (message.type) {
      case 'ready': {
        slot.ready = true;
        this.#dimensions ??= message.dimensions;
        this.loadTimesMs.push(message.loadMs);
        for (const waiter of this.#waiters.splice(0)) waiter.resolve(this.#dimensions);
        break;
      }
      case 'result':
      case 'error': {
        const job = slot.job;
        slot.job = undefined;
        if (job?.id !== message.id) break;
        if (message.type === 'error') {
          this.#fail(job, new EmbeddingError('bad_response', `local model failed: ${message.message}`));
        } else {
          this.#succeed(job, message.vectors);
        }
        break;
      }
    }
    this.#dispatch();
  }

  #onExit(slot: Slot, code: number): void {
    if (!this.#slots.delete(slot)) return; // terminated by close()
    const detail = `local embedding worker exited with code ${code}${slot.lastError ? `: ${slot.lastError}` : ''}`;
    if (slot.job) this.#fail(slot.job, new EmbeddingError('unavailable', detail));
    if (slot.ready) {
      this.#start();
      this.#dispatch();
      return;
    }
    // Died while loading the model: fail what waits, unless another worker can still serve it.
    if (this.#slots.size > 0) return;
    const error = new EmbeddingError(
      'unavailable',
      `the local embedding model could not be loaded (${detail})`,
    );
    for (const job of this.#queue.splice(0)) this.#fail(job, error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (!slot.ready) continue;
      if (!slot.job) {
        let job = this.#queue.shift();
        while (job?.settled) job = this.#queue.shift();
        if (job) {
          slot.job = job;
          const request: EmbedRequest = { type: 'embed', id: job.id, texts: job.texts };
          slot.worker.postMessage(request);
        }
      }
      // Busy workers keep the process alive until they answer; idle ones never do.
      if (slot.job) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  #succeed(job: Job, flat: Float32Array): void {
    if (job.settled) return;
    const dims = this.#dimensions ?? 0;
    const count = job.texts.length;
    if (flat.length !== count * dims || dims === 0) {
      this.#fail(
        job,
        new EmbeddingError('bad_response', `local model returned ${flat.length} values for ${count} inputs`),
      );
      return;
    }
    const rows = Array.from({ length: count }, (_, r) => Array.from(flat.subarray(r * dims, (r + 1) * dims)));
    let vectors: number[][];
    try {
      vectors = checkVectors(rows, count, dims, 'local model');
    } catch (error) {
      this.#fail(job, error as EmbeddingError);
      return;
    }
    job.settled = true;
    job.release();
    job.resolve(vectors);
  }

  #fail(job: Job, error: EmbeddingError): void {
    if (job.settled) return;
    job.settled = true;
    job.release();
    job.reject(error);
  }
}
