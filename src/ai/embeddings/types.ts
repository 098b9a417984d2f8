/**
 * The embedding provider SPI: turns chunk texts and search queries into vectors.
 *
 * Every vector a provider returns is finite, unit length (so cosine distance and inner product agree)
 * and exactly `await dimensions()` long; responses that break this are `EmbeddingError('bad_response')`.
 *
 * @example
 *   const provider = createEmbeddingProvider({ provider: 'local' }, embeddingOptionsFromConfig(config));
 *   const vectors = await provider.embedDocuments(chunks.map((c) => c.text), signal);
 *   const query = await provider.embedQuery('how do refunds work?');
 */
export interface EmbeddingProvider {
  /** 'local' | 'openai' */
  readonly provider: string;
  /** Model id stored with every vector, e.g. 'use-lite' or 'text-embedding-3-small'. */
  readonly model: string;
  /** Vector size, discovered from the provider (local: from the model; openai: configured dimensions or one probe request, cached). */
  dimensions(signal?: AbortSignal): Promise<number>;
  /** Embeds chunk texts (document prefix applied), in batches of the configured size; result order = input order. */
  embedDocuments(texts: string[], signal?: AbortSignal): Promise<number[][]>;
  /** Embeds one search query (query prefix applied). */
  embedQuery(text: string, signal?: AbortSignal): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * - `unavailable`: the provider cannot be reached or crashed (connection refused, worker died, 5xx, closed);
 * - `rate_limited`: 429 after the client's own retries;
 * - `timeout`: a request took longer than allowed;
 * - `bad_response`: the provider answered, but not with one finite vector of the expected size per input;
 * - `rejected`: the provider refused the request (bad key, unknown model, input too long: 4xx);
 * - `aborted`: the caller's signal fired.
 */
export type EmbeddingErrorReason =
  'unavailable' | 'rate_limited' | 'timeout' | 'bad_response' | 'rejected' | 'aborted';

/** Whether trying the same input again later can succeed, by default. */
const RETRYABLE: Record<EmbeddingErrorReason, boolean> = {
  unavailable: true,
  rate_limited: true,
  timeout: true,
  bad_response: false,
  rejected: false,
  aborted: false,
};

export interface EmbeddingErrorOptions {
  retryable?: boolean;
  /** HTTP status of the provider's answer, when there was one. */
  status?: number;
  cause?: unknown;
}

/** A failure of an embedding provider. Messages never contain credentials. */
export class EmbeddingError extends Error {
  readonly reason: EmbeddingErrorReason;
  /** True when a later attempt (e.g. the job's retry) may succeed. */
  readonly retryable: boolean;
  readonly status: number | undefined;

  constructor(reason: EmbeddingErrorReason, message: string, options: EmbeddingErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EmbeddingError';
    this.reason = reason;
    this.retryable = options.retryable ?? RETRYABLE[reason];
    this.status = options.status;
  }
}
