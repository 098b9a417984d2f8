/**
 * The lexical index (postings in chunk_terms, N and total length in collection_stats) stays exactly
 * what a from-scratch recomputation over the searchable chunks gives, through everything that changes
 * a collection: concurrent adds processed by several workers, new versions, re-processing, failure,
 * document and collection deletion. Both drivers, through the API and the real job pipeline.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTsvector, ReferenceBm25 } from '../src/modules/search/eval/reference-bm25.js';
import { SearchService } from '../src/modules/search/service.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import type { Db } from '../src/platform/db/database.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, waitForStatus } from './helpers/documents.js';

const WORDS =
  'apple pear plum orchard prune graft blossom bee hive honey soil compost water root leaf branch winter summer harvest cider'.split(
    ' ',
  );

/** Deterministic pseudo-text: documents share common words and differ in rare ones. */
function text(seed: number, words = 60): string {
  let x = seed * 7919 + 13;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    x = (x * 48271) % 2147483647;
    // Squared index: low words are common, high ones rare (a rough Zipf).
    const r = (x % 1000) / 1000;
    out.push(WORDS[Math.floor(r * r * WORDS.length)] ?? 'apple');
  }
  return `${out.join(' ')}. Note ${seed}: unique${seed}word.`;
}

/** Differences between the maintained index and a recomputation from the searchable chunks. */
async function indexDrift(db: Db) {
  const { rows: postings } = await sql<{ missing: number; extra: number; total: number }>`
    with expected as (
      select c.workspace_id, c.collection_id, l.lexeme, c.id as chunk_id,
             greatest(cardinality(l.positions), 1) as tf, c.lexeme_count as length
      from chunks c join documents d on d.id = c.document_id cross join lateral unnest(c.tsv) l
      where d.status in ('searchable', 'ready') and d.deleted_at is null
    ),
    actual as (select workspace_id, collection_id, lexeme, chunk_id, tf, length from chunk_terms)
    select (select count(*)::int from (select * from expected except all select * from actual) x) as missing,
           (select count(*)::int from (select * from actual except all select * from expected) x) as extra,
           (select count(*)::int from expected) as total`.execute(db);
  const { rows: stats } = await sql<{ collection_id: string; expected: string; actual: string }>`
    with expected as (
      select c.collection_id, count(*)::bigint as n, sum(c.lexeme_count)::bigint as total
      from chunks c join documents d on d.id = c.document_id
      where d.status in ('searchable', 'ready') and d.deleted_at is null group by c.collection_id
    )
    select coalesce(e.collection_id, s.collection_id) as collection_id,
           coalesce(e.n, 0) || '/' || coalesce(e.total, 0) as expected,
           coalesce(s.chunk_count, 0) || '/' || coalesce(s.total_length, 0) as actual
    from expected e full join collection_stats s on s.collection_id = e.collection_id`.execute(db);
  return {
    postings: postings[0],
    stats: stats.filter((s) => s.expected !== s.actual),
    collections: stats.length,
  };
}

