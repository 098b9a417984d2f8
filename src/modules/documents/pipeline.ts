/**
 * The ingestion pipeline, in two phases run by two jobs:
 *
 *  ingest (documents.ingest): queued → parsing → searchable
 *    The original bytes are parsed and chunked. One transaction replaces the document's chunks (with
 *    their full-text vectors) while it stays `parsing`, which no search reads, and at its very end
 *    reserves the chunks' sequence numbers in the collection's lexical index; a second one marks the
 *    document `searchable` (or `ready` when the collection has no embedding model), which indexes it
 *    lexically (a trigger), and enqueues the embed job. A crash at any point leaves the document
 *    unsearchable with its job to run again, or indexed with its embed job queued: never half
 *    indexed. Large plain-text/Markdown files are streamed through a windowed chunker so memory
 *    stays bounded. Waiting documents are taken up to 64 at a time (one job each; `ingestDocuments`):
 *    the small ones, up to BATCH_BYTES in all, share both transactions, so the index trigger writes one postings list per
 *    lexeme for all of them (migrations/0013_lexical_batch.sql).
 *
 *  embed (documents.embed): searchable → ready
 *    Chunks without a vector for the collection's model are embedded in batches. Each vector is
 *    looked up first in the workspace's embedding cache (model + hash of the embedded text), so a
 *    re-processed document only sends its changed chunks to the provider. Each batch commits on its
 *    own; a re-run continues where the last one stopped (the "missing vector" query is the cursor).
 *
 * Every step re-reads the document and stops if it was deleted or re-queued (version changed):
 * that is both the idempotency of at-least-once delivery and cancellation on delete.
 */
import { createHash } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { chunkDocument, type Chunk } from '../../ai/chunking/chunker.js';
import { chunkTextStream } from '../../ai/chunking/stream.js';
import { chunkTextStreamInThread } from '../../ai/chunking/thread.js';
import { EmbeddingError, type EmbeddingProviderName } from '../../ai/embeddings/index.js';
import { decodeText } from '../../ai/parsing/decode.js';
import { ParseError, parseDocument } from '../../ai/parsing/index.js';
import { parseMarkdown } from '../../ai/parsing/markdown.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, DocumentStatus } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import type { BatchItem, JobContext } from '../../platform/jobs/define.js';
import { DEFAULT_CHUNKING, type ChunkingSettings } from '../collections/service.js';
import { embedDocumentJob } from './jobs.js';
import { requestCompaction } from '../search/jobs.js';

type Trx = Transaction<DB>;

export interface DocumentJobPayload {
  workspaceId: string;
  documentId: string;
  version: number;
}

/**
 * Plain text and Markdown are always streamed through the windowed chunker: it gives the same chunks
 * as a whole-document parse (tested) while parsing in small slices. A whole parse of Markdown costs
 * ~200 bytes of memory per character: a 1 MB file alone took the worker past 500 MB.
 */
const STREAMED_FORMATS: Record<string, 'markdown' | 'text'> = {
  'text/markdown': 'markdown',
  'text/plain': 'text',
};
/**
 * Above this size the windowed chunker runs in a worker thread with a capped heap (see
 * ai/chunking/thread.ts); below it, in the job's own thread: starting a thread costs more than
 * chunking a small document, and its garbage is small.
 */
const THREAD_THRESHOLD_BYTES = 1024 * 1024;
/**
 * Bytes of the documents a batch holds in memory together (read whole, parsed and chunked before their
 * shared transactions). Documents past it in a batch are read and stored one at a time, like big files.
 */
const BATCH_BYTES = 16 * 1024 * 1024;
/** Bytes read to find a Markdown document's title (its first H1). */
const TITLE_HEAD_BYTES = 64 * 1024;
/** Chunks per INSERT. */
const INSERT_BATCH = 500;

/** The text a chunk is embedded (and hashed) as: its heading path gives a passage its context. */
export function embeddingInput(headingPath: readonly string[], text: string): string {
  return headingPath.length > 0 ? `${headingPath.join(' > ')}\n\n${text}` : text;
}

export const contentHash = (input: string) => createHash('sha256').update(input).digest('hex');

async function setStatus(
  ctx: JobContext,
  payload: DocumentJobPayload,
  collectionId: string,
  status: DocumentStatus,
  error?: string,
) {
  await ctx.deps.events.publish({
    type: 'document.status_changed',
    workspaceId: payload.workspaceId,
    collectionId,
    documentId: payload.documentId,
    status,
    ...(error === undefined ? {} : { error }),
  });
}

