/**
 * The lexical index (postings lists in lexical_postings, chunk numbering in lexical_ranges, N and total
 * length in collection_stats) stays exactly what a from-scratch recomputation over the searchable
 * chunks gives, through everything that changes a collection: concurrent adds processed by several
 * workers, new versions, re-processing, failure, document and collection deletion, and compaction.
 * Both drivers, through the API and the real job pipeline.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DocumentJobPayload, ingestDocuments } from '../src/modules/documents/pipeline.js';
import { parseTsvector, ReferenceBm25 } from '../src/modules/search/eval/reference-bm25.js';
import { compactCollection } from '../src/modules/search/compaction.js';
import { COMPACTION_DELAY_SECONDS, requestCompaction } from '../src/modules/search/jobs.js';
import { chunkIds } from '../src/modules/search/lexical.js';
import { PostingsCache } from '../src/modules/search/postings-cache.js';
import { SearchService } from '../src/modules/search/service.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import type { Db } from '../src/platform/db/database.js';
import { rawRead, tenantRead, withTenant } from '../src/platform/db/tenant.js';
import type { LarderEvent } from '../src/platform/events/bus.js';
import type { BatchItem } from '../src/platform/jobs/define.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { silentLogger } from './helpers/config.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, upload, waitForStatus } from './helpers/documents.js';
import { jobDeps } from './helpers/jobs.js';

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

interface Drift {
  /** Postings a recomputation has and the index has not, and the reverse (live postings only). */
  missing: string[];
  extra: string[];
  total: number;
  /** Postings of dead ranges still in lists (hidden from search until compaction purges them). */
  dead: number;
  /** Inconsistencies of ranges, lists and statistics. */
  problems: string[];
  collections: number;
}

/**
 * Differences between the maintained index and a recomputation from the searchable chunks, in one
 * snapshot: every live posting decoded from the lists and mapped back to its chunk through the ranges.
 */
