/**
 * The embedding phase end to end, on both drivers: searchable → ready with one vector per chunk,
 * only changed chunks re-embedded (embedding cache), model change re-embeds, provider failures,
 * status events in order, and the local model for real.
 */
import { readFile } from 'node:fs/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LarderEvent } from '../src/platform/events/bus.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, upload, waitForStatus } from './helpers/documents.js';
import { type EmbeddingsServer, startEmbeddingsServer } from './helpers/embeddings-server.js';

interface AddBody {
  outcome: string;
  document: DocumentBody;
}

const DIMS = 384;

describe.each(drivers())('embedding phase (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let api: EmbeddingsServer;
  let collectionId: string;
  const events: LarderEvent[] = [];

  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: authHeaders(owner), ...(payload ? { payload } : {}) });

  const vectors = async (documentId: string) => {
    const { rows } = await sql<{
      model: string;
      dimensions: number;
      chunk_hash: string;
      vector_hash: string;
    }>`
      select e.model, e.dimensions, c.content_hash as chunk_hash, e.content_hash as vector_hash
      from chunk_embeddings e join chunks c on c.id = e.chunk_id
      where c.document_id = ${documentId} order by c.ordinal`.execute(t.db.database.db);
    return rows;
  };
  const chunkCount = async (documentId: string) => {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from chunks where document_id = ${documentId}`.execute(t.db.database.db);
    return rows[0]?.n ?? 0;
  };

  beforeAll(async () => {
    api = await startEmbeddingsServer(DIMS);
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({
        ...fastAuth(c),
        openaiEmbeddingBaseUrl: api.baseUrl,
        openaiEmbeddingApiKey: 'sk-test-key',
        openaiEmbeddingModel: 'test-embed',
        openaiEmbeddingMaxRetries: 2,
        openaiEmbeddingTimeoutMs: 5000,
        embeddingBatchSize: 8,
      }),
    });
    t.events.subscribe((event) => events.push(event));
    owner = await signUp(t.app, `embed-${driver}@example.com`);
    const res = await call('POST', '/v1/collections', {
      name: 'Vectors',
      embedding: { provider: 'openai' },
      chunking: { maxTokens: 80, overlapTokens: 0 },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      embedding: { provider: 'openai', model: 'test-embed', dimensions: DIMS },
    });
    collectionId = res.json<{ id: string }>().id;
  });
  afterAll(async () => {
    await t.close();
    await api.close();
  });

  it('embeds every chunk once, then marks the document ready; events arrive in order', async () => {
    const bytes = await readFile(new URL('../docs/architecture.md', import.meta.url));
    const added = (
      await upload(t.app, owner, collectionId, { filename: 'architecture.md', data: bytes })
    ).json<AddBody>();
    const doc = await waitForStatus(t.app, owner, added.document.id);
    expect(doc.status).toBe('ready');
    const rows = await vectors(doc.id);
    expect(rows.length).toBe(await chunkCount(doc.id));
    expect(rows.length).toBeGreaterThan(8); // several batches
    for (const row of rows) {
      expect(row).toMatchObject({ model: 'test-embed', dimensions: DIMS });
      expect(row.vector_hash).toBe(row.chunk_hash);
    }
    // Each distinct chunk text was sent once (heading path included), never twice.
    const sent = api.inputs.map((i) => i.text);
    expect(new Set(sent).size).toBe(sent.length);
    expect(sent.some((s) => s.includes(' > ') || s.startsWith('Architecture'))).toBe(true);

    const mine = events.filter(
      (e): e is Extract<LarderEvent, { type: 'document.status_changed' }> =>
        e.type === 'document.status_changed' && e.documentId === doc.id,
    );
    expect(mine.map((e) => e.status)).toEqual(['queued', 'parsing', 'searchable', 'ready']);
    const progress = events.filter((e) => e.type === 'document.progress' && e.documentId === doc.id);
    expect(progress.at(-1)).toMatchObject({ stage: 'embedding', percent: 100 });
  });

  it('re-embeds only the chunks that changed; reprocessing an unchanged document embeds nothing', async () => {
    const sections = Array.from(
      { length: 12 },
      (_, i) => `## Section ${i}\n\nThe orchard row ${i} holds ${i * 3} apple trees of an old variety.\n`,
    );
    const first = `# Orchard\n\n${sections.join('\n')}`;
    const added = (
      await upload(
        t.app,
        owner,
        collectionId,
        { filename: 'orchard.md', data: first },
        { externalId: 'orchard.md' },
      )
    ).json<AddBody>();
    await waitForStatus(t.app, owner, added.document.id);
    const before = await vectors(added.document.id);
    expect(before.length).toBeGreaterThanOrEqual(6);

    const sentBefore = api.inputs.length;
    const changed = first.replace('row 5 holds 15', 'row 5 holds 16');
    const replaced = (
      await upload(
        t.app,
        owner,
        collectionId,
        { filename: 'orchard.md', data: changed },
        { externalId: 'orchard.md' },
      )
    ).json<AddBody>();
    expect(replaced.outcome).toBe('updated');
    const doc = await waitForStatus(t.app, owner, added.document.id);
    expect(doc).toMatchObject({ status: 'ready', version: 2 });
    const after = await vectors(doc.id);
    const newHashes = after.map((r) => r.chunk_hash).filter((h) => !before.some((b) => b.chunk_hash === h));
    expect(newHashes.length).toBeGreaterThanOrEqual(1);
    expect(newHashes.length).toBeLessThan(after.length);
    // Exactly the changed chunks went to the provider.
    expect(api.inputs.length - sentBefore).toBe(newHashes.length);
    expect(
      api.inputs
        .slice(sentBefore)
        .map((i) => i.text)
        .join(' '),
    ).toContain('holds 16');

    const sentMiddle = api.inputs.length;
    expect((await call('POST', `/v1/documents/${doc.id}/reprocess`)).statusCode).toBe(202);
    expect((await waitForStatus(t.app, owner, doc.id)).status).toBe('ready');
    expect(api.inputs.length).toBe(sentMiddle);
    expect((await vectors(doc.id)).length).toBe(after.length);
  });

  it('retries a rate-limited provider; a rejected one fails the document with the reason, chunks kept', async () => {
    api.rateLimitNext(1);
    const ok = (
      await call('POST', `/v1/collections/${collectionId}/documents`, {
        text: 'Rate limits are retried with backoff.',
      })
    ).json<AddBody>();
    expect((await waitForStatus(t.app, owner, ok.document.id)).status).toBe('ready');

    api.reject(true);
    try {
      const bad = (
        await call('POST', `/v1/collections/${collectionId}/documents`, {
          text: 'A key that the provider refuses.',
        })
      ).json<AddBody>();
      const failed = await waitForStatus(t.app, owner, bad.document.id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/^embedding failed: /);
      expect(failed.error).not.toContain('sk-test-key');
      expect(await chunkCount(bad.document.id)).toBe(1); // still found by lexical search
    } finally {
      api.reject(false);
    }
  });

  it('re-embeds every document when the collection changes model, and drops the old vectors', async () => {
    const c = await call('POST', '/v1/collections', { name: 'Switch', embedding: { provider: 'openai' } });
    const switchId = c.json<{ id: string }>().id;
    const docs = await Promise.all(
      ['Pears ripen after picking.', 'Plums bloom early in spring.'].map(async (text) =>
        (await call('POST', `/v1/collections/${switchId}/documents`, { text })).json<AddBody>(),
      ),
    );
    for (const d of docs) await waitForStatus(t.app, owner, d.document.id);

    const patched = await call('PATCH', `/v1/collections/${switchId}`, {
      embedding: { provider: 'openai', model: 'test-embed-large' },
    });
    expect(patched.json()).toMatchObject({ embedding: { model: 'test-embed-large', dimensions: DIMS } });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await sql<{ model: string; n: number }>`
        select model, count(*)::int as n from chunk_embeddings where collection_id = ${switchId} group by model`.execute(
        t.db.database.db,
      );
      if (rows.length === 1 && rows[0]?.model === 'test-embed-large' && rows[0].n === 2) break;
      if (Date.now() > deadline) throw new Error(`re-embed did not finish: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const d of docs) expect((await waitForStatus(t.app, owner, d.document.id)).status).toBe('ready');
    // Each document's chunk went to the new model once (plus the provider's one dimension probe).
    const large = api.inputs.filter((i) => i.model === 'test-embed-large').map((i) => i.text);
    for (const text of ['Pears ripen after picking.', 'Plums bloom early in spring.'])
      expect(large.filter((x) => x === text)).toHaveLength(1);
    expect(large).toHaveLength(3);
  });

  it('embeds with the local model (Universal Sentence Encoder lite) in worker threads', async () => {
    const c = await call('POST', '/v1/collections', { name: 'Local', embedding: { provider: 'local' } });
    const localId = c.json<{ id: string }>().id;
    const added = (
      await call('POST', `/v1/collections/${localId}/documents`, {
        text: '# Bees\n\nHoney bees pollinate fruit trees.\n\n## Hives\n\nA hive holds tens of thousands of bees.',
      })
    ).json<AddBody>();
    const doc = await waitForStatus(t.app, owner, added.document.id, ['ready', 'failed'], 60_000);
    expect(doc.status).toBe('ready');
    const { rows } = await sql<{ model: string; dims: number; norm: number }>`
      select model, vector_dims(embedding) as dims, vector_norm(embedding)::float8 as norm
      from chunk_embeddings where collection_id = ${localId}`.execute(t.db.database.db);
    expect(rows.length).toBe(doc.chunkCount);
    for (const row of rows) {
      expect(row).toMatchObject({ model: 'use-lite', dims: 512 });
      expect(row.norm).toBeCloseTo(1, 3);
    }
  });
});
