/**
 * Documents over HTTP with the worker running in-process, on both drivers: upload → queued → ready,
 * spans that re-extract exactly, dedup by bytes and by external id, replace, reprocess, list filters,
 * download, delete without leftovers, and every refusal (413, 415, 422, URL guard).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkDocument } from '../src/ai/chunking/chunker.js';
import { parseDocument } from '../src/ai/parsing/index.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { authHeaders, type DocumentBody, leftovers, upload, waitForStatus } from './helpers/documents.js';
import { buildDocx, buildPdf, docxParagraph } from './fixtures/parsing/builders.js';

interface AddBody {
  outcome: string;
  document: DocumentBody;
}
interface ChunkBody {
  ordinal: number;
  text: string;
  charStart: number;
  charEnd: number;
  headingPath: string[];
  page: number | null;
  pageEnd: number | null;
}

const README = new URL('../README.md', import.meta.url);

describe.each(drivers())('documents (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  let other: SignedUp;
  let collectionId: string;
  let site: Server;
  let siteUrl: string;

  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, s = owner) =>
    t.app.inject({ method, url, headers: authHeaders(s), ...(payload ? { payload } : {}) });

  /** Every chunk's text equals the original re-parsed and sliced by the chunk's span. */
  const expectExactSpans = async (id: string, filename: string) => {
    const download = await call('GET', `/v1/documents/${id}/content`);
    const parsed = await parseDocument(new Uint8Array(download.rawPayload), { filename });
    const chunks = await chunksOf(id);
    expect(chunks.length).toBeGreaterThan(0);
    for (const chunk of chunks) expect(parsed.text.slice(chunk.charStart, chunk.charEnd)).toBe(chunk.text);
    return { parsed, chunks };
  };

  const chunksOf = async (id: string) => {
    const res = await call('GET', `/v1/documents/${id}/chunks?limit=500`);
    expect(res.statusCode).toBe(200);
    return res.json<{ data: ChunkBody[] }>().data;
  };

  beforeAll(async () => {
    t = await createTestApp(driver, {
      jobs: 'work',
      configure: (c) => ({ ...fastAuth(c), uploadLimitBytes: 2 * 1024 * 1024, urlAllowPrivate: true }),
    });
    owner = await signUp(t.app, `docs-${driver}@example.com`);
    other = await signUp(t.app, `docs-other-${driver}@example.com`);
    const res = await call('POST', '/v1/collections', {
      name: 'Docs',
      chunking: { maxTokens: 120, overlapTokens: 20 },
    });
    collectionId = res.json<{ id: string }>().id;
    site = createServer((req, res) => {
      if (req.url === '/page.html') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(
          '<html><head><title>Fetched page</title></head><body><nav>Menu</nav><main><h1>Fetched page</h1><p>Hydroponic lettuce grows in nutrient water without soil.</p></main></body></html>',
        );
      } else if (req.url === '/image.png') {
        res.setHeader('content-type', 'image/png');
        res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
      } else {
        res.statusCode = 404;
        res.end('nope');
      }
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    site.close();
    await t.close();
  });

  it('ingests an upload: queued → ready, chunks whose spans re-extract exactly from the original', async () => {
    const bytes = await readFile(README);
    const res = await upload(
      t.app,
      owner,
      collectionId,
      { filename: 'README.md', data: bytes },
      { metadata: '{"team":"docs"}' },
    );
    expect(res.statusCode).toBe(201);
    const added = res.json<AddBody>();
    expect(added.outcome).toBe('created');
    expect(res.headers.location).toBe(`/v1/documents/${added.document.id}`);
    expect(added.document).toMatchObject({
      status: 'queued',
      bytes: bytes.length,
      metadata: { team: 'docs' },
    });

    const doc = await waitForStatus(t.app, owner, added.document.id);
    expect(doc.status).toBe('ready');
    expect(doc.title).toBe('Larder');
    expect(doc.mime).toBe('text/markdown');

    // Download the original and re-extract every chunk by its span.
    const download = await call('GET', `/v1/documents/${doc.id}/content`);
    expect(download.statusCode).toBe(200);
    expect(download.rawPayload.equals(bytes)).toBe(true);
    expect(download.headers['content-disposition']).toContain("filename*=UTF-8''README.md");
    const parsed = await parseDocument(new Uint8Array(download.rawPayload), { filename: 'README.md' });
    const chunks = await chunksOf(doc.id);
    expect(chunks.length).toBe(doc.chunkCount);
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) expect(parsed.text.slice(chunk.charStart, chunk.charEnd)).toBe(chunk.text);
    // Exactly what the chunker produces for the collection's settings.
    const expected = chunkDocument(parsed, { maxTokens: 120, overlapTokens: 20 });
    expect(chunks.map((c) => [c.charStart, c.charEnd, c.headingPath])).toEqual(
      expected.map((c) => [c.charStart, c.charEnd, c.headingPath]),
    );
    // Full-text index written with the collection's language.
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from chunks where document_id = ${doc.id} and tsv @@ plainto_tsquery('english', 'configuration')`.execute(
      t.db.database.db,
    );
    expect(rows[0]?.n).toBeGreaterThan(0);
  });

  it('stores the bytes exactly at every size: within the sniffed head, one part, several parts', async () => {
    // 64 KiB is read ahead to sniff the format (stored with the document in one statement), parts are
    // 1 MiB; the upload limit here is 2 MiB.
    const sizes = [10, 64 * 1024, 64 * 1024 + 1, 300_000, 1024 * 1024 + 5000];
    const line = 'Stored bytes come back exactly as they went in. 0123456789\n';
    for (const size of sizes) {
      const data = Buffer.from(line.repeat(Math.ceil(size / line.length)).slice(0, size));
      const res = await upload(t.app, owner, collectionId, { filename: `bytes-${size}.txt`, data });
      expect(res.statusCode, res.body).toBe(201);
      const id = res.json<AddBody>().document.id;
      const download = await call('GET', `/v1/documents/${id}/content`);
      expect(download.statusCode).toBe(200);
      expect(download.rawPayload.length, `size ${size}`).toBe(size);
      expect(download.rawPayload.equals(data), `size ${size}`).toBe(true);
    }
  });

  it('never processes the same bytes twice, and replaces content by external id', async () => {
    const text = '# Policy\n\nVacation requests go to the team lead two weeks ahead.\n';
    const first = await upload(
      t.app,
      owner,
      collectionId,
      { filename: 'policy.md', data: text },
      { externalId: 'hr/policy.md' },
    );
    expect(first.json<AddBody>().outcome).toBe('created');
    const id = first.json<AddBody>().document.id;
    await waitForStatus(t.app, owner, id);

    const again = await upload(
      t.app,
      owner,
      collectionId,
      { filename: 'policy.md', data: text },
      { externalId: 'hr/policy.md' },
    );
    expect(again.statusCode).toBe(200);
    expect(again.json<AddBody>()).toMatchObject({ outcome: 'unchanged', document: { id, version: 1 } });

    const copy = await upload(t.app, owner, collectionId, { filename: 'copy.md', data: text });
    expect(copy.json<AddBody>()).toMatchObject({ outcome: 'duplicate', document: { id } });

    const changed = text.replace('two weeks', 'three weeks');
    const replaced = await upload(
      t.app,
      owner,
      collectionId,
      { filename: 'policy.md', data: changed },
      { externalId: 'hr/policy.md' },
    );
    expect(replaced.json<AddBody>()).toMatchObject({
      outcome: 'updated',
      document: { id, version: 2, status: 'queued' },
    });
    const done = await waitForStatus(t.app, owner, id);
    expect(done.status).toBe('ready');
    const chunks = await chunksOf(id);
    expect(chunks.map((c) => c.text).join(' ')).toContain('three weeks');
    expect(chunks.map((c) => c.text).join(' ')).not.toContain('two weeks');

    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from documents where collection_id = ${collectionId} and external_id = 'hr/policy.md'`.execute(
      t.db.database.db,
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('adds raw text, JSON and URLs; titles come from the content unless given', async () => {
    const text = await call('POST', `/v1/collections/${collectionId}/documents`, {
      text: 'Plain notes about composting kitchen waste.',
      title: 'Compost notes',
    });
    expect(text.statusCode).toBe(201);
    const json = await call('POST', `/v1/collections/${collectionId}/documents`, {
      json: [
        { name: 'Basil', water: 'daily' },
        { name: 'Thyme', water: 'weekly' },
      ],
    });
    expect(json.statusCode).toBe(201);
    const url = await call('POST', `/v1/collections/${collectionId}/documents`, {
      url: `${siteUrl}/page.html`,
    });
    expect(url.statusCode).toBe(201);

    const [a, b, c] = (await Promise.all(
      [text, json, url].map((r) => waitForStatus(t.app, owner, r.json<AddBody>().document.id)),
    )) as [DocumentBody, DocumentBody, DocumentBody];
    expect(a).toMatchObject({ status: 'ready', title: 'Compost notes', mime: 'text/plain' });
    // BM25's document length: lexeme occurrences after stemming and stop words (about is one).
    const { rows: lengths } = await sql<{ lexeme_count: number; tsv: string }>`
      select lexeme_count, tsv::text from chunks where document_id = ${a.id}`.execute(t.db.database.db);
    expect(lengths).toEqual([
      { lexeme_count: 5, tsv: "'compost':4 'kitchen':5 'note':2 'plain':1 'wast':6" },
    ]);
    expect(b).toMatchObject({ status: 'ready', mime: 'application/json' });
    expect(c).toMatchObject({ status: 'ready', title: 'Fetched page', mime: 'text/html' });
    const { chunks: pageChunks } = await expectExactSpans(c.id, 'page.html');
    await expectExactSpans(b.id, 'data.json');
    expect(pageChunks.map((x) => x.text).join(' ')).toContain('Hydroponic lettuce');
    expect(pageChunks.map((x) => x.text).join(' ')).not.toContain('Menu');
  });

  it('ingests PDF (with pages) and DOCX', async () => {
    const pdf = buildPdf([['Page one talks about apples.'], ['Page two talks about pears.']], 'Fruit');
    const docx = await buildDocx(
      docxParagraph('Quarterly plan', 'Heading1') + docxParagraph('Ship the orchard app.'),
    );
    const [p, d] = await Promise.all([
      upload(t.app, owner, collectionId, { filename: 'fruit.pdf', data: pdf }),
      upload(t.app, owner, collectionId, { filename: 'plan.docx', data: docx }),
    ]);
    const pdfDoc = await waitForStatus(t.app, owner, p.json<AddBody>().document.id);
    const docxDoc = await waitForStatus(t.app, owner, d.json<AddBody>().document.id);
    expect(pdfDoc).toMatchObject({ status: 'ready', mime: 'application/pdf' });
    expect(docxDoc.status).toBe('ready');
    const { chunks: pdfChunks } = await expectExactSpans(pdfDoc.id, 'fruit.pdf');
    expect(pdfChunks[0]).toMatchObject({ page: 1, pageEnd: 2 });
    const { chunks: docxChunks } = await expectExactSpans(docxDoc.id, 'plan.docx');
    expect(docxChunks[0]?.headingPath).toEqual(['Quarterly plan']);
  });

  it('refuses what it cannot index: 413 too large, 415 unsupported, 422 empty, URL guard; nothing is stored', async () => {
    const before = await sql<{ n: number }>`select count(*)::int as n from documents`.execute(
      t.db.database.db,
    );
    const big = await upload(t.app, owner, collectionId, {
      filename: 'big.txt',
      data: 'x'.repeat(2 * 1024 * 1024 + 10),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'payload_too_large' });

    const binary = await upload(t.app, owner, collectionId, {
      filename: 'image.png',
      data: new Uint8Array([
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 1, 2, 3,
      ]),
    });
    expect(binary.statusCode).toBe(415);
    expect(binary.json()).toMatchObject({ code: 'unsupported_media_type' });

    const empty = await upload(t.app, owner, collectionId, { filename: 'empty.txt', data: '' });
    expect(empty.statusCode).toBe(422);
    expect(empty.json()).toMatchObject({ code: 'unprocessable_document', reason: 'empty' });
    const blank = await upload(t.app, owner, collectionId, { filename: 'blank.txt', data: '  \n\n  ' });
    expect(blank.statusCode).toBe(422);

    const noFile = await upload(t.app, owner, collectionId, { filename: 'x', data: 'x' }, { colour: 'blue' });
    expect(noFile.statusCode).toBe(400);

    const missing = await call('POST', `/v1/collections/${collectionId}/documents`, {
      url: `${siteUrl}/missing`,
    });
    expect(missing.statusCode).toBe(422);
    expect(missing.json()).toMatchObject({
      code: 'url_fetch_failed',
      reason: 'http_status',
      upstreamStatus: 404,
    });
    const image = await call('POST', `/v1/collections/${collectionId}/documents`, {
      url: `${siteUrl}/image.png`,
    });
    expect(image.statusCode).toBe(422);
    expect(image.json()).toMatchObject({ code: 'url_fetch_failed', reason: 'content_type' });
    const ftp = await call('POST', `/v1/collections/${collectionId}/documents`, {
      url: 'ftp://example.com/x',
    });
    expect(ftp.statusCode).toBe(400);
    const metadataIp = await call('POST', `/v1/collections/${collectionId}/documents`, {
      url: 'http://169.254.169.254/latest/meta-data/',
    });
    expect(metadataIp.statusCode).toBe(400);
    expect(metadataIp.json()).toMatchObject({ code: 'url_not_allowed' });

    const both = await call('POST', `/v1/collections/${collectionId}/documents`, {
      text: 'a',
      url: `${siteUrl}/page.html`,
    });
    expect(both.statusCode).toBe(400);

    const after = await sql<{ n: number }>`select count(*)::int as n from documents`.execute(
      t.db.database.db,
    );
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
  });

  it('fails a corrupt file with a reason, without blocking the documents after it', async () => {
    const corrupt = await upload(t.app, owner, collectionId, {
      filename: 'broken.pdf',
      data: '%PDF-1.7\n garbage that is no pdf',
    });
    expect(corrupt.statusCode).toBe(201);
    const fine = await call('POST', `/v1/collections/${collectionId}/documents`, {
      text: 'A healthy document after a broken one.',
    });
    const failed = await waitForStatus(t.app, owner, corrupt.json<AddBody>().document.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/^corrupt: /);
    expect((await waitForStatus(t.app, owner, fine.json<AddBody>().document.id)).status).toBe('ready');
    expect(await chunksOf(failed.id)).toEqual([]);

    // Sending the same bytes again asks for another try, not a silent `duplicate`.
    const resent = await upload(t.app, owner, collectionId, {
      filename: 'broken.pdf',
      data: '%PDF-1.7\n garbage that is no pdf',
    });
    expect(resent.json()).toMatchObject({
      outcome: 'requeued',
      document: { id: failed.id, status: 'queued', version: failed.version + 1 },
    });
    const refailed = await waitForStatus(t.app, owner, failed.id);
    expect(refailed).toMatchObject({ status: 'failed', version: failed.version + 1 });

    // Reprocess puts it back in the queue with a new version; it fails again, for the same reason.
    const again = await call('POST', `/v1/documents/${failed.id}/reprocess`);
    expect(again.statusCode).toBe(202);
    expect(again.json()).toMatchObject({ status: 'queued', version: failed.version + 2, error: null });
    expect((await waitForStatus(t.app, owner, failed.id)).status).toBe('failed');
  });

  it('lists with filters and cursor pagination; updates title and metadata', async () => {
    const c = await call('POST', '/v1/collections', { name: 'Listing' });
    const listId = c.json<{ id: string }>().id;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call('POST', `/v1/collections/${listId}/documents`, {
        text: `Document number ${i} about topic ${i % 2 === 0 ? 'even' : 'odd'}.`,
        metadata: { parity: i % 2 === 0 ? 'even' : 'odd', n: i },
        externalId: `doc-${i}`,
      });
      ids.push(res.json<AddBody>().document.id);
    }
    for (const id of ids) await waitForStatus(t.app, owner, id);

    const page1 = await call('GET', `/v1/collections/${listId}/documents?limit=2`);
    const body1 = page1.json<{ data: DocumentBody[]; nextCursor: string }>();
    expect(body1.data.map((d) => d.id)).toEqual(ids.slice(0, 2));
    const page2 = await call('GET', `/v1/collections/${listId}/documents?limit=2&cursor=${body1.nextCursor}`);
    expect(page2.json<{ data: DocumentBody[] }>().data.map((d) => d.id)).toEqual(ids.slice(2, 4));

    const even = await call(
      'GET',
      `/v1/collections/${listId}/documents?metadata=${encodeURIComponent('{"parity":"even"}')}`,
    );
    expect(even.json<{ data: DocumentBody[] }>().data.map((d) => d.externalId)).toEqual([
      'doc-0',
      'doc-2',
      'doc-4',
    ]);
    const byExternal = await call('GET', `/v1/collections/${listId}/documents?externalId=doc-3`);
    expect(byExternal.json<{ data: DocumentBody[] }>().data.map((d) => d.id)).toEqual([ids[3]]);
    const ready = await call('GET', `/v1/collections/${listId}/documents?status=ready&status=failed`);
    expect(ready.json<{ data: DocumentBody[] }>().data).toHaveLength(5);
    const queued = await call('GET', `/v1/collections/${listId}/documents?status=queued`);
    expect(queued.json<{ data: DocumentBody[] }>().data).toHaveLength(0);
    const future = await call('GET', `/v1/collections/${listId}/documents?createdAfter=2999-01-01T00:00:00Z`);
    expect(future.json<{ data: DocumentBody[] }>().data).toHaveLength(0);
    const badMeta = await call('GET', `/v1/collections/${listId}/documents?metadata=[1]`);
    expect(badMeta.statusCode).toBe(400);

    const patched = await call('PATCH', `/v1/documents/${ids[0]}`, {
      title: 'Renamed',
      metadata: { parity: 'none' },
    });
    expect(patched.json()).toMatchObject({ title: 'Renamed', metadata: { parity: 'none' } });
  });

  it('keeps tenants apart: another workspace can neither see nor change a document', async () => {
    const res = await call('POST', `/v1/collections/${collectionId}/documents`, { text: 'Secret roadmap.' });
    const id = res.json<AddBody>().document.id;
    for (const [method, url] of [
      ['GET', `/v1/documents/${id}`],
      ['GET', `/v1/documents/${id}/content`],
      ['GET', `/v1/documents/${id}/chunks`],
      ['POST', `/v1/documents/${id}/reprocess`],
      ['DELETE', `/v1/documents/${id}`],
      ['GET', `/v1/collections/${collectionId}/documents`],
    ] as const) {
      const r = await call(method, url, undefined, other);
      expect(r.statusCode, `${method} ${url}`).toBe(404);
    }
    const add = await call('POST', `/v1/collections/${collectionId}/documents`, { text: 'Intruder' }, other);
    expect(add.statusCode).toBe(404);
  });

  it('deletes a document with its bytes, chunks and embeddings; deleting a collection leaves nothing', async () => {
    const c = await call('POST', '/v1/collections', { name: 'Doomed' });
    const doomed = c.json<{ id: string }>().id;
    const bytes = await readFile(README);
    const res = await upload(t.app, owner, doomed, { filename: 'README.md', data: bytes });
    const id = res.json<AddBody>().document.id;
    await waitForStatus(t.app, owner, id);
    const kept = await call('POST', `/v1/collections/${doomed}/documents`, {
      text: 'Kept for the collection delete.',
    });
    await waitForStatus(t.app, owner, kept.json<AddBody>().document.id);

    expect((await call('DELETE', `/v1/documents/${id}`)).statusCode).toBe(204);
    expect(await leftovers(t.db.database.db, { documentId: id })).toEqual({
      documents: 0,
      blobs: 0,
      chunks: 0,
      embeddings: 0,
    });
    expect((await call('GET', `/v1/documents/${id}`)).statusCode).toBe(404);

    expect((await call('DELETE', `/v1/collections/${doomed}`)).statusCode).toBe(204);
    expect(await leftovers(t.db.database.db, { collectionId: doomed })).toEqual({
      documents: 0,
      blobs: 0,
      chunks: 0,
      embeddings: 0,
    });
  });
});