describe.each(drivers())('lexical index (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let collectionId: string;
  let otherCollectionId: string;
  const call = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: authHeaders(owner), ...(payload ? { payload } : {}) });
  const add = async (collection: string, body: object) => {
    const res = await call('POST', `/v1/collections/${collection}/documents`, body);
    expect(res.statusCode, res.body).toBeLessThan(300);
    return res.json<{ document: DocumentBody }>().document;
  };
  const expectExact = async () => {
    const drift = await indexDrift(t.db.database.db);
    expect(drift.postings?.total, 'the check is not vacuous').toBeGreaterThan(0);
    expect(drift.postings).toMatchObject({ missing: 0, extra: 0 });
    expect(drift.stats).toEqual([]);
    return drift;
  };

  beforeAll(async () => {
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({ ...fastAuth(c), jobConcurrency: 4 }),
    });
    owner = await signUp(t.app, `lexical-index-${driver}@example.com`);
    collectionId = (await call('POST', '/v1/collections', { name: 'Orchard' })).json<{ id: string }>().id;
    otherCollectionId = (await call('POST', '/v1/collections', { name: 'Other' })).json<{ id: string }>().id;
  });
  afterAll(async () => {
    await t.close();
  });

  it('matches a recomputation after concurrent adds processed by several workers', async () => {
    const docs = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        add(i % 4 === 0 ? otherCollectionId : collectionId, { text: text(i), externalId: `d${i}` }),
      ),
    );
    for (const doc of docs) expect((await waitForStatus(t.app, owner, doc.id)).status).toBe('ready');
    const drift = await expectExact();
    expect(drift.collections).toBe(2);
  });

  it('matches after new versions, re-processing, failure and deletes', async () => {
    // A new version of d1 (re-queued, re-ingested), d2 re-processed, d3 deleted, d5 failed.
    const updated = await add(collectionId, { text: text(1001), externalId: 'd1' });
    const list = await t.app.inject({
      method: 'GET',
      url: `/v1/collections/${collectionId}/documents?limit=100`,
      headers: authHeaders(owner),
    });
    const byExternal = new Map(
      list.json<{ data: DocumentBody[] }>().data.map((d) => [d.externalId ?? '', d.id]),
    );
    const reprocess = await call('POST', `/v1/documents/${byExternal.get('d2')}/reprocess`);
    expect(reprocess.statusCode, reprocess.body).toBe(202);
    expect((await call('DELETE', `/v1/documents/${byExternal.get('d3')}`)).statusCode).toBe(204);
    // What the dead-letter handler does when a searchable document's retries are spent.
    await t.db.database.db
      .updateTable('documents')
      .set({ status: 'failed', error: 'test' })
      .where('id', '=', byExternal.get('d5') ?? '')
      .execute();
    await waitForStatus(t.app, owner, updated.id);
    await waitForStatus(t.app, owner, byExternal.get('d2') ?? '');
    await expectExact();
    // The failed document's terms are gone from the index: its unique word finds nothing.
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/search',
      headers: authHeaders(owner),
      payload: { query: 'unique5word', collections: [collectionId], mode: 'lexical' },
    });
    expect(res.json<{ data: unknown[] }>().data).toEqual([]);
  });

  it('ranks with the statistics of the searchable chunks only (reference BM25)', async () => {
    const db = t.db.database.db;
    const { rows } = await sql<{ id: string; tsv: string }>`
      select c.id, c.tsv::text as tsv from chunks c join documents d on d.id = c.document_id
      where c.collection_id = ${collectionId} and d.status in ('searchable', 'ready')`.execute(db);
    const reference = new ReferenceBm25(
      rows.map((r) => ({ id: r.id, ...parseTsvector(r.tsv) })),
      { k1: 1.2, b: 0.75 },
    );
    const query = 'pruning the plum orchard in winter';
    const terms = await sql<{ lexeme: string }>`
      select distinct lexeme from unnest(to_tsvector('english', ${query}))`.execute(db);
    const expected = reference.score(terms.rows.map((r) => r.lexeme)).slice(0, 8);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/search',
      headers: authHeaders(owner),
      payload: { query, collections: [collectionId], mode: 'lexical', k: 8, explain: true },
    });
    const hits = res.json<{ data: { chunkId: string; explain: { lexical: number } }[] }>().data;
    expect(hits.map((h) => h.chunkId)).toEqual(expected.map((e) => e.id));
    hits.forEach((h, i) => {
      expect(h.explain.lexical).toBeCloseTo(expected[i]?.score ?? NaN, 9);
    });
  });

  it('prunes with MaxScore to exactly the full plan’s results', async () => {
    const db = t.db.database.db;
    const ws: WorkspaceContext = {
      id: owner.workspaceId,
      role: 'owner',
      permissions: new Set<Permission>(['search']),
    };
    const full = new SearchService(db, undefined);
    // Every query with several terms tries the pruned plan: one essential term, few completions.
    const pruned = new SearchService(db, undefined, {
      lexical: { pruneAbove: 0, commonBoundShare: 10, minCommonPostings: 0, completed: 3 },
    });
    const plans: string[] = [];
    const queries = [
      'apple pear plum',
      'apple cider unique7word',
      'orchard winter harvest honey',
      'bee hive unique11word apple',
      'apple',
    ];
    for (const query of queries) {
      for (const k of [1, 3, 10]) {
        const request = { query, collections: [collectionId], mode: 'lexical' as const, k, candidates: k };
        const expected = await full.search(ws, request);
        const actual = await pruned.search(ws, request);
        plans.push(...actual.lexicalPlans);
        expect(
          actual.hits.map((h) => h.chunkId),
          `${query} k=${k}`,
        ).toEqual(expected.hits.map((h) => h.chunkId));
        // The same sums, added in another order.
        actual.hits.forEach((h, i) => {
          expect(h.scores.lexical).toBeCloseTo(expected.hits[i]?.scores.lexical ?? NaN, 12);
        });
      }
    }
    // Both plans were exercised: pruning answered some queries, others fell back to the full plan.
    expect(plans).toContain('pruned');
    expect(plans).toContain('full');
    // The rare term decides the top: the pruned plan answers without falling back.
    const top = await pruned.search(ws, {
      query: 'apple cider unique7word',
      collections: [collectionId],
      mode: 'lexical',
      k: 1,
      candidates: 1,
    });
    expect(top.lexicalPlans).toEqual(['pruned']);
    expect(top.hits[0]?.text).toContain('unique7word');
  });

  it('matches after a collection is deleted', async () => {
    const deleted = await call('DELETE', `/v1/collections/${otherCollectionId}`);
    expect(deleted.statusCode, deleted.body).toBe(204);
    const drift = await expectExact();
    expect(drift.collections).toBe(1);
    const left = await sql<{ n: number }>`
      select count(*)::int as n from chunk_terms where collection_id = ${otherCollectionId}`.execute(
      t.db.database.db,
    );
    expect(left.rows[0]?.n).toBe(0);
  });
});
