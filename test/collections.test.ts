/** Collections over HTTP, on both drivers: CRUD, validation, pagination, settings rules, cascades. */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { axisVector, createChunk, createDocument, embedChunk } from './helpers/factories.js';

type Session = SignedUp;
interface CollectionBody {
  id: string;
  name: string;
  textSearchConfig: string;
  chunking: { maxTokens: number; overlapTokens: number };
  embedding: { provider: string; model: string; dimensions: number } | null;
}

describe.each(drivers())('collections (%s)', (driver) => {
  let t: TestApp;
  let owner: Session;

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    payload?: object,
    s: Session = owner,
  ) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${s.token}`, 'x-workspace-id': s.workspaceId },
      ...(payload ? { payload } : {}),
    });

  beforeAll(async () => {
    t = await createTestApp(driver, { configure: fastAuth });
    owner = await signUp(t.app, `coll-${driver}@example.com`);
  });
  afterAll(() => t.close());

  it('creates with defaults and validates the text-search configuration against the server', async () => {
    const res = await call('POST', '/v1/collections', { name: 'Handbook' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      name: 'Handbook',
      textSearchConfig: 'english',
      chunking: { maxTokens: 400, overlapTokens: 50 },
      embedding: null,
      bm25: { k1: 1.2, b: 0.75 },
    });
    const german = await call('POST', '/v1/collections', { name: 'Handbuch', textSearchConfig: 'german' });
    expect(german.json<CollectionBody>().textSearchConfig).toBe('german');
    const klingon = await call('POST', '/v1/collections', { name: 'K', textSearchConfig: 'klingon' });
    expect(klingon.statusCode).toBe(400);
    expect(klingon.json()).toMatchObject({
      code: 'validation_failed',
      errors: [{ path: '/textSearchConfig' }],
    });
    const overlap = await call('POST', '/v1/collections', {
      name: 'O',
      chunking: { maxTokens: 100, overlapTokens: 60 },
    });
    expect(overlap.statusCode).toBe(400);
  });

  it('changes the text-search configuration only while the collection is empty', async () => {
    const created = await call('POST', '/v1/collections', { name: 'Language' });
    const id = created.json<CollectionBody>().id;
    const empty = await call('PATCH', `/v1/collections/${id}`, { textSearchConfig: 'simple' });
    expect(empty.json<CollectionBody>().textSearchConfig).toBe('simple');
    const added = await call('POST', `/v1/collections/${id}/documents`, { text: 'Indexed in simple.' });
    expect(added.statusCode, added.body).toBe(201);
    const refused = await call('PATCH', `/v1/collections/${id}`, { textSearchConfig: 'english' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'conflict' });
    // The same value is not a change.
    const same = await call('PATCH', `/v1/collections/${id}`, { textSearchConfig: 'simple' });
    expect(same.statusCode).toBe(200);
  });

  it('refuses duplicate names case-insensitively in a workspace', async () => {
    await call('POST', '/v1/collections', { name: 'Policies' });
    const dup = await call('POST', '/v1/collections', { name: 'POLICIES' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json()).toMatchObject({ code: 'conflict' });
  });

  it('pages through every collection exactly once', async () => {
    for (let i = 0; i < 5; i++) await call('POST', '/v1/collections', { name: `Page ${i}` });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: { id: string }[]; nextCursor: string | null } = (
        await call('GET', `/v1/collections?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ).json();
      seen.push(...page.data.map((c) => c.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from collections where workspace_id = ${owner.workspaceId}`.execute(
      t.db.database.db,
    );
    expect(seen.length).toBe(rows[0]!.n);
    expect((await call('GET', '/v1/collections?cursor=garbage')).statusCode).toBe(400);
  });

  it('discovers the embedding dimensions; a model change with documents queues a re-embed', async () => {
    const created = (
      await call('POST', '/v1/collections', { name: 'Embedded', embedding: { provider: 'local' } })
    ).json<CollectionBody>();
    expect(created.embedding).toEqual({ provider: 'local', model: 'use-lite', dimensions: 512 });
    const unknown = await call('POST', '/v1/collections', {
      name: 'Unknown model',
      embedding: { provider: 'local', model: 'bert-huge' },
    });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ code: 'embedding_provider_failed' });

    const reembedJobs = async () => {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from larder_jobs.job
        where name = 'collections.reembed' and data->>'collectionId' = ${created.id}`.execute(
        t.db.database.db,
      );
      return rows[0]?.n;
    };
    const lexical = await call('PATCH', `/v1/collections/${created.id}`, { embedding: null });
    expect(lexical.json()).toMatchObject({ embedding: null });
    expect(await reembedJobs()).toBe(0); // no documents: nothing to re-embed
    await call('PATCH', `/v1/collections/${created.id}`, { embedding: { provider: 'local' } });
    await createDocument(
      t.db.database.db,
      { userId: owner.userId, workspaceId: owner.workspaceId },
      created.id,
      'doc',
    );
    const same = await call('PATCH', `/v1/collections/${created.id}`, { embedding: { provider: 'local' } });
    expect(same.statusCode).toBe(200);
    expect(await reembedJobs()).toBe(0); // same model: nothing to do
    const none = await call('PATCH', `/v1/collections/${created.id}`, { embedding: { provider: 'none' } });
    expect(none.json()).toMatchObject({ embedding: null });
    expect(await reembedJobs()).toBe(1);
    const renamed = await call('PATCH', `/v1/collections/${created.id}`, {
      name: 'Embedded docs',
      chunking: { maxTokens: 300 },
    });
    expect(renamed.json()).toMatchObject({
      name: 'Embedded docs',
      chunking: { maxTokens: 300, overlapTokens: 50 },
    });
  });

  it('deletes a collection with its documents, blobs, chunks and embeddings: no rows left behind', async () => {
    const created = (
      await call('POST', '/v1/collections', {
        name: 'Doomed',
        embedding: { provider: 'local' },
      })
    ).json<CollectionBody>();
    const db = t.db.database.db;
    const doc = await createDocument(
      db,
      { userId: owner.userId, workspaceId: owner.workspaceId },
      created.id,
      'doomed doc',
    );
    const chunk = await createChunk(db, doc, 0, 'text to forget');
    await embedChunk(db, chunk, axisVector(3), 'use-lite');
    expect((await call('DELETE', `/v1/collections/${created.id}`)).statusCode).toBe(204);
    const counts = await sql<{ docs: number; blobs: number; chunks: number; embeddings: number }>`
      select (select count(*)::int from documents where collection_id = ${created.id}) as docs,
             (select count(*)::int from document_blobs where document_id = ${doc.id}) as blobs,
             (select count(*)::int from chunks where collection_id = ${created.id}) as chunks,
             (select count(*)::int from chunk_embeddings where collection_id = ${created.id}) as embeddings`.execute(
      db,
    );
    expect(counts.rows[0]).toEqual({ docs: 0, blobs: 0, chunks: 0, embeddings: 0 });
    expect((await call('GET', `/v1/collections/${created.id}`)).statusCode).toBe(404);
    expect((await call('DELETE', `/v1/collections/${created.id}`)).statusCode).toBe(404);
  });
});
