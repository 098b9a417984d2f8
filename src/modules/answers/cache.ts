/**
 * The answer cache: a finished answer under a key that names everything it depends on (see
 * `answerCacheKey`), in Redis when configured (shared by replicas) and in process memory otherwise.
 * Redis failures degrade to a miss (logged), never to an error.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LruMap } from '../../platform/lru.js';
import type { Logger } from '../../platform/logger.js';

const REDIS_PREFIX = 'larder:answer:';
export const ANSWER_CACHE_SIZE = 1000;

export type AnswerCacheOutcome = 'memory' | 'redis' | 'miss' | 'bypass';

export interface AnswerCacheKeyParts {
  workspaceId: string;
  /** normaliseQuestion() of the standalone question. */
  question: string;
  /** Every collection searched, with its content versions (postings, vectors). */
  collections: { id: string; version: string; vectorsVersion: string }[];
  filters: unknown;
  mode: string;
  sources: number;
  promptVersion: string;
  /** 'extractive' or the model id. */
  model: string;
  /** What personalises the prompt (language, instructions): answers differ per profile. */
  profile: unknown;
}

/** Canonical JSON: object keys sorted at every level, so equal filters give equal keys. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  return value;
}

export function answerCacheKey(parts: AnswerCacheKeyParts): string {
  const collections = [...parts.collections].sort((a, b) => (a.id < b.id ? -1 : 1));
  return createHash('sha256')
    .update(JSON.stringify(canonical({ ...parts, collections, v: 1 })))
    .digest('base64url');
}

export class AnswerCache<T> {
  readonly #memory = new LruMap<string, { value: T; expires: number }>(ANSWER_CACHE_SIZE);

  constructor(
    readonly ttlSeconds: number,
    private readonly redis?: Redis,
    private readonly logger?: Logger,
  ) {}

  get enabled(): boolean {
    return this.ttlSeconds > 0;
  }

  async get(key: string): Promise<{ value: T; level: 'memory' | 'redis' } | null> {
    if (!this.enabled) return null;
    const local = this.#memory.get(key);
    if (local && local.expires > Date.now()) return { value: local.value, level: 'memory' };
    if (!this.redis) return null;
    try {
      const raw = await this.redis.get(REDIS_PREFIX + key);
      if (raw === null) return null;
      const value = JSON.parse(raw) as T;
      this.#memory.set(key, { value, expires: Date.now() + this.ttlSeconds * 1000 });
      return { value, level: 'redis' };
    } catch (error) {
      this.logger?.warn({ err: error }, 'answer cache: read failed');
      return null;
    }
  }

  async set(key: string, value: T): Promise<void> {
    if (!this.enabled) return;
    this.#memory.set(key, { value, expires: Date.now() + this.ttlSeconds * 1000 });
    if (!this.redis) return;
    await this.redis
      .set(REDIS_PREFIX + key, JSON.stringify(value), 'EX', this.ttlSeconds)
      .catch((error: unknown) => this.logger?.warn({ err: error }, 'answer cache: write failed'));
  }
}
