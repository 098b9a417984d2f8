/**
 * Query vectors, cached: a repeated question is embedded once. Two levels: each process keeps its
 * most recently used vectors in memory; with Redis, processes share them (API replicas, workers), for
 * a day, as float32 bytes (2 KB for 512 dimensions).
 *
 * Keys are per workspace: a shared key would let one tenant learn, from a cache hit's speed, that
 * another tenant asked the same question. Redis failures degrade to embedding (logged), never fail
 * the search.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { EmbeddingProvider } from '../../ai/embeddings/index.js';
import type { Logger } from '../../platform/logger.js';
import { LruMap } from '../../platform/lru.js';

/** Query vectors kept per process (most recently used first out). */
export const QUERY_VECTOR_CACHE_SIZE = 1000;
export const QUERY_VECTOR_TTL_SECONDS = 24 * 60 * 60;
const REDIS_PREFIX = 'larder:qv:';

export type CacheOutcome = 'memory' | 'redis' | 'miss';

export class QueryVectorCache {
  readonly #memory = new LruMap<string, number[]>(QUERY_VECTOR_CACHE_SIZE);

  constructor(
    private readonly redis?: Redis,
    private readonly logger?: Logger,
  ) {}

  /** The query's vector under `provider`, embedding it only when no level has it. */
  async get(
    workspaceId: string,
    provider: EmbeddingProvider,
    query: string,
  ): Promise<{ vector: number[]; cache: CacheOutcome }> {
    const key = createHash('sha256')
      .update(`${workspaceId}\u0000${provider.provider}\u0000${provider.model}\u0000${query}`)
      .digest('base64url');
    const hit = this.#memory.get(key);
    if (hit) return { vector: hit, cache: 'memory' };
    const shared = await this.#fromRedis(key);
    if (shared) {
      this.#memory.set(key, shared);
      return { vector: shared, cache: 'redis' };
    }
    const vector = await provider.embedQuery(query);
    this.#memory.set(key, vector);
    if (this.redis) {
      const bytes = Buffer.from(Float32Array.from(vector).buffer);
      await this.redis
        .set(REDIS_PREFIX + key, bytes, 'EX', QUERY_VECTOR_TTL_SECONDS)
        .catch((error: unknown) => this.logger?.warn({ err: error }, 'query vector cache: write failed'));
    }
    return { vector, cache: 'miss' };
  }

  async #fromRedis(key: string): Promise<number[] | undefined> {
    if (!this.redis) return undefined;
    try {
      const bytes = await this.redis.getBuffer(REDIS_PREFIX + key);
      if (!bytes || bytes.length % 4 !== 0) return undefined;
      // Copy: the Buffer may be a view into a shared pool at an unaligned offset.
      return Array.from(new Float32Array(Uint8Array.from(bytes).buffer));
    } catch (error) {
      this.logger?.warn({ err: error }, 'query vector cache: read failed');
      return undefined;
    }
  }
}