async function indexDrift(db: Db): Promise<Drift> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const { rows: expectedRows } = await sql<{ key: string }>`
        select c.collection_id || '|' || l.lexeme || '|' || c.id || '|' || greatest(cardinality(l.positions), 1)
               || '|' || c.lexeme_count as key
        from chunks c join documents d on d.id = c.document_id cross join lateral unnest(c.tsv) l
        where d.status in ('searchable', 'ready') and d.deleted_at is null`.execute(trx);
      const { rows: ranges } = await sql<{
        collection_id: string;
        workspace_id: string;
        base: number;
        chunk_count: number;
        document_id: string;
        live: boolean;
      }>`select collection_id, workspace_id, base::int as base, chunk_count, document_id, live
         from lexical_ranges order by collection_id, base`.execute(trx);
      const { rows: lists } = await sql<{
        collection_id: string;
        workspace_id: string;
        lexeme: string;
        postings: number;
        first_seq: number;
        last_seq: number;
        data: Uint8Array;
      }>`select collection_id, workspace_id, lexeme, postings, first_seq, last_seq, data from lexical_postings`.execute(
        trx,
      );
      const { rows: chunks } = await sql<{ id: string; document_id: string; ordinal: number }>`
        select id, document_id, ordinal from chunks`.execute(trx);
      const { rows: searchable } = await sql<{ id: string; collection_id: string; n: number }>`
        select d.id, d.collection_id, count(c.id)::int as n from documents d join chunks c on c.document_id = d.id
        where d.status in ('searchable', 'ready') and d.deleted_at is null group by d.id`.execute(trx);
      const { rows: stats } = await sql<{
        collection_id: string;
        expected: string;
        actual: string;
        next_seq: number;
      }>`
        with expected as (
          select c.collection_id, count(*)::bigint as n, sum(c.lexeme_count)::bigint as total
          from chunks c join documents d on d.id = c.document_id
          where d.status in ('searchable', 'ready') and d.deleted_at is null group by c.collection_id
        )
        select coalesce(e.collection_id, s.collection_id) as collection_id,
               coalesce(e.n, 0) || '/' || coalesce(e.total, 0) as expected,
               coalesce(s.chunk_count, 0) || '/' || coalesce(s.total_length, 0) as actual,
               coalesce(s.next_seq, 0)::int as next_seq
        from expected e full join collection_stats s on s.collection_id = e.collection_id`.execute(trx);

      const problems: string[] = [];
      for (const s of stats) if (s.expected !== s.actual) problems.push(`stats of ${s.collection_id}`);
      const chunkAt = new Map(chunks.map((c) => [`${c.document_id}|${c.ordinal}`, c.id]));
      // Exactly one live range per searchable document, as long as its chunks.
      const liveRanges = ranges.filter((r) => r.live);
      const expectedRanges = searchable.map((d) => `${d.collection_id}|${d.id}|${d.n}`).sort();
      const actualRanges = liveRanges
        .map((r) => `${r.collection_id}|${r.document_id}|${r.chunk_count}`)
        .sort();
      if (JSON.stringify(expectedRanges) !== JSON.stringify(actualRanges)) problems.push('live ranges');
      const byCollection = new Map<string, typeof ranges>();
      for (const r of ranges)
        byCollection.set(r.collection_id, [...(byCollection.get(r.collection_id) ?? []), r]);
      for (const [collection, own] of byCollection) {
        own.forEach((r, i) => {
          const next = own[i + 1];
          if (next && r.base + r.chunk_count > next.base)
            problems.push(`overlapping ranges in ${collection}`);
        });
        const last = own.at(-1);
        const nextSeq = stats.find((s) => s.collection_id === collection)?.next_seq ?? 0;
        if (last && last.base + last.chunk_count > nextSeq) problems.push(`numbering of ${collection}`);
      }
      const rangeOf = (collection: string, seq: number) =>
        byCollection.get(collection)?.find((r) => seq >= r.base && seq < r.base + r.chunk_count);

      const actual: string[] = [];
      let dead = 0;
      for (const list of lists) {
        if (list.data.byteLength !== 8 * list.postings) problems.push(`size of a list of ${list.lexeme}`);
        const view = new DataView(list.data.buffer, list.data.byteOffset, list.data.byteLength);
        let first = Infinity;
        let last = -Infinity;
        for (let at = 0; at < list.data.byteLength; at += 8) {
          const seq = view.getInt32(at);
          first = Math.min(first, seq);
          last = Math.max(last, seq);
          const range = rangeOf(list.collection_id, seq);
          if (!range) {
            problems.push(`posting ${seq} of ${list.lexeme} outside every range`);
            continue;
          }
          if (range.workspace_id !== list.workspace_id)
            problems.push(`workspace of a list of ${list.lexeme}`);
          if (!range.live) {
            dead++;
            continue;
          }
          const chunk = chunkAt.get(`${range.document_id}|${seq - range.base}`);
          actual.push(
            `${list.collection_id}|${list.lexeme}|${chunk}|${view.getInt16(at + 4)}|${view.getInt16(at + 6)}`,
          );
        }
        if (first !== list.first_seq || last !== list.last_seq)
          problems.push(`bounds of a list of ${list.lexeme}`);
      }
      const expected = expectedRows.map((r) => r.key);
      return {
        ...multisetDifference(expected, actual),
        total: expected.length,
        dead,
        problems,
        collections: stats.length,
      };
    });
}

function multisetDifference(expected: string[], actual: string[]) {
  const counts = new Map<string, number>();
  for (const key of expected) counts.set(key, (counts.get(key) ?? 0) + 1);
  const extra: string[] = [];
  for (const key of actual) {
    const n = counts.get(key) ?? 0;
    if (n === 0) extra.push(key);
    else counts.set(key, n - 1);
  }
  const missing = [...counts].flatMap(([key, n]) => Array.from({ length: n }, () => key));
  return { missing, extra };
}

/** The documents API called as `owner` (both read at call time: they are set in `beforeAll`). */
function documentsApi(app: () => TestApp, owner: () => SignedUp) {
  const call = (method: 'POST' | 'DELETE', url: string, payload?: object) =>
    app().app.inject({ method, url, headers: authHeaders(owner()), ...(payload ? { payload } : {}) });
  const add = async (collection: string, body: object) => {
    const res = await call('POST', `/v1/collections/${collection}/documents`, body);
    expect(res.statusCode, res.body).toBeLessThan(300);
    return res.json<{ document: DocumentBody }>().document;
  };
  return { call, add };
}

