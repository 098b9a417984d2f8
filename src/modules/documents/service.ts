/**
 * Documents: the files, pages and texts of a collection, and the one place that adds, replaces,
 * lists and removes them. The REST routes, `larder ingest` and `larder import` all call this service.
 *
 * Adding a document (`add`):
 *  1. The content is spooled to a temporary file while it is hashed and counted (never held in
 *     memory, never inside a transaction; `payload_too_large` past the limit). Content the caller
 *     already holds in memory (a Uint8Array) is hashed and counted where it is.
 *  2. The first bytes are sniffed: a format no parser reads is refused with 415 before anything is
 *     stored; an empty body is refused with 422.
 *  3. One tenant transaction decides what the content is:
 *     - same `externalId` as a live document, same bytes → `unchanged` (title/metadata updated if given);
 *     - same `externalId`, other bytes → `updated`: the bytes are replaced, the version goes up and the
 *       document is queued again (its old chunks stay searchable until the new ones replace them);
 *     - no `externalId` match, but the same bytes already in the collection → `duplicate` (the existing
 *       document is returned, nothing is stored or processed);
 *     - otherwise → `created`.
 *     The bytes are written as `document_blobs` parts and the ingest job is enqueued in the same
 *     transaction: either the document, its bytes and its job all exist, or none of them does.
 *  Two requests with the same `externalId` or bytes at once are serialised by a transaction-scoped
 *  advisory lock, so they can never both create a document.
 *
 * Every method applies collection-level access (platform/auth/collection-access.ts): a document in a
 * collection the caller may not see answers exactly like a missing one (404).
 */