/**
 * Marks the document failed (if it is still this version and still in flight) and tells listeners.
 * A run that timed out can go on beside its retry: whichever of them fails must not undo a document
 * the other one already finished.
 */
async function fail(db: Db, ctx: JobContext, payload: DocumentJobPayload, reason: string) {
  const error = reason.slice(0, 2000);
  const row = await withTenant(db, payload.workspaceId, (trx) =>
    trx
      .updateTable('documents')
      .set({ status: 'failed', error, processed_at: new Date() })
      .where('workspace_id', '=', payload.workspaceId)
      .where('id', '=', payload.documentId)
      .where('version', '=', payload.version)
      .where('status', 'in', ['queued', 'parsing', 'searchable'])
      .returning('collection_id')
      .executeTakeFirst(),
  );
  if (row) await setStatus(ctx, payload, row.collection_id, 'failed', error);
  ctx.log.warn({ documentId: payload.documentId, reason: error }, 'document failed');
}

/** Dead letter of the document jobs: their retries are spent (errors or timeouts). */
export async function failAbandoned(payload: DocumentJobPayload, ctx: JobContext) {
  await fail(
    ctx.deps.database.db,
    ctx,
    payload,
    'processing failed: the job kept failing or timing out (LARDER_JOB_TIMEOUT_SECONDS) until its retries ran out',
  );
  return { failed: true };
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));

// ---------------------------------------------------------------------------------------------------
// Phase 1: parse, chunk, index lexically

type Item = BatchItem<DocumentJobPayload>;

interface ClaimedRow {
  id: string;
  collection_id: string;
  mime: string | null;
  filename: string | null;
  bytes: number | null;
  text_search_config: string;
  chunking: unknown;
  embedding_provider: string | null;
}

/** A claimed document on its way into the index. */
interface Entry {
  item: Item;
  doc: ClaimedRow;
  title: string | undefined;
  mime: string | null;
  /** Its chunks, in insert-sized batches; big streamed files read their bytes through `trx`. */
  source: (trx: Trx) => AsyncIterable<Chunk[]>;
}

const chunkingOf = (doc: ClaimedRow): ChunkingSettings => ({
  ...DEFAULT_CHUNKING,
  ...(doc.chunking as Partial<ChunkingSettings>),
});

/** One document: a batch of one (see ingestDocuments). */
export async function ingestDocument(payload: DocumentJobPayload, ctx: JobContext) {
  const [result] = await ingestDocuments([{ payload, ctx }]);
  if (result?.status === 'rejected') throw result.reason;
  return result?.value;
}

/**
 * Ingests the documents of several ingest jobs together, one result per item (a rejected item's job
 * alone is retried). Per workspace, one transaction claims them all and reads the bytes of the small
 * ones; those are parsed and chunked here, then share one transaction that stores their chunks and
 * one that indexes them, so the index trigger writes one postings list per lexeme for all of them.
 * A file too big to hold in memory (streamed formats above THREAD_THRESHOLD_BYTES) streams through
 * its own two transactions, as do the documents of a batch whose shared transaction failed (so one
 * bad document cannot take its neighbours with it).
 */
export async function ingestDocuments(
  items: Item[],
  options: { batchBytes?: number } = {},
): Promise<PromiseSettledResult<unknown>[]> {
  const results = new Map<Item, PromiseSettledResult<unknown>>();
  const done = (item: Item, value: unknown) => results.set(item, { status: 'fulfilled', value });
  const byWorkspace = new Map<string, Item[]>();
  for (const item of items)
    byWorkspace.set(item.payload.workspaceId, [...(byWorkspace.get(item.payload.workspaceId) ?? []), item]);
  for (const [ws, group] of byWorkspace) {
    const first = group[0];
    if (!first) continue;
    let claimed: Awaited<ReturnType<typeof claim>>;
    try {
      claimed = await claim(first.ctx.deps.database.db, ws, group, options.batchBytes ?? BATCH_BYTES);
    } catch (error) {
      for (const item of group) results.set(item, await failed(item, error));
      continue;
    }
    const batched: Entry[] = [];
    const alone: { item: Item; prepare: () => Promise<Entry> }[] = [];
    for (const item of group) {
      const c = claimed.get(item);
      if (c === undefined || 'skip' in c) {
        const skip = c?.skip ?? 'stale';
        item.ctx.log.info({ documentId: item.payload.documentId, skip }, 'ingest skipped');
        done(item, { skipped: skip });
        continue;
      }
      await setStatus(item.ctx, item.payload, c.doc.collection_id, 'parsing');
      // Big files one at a time, each prepared only when its turn comes (memory stays bounded).
      if (c.parts === undefined) {
        alone.push({ item, prepare: () => prepare(item, c.doc, c.title, undefined) });
        continue;
      }
      try {
        batched.push(await prepare(item, c.doc, c.title, c.parts));
      } catch (error) {
        results.set(item, await failed(item, error));
      }
    }
    if (batched.length > 1) {
      try {
        for (const [item, value] of await storeAndIndex(ws, batched)) done(item, value);
        batched.length = 0;
      } catch (error) {
        first.ctx.log.warn(
          { err: error, documents: batched.length },
          'batch failed; ingesting its documents one by one',
        );
      }
    }
    const ones = [
      ...batched.map((entry) => ({ item: entry.item, prepare: () => Promise.resolve(entry) })),
      ...alone,
    ];
    for (const one of ones) {
      try {
        for (const [item, value] of await storeAndIndex(ws, [await one.prepare()])) done(item, value);
      } catch (error) {
        results.set(one.item, await failed(one.item, error));
      }
    }
  }
  return items.map(
    (item) => results.get(item) ?? { status: 'rejected', reason: new Error('ingest left a job unsettled') },
  );
}

