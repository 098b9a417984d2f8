/**
 * The ingestion jobs. Each is idempotent and checks the document's `version` first, so a job that
 * is delivered twice, arrives after the document changed, or runs for a deleted document does
 * nothing harmful (at-least-once delivery is safe). See pipeline.ts for the work itself.
 */
import Type from 'typebox';
import { defineJob } from '../../platform/jobs/define.js';

/** The pipeline (parsers, tokenizer, embedding clients) loads on first run, not in every API process. */
const pipeline = () => import('./pipeline.js');

const Uuid = Type.String({ format: 'uuid' });
const DocumentPayload = Type.Object({
  workspaceId: Uuid,
  documentId: Uuid,
  version: Type.Integer({ minimum: 1 }),
});

/**
 * Where an ingest or embed job goes when it fails for good, retries spent, including by timeouts (a
 * worker killed mid-job never reaches the handler's own last-attempt code): marks the document
 * `failed` if it is still in flight at that version, so nothing stays `parsing` forever.
 */
export const documentJobFailedJob = defineJob({
  name: 'documents.failed',
  payload: DocumentPayload,
  retry: { limit: 5, delaySeconds: 10, backoff: true },
  expireInSeconds: 5 * 60,
  handler: async (payload, ctx): Promise<unknown> => (await pipeline()).failAbandoned(payload, ctx),
});

/** Parse, chunk and index lexically: queued → parsing → searchable (or ready without embeddings). */
export const ingestDocumentJob = defineJob({
  name: 'documents.ingest',
  payload: DocumentPayload,
  retry: { limit: 4, delaySeconds: 5, backoff: true },
  expireInSeconds: 30 * 60,
  deadLetter: documentJobFailedJob.name,
  handler: async (payload, ctx): Promise<unknown> => (await pipeline()).ingestDocument(payload, ctx),
  // Waiting documents are ingested together, up to this many per worker (and BATCH_BYTES of them in
  // memory): their chunks are stored in one transaction and indexed in another, whose postings lists
  // hold all of them (see pipeline.ts).
  batch: {
    size: 64,
    handler: async (items) => (await pipeline()).ingestDocuments(items),
  },
});

/** Embed the chunks that have no vector for the collection's model yet: searchable → ready. */
export const embedDocumentJob = defineJob({
  name: 'documents.embed',
  payload: DocumentPayload,
  retry: { limit: 6, delaySeconds: 10, backoff: true },
  expireInSeconds: 60 * 60,
  deadLetter: documentJobFailedJob.name,
  handler: async (payload, ctx): Promise<unknown> => (await pipeline()).embedDocument(payload, ctx),
});

/** After a collection's embedding model changed: re-embed every document, drop the old vectors. */
export const reembedCollectionJob = defineJob({
  name: 'collections.reembed',
  payload: Type.Object({ workspaceId: Uuid, collectionId: Uuid }),
  retry: { limit: 4, delaySeconds: 10, backoff: true },
  expireInSeconds: 30 * 60,
  handler: async (payload, ctx): Promise<unknown> => (await pipeline()).reembedCollection(payload, ctx),
});

export const documentJobs = [documentJobFailedJob, ingestDocumentJob, embedDocumentJob, reembedCollectionJob];
