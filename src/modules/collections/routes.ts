/**
 * Collections of the current workspace.
 *
 *   POST   /v1/collections        create (documents:write)
 *   GET    /v1/collections        list, cursor-paginated (documents:read)
 *   GET    /v1/collections/{id}   one (documents:read)
 *   PATCH  /v1/collections/{id}   update settings (documents:write)
 *   DELETE /v1/collections/{id}   delete with all documents, chunks and embeddings (documents:write)
 *
 * A collection the caller may not see (its `minRole`, an API key's allowlist) is a 404 on every route
 * and absent from the list: platform/auth/collection-access.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { requireWorkspace, actingUserId } from '../../platform/auth/access.js';
import { COLLECTION_ROLES } from '../../platform/auth/collection-access.js';
import type { MembershipRole } from '../../platform/db/schema.js';
import { problemResponses } from '../../platform/http/problem.js';
import { auditContext } from '../audit/context.js';
import { CollectionService, type ChunkingSettings } from './service.js';

const Uuid = Type.String({ format: 'uuid' });
const Chunking = Type.Object(
  {
    maxTokens: Type.Integer({
      minimum: 32,
      maximum: 8192,
      description: 'Token budget per chunk (default 400)',
    }),
    overlapTokens: Type.Integer({
      minimum: 0,
      maximum: 4096,
      description: 'Tokens repeated between consecutive chunks of a section (default 50)',
    }),
  },
  { additionalProperties: false },
);
const EmbeddingChoice = Type.Object(
  {
    provider: Type.Enum(['local', 'openai', 'none'], {
      description:
        '`local`: Universal Sentence Encoder lite, in-process; `openai`: the configured OpenAI-compatible server; `none`: lexical only',
    }),
    model: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'Model name (openai); default: LARDER_OPENAI_EMBEDDING_MODEL, or `use-lite` for local',
      }),
    ),
  },
  { additionalProperties: false },
);
const Embedding = Type.Object({
  provider: Type.String(),
  model: Type.String(),
  dimensions: Type.Integer({ description: 'Vector size, reported by the provider' }),
});
const Bm25 = Type.Object(
  {
    k1: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
    b: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);
const MinRole = Type.Enum([...COLLECTION_ROLES], {
  description:
    'The lowest member role that sees the collection at all (default `viewer`: every member). Members below it, and API keys without this collection in their allowlist when it is `admin` or `owner`, get 404 as for a missing collection. At most your own role (an API key counts as `editor`).',
});
const Settings = {
  description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
  textSearchConfig: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
      description: 'PostgreSQL text-search configuration (language), e.g. english, german, simple',
    }),
  ),
  chunking: Type.Optional(Type.Partial(Chunking)),
  embedding: Type.Optional(
    Type.Union([EmbeddingChoice, Type.Null()], {
      description:
        'null or provider `none`: lexical search only. Default on create: LARDER_EMBEDDING_PROVIDER. Changing it when documents exist re-embeds them in the background.',
    }),
  ),
  bm25: Type.Optional(Bm25),
  minRole: Type.Optional(MinRole),
};
const Name = Type.String({ minLength: 1, maxLength: 200 });

const Collection = Type.Object({
  id: Uuid,
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  textSearchConfig: Type.String(),
  chunking: Chunking,
  embedding: Type.Union([Embedding, Type.Null()]),
  bm25: Type.Object({ k1: Type.Number(), b: Type.Number() }),
  minRole: Type.Enum([...COLLECTION_ROLES], {
    description: 'The lowest member role that sees the collection',
  }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

interface Row {
  id: string;
  name: string;
  description: string | null;
  text_search_config: string;
  chunking: unknown;
  embedding_provider: string | null;
  embedding_model: string | null;
  embedding_dimensions: number | null;
  bm25_k1: number;
  bm25_b: number;
  min_role: MembershipRole;
  created_at: Date;
  updated_at: Date;
}
const present = (r: Row) => ({
  id: r.id,
  name: r.name,
  description: r.description,
  textSearchConfig: r.text_search_config,
  chunking: r.chunking as ChunkingSettings,
  embedding:
    r.embedding_provider && r.embedding_model && r.embedding_dimensions
      ? { provider: r.embedding_provider, model: r.embedding_model, dimensions: r.embedding_dimensions }
      : null,
  bm25: { k1: r.bm25_k1, b: r.bm25_b },
  minRole: r.min_role,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const read = { access: { permission: 'documents:read' as const } };
const write = { access: { permission: 'documents:write' as const } };
const IdParams = Type.Object({ id: Uuid });

export const collectionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const collections = new CollectionService(app.deps.database.db, {
    embeddings: app.deps.embeddings,
    jobs: app.deps.jobs,
    defaultProvider: app.deps.config.embeddingProvider,
  });
  const tags = ['collections'];

  app.post(
    '/v1/collections',
    {
      config: write,
      schema: {
        tags,
        summary: 'Create a collection',
        body: Type.Object({ name: Name, ...Settings }, { additionalProperties: false }),
        response: { 201: Collection, ...problemResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const createdBy = actingUserId(request);
      const row = await collections.create(
        requireWorkspace(request),
        createdBy,
        request.body,
        auditContext(request),
      );
      return reply.code(201).send(present(row));
    },
  );

  app.get(
    '/v1/collections',
    {
      config: read,
      schema: {
        tags,
        summary: 'List collections (oldest first)',
        querystring: Type.Object(
          {
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            data: Type.Array(Collection),
            nextCursor: Type.Union([Type.String(), Type.Null()], {
              description: 'Pass as `cursor` for the next page',
            }),
          }),
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const page = await collections.list(requireWorkspace(request), {
        limit: request.query.limit,
        cursor: request.query.cursor,
      });
      return { data: page.data.map(present), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/collections/:id',
    {
      config: read,
      schema: {
        tags,
        summary: 'Get a collection',
        params: IdParams,
        response: { 200: Collection, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => present(await collections.get(requireWorkspace(request), request.params.id)),
  );

  app.patch(
    '/v1/collections/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Update a collection’s name or settings',
        params: IdParams,
        body: Type.Object(
          { name: Type.Optional(Name), ...Settings },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: Collection, ...problemResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) =>
      present(
        await collections.update(
          requireWorkspace(request),
          request.params.id,
          request.body,
          auditContext(request),
        ),
      ),
  );

  app.delete(
    '/v1/collections/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a collection with all its documents, chunks and embeddings',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await collections.delete(requireWorkspace(request), request.params.id, auditContext(request));
      return reply.code(204).send(null);
    },
  );
};
