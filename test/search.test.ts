/**
 * POST /v1/search on both drivers: BM25 scores equal a textbook reference computed from the same
 * tsvectors, filters apply inside the query, vector and hybrid modes, tenancy.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createEmbeddingProvider,
  type EmbeddingProvider,
  embeddingOptionsFromConfig,
  EmbeddingProviders,
} from '../src/ai/embeddings/index.js';
import { type SearchPhase, SearchService } from '../src/modules/search/service.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import { QueryVectorCache } from '../src/modules/search/query-vectors.js';
import { parseTsvector, ReferenceBm25 } from '../src/modules/search/eval/reference-bm25.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, waitForStatus } from './helpers/documents.js';
import { testConfig } from './helpers/config.js';
import { type EmbeddingsServer, startEmbeddingsServer } from './helpers/embeddings-server.js';

interface Hit {
  chunkId: string;
  documentId: string;
  text: string;
  snippet: string;
  score: number;
  explain?: {
    lexical: number | null;
    vector: number | null;
    lexicalRank: number | null;
    vectorRank: number | null;
  };
}

const DOCS = [
  'Apple orchards need pruning in late winter; apple trees fruit on two-year wood.',
  'Pear trees are pruned like apple trees, but pears ripen after picking.',
  'Beekeeping: a hive needs water nearby. Bees pollinate apple and pear blossoms.',
  'Composting kitchen waste makes soil for the orchard and the vegetable garden.',
  'Winter pruning of grape vines: cut back to two buds per spur.',
  'Tomatoes need sun, water and warmth; prune side shoots weekly.',
  'An apple a day: apple apple apple. Apples everywhere in this short note.',
  'Irrigation schedules for dry summers: water deeply, less often.',
];

describe.each(drivers())('search (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let other: SignedUp;
  let api: EmbeddingsServer;
  let lexicalId: string;
  let hybridId: string;
  const docIds: string[] = [];

  const call = (url: string, payload: object, s = owner) =>
    t.app.inject({ method: 'POST', url, headers: authHeaders(s), payload });
  const search = async (payload: object, s = owner) => {
    const res = await call('/v1/search', payload, s);
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ data: Hit[] }>().data;
  };

  beforeAll(async () => {
    api = await startEmbeddingsServer(384);
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({
        ...fastAuth(c),
        openaiEmbeddingBaseUrl: api.baseUrl,
        openaiEmbeddingModel: 'test-embed',
        openaiEmbeddingMaxRetries: 0,
      }),
    });
    owner = await signUp(t.app, `search-${driver}@example.com`);
    other = await signUp(t.app, `search-other-${driver}@example.com`);
    lexicalId = (await call('/v1/collections', { name: 'Garden' })).json<{ id: string }>().id;
    hybridId = (
      await call('/v1/collections', { name: 'Garden vectors', embedding: { provider: 'openai' } })
    ).json<{
      id: string;
    }>().id;
    for (const [i, text] of DOCS.entries()) {
      for (const collection of [lexicalId, hybridId]) {
        const res = await call(`/v1/collections/${collection}/documents`, {
          text,
          externalId: `doc-${i}`,
          metadata: { topic: i < 3 || i === 6 ? 'fruit' : 'other', n: i },
        });
        const doc = res.json<{ document: DocumentBody }>().document;
        if (collection === lexicalId) docIds.push(doc.id);
        await waitForStatus(t.app, owner, doc.id);
      }
    }
  });
  afterAll(async () => {
    await t.close();
    await api.close();
  });

  it('ranks lexically with exactly the scores of a textbook BM25 over the same tsvectors', async () => {
    const db = t.db.database.db;
    const { rows } = await sql<{ id: string; tsv: string }>`
      select id, tsv::text as tsv from chunks where collection_id = ${lexicalId}`.execute(db);
    const reference = new ReferenceBm25(
      rows.map((r) => ({ id: r.id, ...parseTsvector(r.tsv) })),
      { k1: 1.2, b: 0.75 },
    );
    for (const query of ['apple pruning', 'water for bees', 'winter pruning of apple trees', 'pears']) {
      const terms = await sql<{ lexeme: string }>`
        select distinct lexeme from unnest(to_tsvector('english', ${query}))`.execute(db);
      const expected = reference.score(terms.rows.map((r) => r.lexeme)).slice(0, 5);
      const hits = await search({ query, collections: [lexicalId], mode: 'lexical', k: 5, explain: true });
      expect(
        hits.map((h) => h.chunkId),
        query,
      ).toEqual(expected.map((e) => e.id));
      hits.forEach((h, i) => {
        expect(h.explain?.lexical).toBeCloseTo(expected[i]?.score ?? NaN, 9);
      });
    }
    // OR semantics: a chunk with only one of the terms is still found.
    const either = await search({
      query: 'grape tomatoes',
      collections: [lexicalId],
      mode: 'lexical',
      k: 10,
    });
    expect(either.map((h) => h.text).sort()).toEqual([DOCS[4], DOCS[5]].sort());
    expect(either[0]?.snippet).toMatch(/<mark>/);
    // Only stop words: no term to rank by, an empty answer (not an error).
    expect(await search({ query: 'of the and', collections: [lexicalId], mode: 'lexical', k: 5 })).toEqual(
      [],
    );
  });

  it('applies filters inside the query, before the limit', async () => {
    // "apple" ranks doc 6 and doc 0 first; with k = 1 and a filter only the filtered one may come back.
    const filtered = await search({
      query: 'apple',
      collections: [lexicalId],
      mode: 'lexical',
      k: 1,
      filters: { metadata: { topic: 'fruit' }, externalIds: ['doc-2'] },
    });
    expect(filtered.map((h) => h.documentId)).toEqual([docIds[2]]);
    const byDoc = await search({
      query: 'water',
      collections: [lexicalId],
      mode: 'lexical',
      k: 5,
      filters: { documentIds: [docIds[7] ?? ''] },
    });
    expect(byDoc.map((h) => h.documentId)).toEqual([docIds[7]]);
    const none = await search({
      query: 'apple',
      collections: [lexicalId],
      mode: 'lexical',
      k: 5,
      filters: { createdAfter: '2999-01-01T00:00:00Z' },
    });
    expect(none).toEqual([]);
  });

  it('searches vectors and fuses both lists in hybrid mode', async () => {
    // The fake model embeds identical text identically: the exact passage is the nearest neighbour.
    const exact = DOCS[3] ?? '';
    const vector = await search({
      query: exact,
      collections: [hybridId],
      mode: 'vector',
      k: 3,
      explain: true,
    });
    expect(vector[0]?.text).toBe(exact);
    expect(vector[0]?.explain?.vector).toBeCloseTo(1, 5);
    expect(vector[0]?.explain?.lexical).toBeNull();
    // The query vector is cached: asking again does not embed the question again.
    const embedded = api.inputs.filter((i) => i.text === exact).length;
    const again = await search({ query: exact, collections: [hybridId], mode: 'vector', k: 3 });
    expect(again.map((h) => h.chunkId)).toEqual(vector.map((h) => h.chunkId));
    expect(api.inputs.filter((i) => i.text === exact).length).toBe(embedded);
    const exactScan = await search({
      query: exact,
      collections: [hybridId],
      mode: 'vector',
      k: 3,
      exact: true,
    });
    expect(exactScan.map((h) => h.chunkId)).toEqual(vector.map((h) => h.chunkId));

    const hybrid = await search({ query: exact, collections: [hybridId], k: 5, explain: true });
    expect(hybrid[0]?.text).toBe(exact);
    expect(hybrid[0]?.explain).toMatchObject({ lexicalRank: 1, vectorRank: 1 });
    // Convex fusion (default): first in both lists = α · 1 + (1 − α) · 1.
    expect(hybrid[0]?.score).toBeCloseTo(1, 9);
    const rrf = await search({
      query: exact,
      collections: [hybridId],
      k: 5,
      explain: true,
      fusion: { method: 'rrf', k: 60 },
    });
    expect(rrf[0]?.text).toBe(exact);
    expect(rrf[0]?.score).toBeCloseTo(2 / 61, 9);
    // Parameters of the other method are refused, not ignored.
    const mixed = await call('/v1/search', { query: exact, fusion: { method: 'convex', k: 20 } });
    expect(mixed.statusCode).toBe(400);
    // Across collections (none named: all of the workspace): both copies of the passage are found;
    // the lexical-only collection's copy has only a BM25 rank to fuse.
    const both = await search({ query: exact, k: 5, mode: 'hybrid', explain: true });
    const copies = both.filter((h) => h.text === exact);
    expect(copies).toHaveLength(2);
    expect(copies.map((h) => h.explain?.vectorRank ?? null).sort()).toEqual([1, null]);
  });

  it('pages through results with a cursor bound to the request', async () => {
    const body = { query: 'apple pear water winter', collections: [lexicalId], mode: 'lexical' };
    const all = await search({ ...body, k: 20 });
    expect(all.length).toBeGreaterThan(4);
    const paged: Hit[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await call('/v1/search', { ...body, k: 2, ...(cursor ? { cursor } : {}) });
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json<{ data: Hit[]; nextCursor: string | null }>();
      expect(page.data.length).toBeLessThanOrEqual(2);
      paged.push(...page.data);
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    expect(paged.map((h) => h.chunkId)).toEqual(all.map((h) => h.chunkId));
    expect(pages).toBe(Math.ceil(all.length / 2));

    const first = (await call('/v1/search', { ...body, k: 2 })).json<{ nextCursor: string }>();
    // A cursor belongs to its request: another query, a forged or a garbled cursor is refused.
    for (const bad of [
      { ...body, query: 'tomatoes', k: 2, cursor: first.nextCursor },
      { ...body, k: 2, cursor: Buffer.from('{"o":2,"h":"x"}').toString('base64url') },
      { ...body, k: 2, cursor: 'not a cursor' },
    ]) {
      const res = await call('/v1/search', bad);
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json<{ code: string }>().code).toBe('validation_failed');
    }
  });

  it('reports where the query vector came from', async () => {
    const query = 'a question asked twice about bees';
    const meta = async (s = owner) => {
      const res = await call('/v1/search', { query, collections: [hybridId] }, s);
      return res.json<{ meta: { queryVectorCache: string | null } }>().meta.queryVectorCache;
    };
    expect(await meta()).toBe('miss');
    expect(await meta()).toBe('memory');
    const lexicalOnly = await call('/v1/search', { query, collections: [lexicalId] });
    expect(
      lexicalOnly.json<{ meta: { queryVectorCache: string | null } }>().meta.queryVectorCache,
    ).toBeNull();
  });

  it('ranks lexically while the query is being embedded, and reports each phase', async () => {
    const providers = new EmbeddingProviders(
      embeddingOptionsFromConfig(
        testConfig({
          LARDER_OPENAI_EMBEDDING_BASE_URL: api.baseUrl,
          LARDER_OPENAI_EMBEDDING_MODEL: 'test-embed',
          LARDER_OPENAI_EMBEDDING_MAX_RETRIES: '0',
        }),
      ),
    );
    const phases: SearchPhase[] = [];
    let lexicalDone: () => void = () => undefined;
    const lexicalFinished = new Promise<void>((resolve) => {
      lexicalDone = resolve;
    });
    const service = new SearchService(t.db.database.db, providers, {
      onPhase: (phase) => {
        phases.push(phase);
        if (phase === 'lexical') lexicalDone();
      },
    });
    const ws: WorkspaceContext = {
      id: owner.workspaceId,
      role: 'owner',
      permissions: new Set<Permission>(['search']),
    };
    // The provider answers only once the lexical ranking is done: a search that ranked lexically
    // after embedding would wait for itself (and the timeout would fail the test).
    api.hold(lexicalFinished);
    try {
      const result = await Promise.race([
        service.search(ws, {
          query: `pruning apple trees in winter ${randomUUID()}`,
          collections: [hybridId],
          mode: 'hybrid',
          k: 5,
        }),
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            reject(new Error('the lexical ranking waited for the embedding'));
          }, 10_000),
        ),
      ]);
      expect(result.hits.length).toBeGreaterThan(0);
      expect(result.hits.some((h) => h.scores.vector !== null)).toBe(true);
      expect(result.hits.some((h) => h.scores.lexical !== null)).toBe(true);
    } finally {
      api.hold(Promise.resolve());
      await providers.close();
    }
    expect(phases[0]).toBe('collections');
    expect(phases.indexOf('lexical')).toBeLessThan(phases.indexOf('embed'));
    expect(phases.slice(-2)).toEqual(['vector', 'hits']);
  });

  it('refuses bad requests and never reaches another workspace', async () => {
    expect((await call('/v1/search', { query: '' })).statusCode).toBe(400);
    expect((await call('/v1/search', { query: 'x', k: 1000 })).statusCode).toBe(400);
    const foreign = await call('/v1/search', { query: 'apple', collections: [lexicalId] }, other);
    expect(foreign.statusCode).toBe(404);
    expect(await search({ query: 'apple' }, other)).toEqual([]);
    const vectorless = await call('/v1/search', { query: 'apple', collections: [lexicalId], mode: 'vector' });
    expect(vectorless.statusCode).toBe(400);
  });
});

const redisUrl = inject('redisUrl');

describe.runIf(redisUrl !== null)('query vector cache (Redis)', () => {
  let api: EmbeddingsServer;
  let redis: Redis;
  let provider: EmbeddingProvider;

  beforeAll(async () => {
    api = await startEmbeddingsServer(384);
    redis = new Redis(redisUrl ?? '');
    const options = embeddingOptionsFromConfig(
      testConfig({
        LARDER_OPENAI_EMBEDDING_BASE_URL: api.baseUrl,
        LARDER_OPENAI_EMBEDDING_MODEL: 'cache-test',
        LARDER_OPENAI_EMBEDDING_MAX_RETRIES: '0',
      }),
    );
    const created = createEmbeddingProvider({ provider: 'openai' }, options);
    if (!created) throw new Error('no provider');
    provider = created;
  });
  afterAll(async () => {
    await provider.close();
    redis.disconnect();
    await api.close();
  });

  it('shares vectors between processes, per workspace, exactly as embedded', async () => {
    const query = `shared question ${randomUUID()}`;
    const [wsA, wsB] = [randomUUID(), randomUUID()];
    const first = await new QueryVectorCache(redis).get(wsA, provider, query);
    expect(first.cache).toBe('miss');
    // Another process (a new cache instance) finds it in Redis without calling the model.
    const requests = api.requests;
    const second = await new QueryVectorCache(redis).get(wsA, provider, query);
    expect(second.cache).toBe('redis');
    expect(api.requests).toBe(requests);
    // float32 round trip: what pgvector stores anyway.
    expect(second.vector).toEqual(Array.from(Float32Array.from(first.vector)));
    // Another workspace never sees it.
    expect((await new QueryVectorCache(redis).get(wsB, provider, query)).cache).toBe('miss');
  });

  it('embeds when Redis fails instead of failing the search', async () => {
    const broken = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    broken.on('error', () => undefined);
    const result = await new QueryVectorCache(broken).get(randomUUID(), provider, 'when redis is down');
    expect(result.cache).toBe('miss');
    expect(result.vector.length).toBe(384);
    broken.disconnect();
  });
});
