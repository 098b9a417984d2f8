/**
 * Collections: named sets of documents in a workspace, each with its own text-search language,
 * chunking settings, embedding model and BM25 parameters. Reads need `documents:read`, changes
 * `documents:write`; everything runs in a tenant transaction.
 */
import { sql } from 'kysely';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import { decodeCursor, encodeCursor, positionAt } from '../../platform/db/cursor.js';
import type { Db } from '../../platform/db/database.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { type AuditContext, recordAudit, SYSTEM_AUDIT } from '../audit/service.js';

export interface ChunkingSettings {
  maxTokens: number;
  overlapTokens: number;
}
export const DEFAULT_CHUNKING: ChunkingSettings = { maxTokens: 400, overlapTokens: 50 };

export interface EmbeddingSettings {
  provider: string;
  model: string;
  dimensions: number;
}

export interface CollectionInput {
  name: string;
  description?: string | null | undefined;
  textSearchConfig?: string | undefined;
  chunking?: Partial<ChunkingSettings> | undefined;
  embedding?: EmbeddingSettings | null | undefined;
  bm25?: { k1?: number | undefined; b?: number | undefined } | undefined;
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

export class CollectionService {
  constructor(private readonly db: Db) {}

  async create(
    ws: WorkspaceContext,
    createdBy: string | null,
    input: CollectionInput,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'documents:write');
    const chunking = chunkingOf(input.chunking, DEFAULT_CHUNKING);
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
            embedding_provider: input.embedding?.provider ?? null,
            embedding_model: input.embedding?.model ?? null,
            embedding_dimensions: input.embedding?.dimensions ?? null,
            ...(input.bm25?.k1 === undefined ? {} : { bm25_k1: input.bm25.k1 }),
            ...(input.bm25?.b === undefined ? {} : { bm25_b: input.bm25.b }),
            created_by: createdBy,
          })
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await recordAudit(trx, {
          ...audit,
          workspaceId: ws.id,
          action: 'collection.created',
          target: { type: 'collection', id: row.id },
          data: { name: row.name },
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
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    if (after === null)
      throw new AppError('validation_failed', {
        detail: 'cursor is not valid',
        extensions: {
          errors: [{ in: 'querystring', path: '/cursor', message: 'is not a cursor from this API' }],
        },
      });
    const rows = await withTenant(this.db, ws.id, (trx) => {
      let query = trx
        .selectFrom('collections')
        .select([...COLUMNS, positionAt.as('position_at')])
        .where('workspace_id', '=', ws.id)
        .where('deleted_at', 'is', null);
      if (after)
        query = query.where(
          sql<boolean>`(created_at, id) > (${after.createdAt}::timestamp at time zone 'UTC', ${after.id}::uuid)`,
        );
      return query
        .orderBy('created_at')
        .orderBy('id')
        .limit(page.limit + 1)
        .execute();
    });
    const more = rows.length > page.limit;
    const data = more ? rows.slice(0, page.limit) : rows;
    const last = data.at(-1);
    return {
      data,
      nextCursor: more && last ? encodeCursor({ createdAt: last.position_at, id: last.id }) : null,
    };
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
        .executeTakeFirst(),
    );
    if (!row) throw new AppError('not_found', { detail: 'No such collection' });
    return row;
  }

  /**
   * Updates settings. The embedding model is fixed once the collection has documents (changing it
   * needs a re-embed of every chunk, which the ingestion pipeline will offer).
   */
  async update(
    ws: WorkspaceContext,
    id: string,
    input: Partial<CollectionInput>,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'documents:write');
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
          .forUpdate()
          .executeTakeFirst();
        if (!current) throw new AppError('not_found', { detail: 'No such collection' });
        if (input.embedding !== undefined && current.has_documents) {
          const next = input.embedding;
          const key = (e: { provider: unknown; model: unknown; dimensions: unknown } | null) =>
            e ? `${String(e.provider)}/${String(e.model)}/${String(e.dimensions)}` : 'none';
          const same =
            key(next) ===
            key(
              current.embedding_provider
                ? {
                    provider: current.embedding_provider,
                    model: current.embedding_model,
                    dimensions: current.embedding_dimensions,
                  }
                : null,
            );
          if (!same)
            throw new AppError('conflict', {
              detail: 'The embedding model cannot change while the collection has documents',
            });
        }
        if (input.textSearchConfig !== undefined)
          await this.#assertTextSearchConfig(trx, input.textSearchConfig);
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
            ...(input.embedding === undefined
              ? {}
              : {
                  embedding_provider: input.embedding?.provider ?? null,
                  embedding_model: input.embedding?.model ?? null,
                  embedding_dimensions: input.embedding?.dimensions ?? null,
                }),
            ...(input.bm25?.k1 === undefined ? {} : { bm25_k1: input.bm25.k1 }),
            ...(input.bm25?.b === undefined ? {} : { bm25_b: input.bm25.b }),
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
          data: { fields: Object.keys(input) },
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
        .returning('name')
        .executeTakeFirst();
      if (!row) throw new AppError('not_found', { detail: 'No such collection' });
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