describe.each(drivers())('lexical index (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let collectionId: string;
  let otherCollectionId: string;
  const { call, add } = documentsApi(
    () => t,
    () => owner,
  );
  const expectExact = async () => {
    const drift = await indexDrift(t.db.database.db);
    expect(drift.total, 'the check is not vacuous').toBeGreaterThan(0);
    expect(drift.missing).toEqual([]);
    expect(drift.extra).toEqual([]);
    expect(drift.problems).toEqual([]);
    return drift;
  };
  /** The main collection's documents: id by external id. */
  const idsByExternal = async () => {
    const list = await t.app.inject({
      method: 'GET',
      url: `/v1/collections/${collectionId}/documents?limit=100`,
      headers: authHeaders(owner),
    });
    return new Map(list.json<{ data: DocumentBody[] }>().data.map((d) => [d.externalId ?? '', d.id]));
  };
  /** The owner, searching with the service directly. */
  const searcher = (): WorkspaceContext => ({
    id: owner.workspaceId,
    role: 'owner',
    permissions: new Set<Permission>(['search']),
  });

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
    const byExternal = await idsByExternal();
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

  it('numbers a document with its reservation when it fits, and under the lock when it does not', async () => {
    const db = t.db.database.db;
    const doc = await add(collectionId, { text: text(2001), externalId: 'r1' });
    expect((await waitForStatus(t.app, owner, doc.id)).status).toBe('ready');
    const live = async () => {
      const { rows } = await sql<{ base: number; n: number }>`
        select base::int as base, chunk_count as n from lexical_ranges where document_id = ${doc.id} and live`.execute(
        db,
      );
      expect(rows).toHaveLength(1);
      return rows[0] ?? { base: NaN, n: NaN };
    };
    const nextSeq = async () =>
      (
        await sql<{ n: number }>`select next_seq::int as n from collection_stats
                                 where collection_id = ${collectionId}`.execute(db)
      ).rows[0]?.n ?? NaN;
    const reserve = (n: number) =>
      withTenant(db, owner.workspaceId, async (trx) => {
        const { rows } = await sql<{ first: number }>`
          select larder_lexical_reserve(${collectionId}::uuid, ${owner.workspaceId}::uuid, ${n})::int as first`.execute(
          trx,
        );
        return rows[0]?.first ?? NaN;
      });
    // Out of the index and back in, in one transaction, indexed with this reservation setting.
    const reindex = (reservation: string) =>
      withTenant(db, owner.workspaceId, async (trx) => {
        await trx.updateTable('documents').set({ status: 'parsing' }).where('id', '=', doc.id).execute();
        await sql`select set_config('larder.lexical_reservation', ${reservation}, true)`.execute(trx);
        await trx.updateTable('documents').set({ status: 'ready' }).where('id', '=', doc.id).execute();
      });
    const { base: ingested, n } = await live();

    // A reservation that fits is used as it is.
    const first = await reserve(n);
    await reindex(`${doc.id}:${first}:${n}`);
    expect((await live()).base).toBe(first);

    // Ones that do not fit are ignored: the trigger takes fresh numbers at the end of the collection.
    const other = await reserve(n + 1);
    const misfits = [
      `${doc.id}:${ingested}:${n}`, // overlaps a range (the dead one of the first ingest)
      `${doc.id}:${other}:${n + 1}`, // another chunk count
      `${collectionId}:${other}:${n}`, // another document
      `${doc.id}:${(await nextSeq()) + 1000}:${n}`, // numbers never handed out
      `${doc.id}:-5:${n}`,
      'nonsense',
    ];
    for (const reservation of misfits) {
      const end = await nextSeq();
      await reindex(reservation);
      expect((await live()).base, reservation).toBe(end);
    }
    await expectExact();
  });

  it('maps sequence numbers to chunks through live ranges only', async () => {
    const db = t.db.database.db;
    const doc = await add(collectionId, { text: text(3001, 900), externalId: 'm1' });
    expect((await waitForStatus(t.app, owner, doc.id)).status).toBe('ready');
    const range = async () => {
      const { rows } = await sql<{ base: number; n: number }>`
        select base::int as base, chunk_count as n from lexical_ranges where document_id = ${doc.id} and live`.execute(
        db,
      );
      return rows[0] ?? { base: NaN, n: 0 };
    };
    const numbers = (r: { base: number; n: number }) => Array.from({ length: r.n }, (_, i) => r.base + i);
    const idsOf = async (seqs: number[]) => {
      const [rows] = await tenantRead(db, owner.workspaceId, () => [chunkIds(collectionId, seqs)]);
      return rows.sort((a, b) => a.seq - b.seq).map((r) => r.id);
    };
    const { rows: chunks } = await sql<{ id: string }>`
      select id from chunks where document_id = ${doc.id} order by ordinal`.execute(db);
    const before = await range();
    expect(before.n, 'several chunks').toBeGreaterThan(1);
    expect(await idsOf(numbers(before))).toEqual(chunks.map((c) => c.id));

    // Out of the index and back in: the same chunks get new numbers, the old range is dead. A ranking
    // that read the old numbers before this must not map them to the chunks now at those ordinals.
    await withTenant(db, owner.workspaceId, async (trx) => {
      await trx.updateTable('documents').set({ status: 'parsing' }).where('id', '=', doc.id).execute();
      await trx.updateTable('documents').set({ status: 'ready' }).where('id', '=', doc.id).execute();
    });
    const after = await range();
    expect(after.base).toBeGreaterThanOrEqual(before.base + before.n);
    expect(await idsOf(numbers(after))).toEqual(chunks.map((c) => c.id));
    expect(await idsOf(numbers(before))).toEqual([]);
    // Once compaction has purged the dead range, the numbers find the range before it: still nothing.
    await compactCollection(db, owner.workspaceId, collectionId, { fanIn: 2 });
    const { rows: dead } = await sql<{ n: number }>`
      select count(*)::int as n from lexical_ranges where document_id = ${doc.id} and not live`.execute(db);
    expect(dead[0]?.n).toBe(0);
    expect(await idsOf(numbers(before))).toEqual([]);
    await expectExact();
  });

  it('compacts to the same rankings: deleted postings purged, new lists merged by size tier', async () => {
    const db = t.db.database.db;
    const ws = searcher();
    const service = new SearchService(db, undefined);
    const queries = [
      'apple pear plum',
      'apple cider unique7word',
      'orchard winter harvest honey',
      'bee hive',
    ];
    const rank = () =>
      Promise.all(
        queries.map((query) =>
          service.search(ws, { query, collections: [collectionId], mode: 'lexical', k: 10 }),
        ),
      );
    const listsOf = async (lexeme: string) =>
      (
        await sql<{ n: number }>`select count(*)::int as n from lexical_postings
                                 where collection_id = ${collectionId} and lexeme = ${lexeme}`.execute(db)
      ).rows[0]?.n;
    // A deletion just now: its postings are hidden from search but still in the lists.
    const d6 = (await idsByExternal()).get('d6');
    expect((await call('DELETE', `/v1/documents/${d6}`)).statusCode).toBe(204);
    expect(await listsOf('unique6word')).toBe(1);
    const hidden = await service.search(ws, {
      query: 'unique6word',
      collections: [collectionId],
      mode: 'lexical',
      k: 5,
    });
    expect(hidden.hits).toEqual([]);
    const before = await rank();
    expect((await indexDrift(db)).dead).toBeGreaterThan(0);

    const result = await compactCollection(db, owner.workspaceId, collectionId, { fanIn: 2 });
    expect(result.rangesPurged).toBeGreaterThan(0);
    expect(result.postingsPurged).toBeGreaterThan(0);

    const drift = await expectExact();
    expect(drift.dead).toBe(0);
    expect(await listsOf('unique6word')).toBe(0);
    const { rows: leftover } = await sql<{ dead: number; unmerged: number }>`
      select (select count(*)::int from lexical_ranges where collection_id = ${collectionId} and not live) as dead,
             (select count(*)::int from lexical_postings where collection_id = ${collectionId} and not merged) as unmerged
    `.execute(db);
    expect(leftover[0]).toEqual({ dead: 0, unmerged: 0 });
    // Size tiers: fewer than fanIn (2) lists per lexeme and tier ⌊log₄ postings⌋.
    const { rows: crowded } = await sql<{ lexeme: string }>`
      select lexeme from lexical_postings where collection_id = ${collectionId}
      group by lexeme, floor(log(4, postings)) having count(*) >= 2`.execute(db);
    expect(crowded).toEqual([]);
    const { rows: counts } = await sql<{ lists: number; lexemes: number }>`
      select count(*)::int as lists, count(distinct lexeme)::int as lexemes
      from lexical_postings where collection_id = ${collectionId}`.execute(db);
    expect(counts[0]?.lists).toBeLessThan(2 * (counts[0]?.lexemes ?? 0));

    // The same rankings, to the last bit of the scores (the same sums, maybe in another order).
    const after = await rank();
    after.forEach((result, i) => {
      expect(result.hits.length).toBeGreaterThan(0);
      expect(result.hits.map((h) => h.chunkId)).toEqual(before[i]?.hits.map((h) => h.chunkId));
      result.hits.forEach((h, j) => {
        expect(h.scores.lexical).toBeCloseTo(before[i]?.hits[j]?.scores.lexical ?? NaN, 12);
      });
    });
    // Nothing left to do: a second run changes nothing.
    expect(await compactCollection(db, owner.workspaceId, collectionId, { fanIn: 2 })).toMatchObject({
      rangesPurged: 0,
      listsWritten: 0,
    });
  });

  it('ranks the same through the postings cache, which follows list rewrites and keeps to its collection', async () => {
    const db = t.db.database.db;
    const ws = searcher();
    const cache = new PostingsCache(64 * 1024 * 1024);
    const cached = new SearchService(db, undefined, { postingsCache: cache });
    const plain = new SearchService(db, undefined);
    const queries = ['apple pear plum', 'orchard winter harvest honey', 'bee hive cider unique9word'];
    // As many candidates as results: a stale list's extra postings would take places in the top 10.
    const search = (service: SearchService, query: string) =>
      service.search(ws, { query, collections: [collectionId], mode: 'lexical', k: 10, candidates: 10 });
    const expectSame = async (service: SearchService) => {
      let cachedLists = 0;
      for (const query of queries) {
        const [got, want] = [await search(service, query), await search(plain, query)];
        expect(want.hits.length).toBeGreaterThan(0);
        expect(got.hits.map((h) => h.chunkId)).toEqual(want.hits.map((h) => h.chunkId));
        got.hits.forEach((h, i) => {
          expect(h.scores.lexical).toBe(want.hits[i]?.scores.lexical);
        });
        cachedLists += got.lexicalWork.reduce((n, w) => n + w.cached, 0);
      }
      return cachedLists;
    };
    // Cold, then warm: the second round sends no list again.
    expect(await expectSame(cached)).toBe(0);
    expect(cache.size).toBeGreaterThan(0);
    const warm = await expectSame(cached);
    expect(warm).toBeGreaterThan(0);

    // A purge rewrites lists in place (same ids, new versions): the stale copies are not used.
    const d9 = (await idsByExternal()).get('d9');
    expect((await call('DELETE', `/v1/documents/${d9}`)).statusCode).toBe(204);
    const purged = await compactCollection(db, owner.workspaceId, collectionId, { fanIn: 1000 });
    expect(purged).toMatchObject({ listsWritten: 0 });
    expect(purged.postingsPurged).toBeGreaterThan(0);
    const rewritten = await expectSame(cached);
    expect(rewritten).toBeLessThan(warm);
    expect(await expectSame(cached)).toBeGreaterThan(rewritten);

    // Another collection's list, planted under this collection's lexeme, is never used: only rows the
    // ranking's statement returns (this collection's, under row-level security) are read from the cache.
    const [other] = await tenantRead(db, owner.workspaceId, () => [
      rawRead(sql<{ id: string; version: string }>`
        select p.id::text as id, p.xmin::text || ':' || p.postings as version from lexical_postings p
        where p.collection_id = ${otherCollectionId} and p.lexeme = 'appl' limit 1`),
    ]);
    const planted = other[0];
    expect(planted).toBeDefined();
    cache.set(collectionId, 'appl', planted?.id ?? '', planted?.version ?? '', Buffer.alloc(8 * 1000, 7));
    await expectSame(cached);

    // A list evicted between choosing what to send and reading the answer is read again.
    class Forgetful extends PostingsCache {
      override get(): undefined {
        return undefined;
      }
    }
    const forgetful = new Forgetful(64 * 1024 * 1024);
    const once = new SearchService(db, undefined, { postingsCache: forgetful });
    expect(await expectSame(once)).toBe(0);
    expect(await expectSame(once)).toBeGreaterThan(0);
  });

  it('requests one compaction per collection while the one it created is still waiting', async () => {
    const collection = (await call('POST', '/v1/collections', { name: 'Debounce' })).json<{ id: string }>()
      .id;
    const target = { workspaceId: owner.workspaceId, collectionId: collection };
    const send = vi.spyOn(t.jobs, 'send');
    try {
      const id = await requestCompaction(t.jobs, target);
      expect(id).not.toBeNull();
      // Within the debounce window: skipped in the process, no round trip.
      expect(await requestCompaction(t.jobs, target)).toBeNull();
      expect(await requestCompaction(t.jobs, target)).toBeNull();
      expect(send).toHaveBeenCalledTimes(1);
    } finally {
      send.mockRestore();
    }
    // What makes skipping safe: the job created cannot start before the delay, so it will see every
    // ingest committed before the skipped requests.
    const { rows } = await sql<{ n: number; delay: number }>`
      select count(*)::int as n, min(extract(epoch from start_after - created_on))::float8 as delay
      from larder_jobs.job where name = 'search.compact' and data->>'collectionId' = ${collection}`.execute(
      t.db.database.db,
    );
    expect(rows[0]?.n).toBe(1);
    expect(rows[0]?.delay).toBeGreaterThanOrEqual(COMPACTION_DELAY_SECONDS - 1);
  });

  it('matches after a collection is deleted', async () => {
    const deleted = await call('DELETE', `/v1/collections/${otherCollectionId}`);
    expect(deleted.statusCode, deleted.body).toBe(204);
    const drift = await expectExact();
    expect(drift.collections).toBe(1);
    const left = await sql<{ n: number }>`
      select (select count(*)::int from lexical_postings where collection_id = ${otherCollectionId})
           + (select count(*)::int from lexical_ranges where collection_id = ${otherCollectionId}) as n`.execute(
      t.db.database.db,
    );
    expect(left.rows[0]?.n).toBe(0);
  });
});

