/**
 * Collections: named sets of documents in a workspace, each with its own text-search language,
 * chunking settings, embedding model and BM25 parameters. Reads need `documents:read`, changes
 * `documents:write`; everything runs in a tenant transaction. A collection the caller may not see
 * (`min_role`, a key's allowlist: platform/auth/collection-access.ts) answers as a missing one.
 */
import { sql } from 'kysely';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import {
  assertMayGrantMinRole,
  collectionNotFound,
  visibleCollection,
} from '../../platform/auth/collection-access.js';
import { afterPosition, cursorPosition, keysetPage, positionAt } from '../../platform/db/cursor.js';
import type { Db } from '../../platform/db/database.js';
import type { MembershipRole } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { type AuditContext, recordAudit, SYSTEM_AUDIT } from '../audit/service.js';
import {
  EmbeddingError,
  type EmbeddingProviderName,
  type EmbeddingProviders,
} from '../../ai/embeddings/index.js';
import type { JobQueue } from '../../platform/jobs/queue.js';
import { reembedCollectionJob } from '../documents/jobs.js';

export interface ChunkingSettings {
  maxTokens: number;
  overlapTokens: number;
}
export const DEFAULT_CHUNKING: ChunkingSettings = { maxTokens: 400, overlapTokens: 50 };

/** What a caller chooses; the dimensions are asked from the provider. */
export interface EmbeddingChoice {
  provider: EmbeddingProviderName;
  model?: string | undefined;
}

interface ResolvedEmbedding {
  provider: string;
  model: string;
  dimensions: number;
}

export interface CollectionInput {
  name: string;
  description?: string | null | undefined;
  textSearchConfig?: string | undefined;
  chunking?: Partial<ChunkingSettings> | undefined;
  /** null or `{ provider: 'none' }`: lexical search only; absent on create: the server default. */
  embedding?: EmbeddingChoice | null | undefined;
  bm25?: { k1?: number | undefined; b?: number | undefined } | undefined;
  /** The lowest member role that sees the collection (default viewer); see collection-access.ts. */
  minRole?: MembershipRole | undefined;
}

const COLUMNS = [
  'id',
  'name',
  'description',
  'text_search_config',
  'chunking',
  'embedding_provider',
  'embedding_model',
  'embedding_dimensions',
  'bm25_k1',
  'bm25_b',
  'min_role',
  'created_at',
  'updated_at',
] as const;

const invalid = (path: string, message: string) =>
  new AppError('validation_failed', {
    detail: `${path.slice(1)} ${message}`,
    extensions: { errors: [{ in: 'body', path, message }] },
  });

function chunkingOf(input: Partial<ChunkingSettings> | undefined, base: ChunkingSettings): ChunkingSettings {
  const merged = { ...base, ...input };
  if (merged.overlapTokens * 2 >= merged.maxTokens)
    throw invalid('/chunking/overlapTokens', 'must be less than half of maxTokens');
  return merged;
}

const isUniqueName = (error: unknown) =>
  (error as { code?: string; constraint?: string }).code === '23505' &&
  (error as { constraint?: string }).constraint === 'collections_workspace_name_key';

export interface CollectionServiceDeps {
  embeddings?: EmbeddingProviders | undefined;
  jobs?: JobQueue | undefined;
  /** Provider of collections created without an `embedding` choice. */
  defaultProvider: EmbeddingProviderName;
}

export class CollectionService {
  constructor(
    private readonly db: Db,
    private readonly deps: CollectionServiceDeps,
  ) {}