/** What a failed document's job returns: a parse error fails the document, anything else is retried. */
async function failed(item: Item, error: unknown): Promise<PromiseSettledResult<unknown>> {
  const { payload, ctx } = item;
  const db = ctx.deps.database.db;
  try {
    if (error instanceof ParseError) {
      await fail(db, ctx, payload, `${error.reason}: ${error.message}`);
      return { status: 'fulfilled', value: { failed: error.reason } };
    }
    if (ctx.lastAttempt) await fail(db, ctx, payload, `processing failed: ${describe(error)}`);
  } catch (failure) {
    return { status: 'rejected', reason: failure };
  }
  return { status: 'rejected', reason: error };
}

/**
 * Claims the workspace's documents (queued → parsing) in one transaction, and reads the whole bytes of
 * those that will be batched: files up to THREAD_THRESHOLD_BYTES, in job order, while their sum stays
 * within `batchBytes` (BATCH_BYTES; the rest are read when their turn comes). Duplicates (two jobs for one document
 * in the batch) and stale jobs are skipped.
 */
async function claim(db: Db, ws: string, items: Item[], batchBytes: number) {
  return withTenant(db, ws, async (trx) => {
    const ids = [...new Set(items.map((i) => i.payload.documentId))];
    const rows = await trx
      .selectFrom('documents as d')
      .innerJoin('collections as c', 'c.id', 'd.collection_id')
      .select([
        'd.id',
        'd.collection_id',
        'd.status',
        'd.version',
        'd.mime',
        'd.filename',
        'd.bytes',
        'c.text_search_config',
        'c.chunking',
        'c.embedding_provider',
      ])
      .where('d.workspace_id', '=', ws)
      .where('d.id', 'in', ids)
      .where('d.deleted_at', 'is', null)
      .orderBy('d.id')
      .forUpdate('d')
      .execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    const out = new Map<
      Item,
      { skip: string } | { doc: ClaimedRow; title: string | undefined; parts: Uint8Array[] | undefined }
    >();
    const taken = new Set<string>();
    const whole: string[] = [];
    let wholeBytes = 0;
    const toParse: string[] = [];
    for (const item of items) {
      const row = byId.get(item.payload.documentId);
      if (row?.version !== item.payload.version) out.set(item, { skip: 'stale' });
      else if (row.status !== 'queued' && row.status !== 'parsing') out.set(item, { skip: row.status });
      else if (taken.has(row.id)) out.set(item, { skip: 'duplicate' });
      else {
        taken.add(row.id);
        if (row.status === 'queued') toParse.push(row.id);
        const bytes = row.bytes ?? 0;
        if (bytes <= THREAD_THRESHOLD_BYTES && wholeBytes + bytes <= batchBytes) {
          whole.push(row.id);
          wholeBytes += bytes;
        }
      }
    }
    if (toParse.length > 0)
      await trx
        .updateTable('documents')
        .set({ status: 'parsing' })
        .where('workspace_id', '=', ws)
        .where('id', 'in', toParse)
        .execute();
    const parts = new Map<string, Uint8Array[]>(whole.map((id) => [id, []]));
    if (whole.length > 0) {
      const blobs = await trx
        .selectFrom('document_blobs')
        .select(['document_id', 'data'])
        .where('workspace_id', '=', ws)
        .where('document_id', 'in', whole)
        .orderBy('document_id')
        .orderBy('part')
        .execute();
      for (const b of blobs) parts.get(b.document_id)?.push(b.data);
    }
    for (const item of items) {
      if (out.has(item)) continue;
      const row = byId.get(item.payload.documentId);
      if (!row) continue;
      const own = parts.get(row.id);
      // A Markdown document's title is its first H1, read from its first bytes (the rest is streamed).
      let title: string | undefined;
      if (row.mime === 'text/markdown') {
        const head =
          own === undefined ? await markdownHead(trx, ws, row.id) : own[0]?.subarray(0, TITLE_HEAD_BYTES);
        title = head === undefined ? undefined : parseMarkdown(decodeText(head).text).title;
      }
      out.set(item, { doc: row, title, parts: own });
    }
    return out;
  });
}