import { createHash } from 'node:crypto';
import { type QueryCreator, sql, type Transaction } from 'kysely';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import {
  allowlist,
  assertCollectionVisible,
  collectionNotFound,
  inVisibleCollection,
  templateWorkspace,
  visibilityShape,
  visibleCollectionQuery,
} from '../../platform/auth/collection-access.js';
import { afterPosition, cursorPosition, keysetPage, positionAt } from '../../platform/db/cursor.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, DocumentStatus } from '../../platform/db/schema.js';
import { ReadTemplate, tenantRead, withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import type { EventBus } from '../../platform/events/bus.js';
import type { JobQueue } from '../../platform/jobs/queue.js';
import { safeFetch, UrlFetchError } from '../../platform/net/safe-fetch.js';
import { ParseError } from '../../ai/parsing/index.js';
import { sniff } from '../../ai/parsing/sniff.js';
import { type AuditContext, auditRow, recordAudit, SYSTEM_AUDIT } from '../audit/service.js';
import { ingestDocumentJob } from './jobs.js';
import { inMemory, spool, type SpooledFile } from './spool.js';
import { requestCompaction } from '../search/jobs.js';

export const DOCUMENT_COLUMNS = [
  'id',
  'collection_id',
  'external_id',
  'title',
  'filename',
  'source_uri',
  'mime',
  'sha256',
  'bytes',
  'status',
  'error',
  'version',
  'metadata',
  'chunk_count',
  'token_count',
  'processed_at',
  'created_at',
  'updated_at',
] as const;

export interface DocumentRow {
  id: string;
  collection_id: string;
  external_id: string | null;
  title: string;
  filename: string | null;
  source_uri: string | null;
  mime: string | null;
  sha256: string | null;
  bytes: number | string | null;
  status: DocumentStatus;
  error: string | null;
  version: number;
  metadata: unknown;
  chunk_count: number;
  token_count: number | string;
  processed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export type AddOutcome = 'created' | 'updated' | 'unchanged' | 'duplicate' | 'requeued';

export interface AddDocumentInput {
  /** The bytes, streamed (an upload) or whole (raw text). */
  content: AsyncIterable<Uint8Array> | Uint8Array;
  filename?: string | undefined;
  /** Declared media type; content sniffing decides, this only breaks ties (e.g. Markdown vs text). */
  mime?: string | undefined;
  title?: string | undefined;
  externalId?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
  sourceUri?: string | undefined;
}

export interface AddResult {
  outcome: AddOutcome;
  document: DocumentRow;
}

export interface DocumentFilters {
  status?: DocumentStatus[] | undefined;
  mime?: string | undefined;
  externalId?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  updatedAfter?: string | undefined;
  updatedBefore?: string | undefined;
}

export interface DocumentServiceOptions {
  uploadLimitBytes: number;
  urlFetchTimeoutMs: number;
  /** Tests only: allow URLs on private addresses (the SSRF guard still refuses metadata endpoints). */
  allowPrivateUrls?: boolean;
}

type Trx = Transaction<DB>;

const notFound = () => new AppError('not_found', { detail: 'No such document' });

/** The live document, if its collection is visible to the caller. */
function findDocument(q: QueryCreator<DB>, ws: WorkspaceContext, id: string) {
  return q
    .selectFrom('documents')
    .select(DOCUMENT_COLUMNS)
    .where('workspace_id', '=', ws.id)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .where(inVisibleCollection(ws, 'documents.collection_id'));
}

/**
 * GET by id is the hottest read: built and compiled once per visibility shape. Values: workspace id,
 * document id, then the caller's allowlist; the caller's role (part of the shape) comes as context.
 */
/** A page of a collection's documents (oldest first), `limit` rows after `after`. */
function documentPage(
  q: QueryCreator<DB>,
  workspaceId: string,
  collectionId: string,
  filters: DocumentFilters,
  after: ReturnType<typeof cursorPosition>,
  limit: number,
) {
  let query = q
    .selectFrom('documents')
    .select([...DOCUMENT_COLUMNS, positionAt.as('position_at')])
    .where('workspace_id', '=', workspaceId)
    .where('collection_id', '=', collectionId)
    .where('deleted_at', 'is', null);
  if (filters.status?.length) query = query.where('status', 'in', filters.status);
  if (filters.mime !== undefined) query = query.where('mime', '=', filters.mime);
  if (filters.externalId !== undefined) query = query.where('external_id', '=', filters.externalId);
  if (filters.metadata !== undefined)
    query = query.where(sql<boolean>`metadata @> ${JSON.stringify(filters.metadata)}::jsonb`);
  if (filters.createdAfter !== undefined)
    query = query.where('created_at', '>=', new Date(filters.createdAfter));
  if (filters.createdBefore !== undefined)
    query = query.where('created_at', '<', new Date(filters.createdBefore));
  if (filters.updatedAfter !== undefined)
    query = query.where('updated_at', '>=', new Date(filters.updatedAfter));
  if (filters.updatedBefore !== undefined)
    query = query.where('updated_at', '<', new Date(filters.updatedBefore));
  if (after) query = query.where(afterPosition(after));
  return query.orderBy('created_at').orderBy('id').limit(limit);
}

/** The unfiltered first page of a list, compiled once per page size. Values: workspace, collection. */
const FIRST_PAGE = new ReadTemplate((q, [workspaceId = '', collectionId = ''], limit: number) =>
  documentPage(q, workspaceId, collectionId, {}, undefined, limit),
);

/** The list's collection check, compiled once per visibility shape (values as FIND_DOCUMENT's). */
const VISIBLE_COLLECTION = new ReadTemplate(
  (q, [workspaceId = '', collectionId = '', ...allowlisted], ws: WorkspaceContext) =>
    visibleCollectionQuery(q, templateWorkspace(ws, workspaceId, allowlisted), collectionId),
);

const FIND_DOCUMENT = new ReadTemplate(
  (q, [workspaceId = '', id = '', ...allowlisted], ws: WorkspaceContext) =>
    findDocument(q, templateWorkspace(ws, workspaceId, allowlisted), id),
);

/** A 64-bit advisory-lock key for a (collection, kind, value) triple. */
/**
 * The live document of the collection with this external id (row-locked: the add may replace it)
 * and, when there is none, the oldest live one with these bytes: one statement.
 */
async function findLive(
  trx: Trx,
  workspaceId: string,
  collectionId: string,
  externalId: string | undefined,
  sha256: string,
): Promise<{ existing: DocumentRow | undefined; twin: DocumentRow | undefined }> {
  const columns = sql.join(DOCUMENT_COLUMNS.map((c) => sql.ref(c)));
  const live = sql`workspace_id = ${workspaceId}::uuid and collection_id = ${collectionId}::uuid and deleted_at is null`;
  const bySha = sql<DocumentRow>`select ${columns} from documents where ${live} and sha256 = ${sha256} order by created_at limit 1`;
  if (externalId === undefined) {
    const { rows } = await bySha.execute(trx);
    return { existing: undefined, twin: rows[0] };
  }
  const { rows } = await sql<DocumentRow & { by_external_id: boolean }>`
    with e as (select ${columns} from documents where ${live} and external_id = ${externalId} for update)
    select ${columns}, true as by_external_id from e
    union all
    (select ${columns}, false from documents
     where ${live} and sha256 = ${sha256} and not exists (select from e) order by created_at limit 1)
  `.execute(trx);
  const pick = (byExternalId: boolean) => {
    const row = rows.find((r) => r.by_external_id === byExternalId);
    if (!row) return undefined;
    const { by_external_id: _, ...document } = row;
    return document;
  };
  return { existing: pick(true), twin: pick(false) };
}

const lockKey = (collectionId: string, kind: string, value: string) =>
  createHash('sha256').update(`${collectionId}\0${kind}\0${value}`).digest().readBigInt64BE(0).toString();

export class DocumentService {
  constructor(
    private readonly db: Db,
    private readonly jobs: JobQueue | undefined,
    private readonly events: EventBus | undefined,
    private readonly options: DocumentServiceOptions,
  ) {}

  /** Adds (or replaces, by `externalId`) a document; see the module comment for the outcomes. */
  async add(
    ws: WorkspaceContext,
    createdBy: string | null,
    collectionId: string,
    input: AddDocumentInput,
    audit: AuditContext = SYSTEM_AUDIT,
  ): Promise<AddResult> {
    assertPermission(ws, 'documents:write');
    const limit = this.options.uploadLimitBytes;
    const file =
      input.content instanceof Uint8Array
        ? inMemory(input.content, limit)
        : await spool(input.content, limit);
    try {
      if (file.bytes === 0)
        throw new AppError('unprocessable_document', {
          detail: 'The document is empty',
          extensions: { reason: 'empty' },
        });
      const mime = await precheck(file, input);
      const result = await withTenant(this.db, ws.id, (trx) =>
        this.#store(trx, ws, createdBy, collectionId, input, file, mime, audit),
      );
      if (result.outcome !== 'unchanged' && result.outcome !== 'duplicate')
        await this.#published(ws.id, result.document);
      return result;
    } finally {
      await file.dispose();
    }
  }

  /** Fetches a URL through the SSRF guard, then adds it like an upload. */
  async addFromUrl(
    ws: WorkspaceContext,
    createdBy: string | null,
    collectionId: string,
    input: Omit<AddDocumentInput, 'content' | 'sourceUri'> & { url: string },
    audit: AuditContext = SYSTEM_AUDIT,
  ): Promise<AddResult> {
    assertPermission(ws, 'documents:write');
    // Fail fast on a missing collection before fetching anything.
    await this.#collection(ws, collectionId);
    let page;
    try {
      page = await safeFetch(input.url, {
        maxBytes: this.options.uploadLimitBytes,
        timeoutMs: this.options.urlFetchTimeoutMs,
        allowedContentTypes: URL_CONTENT_TYPES,
        ...(this.options.allowPrivateUrls ? { allowPrivate: true } : {}),
      });
    } catch (error) {
      throw urlError(error, this.options.uploadLimitBytes);
    }
    const declared = page.contentType?.split(';')[0]?.trim().toLowerCase();
    const mime = declared === '' ? undefined : declared;
    return this.add(
      ws,
      createdBy,
      collectionId,
      {
        ...input,
        content: page.body,
        sourceUri: page.url,
        filename: input.filename ?? page.filename ?? undefined,
        mime: input.mime ?? mime,
      },
      audit,
    );
  }

  /** 404 unless the collection exists and the caller may see it. */
  async #collection(ws: WorkspaceContext, collectionId: string): Promise<void> {
    await withTenant(this.db, ws.id, (trx) => assertCollectionVisible(trx, ws, collectionId));
  }

  async #store(
    trx: Trx,
    ws: WorkspaceContext,
    createdBy: string | null,
    collectionId: string,
    input: AddDocumentInput,
    file: SpooledFile,
    mime: string,
    audit: AuditContext,
  ): Promise<AddResult> {
    // The add runs as few statements as it can (each is a round trip, and an import makes thousands):
    // the collection check takes the advisory lock too, one statement finds both the live document
    // with this external id and the one with these bytes, and a new document is inserted with its
    // bytes and its audit event in one.
    const key =
      input.externalId === undefined
        ? lockKey(collectionId, 'sha256', file.sha256)
        : lockKey(collectionId, 'external_id', input.externalId);
    // Visible to the caller and share-locked against deletion; the advisory lock serialises adds of
    // the same external id or bytes (taken only when the collection is there).
    const visible = await visibleCollectionQuery(trx, ws, collectionId)
      .select(sql<string>`pg_advisory_xact_lock(${key}::bigint)::text`.as('locked'))
      .forShare()
      .executeTakeFirst();
    if (!visible) throw collectionNotFound();

    const { existing, twin } = await findLive(trx, ws.id, collectionId, input.externalId, file.sha256);

    // The same bytes again after a failure: the caller wants another try (a fixed parser, a provider
    // back up), not a silent no-op.
    const retry = async (id: string): Promise<AddResult> => {
      const document = await this.#requeue(trx, ws.id, id);
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'document.reprocessed',
        target: { type: 'document', id },
      });
      return { outcome: 'requeued', document };
    };
    if (existing?.sha256 === file.sha256) {
      const changed = await this.#applyDetails(trx, ws.id, existing.id, input);
      return existing.status === 'failed'
        ? retry(existing.id)
        : { outcome: 'unchanged', document: changed ?? existing };
    }
    if (!existing && twin)
      return twin.status === 'failed' ? retry(twin.id) : { outcome: 'duplicate', document: twin };

    const title = input.title ?? input.filename ?? input.sourceUri ?? 'Untitled';
    let document: DocumentRow;
    if (existing) {
      await trx
        .deleteFrom('document_blobs')
        .where('workspace_id', '=', ws.id)
        .where('document_id', '=', existing.id)
        .execute();
      document = await trx
        .updateTable('documents')
        .set((eb) => ({
          sha256: file.sha256,
          bytes: file.bytes,
          mime,
          filename: input.filename ?? null,
          source_uri: input.sourceUri ?? null,
          // Without a new title, a title the caller once set stays; a title taken from the old
          // content gives way to the new file's name until the parser finds one in the content.
          ...(input.title === undefined
            ? {
                title: sql<string>`case when auto_title then coalesce(${input.filename ?? null}, title) else title end`,
              }
            : { title: input.title, auto_title: false }),
          ...(input.metadata === undefined ? {} : { metadata: JSON.stringify(input.metadata) }),
          status: 'queued' as const,
          error: null,
          version: eb('version', '+', 1),
        }))
        .where('workspace_id', '=', ws.id)
        .where('id', '=', existing.id)
        .returning(DOCUMENT_COLUMNS)
        .executeTakeFirstOrThrow();
    } else {
      // With its audit event, and its bytes when they are one part that is already in memory.
      const whole = file.bytes <= file.head.length ? file.head : undefined;
      const event = auditRow({
        ...audit,
        workspaceId: ws.id,
        action: 'document.created',
        target: { type: 'document', id: null },
        data: { collectionId, bytes: file.bytes, sha256: file.sha256 },
      });
      document = await trx
        .with('d', (db) =>
          db
            .insertInto('documents')
            .values({
              workspace_id: ws.id,
              collection_id: collectionId,
              external_id: input.externalId ?? null,
              title,
              auto_title: input.title === undefined,
              filename: input.filename ?? null,
              source_uri: input.sourceUri ?? null,
              mime,
              sha256: file.sha256,
              bytes: file.bytes,
              metadata: JSON.stringify(input.metadata ?? {}),
              created_by: createdBy,
            })
            .returning(DOCUMENT_COLUMNS),
        )
        .with('b', (db) =>
          db
            .insertInto('document_blobs')
            .columns(['document_id', 'workspace_id', 'part', 'data'])
            .expression((eb) =>
              eb
                .selectFrom('d')
                .select([
                  'd.id',
                  sql<string>`${ws.id}::uuid`.as('workspace_id'),
                  sql<number>`0`.as('part'),
                  sql<Buffer>`${whole === undefined ? null : Buffer.from(whole)}::bytea`.as('data'),
                ])
                .where(sql<boolean>`${whole !== undefined}`),
            ),
        )
        .with('a', (db) =>
          db
            .insertInto('audit_log')
            .columns([
              'workspace_id',
              'actor_type',
              'actor_user_id',
              'actor_api_key_id',
              'action',
              'target_type',
              'target_id',
              'ip',
              'user_agent',
              'request_id',
              'data',
            ])
            .expression((eb) =>
              eb
                .selectFrom('d')
                .select([
                  sql<string>`${ws.id}::uuid`.as('workspace_id'),
                  sql<string>`${event.actor_type}::text`.as('actor_type'),
                  sql<string>`${event.actor_user_id}::uuid`.as('actor_user_id'),
                  sql<string>`${event.actor_api_key_id}::uuid`.as('actor_api_key_id'),
                  sql<string>`${event.action}::text`.as('action'),
                  sql<string>`'document'`.as('target_type'),
                  sql<string>`d.id::text`.as('target_id'),
                  sql<string>`${event.ip}::inet`.as('ip'),
                  sql<string>`${event.user_agent}::text`.as('user_agent'),
                  sql<string>`${event.request_id}::text`.as('request_id'),
                  sql<string>`${event.data}::jsonb || jsonb_build_object('version', d.version)`.as('data'),
                ]),
            ),
        )
        .selectFrom('d')
        .selectAll()
        .executeTakeFirstOrThrow();
      if (whole === undefined) await this.#insertParts(trx, ws.id, document.id, file);
      await this.#enqueueIngest(trx, ws.id, document);
      return { outcome: 'created', document };
    }

    await this.#insertParts(trx, ws.id, document.id, file);
    await this.#enqueueIngest(trx, ws.id, document);
    await recordAudit(trx, {
      ...audit,
      workspaceId: ws.id,
      action: 'document.replaced',
      target: { type: 'document', id: document.id },
      data: { collectionId, bytes: file.bytes, sha256: file.sha256, version: document.version },
    });
    return { outcome: 'updated', document };
  }

  async #insertParts(trx: Trx, workspaceId: string, documentId: string, file: SpooledFile) {
    let part = 0;
    for await (const data of file.parts()) {
      await trx
        .insertInto('document_blobs')
        .values({ document_id: documentId, workspace_id: workspaceId, part, data })
        .execute();
      part += 1;
    }
  }

  async #applyDetails(
    trx: Trx,
    workspaceId: string,
    id: string,
    input: Pick<AddDocumentInput, 'title' | 'metadata'>,
  ) {
    if (input.title === undefined && input.metadata === undefined) return undefined;
    return (await trx
      .updateTable('documents')
      .set({
        ...(input.title === undefined ? {} : { title: input.title, auto_title: false }),
        ...(input.metadata === undefined ? {} : { metadata: JSON.stringify(input.metadata) }),
      })
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .returning(DOCUMENT_COLUMNS)
      .executeTakeFirstOrThrow()) as DocumentRow;
  }

  /** Back to `queued` with a new version, and its ingest job. */
  async #requeue(trx: Trx, workspaceId: string, id: string): Promise<DocumentRow> {
    const row = (await trx
      .updateTable('documents')
      .set((eb) => ({ status: 'queued' as const, error: null, version: eb('version', '+', 1) }))
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .returning(DOCUMENT_COLUMNS)
      .executeTakeFirstOrThrow()) as DocumentRow;
    await this.#enqueueIngest(trx, workspaceId, row);
    return row;
  }

  async #enqueueIngest(trx: Trx, workspaceId: string, document: Pick<DocumentRow, 'id' | 'version'>) {
    if (!this.jobs) throw new AppError('service_unavailable', { detail: 'This process cannot enqueue jobs' });
    await this.jobs.send(
      ingestDocumentJob,
      { workspaceId, documentId: document.id, version: document.version },
      { trx, singletonKey: `${document.id}:${document.version}` },
    );
  }

  async #published(workspaceId: string, document: DocumentRow) {
    await this.events?.publish({
      type: 'document.status_changed',
      workspaceId,
      collectionId: document.collection_id,
      documentId: document.id,
      status: document.status,
    });
  }

  async list(
    ws: WorkspaceContext,
    collectionId: string,
    filters: DocumentFilters,
    page: { limit: number; cursor?: string | undefined },
  ) {
    assertPermission(ws, 'documents:read');
    const after = cursorPosition(page.cursor);
    // The visibility check and the page in one tenant round trip; the page is discarded unless the
    // collection is visible. The unfiltered first page (the common case) uses compiled templates.
    const plain =
      !after &&
      Object.entries(filters).every(
        ([k, v]) => v === undefined || (k === 'status' && !filters.status?.length),
      );
    const [visible, rows] = plain
      ? await tenantRead(this.db, ws.id, () => [
          VISIBLE_COLLECTION.bind(visibilityShape(ws), [ws.id, collectionId, ...allowlist(ws)], ws),
          FIRST_PAGE.bind(String(page.limit + 1), [ws.id, collectionId], page.limit + 1),
        ])
      : await tenantRead(this.db, ws.id, (q) => [
          visibleCollectionQuery(q, ws, collectionId),
          documentPage(q, ws.id, collectionId, filters, after, page.limit + 1),
        ]);
    if (visible.length === 0) throw collectionNotFound();
    return keysetPage(rows as (DocumentRow & { position_at: string })[], page.limit);
  }

  async get(ws: WorkspaceContext, id: string): Promise<DocumentRow> {
    assertPermission(ws, 'documents:read');
    const shape = visibilityShape(ws);
    const values = [ws.id, id, ...allowlist(ws)];
    const [[row]] = await tenantRead(this.db, ws.id, () => [FIND_DOCUMENT.bind(shape, values, ws)]);
    if (!row) throw notFound();
    return row;
  }

  /**
   * The live document with this `externalId` in a collection, or undefined: lets a sync tool
   * (`larder ingest`/`import`) skip content it already stored without sending it again.
   */
  async findByExternalId(ws: WorkspaceContext, collectionId: string, externalId: string) {
    assertPermission(ws, 'documents:read');
    const [[row]] = await tenantRead(this.db, ws.id, (q) => [
      q
        .selectFrom('documents')
        .select(['id', 'sha256', 'status', 'title', 'metadata'])
        .where('workspace_id', '=', ws.id)
        .where('collection_id', '=', collectionId)
        .where('external_id', '=', externalId)
        .where('deleted_at', 'is', null)
        .where(inVisibleCollection(ws, 'documents.collection_id')),
    ]);
    return row;
  }

  /** Processing state of documents by id (deleted ones are absent), for callers waiting on a batch. */
  async statuses(ws: WorkspaceContext, ids: readonly string[]) {
    assertPermission(ws, 'documents:read');
    if (ids.length === 0) return [];
    return withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('documents')
        .select(['id', 'status', 'error'])
        .where('workspace_id', '=', ws.id)
        .where('id', 'in', ids)
        .where('deleted_at', 'is', null)
        .where(inVisibleCollection(ws, 'documents.collection_id'))
        .execute(),
    );
  }

  /** Changes the title and/or metadata (metadata is replaced as a whole). */
  async update(
    ws: WorkspaceContext,
    id: string,
    input: { title?: string | undefined; metadata?: Record<string, unknown> | undefined },
    audit: AuditContext = SYSTEM_AUDIT,
  ): Promise<DocumentRow> {
    assertPermission(ws, 'documents:write');
    return withTenant(this.db, ws.id, async (trx) => {
      const found = await findDocument(trx, ws, id).forUpdate().executeTakeFirst();
      if (!found) throw notFound();
      const row = (await this.#applyDetails(trx, ws.id, id, input)) ?? found;
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'document.updated',
        target: { type: 'document', id },
        data: { fields: Object.keys(input) },
      });
      return row;
    });
  }

  /**
   * Deletes the document with its bytes, chunks and embeddings in one transaction (cascading foreign
   * keys): no orphans. A job still running for it finds the document gone and stops.
   */
  async delete(ws: WorkspaceContext, id: string, audit: AuditContext = SYSTEM_AUDIT): Promise<void> {
    assertPermission(ws, 'documents:write');
    const deleted = await withTenant(this.db, ws.id, async (trx) => {
      const row = await trx
        .deleteFrom('documents')
        .where('workspace_id', '=', ws.id)
        .where('id', '=', id)
        .where(inVisibleCollection(ws, 'documents.collection_id'))
        .returning(['collection_id', 'title'])
        .executeTakeFirst();
      if (!row) throw notFound();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'document.deleted',
        target: { type: 'document', id },
        data: { collectionId: row.collection_id, title: row.title },
      });
      return row;
    });
    // Purge its postings from the lexical index soon (search already skips them).
    if (this.jobs)
      await requestCompaction(this.jobs, { workspaceId: ws.id, collectionId: deleted.collection_id }).catch(
        () => undefined,
      );
  }

  /** Queues the document to be parsed, chunked and embedded again (e.g. after a parser upgrade). */
  async reprocess(
    ws: WorkspaceContext,
    id: string,
    audit: AuditContext = SYSTEM_AUDIT,
  ): Promise<DocumentRow> {
    assertPermission(ws, 'documents:write');
    const row = await withTenant(this.db, ws.id, async (trx) => {
      const found = await findDocument(trx, ws, id).forUpdate().executeTakeFirst();
      if (!found) throw notFound();
      const updated = await this.#requeue(trx, ws.id, id);
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'document.reprocessed',
        target: { type: 'document', id },
      });
      return updated;
    });
    await this.#published(ws.id, row);
    return row;
  }

  /**
   * The original bytes, streamed part by part (each part read in its own short transaction, so a slow
   * download holds no connection).
   */
  async content(
    ws: WorkspaceContext,
    id: string,
  ): Promise<{ document: DocumentRow; parts: AsyncIterable<Uint8Array> }> {
    const document = await this.get(ws, id);
    const { db } = this;
    async function* parts() {
      for (let part = 0; ; part++) {
        const row = await withTenant(db, ws.id, (trx) =>
          trx
            .selectFrom('document_blobs')
            .select('data')
            .where('workspace_id', '=', ws.id)
            .where('document_id', '=', id)
            .where('part', '=', part)
            .executeTakeFirst(),
        );
        if (!row) return;
        yield row.data;
      }
    }
    return { document, parts: parts() };
  }

  /** The chunks of a document in order (for citation highlighting and inspection). */
  async chunks(ws: WorkspaceContext, id: string, page: { limit: number; after?: number | undefined }) {
    assertPermission(ws, 'documents:read');
    return withTenant(this.db, ws.id, async (trx) => {
      const found = await findDocument(trx, ws, id).executeTakeFirst();
      if (!found) throw notFound();
      const rows = await trx
        .selectFrom('chunks')
        .select([
          'id',
          'ordinal',
          'text',
          'token_count',
          'heading_path',
          'char_start',
          'char_end',
          'page',
          'page_end',
        ])
        .where('workspace_id', '=', ws.id)
        .where('document_id', '=', id)
        .where('ordinal', '>', page.after ?? -1)
        .orderBy('ordinal')
        .limit(page.limit + 1)
        .execute();
      const more = rows.length > page.limit;
      const data = more ? rows.slice(0, page.limit) : rows;
      return { data, nextAfter: more ? (data.at(-1)?.ordinal ?? null) : null };
    });
  }
}