  /** Asks the provider for its model id and vector size; null for lexical-only. */
  async #resolveEmbedding(choice: EmbeddingChoice | null): Promise<ResolvedEmbedding | null> {
    if (choice === null || choice.provider === 'none') return null;
    if (!this.deps.embeddings)
      throw new AppError('service_unavailable', { detail: 'Embedding providers are not available here' });
    try {
      const provider = this.deps.embeddings.get(choice);
      if (!provider) return null;
      return { provider: provider.provider, model: provider.model, dimensions: await provider.dimensions() };
    } catch (error) {
      if (error instanceof EmbeddingError)
        throw new AppError('embedding_provider_failed', {
          detail: `The ${choice.provider} embedding provider: ${error.message}`,
          extensions: { reason: error.reason },
        });
      throw error;
    }
  }

  async create(
    ws: WorkspaceContext,
    createdBy: string | null,
    input: CollectionInput,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'documents:write');
    if (input.minRole !== undefined) assertMayGrantMinRole(ws, input.minRole);
    const chunking = chunkingOf(input.chunking, DEFAULT_CHUNKING);
    const embedding = await this.#resolveEmbedding(
      input.embedding === undefined ? { provider: this.deps.defaultProvider } : input.embedding,
    );
    try {
      return await withTenant(this.db, ws.id, async (trx) => {
        const config = input.textSearchConfig ?? 'english';
        await this.#assertTextSearchConfig(trx, config);
        const row = await trx
          .insertInto('collections')
          .values({
            workspace_id: ws.id,
            name: input.name,
            description: input.description ?? null,
            text_search_config: config,
            chunking: JSON.stringify(chunking),
            embedding_provider: embedding?.provider ?? null,
            embedding_model: embedding?.model ?? null,
            embedding_dimensions: embedding?.dimensions ?? null,
            ...(input.bm25?.k1 === undefined ? {} : { bm25_k1: input.bm25.k1 }),
            ...(input.bm25?.b === undefined ? {} : { bm25_b: input.bm25.b }),
            ...(input.minRole === undefined ? {} : { min_role: input.minRole }),
            created_by: createdBy,
          })
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await recordAudit(trx, {
          ...audit,
          workspaceId: ws.id,
          action: 'collection.created',
          target: { type: 'collection', id: row.id },
          data: { name: row.name, minRole: row.min_role },
        });
        return row;
      });
    } catch (error) {
      if (isUniqueName(error))
        throw new AppError('conflict', { detail: 'A collection with this name exists' });
      throw error;
    }
  }

  async list(ws: WorkspaceContext, page: { limit: number; cursor?: string | undefined }) {
    assertPermission(ws, 'documents:read');
    const after = cursorPosition(page.cursor);
    const rows = await withTenant(this.db, ws.id, (trx) => {
      let query = trx
        .selectFrom('collections')
        .select([...COLUMNS, positionAt.as('position_at')])
        .where('workspace_id', '=', ws.id)
        .where('deleted_at', 'is', null)
        .where(visibleCollection(ws));
      if (after) query = query.where(afterPosition(after));
      return query
        .orderBy('created_at')
        .orderBy('id')
        .limit(page.limit + 1)
        .execute();
    });
    return keysetPage(rows, page.limit);
  }

  async get(ws: WorkspaceContext, id: string) {
    assertPermission(ws, 'documents:read');
    const row = await withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('collections')
        .select(COLUMNS)
        .where('workspace_id', '=', ws.id)
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .where(visibleCollection(ws))
        .executeTakeFirst(),
    );
    if (!row) throw collectionNotFound();
    return row;
  }

  /** The live collection with this name, compared case-insensitively as the unique index does. */
  async findByName(ws: WorkspaceContext, name: string) {
    assertPermission(ws, 'documents:read');
    return withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('collections')
        .select(COLUMNS)
        .where('workspace_id', '=', ws.id)
        .where(sql<string>`lower(name)`, '=', sql<string>`lower(${name})`)
        .where('deleted_at', 'is', null)
        .where(visibleCollection(ws))
        .executeTakeFirst(),
    );
  }

  /**
   * Updates settings. Changing the embedding model of a collection that has documents queues a
   * re-embed of every document (collections.reembed, in the same transaction); lexical search keeps
   * working meanwhile. Changing chunking or the text-search language applies to documents processed
   * from now on (reprocess a document to apply it to it).
   */
  async update(
    ws: WorkspaceContext,
    id: string,
    input: Partial<CollectionInput>,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'documents:write');
    const embedding =
      input.embedding === undefined ? undefined : await this.#resolveEmbedding(input.embedding);
    try {
      return await withTenant(this.db, ws.id, async (trx) => {
        const current = await trx
          .selectFrom('collections')
          .select([
            ...COLUMNS,
            sql<boolean>`exists(select 1 from documents d where d.collection_id = collections.id and d.deleted_at is null)`.as(
              'has_documents',
            ),
          ])
          .where('workspace_id', '=', ws.id)
          .where('id', '=', id)
          .where('deleted_at', 'is', null)
          .where(visibleCollection(ws))
          .forUpdate()
          .executeTakeFirst();
        if (!current) throw collectionNotFound();
        if (input.minRole !== undefined && input.minRole !== current.min_role)
          assertMayGrantMinRole(ws, input.minRole, current.min_role);
        const modelChanged =
          embedding !== undefined &&
          ((embedding?.provider ?? null) !== current.embedding_provider ||
            (embedding?.model ?? null) !== current.embedding_model);
        if (modelChanged && current.has_documents) {
          if (!this.deps.jobs)
            throw new AppError('service_unavailable', { detail: 'This process cannot enqueue jobs' });
          await this.deps.jobs.send(reembedCollectionJob, { workspaceId: ws.id, collectionId: id }, { trx });
        }
        if (input.textSearchConfig !== undefined) {
          await this.#assertTextSearchConfig(trx, input.textSearchConfig);
          // Stored chunks are indexed in the old language: queries in the new one would miss them.
          if (input.textSearchConfig !== current.text_search_config && current.has_documents)
            throw new AppError('conflict', {
              detail:
                'The text-search configuration can only change while the collection has no documents (its index is in the current language); create a new collection for another language',
            });
        }
        const chunking = input.chunking
          ? chunkingOf(input.chunking, current.chunking as unknown as ChunkingSettings)
          : undefined;
        const row = await trx
          .updateTable('collections')
          .set({
            ...(input.name === undefined ? {} : { name: input.name }),
            ...(input.description === undefined ? {} : { description: input.description }),
            ...(input.textSearchConfig === undefined ? {} : { text_search_config: input.textSearchConfig }),
            ...(chunking ? { chunking: JSON.stringify(chunking) } : {}),
            ...(embedding === undefined
              ? {}
              : {
                  embedding_provider: embedding?.provider ?? null,
                  embedding_model: embedding?.model ?? null,
                  embedding_dimensions: embedding?.dimensions ?? null,
                }),
            ...(input.bm25?.k1 === undefined ? {} : { bm25_k1: input.bm25.k1 }),
            ...(input.bm25?.b === undefined ? {} : { bm25_b: input.bm25.b }),
            ...(input.minRole === undefined ? {} : { min_role: input.minRole }),
          })
          .where('workspace_id', '=', ws.id)
          .where('id', '=', id)
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await recordAudit(trx, {
          ...audit,
          workspaceId: ws.id,
          action: 'collection.updated',
          target: { type: 'collection', id },
          data: {
            fields: Object.keys(input),
            ...(modelChanged ? { reembed: true } : {}),
            ...(input.minRole !== undefined && input.minRole !== current.min_role
              ? { minRole: { from: current.min_role, to: input.minRole } }
              : {}),
          },
        });
        return row;
      });
    } catch (error) {
      if (isUniqueName(error))
        throw new AppError('conflict', { detail: 'A collection with this name exists' });
      throw error;
    }
  }

  /** Deletes the collection with its documents, blobs, chunks and embeddings (cascade, one transaction). */
  async delete(ws: WorkspaceContext, id: string, audit: AuditContext = SYSTEM_AUDIT) {
    assertPermission(ws, 'documents:write');
    await withTenant(this.db, ws.id, async (trx) => {
      const row = await trx
        .deleteFrom('collections')
        .where('workspace_id', '=', ws.id)
        .where('id', '=', id)
        .where(visibleCollection(ws))
        .returning('name')
        .executeTakeFirst();
      if (!row) throw collectionNotFound();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'collection.deleted',
        target: { type: 'collection', id },
        data: { name: row.name },
      });
    });
  }

  async #assertTextSearchConfig(trx: Parameters<Parameters<typeof withTenant>[2]>[0], config: string) {
    const { rows } = await sql<{
      ok: boolean;
    }>`select exists(select 1 from pg_ts_config where cfgname = ${config}) as ok`.execute(trx);
    if (!rows[0]?.ok)
      throw invalid(
        '/textSearchConfig',
        `is not a text-search configuration of this server (e.g. english, simple, german)`,
      );
  }
}