/** Parses and chunks a document whose bytes are in hand (`parts`), or sets up the stream of a big one. */
async function prepare(
  item: Item,
  doc: ClaimedRow,
  title: string | undefined,
  parts: Uint8Array[] | undefined,
): Promise<Entry> {
  const { ctx } = item;
  const ws = item.payload.workspaceId;
  const chunking = chunkingOf(doc);
  const streamFormat = doc.mime === null ? undefined : STREAMED_FORMATS[doc.mime];
  const entry = { item, doc, title, mime: doc.mime };
  if (parts === undefined && streamFormat && (doc.bytes ?? 0) > THREAD_THRESHOLD_BYTES) {
    const bytes = doc.bytes ?? 0;
    let read = 0;
    let reported = 0;
    return {
      ...entry,
      source: (trx) =>
        chunkTextStreamInThread(
          (async function* () {
            for await (const part of blobParts(trx, ws, doc.id)) {
              read += part.length;
              const percent = Math.floor((read / bytes) * 100);
              if (percent >= reported + 10) {
                reported = percent;
                await ctx.deps.events.publish({
                  type: 'document.progress',
                  workspaceId: ws,
                  collectionId: doc.collection_id,
                  documentId: doc.id,
                  stage: 'parsing',
                  percent,
                });
              }
              yield part;
            }
          })(),
          { format: streamFormat, windowChars: 256_000, ...chunking },
        ),
    };
  }
  let chunks: Chunk[] = [];
  if (streamFormat) {
    // The same chunker, fed the same parts, as a streamed read: the same chunks. (Bytes not read with
    // the batch, past its BATCH_BYTES, are read now.)
    const own = parts ?? [await readAll(ctx.deps.database.db, ws, doc.id)];
    const stream = chunkTextStream(
      (async function* () {
        yield* own;
      })(),
      { format: streamFormat, windowChars: 256_000, ...chunking },
    );
    for await (const batch of stream) chunks.push(...batch);
  } else {
    const data = parts === undefined ? await readAll(ctx.deps.database.db, ws, doc.id) : concat(parts);
    const parsed = await parseDocument(data, {
      ...(doc.filename ? { filename: doc.filename } : {}),
      ...(doc.mime ? { mime: doc.mime } : {}),
    });
    entry.title = parsed.title;
    entry.mime = parsed.mime;
    chunks = chunkDocument(parsed, chunking);
  }
  if (chunks.length === 0) throw new ParseError('empty', 'no text could be extracted from the file');
  return {
    ...entry,
    source: async function* () {
      for (let i = 0; i < chunks.length; i += INSERT_BATCH) yield chunks.slice(i, i + INSERT_BATCH);
    },
  };
}

/**
 * Stores the entries' chunks in one transaction (the documents stay `parsing`, which no search reads)
 * that reserves their sequence numbers in the lexical index at its very end, then indexes them in a
 * second one: one UPDATE marks them all `searchable` (or `ready` when the collection has no embedding
 * model), which makes the index trigger write their postings lists (migrations/0013), and the embed
 * jobs are queued in the same transaction. A crash at any point leaves each document unsearchable
 * with its job to run again, or indexed with its embed job queued: never half indexed. Documents
 * deleted or re-queued meanwhile are dropped (`skipped: 'stale'`).
 */
