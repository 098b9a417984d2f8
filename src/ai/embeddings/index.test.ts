/** Provider construction from configuration and the per-process registry (nothing is started here). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';
import {
  createEmbeddingProvider,
  EmbeddingError,
  EmbeddingProviders,
  embeddingOptionsFromConfig,
  type EmbeddingOptions,
} from './index.js';
import { LocalEmbeddingProvider } from './local.js';
import { OpenAIEmbeddingProvider } from './openai.js';
import { checkVectors, toBatches } from './vectors.js';

const options: EmbeddingOptions = embeddingOptionsFromConfig(
  loadConfig({
    LARDER_EMBEDDING_LOCAL_THREADS: '2',
    LARDER_EMBEDDING_BATCH_SIZE: '16',
    LARDER_OPENAI_EMBEDDING_BASE_URL: 'http://localhost:11434/v1',
    LARDER_OPENAI_EMBEDDING_MODEL: 'nomic-embed-text',
    LARDER_OPENAI_EMBEDDING_DIMENSIONS: '256',
    LARDER_OPENAI_EMBEDDING_QUERY_PREFIX: 'search_query: ',
    LARDER_OPENAI_EMBEDDING_DOCUMENT_PREFIX: 'search_document: ',
  }),
);

describe('embeddingOptionsFromConfig', () => {
  it('reads every embedding setting, with defaults', () => {
    expect(options).toEqual({
      localThreads: 2,
      batchSize: 16,
      openai: {
        baseUrl: 'http://localhost:11434/v1',
        apiKey: undefined,
        model: 'nomic-embed-text',
        dimensions: 256,
        timeoutMs: 30_000,
        maxRetries: 4,
        queryPrefix: 'search_query: ',
        documentPrefix: 'search_document: ',
      },
    });
  });
});

describe('createEmbeddingProvider', () => {
  it('builds local, openai (default or named model) and nothing for none', async () => {
    const local = createEmbeddingProvider({ provider: 'local' }, options);
    expect(local).toBeInstanceOf(LocalEmbeddingProvider);
    expect(local?.model).toBe('use-lite');
    const openai = createEmbeddingProvider({ provider: 'openai' }, options);
    expect(openai).toBeInstanceOf(OpenAIEmbeddingProvider);
    expect(openai?.model).toBe('nomic-embed-text');
    expect(await openai?.dimensions()).toBe(256);
    expect(createEmbeddingProvider({ provider: 'openai', model: 'mxbai-embed-large' }, options)?.model).toBe(
      'mxbai-embed-large',
    );
    expect(createEmbeddingProvider({ provider: 'none' }, options)).toBeNull();
    await Promise.all([local?.close(), openai?.close()]);
  });

  it('refuses a local model other than use-lite', () => {
    expect(() => createEmbeddingProvider({ provider: 'local', model: 'bge-small' }, options)).toThrow(
      EmbeddingError,
    );
  });
});

describe('EmbeddingProviders', () => {
  it('shares one instance per (provider, model) and closes them all', async () => {
    const providers = new EmbeddingProviders(options);
    const local = providers.get({ provider: 'local' });
    expect(providers.get({ provider: 'local', model: 'use-lite' })).toBe(local);
    const openai = providers.get({ provider: 'openai' });
    expect(providers.get({ provider: 'openai', model: 'nomic-embed-text' })).toBe(openai);
    expect(providers.get({ provider: 'openai', model: 'other' })).not.toBe(openai);
    expect(providers.get({ provider: 'none' })).toBeNull();
    await providers.close();
    await expect(local!.embedQuery('x')).rejects.toMatchObject({ reason: 'unavailable' });
    await expect(openai!.embedQuery('x')).rejects.toMatchObject({ reason: 'unavailable' });
    expect(() => providers.get({ provider: 'local' })).toThrow(EmbeddingError);
  });
});

describe('vector helpers', () => {
  it('batches', () => {
    expect(toBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(toBatches([], 3)).toEqual([]);
  });

  it('checks count, length and finiteness, and normalises', () => {
    expect(checkVectors([[3, 4]], 1, 2, 't')).toEqual([[0.6, 0.8]]);
    expect(checkVectors([[3, 4]], 1, undefined, 't')).toEqual([[0.6, 0.8]]);
    const bad: [unknown[], number | undefined][] = [
      [[[1, 2]], 3],
      [[[1, NaN]], undefined],
      [[[1, Infinity]], 2],
      [[[0, 0]], 2],
      [[[1, 2], [1]], undefined],
      [['x'], undefined],
      [[[]], undefined],
      [[[1, '2']], 2],
    ];
    for (const [vectors, dims] of bad) {
      expect(() => checkVectors(vectors, vectors.length, dims, 't')).toThrow(EmbeddingError);
    }
    expect(() => checkVectors([[1, 2]], 2, 2, 't')).toThrow(/1 vectors for 2 inputs/);
    expect(() => checkVectors([[1, 2, 3]], 1, 2, 't')).toThrow(/3 dimensions/);
  });
});
