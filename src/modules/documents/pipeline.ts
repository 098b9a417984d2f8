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
 *    stays bounded.
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
import type { JobContext } from '../../platform/jobs/define.js';
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

export async function ingestDocument(payload: DocumentJobPayload, ctx: JobContext) {
  const db = ctx.deps.database.db;
  const ws = payload.workspaceId;
  const claimed = await withTenant(db, ws, async (trx) => {
    const row = await trx
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
      .where('d.id', '=', payload.documentId)
      .where('d.deleted_at', 'is', null)
      .forUpdate('d')
      .executeTakeFirst();
    if (row?.version !== payload.version) return { skip: 'stale' as const };
    if (row.status !== 'queued' && row.status !== 'parsing') return { skip: row.status };
    if (row.status === 'queued')
      await trx
        .updateTable('documents')
        .set({ status: 'parsing' })
        .where('workspace_id', '=', ws)
        .where('id', '=', row.id)
        .execute();
    // A Markdown document's title is its first H1, read from its first bytes (the rest is streamed).
    const title = row.mime === 'text/markdown' ? await markdownTitle(trx, ws, row.id) : undefined;
    return { row, title };
  });
  if ('skip' in claimed) {
    ctx.log.info({ documentId: payload.documentId, skip: claimed.skip }, 'ingest skipped');
    return { skipped: claimed.skip };
  }
  const doc = claimed.row;
  await setStatus(ctx, payload, doc.collection_id, 'parsing');
  const chunking: ChunkingSettings = {
    ...DEFAULT_CHUNKING,
    ...(doc.chunking as Partial<ChunkingSettings>),
  };
  const embeds = doc.embedding_provider !== null;
  const bytes = doc.bytes ?? 0;
  const streamFormat = doc.mime === null ? undefined : STREAMED_FORMATS[doc.mime];

  try {
    let title = claimed.title;
    let mime = doc.mime;
    let source: (trx: Trx) => AsyncIterable<Chunk[]>;
    if (streamFormat) {
      let read = 0;
      let reported = 0;
      const chunker = bytes > THREAD_THRESHOLD_BYTES ? chunkTextStreamInThread : chunkTextStream;
      source = (trx) =>
        chunker(
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
        );
    } else {
      const data = await readAll(db, ws, doc.id);
      const parsed = await parseDocument(data, {
        ...(doc.filename ? { filename: doc.filename } : {}),
        ...(doc.mime ? { mime: doc.mime } : {}),
      });
      title = parsed.title;
      mime = parsed.mime;
      const chunks = chunkDocument(parsed, chunking);
      source = async function* () {
        for (let i = 0; i < chunks.length; i += INSERT_BATCH) yield chunks.slice(i, i + INSERT_BATCH);
      };
    }

    // 1. The chunks, in one transaction. The document stays `parsing`, so nothing reads them yet.
    const stored = await withTenant(db, ws, async (trx) => {
      // Re-check under lock: deleted or re-queued while we parsed → drop the work.
      const current = await lockParsing(trx, ws, doc.id, payload.version);
      if (!current) return undefined;
      await trx
        .deleteFrom('chunks')
        .where('workspace_id', '=', ws)
        .where('document_id', '=', doc.id)
        .execute();
      let count = 0;
      let tokens = 0;
      for await (const batch of source(trx)) {
        await insertChunks(
          trx,
          { ws, collectionId: doc.collection_id, documentId: doc.id },
          doc.text_search_config,
          batch,
        );
        count += batch.length;
        for (const chunk of batch) tokens += chunk.tokenCount;
      }
      if (count === 0) throw new ParseError('empty', 'no text could be extracted from the file');
      // Last, so the collection's statistics row it locks is held only until the commit: the chunks'
      // sequence numbers in the lexical index, reserved for the indexing transaction below.
      const { rows } = await sql<{ first: string }>`
        select larder_lexical_reserve(${doc.collection_id}::uuid, ${ws}::uuid, ${count}) as first`.execute(
        trx,
      );
      return { count, tokens, first: rows[0]?.first };
    });
    if (!stored) return { skipped: 'stale' };
    // 2. Index: the status change makes the index trigger write the postings lists and statistics
    // (migrations/0012_lexical_ingest.sql); the embed job is queued in the same transaction.
    const written = await withTenant(db, ws, async (trx) => {
      const current = await lockParsing(
        trx,
        ws,
        doc.id,
        payload.version,
        stored.first === undefined ? undefined : `${doc.id}:${stored.first}:${stored.count}`,
      );
      if (!current) return undefined;
      const status: DocumentStatus = embeds ? 'searchable' : 'ready';
      await trx
        .updateTable('documents')
        .set({
          status,
          error: null,
          mime,
          chunk_count: stored.count,
          token_count: stored.tokens,
          processed_at: new Date(),
          ...(current.auto_title && title ? { title: title.slice(0, 500) } : {}),
        })
        .where('workspace_id', '=', ws)
        .where('id', '=', doc.id)
        .execute();
      if (embeds)
        await ctx.queue.send(embedDocumentJob, payload, {
          trx,
          singletonKey: `${doc.id}:${payload.version}`,
        });
      return { status, chunks: stored.count, tokens: stored.tokens };
    });
    if (!written) return { skipped: 'stale' };
    await setStatus(ctx, payload, doc.collection_id, written.status);
    // Merge the new postings lists soon; a lost request is caught by the periodic sweep.
    await requestCompaction(ctx.queue, { workspaceId: ws, collectionId: doc.collection_id }).catch(
      (error: unknown) => {
        ctx.log.warn({ err: error }, 'could not request a lexical compaction');
      },
    );
    return written;
  } catch (error) {
    if (error instanceof ParseError) {
      await fail(db, ctx, payload, `${error.reason}: ${error.message}`);
      return { failed: error.reason };
    }
    if (ctx.lastAttempt) await fail(db, ctx, payload, `processing failed: ${describe(error)}`);
    throw error;
  }
}