async function storeAndIndex(ws: string, entries: Entry[]): Promise<Map<Item, unknown>> {
  const first = entries[0];
  if (!first) return new Map();
  const { ctx } = first.item;
  const db = ctx.deps.database.db;
  const out = new Map<Item, unknown>(entries.map((e) => [e.item, { skipped: 'stale' }]));
  const versions = (list: Entry[]) => new Map(list.map((e) => [e.doc.id, e.item.payload.version]));

  // 1. The chunks, in one transaction.
  const stored = await withTenant(db, ws, async (trx) => {
    const current = await lockParsing(trx, ws, versions(entries));
    const live = entries.filter((e) => current.has(e.doc.id));
    if (live.length === 0) return [];
    await trx
      .deleteFrom('chunks')
      .where('workspace_id', '=', ws)
      .where(
        'document_id',
        'in',
        live.map((e) => e.doc.id),
      )
      .execute();
    const counted: { entry: Entry; count: number; tokens: number; first?: number }[] = [];
    let pending: Row[] = [];
    for (const entry of live) {
      let count = 0;
      let tokens = 0;
      for await (const batch of entry.source(trx)) {
        for (const chunk of batch) {
          pending.push({ entry, chunk });
          tokens += chunk.tokenCount;
        }
        count += batch.length;
        if (pending.length >= INSERT_BATCH) {
          await insertChunks(trx, ws, pending);
          pending = [];
        }
      }
      if (count === 0) throw new ParseError('empty', 'no text could be extracted from the file');
      counted.push({ entry, count, tokens });
    }
    await insertChunks(trx, ws, pending);
    // Last, so the statistics rows they lock are held only until the commit: the chunks' sequence
    // numbers in the lexical index, reserved per collection for the indexing transaction below.
    const collections = [...new Set(counted.map((c) => c.entry.doc.collection_id))].sort();
    for (const collection of collections) {
      const own = counted.filter((c) => c.entry.doc.collection_id === collection);
      const total = own.reduce((n, c) => n + c.count, 0);
      const { rows } = await sql<{ first: number }>`
        select larder_lexical_reserve(${collection}::uuid, ${ws}::uuid, ${total}) as first`.execute(trx);
      let next = rows[0]?.first;
      if (next === undefined) continue;
      for (const c of own) {
        c.first = next;
        next += c.count;
      }
    }
    return counted;
  });
  if (stored.length === 0) return out;

  // 2. Index them (the status change makes the trigger write the lists and statistics).
  const reservation = stored
    .filter((s) => s.first !== undefined)
    .map((s) => `${s.entry.doc.id}:${s.first}:${s.count}`)
    .join(',');
  const written = await withTenant(db, ws, async (trx) => {
    const current = await lockParsing(trx, ws, versions(stored.map((s) => s.entry)), reservation);
    const live = stored.filter((s) => current.has(s.entry.doc.id));
    if (live.length === 0) return [];
    const rows = live.map((s) => {
      const autoTitle = current.get(s.entry.doc.id) === true;
      const status: DocumentStatus = s.entry.doc.embedding_provider !== null ? 'searchable' : 'ready';
      return {
        ...s,
        status,
        title: autoTitle && s.entry.title ? s.entry.title.slice(0, 500) : null,
      };
    });
    const column = <T>(pick: (r: (typeof rows)[number]) => T) => rows.map(pick);
    await sql`
      update documents d
      set status = u.status, error = null, mime = u.mime, chunk_count = u.chunks, token_count = u.tokens,
          processed_at = now(), title = coalesce(u.title, d.title)
      from unnest(${column((r) => r.entry.doc.id)}::uuid[], ${column((r) => r.status)}::text[],
                  ${column((r) => r.entry.mime)}::text[], ${column((r) => r.count)}::int[],
                  ${column((r) => r.tokens)}::bigint[], ${column((r) => r.title)}::text[])
        as u(id, status, mime, chunks, tokens, title)
      where d.workspace_id = ${ws}::uuid and d.id = u.id
    `.execute(trx);
    for (const r of rows)
      if (r.status === 'searchable')
        await r.entry.item.ctx.queue.send(embedDocumentJob, r.entry.item.payload, {
          trx,
          singletonKey: `${r.entry.doc.id}:${r.entry.item.payload.version}`,
        });
    return rows;
  });
  for (const r of written) {
    await setStatus(r.entry.item.ctx, r.entry.item.payload, r.entry.doc.collection_id, r.status);
    out.set(r.entry.item, { status: r.status, chunks: r.count, tokens: r.tokens });
  }
  // Merge the new postings lists soon; a lost request is caught by the periodic sweep.
  for (const collectionId of new Set(written.map((r) => r.entry.doc.collection_id)))
    await requestCompaction(ctx.queue, { workspaceId: ws, collectionId }).catch((error: unknown) => {
      ctx.log.warn({ err: error }, 'could not request a lexical compaction');
    });
  return out;
}