/**
 * Refuses what no parser can read before anything is stored (415). ZIP containers (DOCX) are only
 * recognisable whole, so they pass here and are checked when parsed.
 */
async function precheck(file: SpooledFile, input: AddDocumentInput): Promise<string> {
  const head = file.head;
  const zip = head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
  if (zip) return DOCX_MIME;
  try {
    const sniffed = await sniff(head, {
      ...(input.filename ? { filename: input.filename } : {}),
      ...(input.mime ? { mime: input.mime } : {}),
    });
    if (sniffed.format === 'pdf') return 'application/pdf';
    if (sniffed.format === 'docx') return DOCX_MIME;
    if (file.bytes === head.length && sniffed.text.trim() === '')
      throw new AppError('unprocessable_document', {
        detail: 'The document contains only whitespace',
        extensions: { reason: 'empty' },
      });
    return FORMAT_MIME[sniffed.format];
  } catch (error) {
    if (error instanceof ParseError)
      throw new AppError('unsupported_media_type', {
        detail: `${error.message}. Supported: plain text, Markdown, HTML, PDF, DOCX, CSV and JSON`,
        extensions: { reason: error.reason },
      });
    throw error;
  }
}

/** What a URL may answer with (sniffing then decides the format); anything else is refused unread. */
const URL_CONTENT_TYPES = [
  'text/*',
  'application/pdf',
  'application/json',
  'application/xhtml+xml',
  'application/xml',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/octet-stream',
];
const DOCX_MIME = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
const FORMAT_MIME = {
  html: 'text/html',
  json: 'application/json',
  csv: 'text/csv',
  markdown: 'text/markdown',
  text: 'text/plain',
} as const;

function urlError(error: unknown, limit: number): unknown {
  if (!(error instanceof UrlFetchError)) return error;
  if (error.reason === 'too_large')
    return new AppError('payload_too_large', {
      detail: `The document at the URL is larger than the limit of ${limit} bytes`,
      extensions: { limit },
    });
  const refused = error.reason === 'scheme' || error.reason === 'blocked_address';
  return new AppError(refused ? 'url_not_allowed' : 'url_fetch_failed', {
    detail: error.message,
    extensions: {
      reason: error.reason,
      ...(error.status === undefined ? {} : { upstreamStatus: error.status }),
    },
  });
}