/**
 * The batched ingest (documents.ingest runs up to 64 waiting jobs at once, pipeline.ts
 * `ingestDocuments`): one statement indexes the batch, so a lexeme's postings of every document of the
 * batch land in one list, and each job still settles on its own. Called directly, with no worker
 * running, so the test decides what is in the batch and what happens between its steps.
 */
describe.each(drivers())('lexical index, batched ingest (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  /** Called with every event the batch publishes (the steps between its transactions). */
  let onEvent: (event: LarderEvent) => Promise<void> = () => Promise.resolve();
  const { call, add } = documentsApi(
    () => t,
    () => owner,
  );
  const items = (docs: DocumentBody[], lastAttempt = false): BatchItem<DocumentJobPayload>[] => {
    const deps = jobDeps(t.db.config, t.db.database, silentLogger, {
      publish: (event) => onEvent(event),
      subscribe: () => () => undefined,
      close: () => Promise.resolve(),
    });
    return docs.map((d) => ({
      payload: { workspaceId: owner.workspaceId, documentId: d.id, version: d.version },
      ctx: {
        jobId: `test-${d.id}`,
        retryCount: lastAttempt ? 4 : 0,
        lastAttempt,
        log: silentLogger,
        deps,
        queue: t.jobs,
        signal: new AbortController().signal,
      },
    }));
  };
  const statusOf = async (id: string) =>
    await t.db.database.db
      .selectFrom('documents')
      .select(['status', 'version'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  beforeAll(async () => {
    t = await createTestApp(driver, { configure: fastAuth });
    owner = await signUp(t.app, `lexical-batch-${driver}@example.com`);
  });
  afterAll(async () => {
    await t.close();
  });

  it('indexes a batch in shared lists, exactly, while one document is deleted, one re-queued and one fails', async () => {
    const db = t.db.database.db;
    const collection = (await call('POST', '/v1/collections', { name: 'Batch' })).json<{ id: string }>().id;
    const fine = await Promise.all(
      Array.from({ length: 5 }, (_, i) => add(collection, { text: text(100 + i), externalId: `b${i}` })),
    );
    const deleted = await add(collection, { text: text(200), externalId: 'deleted' });
    const requeued = await add(collection, { text: text(201), externalId: 'requeued' });
    const corrupt = await upload(t.app, owner, collection, {
      filename: 'broken.pdf',
      data: '%PDF-1.7\n garbage that is no pdf',
    });
    expect(corrupt.statusCode, corrupt.body).toBe(201);
    const broken = corrupt.json<{ document: DocumentBody }>().document;
    // Between the claim and the chunks: one document is deleted, another gets a new version.
    let newVersion: DocumentBody | undefined;
    onEvent = async (event) => {
      if (event.type !== 'document.status_changed' || event.status !== 'parsing') return;
      if (event.documentId === deleted.id)
        expect((await call('DELETE', `/v1/documents/${deleted.id}`)).statusCode).toBe(204);
      if (event.documentId === requeued.id)
        newVersion = await add(collection, { text: text(301), externalId: 'requeued' });
    };
    const batch = [...fine, deleted, requeued, broken];
    const results = await ingestDocuments(items(batch));
    onEvent = () => Promise.resolve();

    for (const result of results.slice(0, 5))
      expect(result).toMatchObject({ status: 'fulfilled', value: { status: 'ready' } });
    expect(results.slice(5)).toEqual([
      { status: 'fulfilled', value: { skipped: 'stale' } },
      { status: 'fulfilled', value: { skipped: 'stale' } },
      { status: 'fulfilled', value: { failed: 'corrupt' } },
    ]);
    for (const d of fine) expect((await statusOf(d.id)).status).toBe('ready');
    expect(await statusOf(requeued.id)).toEqual({ status: 'queued', version: requeued.version + 1 });
    expect((await statusOf(broken.id)).status).toBe('failed');
    await expectExact(t);
    // One list per lexeme for the whole batch: 'appl' (apple) occurs in every document of it.
    const { rows } = await sql<{ lists: number; postings: number; chunks: number }>`
      select (select count(*)::int from lexical_postings where collection_id = ${collection} and lexeme = 'appl') as lists,
             (select sum(postings)::int from lexical_postings where collection_id = ${collection} and lexeme = 'appl') as postings,
             (select count(*)::int from chunks c join documents d on d.id = c.document_id
              where d.collection_id = ${collection} and d.status = 'ready' and c.tsv @@ 'appl'::tsquery) as chunks`.execute(
      db,
    );
    expect(rows[0]?.lists).toBe(1);
    expect(rows[0]?.postings).toBe(rows[0]?.chunks);
    expect(rows[0]?.postings).toBeGreaterThanOrEqual(fine.length);

    // The new version, alone in its batch, and the deleted document's dead range purged later: exact.
    expect(newVersion).toBeDefined();
    const [again] = await ingestDocuments(items([newVersion!]));
    expect(again).toMatchObject({ status: 'fulfilled', value: { status: 'ready' } });
    await expectExact(t);
  });

  it('holds at most batchBytes of documents in memory together; the rest are ingested one by one', async () => {
    const db = t.db.database.db;
    const collection = (await call('POST', '/v1/collections', { name: 'Budget' })).json<{ id: string }>().id;
    const docs = await Promise.all(
      Array.from({ length: 4 }, (_, i) => add(collection, { text: text(600 + i), externalId: `m${i}` })),
    );
    const sizes = await db
      .selectFrom('documents')
      .select(['id', 'bytes'])
      .where('collection_id', '=', collection)
      .execute();
    const bytes = new Map(sizes.map((d) => [d.id, d.bytes ?? 0]));
    // Room for the first two documents only.
    const budget = (bytes.get(docs[0]!.id) ?? 0) + (bytes.get(docs[1]!.id) ?? 0);
    const results = await ingestDocuments(items(docs), { batchBytes: budget });
    for (const result of results)
      expect(result).toMatchObject({ status: 'fulfilled', value: { status: 'ready' } });
    await expectExact(t);
    // 'appl' (apple) is in every document: one list for the two that shared a batch, one each for the others.
    const { rows } = await sql<{ lists: number }>`
      select count(*)::int as lists from lexical_postings where collection_id = ${collection} and lexeme = 'appl'`.execute(
      db,
    );
    expect(rows[0]?.lists).toBe(3);
  });

  it('ingests one by one when the shared transaction fails, so one bad document fails alone', async () => {
    const db = t.db.database.db;
    const good = (await call('POST', '/v1/collections', { name: 'Good' })).json<{ id: string }>().id;
    const bad = (await call('POST', '/v1/collections', { name: 'Bad' })).json<{ id: string }>().id;
    const docs = [
      await add(good, { text: text(400), externalId: 'g0' }),
      await add(bad, { text: text(401), externalId: 'x0' }),
      await add(good, { text: text(402), externalId: 'g1' }),
    ];
    // A text-search configuration that no longer exists: inserting this collection's chunks fails.
    await sql`update collections set text_search_config = 'no_such_config' where id = ${bad}`.execute(db);
    const results = await ingestDocuments(items(docs));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await statusOf(docs[0]?.id ?? '')).status).toBe('ready');
    expect((await statusOf(docs[2]?.id ?? '')).status).toBe('ready');
    // Not lost: still in flight, its job retried (and on its last attempt marked failed, not kept).
    expect((await statusOf(docs[1]?.id ?? '')).status).toBe('parsing');
    await expectExact(t);
    const [last] = await ingestDocuments(items([docs[1]!], true));
    expect(last?.status).toBe('rejected');
    expect((await statusOf(docs[1]?.id ?? '')).status).toBe('failed');
    await expectExact(t);
  });

  it('numbers each document of a multi-document reservation with its own entry', async () => {
    const db = t.db.database.db;
    const collection = (await call('POST', '/v1/collections', { name: 'Reserved' })).json<{ id: string }>()
      .id;
    const docs = [
      await add(collection, { text: text(500), externalId: 'r0' }),
      await add(collection, { text: text(501), externalId: 'r1' }),
    ];
    const results = await ingestDocuments(items(docs));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const ranges = async () =>
      (
        await sql<{ document_id: string; base: number; n: number }>`
          select document_id, base::int as base, chunk_count as n from lexical_ranges
          where collection_id = ${collection} and live order by base`.execute(db)
      ).rows;
    const before = await ranges();
    expect(before).toHaveLength(2);
    const reserved = await withTenant(db, owner.workspaceId, async (trx) => {
      const total = before.reduce((s, r) => s + r.n, 0);
      const { rows } = await sql<{ first: number }>`
        select larder_lexical_reserve(${collection}::uuid, ${owner.workspaceId}::uuid, ${total})::int as first`.execute(
        trx,
      );
      return rows[0]?.first ?? NaN;
    });
    // Both out of the index and back in with one statement each, the second document listed first.
    const [a, b] = before as [(typeof before)[0], (typeof before)[0]];
    await withTenant(db, owner.workspaceId, async (trx) => {
      const ids = [a.document_id, b.document_id];
      await trx.updateTable('documents').set({ status: 'parsing' }).where('id', 'in', ids).execute();
      await sql`select set_config('larder.lexical_reservation',
                ${`${b.document_id}:${reserved}:${b.n},${a.document_id}:${reserved + b.n}:${a.n}`}, true)`.execute(
        trx,
      );
      await trx.updateTable('documents').set({ status: 'ready' }).where('id', 'in', ids).execute();
    });
    expect(await ranges()).toEqual([
      { document_id: b.document_id, base: reserved, n: b.n },
      { document_id: a.document_id, base: reserved + b.n, n: a.n },
    ]);
    await expectExact(t);
  });
});

async function expectExact(t: TestApp) {
  const drift = await indexDrift(t.db.database.db);
  expect(drift.total, 'the check is not vacuous').toBeGreaterThan(0);
  expect(drift.missing).toEqual([]);
  expect(drift.extra).toEqual([]);
  expect(drift.problems).toEqual([]);
  return drift;
}