/**
 * Locks the documents still at these versions and `parsing` (in id order, so concurrent batches
 * cannot deadlock); returns their `auto_title`, keyed by id. With the same round trip, sets the
 * transaction's lexical-index reservation (see migrations/0013).
 */
async function lockParsing(
  trx: Trx,
  ws: string,
  versions: Map<string, number>,
  reservation?: string,
): Promise<Map<string, boolean>> {
  const rows = await trx
    .selectFrom('documents')
    .select(['id', 'version', 'status', 'auto_title'])
    .$if(reservation !== undefined, (q) =>
      q.select(
        sql<string>`set_config('larder.lexical_reservation', ${reservation ?? ''}, true)`.as('reserved'),
      ),
    )
    .where('workspace_id', '=', ws)
    .where('id', 'in', [...versions.keys()])
    .where('deleted_at', 'is', null)
    .orderBy('id')
    .forUpdate()
    .execute();
  return new Map(
    rows
      .filter((r) => r.version === versions.get(r.id) && r.status === 'parsing')
      .map((r) => [r.id, r.auto_title]),
  );
}

/** The first bytes of a document (for its Markdown title). */
async function markdownHead(trx: Trx, ws: string, documentId: string): Promise<Uint8Array | undefined> {
  const first = await trx
    .selectFrom('document_blobs')
    .select(sql<Uint8Array>`substring(data from 1 for ${TITLE_HEAD_BYTES})`.as('head'))
    .where('workspace_id', '=', ws)
    .where('document_id', '=', documentId)
    .where('part', '=', 0)
    .executeTakeFirst();
  return first?.head;
}

/** Reads part after part, each with its own query on `trx`. */
async function* blobParts(trx: Trx, ws: string, documentId: string): AsyncIterable<Uint8Array> {
  for (let part = 0; ; part++) {
    const row = await trx
      .selectFrom('document_blobs')
      .select('data')
      .where('workspace_id', '=', ws)
      .where('document_id', '=', documentId)
      .where('part', '=', part)
      .executeTakeFirst();
    if (!row) return;
    yield row.data;
  }
}

async function readAll(db: Db, ws: string, documentId: string): Promise<Uint8Array> {
  const rows = await withTenant(db, ws, (trx) =>
    trx
      .selectFrom('document_blobs')
      .select('data')
      .where('workspace_id', '=', ws)
      .where('document_id', '=', documentId)
      .orderBy('part')
      .execute(),
  );
  return concat(rows.map((r) => r.data));
}

/** The parts as one fresh, exactly-sized buffer: parsers (pdf.js) take `.buffer`, and a pooled Buffer's is shared. */
function concat(parts: Uint8Array[]): Uint8Array {
  const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    whole.set(part, at);
    at += part.length;
  }
  return whole;
}

interface Row {
  entry: Entry;
  chunk: Chunk;
}

/**
 * Chunks of one or more documents in one INSERT, with their full-text vectors. The vector is computed
 * in a lateral subquery fenced with `offset 0`: without the fence the planner inlines it into both
 * `tsv` and the `lexeme_count` subquery, and `to_tsvector` (the insert's largest cost) ran twice per
 * chunk (761 chunks: 232 → 147 ms).
 */
async function insertChunks(trx: Trx, ws: string, rows: Row[]) {
  if (rows.length === 0) return;
  const column = <T>(pick: (r: Row) => T) => rows.map(pick);
  const inputs = rows.map((r) => embeddingInput(r.chunk.headingPath, r.chunk.text));
  await sql`
    insert into chunks (workspace_id, collection_id, document_id, ordinal, text, token_count, heading_path,
                        char_start, char_end, page, page_end, content_hash, tsv, lexeme_count)
    select ${ws}::uuid, u.collection_id, u.document_id, u.ordinal, u.text, u.tokens,
           array(select jsonb_array_elements_text(u.headings::jsonb)), u.char_start, u.char_end, u.page, u.page_end,
           u.hash, v.tsv, (select coalesce(sum(greatest(cardinality(l.positions), 1)), 0) from unnest(v.tsv) l)
    from unnest(${column((r) => r.entry.doc.collection_id)}::uuid[], ${column((r) => r.entry.doc.id)}::uuid[],
                ${column((r) => r.entry.doc.text_search_config)}::text[],
                ${column((r) => r.chunk.ordinal)}::int[], ${column((r) => r.chunk.text)}::text[],
                ${column((r) => r.chunk.tokenCount)}::int[], ${column((r) => JSON.stringify(r.chunk.headingPath))}::text[],
                ${column((r) => r.chunk.headingPath.join(' '))}::text[], ${column((r) => r.chunk.charStart)}::int[],
                ${column((r) => r.chunk.charEnd)}::int[], ${column((r) => r.chunk.page)}::int[],
                ${column((r) => r.chunk.pageEnd)}::int[], ${inputs.map(contentHash)}::text[])
      as u(collection_id, document_id, config, ordinal, text, tokens, headings, heading_text, char_start, char_end,
           page, page_end, hash)
    cross join lateral (select to_tsvector(u.config::regconfig, u.heading_text || ' ' || u.text) as tsv offset 0) v
  `.execute(trx);
}