/**
 * Locks the document if it is still this version and `parsing`; undefined if not (stale or deleted).
 * With the same round trip, sets the transaction's lexical-index reservation (see migrations/0012).
 */
async function lockParsing(trx: Trx, ws: string, documentId: string, version: number, reservation?: string) {
  const current = await trx
    .selectFrom('documents')
    .select(['version', 'status', 'auto_title'])
    .$if(reservation !== undefined, (q) =>
      q.select(
        sql<string>`set_config('larder.lexical_reservation', ${reservation ?? ''}, true)`.as('reserved'),
      ),
    )
    .where('workspace_id', '=', ws)
    .where('id', '=', documentId)
    .where('deleted_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  return current?.version === version && current.status === 'parsing' ? current : undefined;
}

/** The first H1 of a Markdown document, from its first bytes. */
async function markdownTitle(trx: Trx, ws: string, documentId: string): Promise<string | undefined> {
  const first = await trx
    .selectFrom('document_blobs')
    .select(sql<Uint8Array>`substring(data from 1 for ${TITLE_HEAD_BYTES})`.as('head'))
    .where('workspace_id', '=', ws)
    .where('document_id', '=', documentId)
    .where('part', '=', 0)
    .executeTakeFirst();
  if (!first) return undefined;
  return parseMarkdown(decodeText(first.head).text).title;
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
  // A fresh, exactly-sized buffer: parsers (pdf.js) take `.buffer`, and a pooled Buffer's is shared.
  const whole = new Uint8Array(rows.reduce((n, r) => n + r.data.length, 0));
  let at = 0;
  for (const row of rows) {
    whole.set(row.data, at);
    at += row.data.length;
  }
  return whole;
}

async function insertChunks(
  trx: Trx,
  owner: { ws: string; collectionId: string; documentId: string },
  textSearchConfig: string,
  chunks: Chunk[],
) {
  if (chunks.length === 0) return;
  const column = <T>(pick: (c: Chunk) => T) => chunks.map(pick);
  const inputs = chunks.map((c) => embeddingInput(c.headingPath, c.text));
  await sql`
    insert into chunks (workspace_id, collection_id, document_id, ordinal, text, token_count, heading_path,
                        char_start, char_end, page, page_end, content_hash, tsv, lexeme_count)
    select ${owner.ws}::uuid, ${owner.collectionId}::uuid, ${owner.documentId}::uuid, u.ordinal, u.text, u.tokens,
           array(select jsonb_array_elements_text(u.headings::jsonb)), u.char_start, u.char_end, u.page, u.page_end,
           u.hash, v.tsv, (select coalesce(sum(greatest(cardinality(l.positions), 1)), 0) from unnest(v.tsv) l)
    from unnest(${column((c) => c.ordinal)}::int[], ${column((c) => c.text)}::text[],
                ${column((c) => c.tokenCount)}::int[], ${column((c) => JSON.stringify(c.headingPath))}::text[],
                ${column((c) => c.headingPath.join(' '))}::text[], ${column((c) => c.charStart)}::int[],
                ${column((c) => c.charEnd)}::int[], ${column((c) => c.page)}::int[], ${column((c) => c.pageEnd)}::int[],
                ${inputs.map(contentHash)}::text[])
      as u(ordinal, text, tokens, headings, heading_text, char_start, char_end, page, page_end, hash)
    cross join lateral (select to_tsvector(${textSearchConfig}::regconfig, u.heading_text || ' ' || u.text) as tsv) v
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
