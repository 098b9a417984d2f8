/**
 * The `openai` provider: any OpenAI-compatible `POST /v1/embeddings` (OpenAI, Azure-style proxies,
 * Ollama, vLLM, LM Studio, llama.cpp server …) through the official SDK.
 *
 * Retries are the SDK's: on connection errors, timeouts, 408/409/429/5xx, with exponential back-off
 * (0.5 s doubling to 8 s, up to 25 % jitter) unless the server sends `retry-after-ms` / `Retry-After`,
 * which the SDK obeys as given (it does not cap it). `timeoutMs` applies to each attempt.
 *
 * @example
 *   const ollama = new OpenAIEmbeddingProvider({
 *     baseUrl: 'http://localhost:11434/v1', model: 'nomic-embed-text', batchSize: 64, timeoutMs: 30_000,
 *     maxRetries: 4, queryPrefix: 'search_query: ', documentPrefix: 'search_document: ',
 *   });
 *   const vector = await ollama.embedQuery('what is pgvector?');
 */
import type OpenAI from 'openai';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { createOpenAIClient } from '../openai-client.js';
import type { EmbeddingCreateParams } from 'openai/resources/embeddings';
import { EmbeddingError } from './types.js';
import type { EmbeddingProvider } from './types.js';
import { checkVectors, raceAbort, throwIfAborted, toBatches } from './vectors.js';

export interface OpenAIProviderOptions {
  /** e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …`; absent (local servers): no Authorization header at all. */
  apiKey?: string | undefined;
  model: string;
  /** Requested vector size (models that support shortening); absent: the model's own, probed once. */
  dimensions?: number | undefined;
  batchSize: number;
  /** Per attempt. */
  timeoutMs: number;
  maxRetries: number;
  queryPrefix: string;
  documentPrefix: string;
}

const PROBE_TEXT = 'dimension probe';

export class OpenAIEmbeddingProvider implements EmbeddingProvider {
  readonly provider = 'openai';
  readonly model: string;
  readonly #options: OpenAIProviderOptions;
  readonly #client: OpenAI;
  #dimensions: number | undefined;
  #probe: Promise<number> | undefined;
  #closed = false;

  constructor(options: OpenAIProviderOptions) {
    this.model = options.model;
    this.#options = options;
    this.#dimensions = options.dimensions;
    this.#client = createOpenAIClient({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs,
      maxRetries: options.maxRetries,
    });
  }

  async dimensions(signal?: AbortSignal): Promise<number> {
    this.#assertOpen();
    throwIfAborted(signal);
    if (this.#dimensions !== undefined) return this.#dimensions;
    // One probe shared by concurrent callers; a caller's abort leaves it running for the others.
    this.#probe ??= this.#embed([PROBE_TEXT]).then(
      () => {
        if (this.#dimensions === undefined) throw new Error('unreachable: #embed records the dimensions');
        return this.#dimensions;
      },
      (error: unknown) => {
        this.#probe = undefined;
        throw error;
      },
    );
    return raceAbort(this.#probe, signal);
  }

  async embedDocuments(texts: string[], signal?: AbortSignal): Promise<number[][]> {
    this.#assertOpen();
    throwIfAborted(signal);
    const prefix = this.#options.documentPrefix;
    const vectors: number[][] = [];
    for (const batch of toBatches(texts, this.#options.batchSize)) {
      vectors.push(
        ...(await this.#embed(
          batch.map((text) => prefix + text),
          signal,
        )),
      );
    }
    return vectors;
  }

  async embedQuery(text: string, signal?: AbortSignal): Promise<number[]> {
    this.#assertOpen();
    throwIfAborted(signal);
    const [vector] = await this.#embed([this.#options.queryPrefix + text], signal);
    if (!vector) throw new Error('unreachable: #embed checks the vector count');
    return vector;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new EmbeddingError('unavailable', `the ${this.model} embedding provider is closed`);
  }

  /** One request (plus the SDK's retries); checks and records the vector size. */
  async #embed(input: string[], signal?: AbortSignal): Promise<number[][]> {
    throwIfAborted(signal);
    const body: EmbeddingCreateParams = { model: this.model, input, encoding_format: 'float' };
    if (this.#options.dimensions !== undefined) body.dimensions = this.#options.dimensions;
    let data: unknown;
    try {
      // raceAbort: the SDK only looks at the signal between attempts, not during a Retry-After sleep.
      // The SDK adds an abort listener to the signal it gets on every attempt and never removes it, so
      // a long-lived caller signal (an embed job's, across hundreds of batches) would collect them:
      // the SDK gets a per-request signal instead, linked to the caller's only while this runs.
      const request = new AbortController();
      const forward = () => {
        request.abort(signal?.reason);
      };
      signal?.addEventListener('abort', forward, { once: true });
      try {
        const response = await raceAbort(
          this.#client.embeddings.create(body, signal ? { signal: request.signal } : {}),
          signal,
        );
        data = (response as { data?: unknown }).data;
      } finally {
        signal?.removeEventListener('abort', forward);
      }
    } catch (error) {
      throw this.#toEmbeddingError(error);
    }
    const source = `embeddings API (model ${this.model})`;
    if (!Array.isArray(data)) throw new EmbeddingError('bad_response', `${source} returned no data array`);
    const vectors = checkVectors(inOrder(data, input.length, source), input.length, this.#dimensions, source);
    this.#dimensions ??= vectors[0]?.length;
    return vectors;
  }

  #toEmbeddingError(error: unknown): EmbeddingError {
    if (error instanceof EmbeddingError) return error;
    const what = `embeddings API (model ${this.model})`;
    if (error instanceof APIUserAbortError) return new EmbeddingError('aborted', 'embedding was aborted');
    if (error instanceof APIConnectionTimeoutError) {
      return new EmbeddingError('timeout', `${what} did not answer within ${this.#options.timeoutMs} ms`);
    }
    if (error instanceof APIConnectionError) {
      return new EmbeddingError('unavailable', `${what} is unreachable: ${this.#redact(error.message)}`);
    }
    if (error instanceof APIError && typeof error.status === 'number') {
      const status = error.status;
      const message = `${what} answered ${this.#redact(error.message)}`;
      if (status === 429) return new EmbeddingError('rate_limited', message, { status });
      if (status === 408) return new EmbeddingError('timeout', message, { status });
      if (status === 409 || status >= 500) return new EmbeddingError('unavailable', message, { status });
      return new EmbeddingError('rejected', message, { status });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new EmbeddingError('bad_response', `${what} failed: ${this.#redact(message)}`);
  }

  /** Servers sometimes echo the key in error messages; never let it reach a log. */
  #redact(message: string): string {
    const key = this.#options.apiKey;
    return key ? message.split(key).join('[redacted]') : message;
  }
}

/** `data` sorted by `index`, which must be exactly 0..count-1; returns the embeddings. */
function inOrder(data: unknown[], count: number, source: string): unknown[] {
  if (data.length !== count) {
    throw new EmbeddingError('bad_response', `${source} returned ${data.length} vectors for ${count} inputs`);
  }
  const ordered = new Array<unknown>(count);
  const seen = new Set<number>();
  for (const item of data) {
    const { index, embedding } = (item ?? {}) as { index?: unknown; embedding?: unknown };
    if (
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= count ||
      seen.has(index)
    ) {
      throw new EmbeddingError(
        'bad_response',
        `${source} returned an invalid or duplicate index ${String(index)}`,
      );
    }
    seen.add(index);
    ordered[index] = embedding;
  }
  return ordered;
}