// ---------------------------------------------------------------------------------------------------
// Phase 2: embeddings

export async function embedDocument(payload: DocumentJobPayload, ctx: JobContext) {
  const db = ctx.deps.database.db;
  const ws = payload.workspaceId;
  const batchSize = ctx.deps.config.embeddingBatchSize;
  let embedded = 0;
  let fromCache = 0;
  try {
    for (;;) {
      if (ctx.signal.aborted) throw new Error('worker is shutting down');
      const step = await withTenant(db, ws, async (trx) => {
        const doc = await trx
          .selectFrom('documents as d')
          .innerJoin('collections as c', 'c.id', 'd.collection_id')
          .select([
            'd.collection_id',
            'd.status',
            'd.version',
            'd.chunk_count',
            'c.embedding_provider',
            'c.embedding_model',
            'c.embedding_dimensions',
          ])
          .where('d.workspace_id', '=', ws)
          .where('d.id', '=', payload.documentId)
          .where('d.deleted_at', 'is', null)
          .executeTakeFirst();
        if (doc?.version !== payload.version || doc.status !== 'searchable')
          return { done: 'stale' as const };
        if (!doc.embedding_provider || !doc.embedding_model || !doc.embedding_dimensions)
          return { done: 'no-model' as const, doc };
        const missing = await trx
          .selectFrom('chunks as ch')
          .select(['ch.id', 'ch.text', 'ch.heading_path', 'ch.content_hash'])
          .where('ch.workspace_id', '=', ws)
          .where('ch.document_id', '=', payload.documentId)
          .where((eb) =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom('chunk_embeddings as e')
                  .select(sql`1`.as('one'))
                  .whereRef('e.chunk_id', '=', 'ch.id')
                  .where('e.model', '=', doc.embedding_model),
              ),
            ),
          )
          .orderBy('ch.ordinal')
          .limit(batchSize)
          .execute();
        if (missing.length === 0) return { done: 'complete' as const, doc };
        const hashes = [...new Set(missing.map((m) => m.content_hash))];
        const cached = await trx
          .selectFrom('embedding_cache')
          .select(['content_hash', 'embedding'])
          .where('workspace_id', '=', ws)
          .where('model', '=', doc.embedding_model)
          .where('content_hash', 'in', hashes)
          .execute();
        return { doc, missing, cached: new Map(cached.map((c) => [c.content_hash, c.embedding])) };
      });
      if ('done' in step) {
        if (step.done === 'stale') return { skipped: 'stale', embedded, fromCache };
        break;
      }
      const { doc, missing, cached } = step;
      const model = doc.embedding_model ?? '';
      const dimensions = doc.embedding_dimensions ?? 0;
      const toEmbed = [
        ...new Map(
          missing.filter((m) => !cached.has(m.content_hash)).map((m) => [m.content_hash, m]),
        ).values(),
      ];
      const fresh = new Map<string, string>();
      if (toEmbed.length > 0) {
        const provider = ctx.deps.embeddings.get({
          provider: doc.embedding_provider as EmbeddingProviderName,
          model,
        });
        if (!provider)
          throw new EmbeddingError('rejected', `no embedding provider '${doc.embedding_provider}'`);
        const vectors = await provider.embedDocuments(
          toEmbed.map((m) => embeddingInput(m.heading_path, m.text)),
          ctx.signal,
        );
        vectors.forEach((vector, i) => {
          if (vector.length !== dimensions)
            throw new EmbeddingError(
              'bad_response',
              `the model returned ${vector.length} dimensions; the collection expects ${dimensions}`,
            );
          fresh.set(toEmbed[i]?.content_hash ?? '', `[${vector.join(',')}]`);
        });
      }
      const vectorOf = (hash: string) => fresh.get(hash) ?? cached.get(hash) ?? '';
      const stored = await withTenant(db, ws, async (trx) => {
        const current = await trx
          .selectFrom('documents')
          .select(['version', 'status'])
          .where('workspace_id', '=', ws)
          .where('id', '=', payload.documentId)
          .forShare()
          .executeTakeFirst();
        if (current?.version !== payload.version || current.status !== 'searchable') return false;
        if (fresh.size > 0)
          await sql`
            insert into embedding_cache (workspace_id, model, content_hash, dimensions, embedding)
            select ${ws}::uuid, ${model}, u.hash, ${dimensions}, u.embedding::vector
            from unnest(${[...fresh.keys()]}::text[], ${[...fresh.values()]}::text[]) as u(hash, embedding)
            on conflict do nothing
          `.execute(trx);
        await sql`
          insert into chunk_embeddings (chunk_id, workspace_id, collection_id, model, dimensions, embedding, content_hash)
          select u.chunk_id, ${ws}::uuid, ${doc.collection_id}::uuid, ${model}, ${dimensions}, u.embedding::vector, u.hash
          from unnest(${missing.map((m) => m.id)}::uuid[], ${missing.map((m) => vectorOf(m.content_hash))}::text[],
                      ${missing.map((m) => m.content_hash)}::text[]) as u(chunk_id, embedding, hash)
          on conflict (chunk_id, model) do nothing
        `.execute(trx);
        return true;
      });
      if (!stored) return { skipped: 'stale', embedded, fromCache };
      embedded += toEmbed.length;
      fromCache += missing.length - toEmbed.length;
      const total = doc.chunk_count || 1;
      await ctx.deps.events.publish({
        type: 'document.progress',
        workspaceId: ws,
        collectionId: doc.collection_id,
        documentId: payload.documentId,
        stage: 'embedding',
        percent: Math.min(100, Math.round(((embedded + fromCache) / total) * 100)),
      });
    }
    const ready = await withTenant(db, ws, (trx) =>
      trx
        .updateTable('documents')
        .set({ status: 'ready', processed_at: new Date() })
        .where('workspace_id', '=', ws)
        .where('id', '=', payload.documentId)
        .where('version', '=', payload.version)
        .where('status', '=', 'searchable')
        .returning('collection_id')
        .executeTakeFirst(),
    );
    if (ready) await setStatus(ctx, payload, ready.collection_id, 'ready');
    return { embedded, fromCache };
  } catch (error) {
    // A shutdown aborts the request: not the document's fault, the job runs again.
    const permanent = error instanceof EmbeddingError && !error.retryable && error.reason !== 'aborted';
    if (permanent || ctx.lastAttempt) {
      await fail(db, ctx, payload, `embedding failed: ${describe(error)}`);
      if (permanent) return { failed: describe(error) };
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------
// Model change

/**
 * Puts every indexed document of the collection back to `searchable` and queues its embed job for
 * the collection's current model, then removes vectors of other models. Idempotent.
 */
export async function reembedCollection(
  payload: { workspaceId: string; collectionId: string },
  ctx: JobContext,
) {
  const db = ctx.deps.database.db;
  const ws = payload.workspaceId;
  return withTenant(db, ws, async (trx) => {
    const collection = await trx
      .selectFrom('collections')
      .select(['embedding_model'])
      .where('workspace_id', '=', ws)
      .where('id', '=', payload.collectionId)
      .executeTakeFirst();
    if (!collection) return { skipped: 'deleted' };
    await trx
      .deleteFrom('chunk_embeddings')
      .where('workspace_id', '=', ws)
      .where('collection_id', '=', payload.collectionId)
      .$if(collection.embedding_model !== null, (q) =>
        q.where('model', '<>', collection.embedding_model ?? ''),
      )
      .execute();
    const docs = await trx
      .updateTable('documents')
      .set({ status: collection.embedding_model === null ? 'ready' : 'searchable' })
      .where('workspace_id', '=', ws)
      .where('collection_id', '=', payload.collectionId)
      .where('status', 'in', ['searchable', 'ready'])
      .returning(['id', 'version'])
      .execute();
    if (collection.embedding_model !== null)
      for (const doc of docs)
        await ctx.queue.send(
          embedDocumentJob,
          { workspaceId: ws, documentId: doc.id, version: doc.version },
          { trx, singletonKey: `${doc.id}:${doc.version}:reembed` },
        );
    return { documents: docs.length };
  });
}
