/**
 * POST /v1/search: hybrid (default), lexical or vector search over the workspace's collections
 * (permission `search`: viewers and up, API keys with the `search` scope).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { requireWorkspace } from '../../platform/auth/access.js';
import { problemResponses } from '../../platform/http/problem.js';
import { DEFAULT_RRF_K, SearchService } from './service.js';

const Uuid = Type.String({ format: 'uuid' });
export const MAX_K = 100;

const SearchBody = Type.Object(
  {
    query: Type.String({ minLength: 1, maxLength: 2000, examples: ['How long is parental leave?'] }),
    collections: Type.Optional(
      Type.Array(Uuid, {
        maxItems: 50,
        description: 'Collection ids; omitted: every collection of the workspace',
      }),
    ),
    k: Type.Integer({ minimum: 1, maximum: MAX_K, default: 10, description: 'Results to return' }),
    mode: Type.Enum(['hybrid', 'lexical', 'vector'], {
      default: 'hybrid',
      description:
        '`hybrid`: reciprocal rank fusion of BM25 and vector rankings; documents not yet embedded still appear through BM25',
    }),
    filters: Type.Optional(
      Type.Object(
        {
          documentIds: Type.Optional(Type.Array(Uuid, { maxItems: 1000 })),
          externalIds: Type.Optional(Type.Array(Type.String({ maxLength: 1000 }), { maxItems: 1000 })),
          mime: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 20 })),
          metadata: Type.Optional(
            Type.Record(Type.String(), Type.Unknown(), {
              description: 'JSON the document metadata must contain',
            }),
          ),
          createdAfter: Type.Optional(Type.String({ format: 'date-time' })),
          createdBefore: Type.Optional(Type.String({ format: 'date-time' })),
        },
        { additionalProperties: false },
      ),
    ),
    rrfK: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1000, description: `Fusion constant (default ${DEFAULT_RRF_K})` }),
    ),
    weights: Type.Optional(
      Type.Object(
        {
          lexical: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
          vector: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
        },
        { additionalProperties: false },
      ),
    ),
    efSearch: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'HNSW search breadth' })),
    exact: Type.Optional(Type.Boolean({ description: 'Exact vector search instead of the HNSW index' })),
    explain: Type.Optional(
      Type.Boolean({ default: false, description: 'Include per-component scores and ranks' }),
    ),
  },
  { additionalProperties: false },
);

const Hit = Type.Object({
  chunkId: Uuid,
  documentId: Uuid,
  collectionId: Uuid,
  documentTitle: Type.String(),
  externalId: Type.Union([Type.String(), Type.Null()]),
  text: Type.String(),
  snippet: Type.String({ description: 'Matching passages, terms in <mark>…</mark>' }),
  headingPath: Type.Array(Type.String()),
  page: Type.Union([Type.Integer(), Type.Null()]),
  pageEnd: Type.Union([Type.Integer(), Type.Null()]),
  charStart: Type.Integer({ description: 'Span in the document’s extracted text' }),
  charEnd: Type.Integer(),
  score: Type.Number({
    description: 'hybrid: the fused RRF score; lexical: the BM25 score; vector: the cosine similarity',
  }),
  explain: Type.Optional(
    Type.Object({
      lexical: Type.Union([Type.Number(), Type.Null()], { description: 'BM25 score' }),
      vector: Type.Union([Type.Number(), Type.Null()], { description: 'Cosine similarity' }),
      lexicalRank: Type.Union([Type.Integer(), Type.Null()]),
      vectorRank: Type.Union([Type.Integer(), Type.Null()]),
    }),
  ),
});

export const searchRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const search = new SearchService(app.deps.database.db, app.deps.embeddings);
  app.post(
    '/v1/search',
    {
      config: { access: { permission: 'search' as const } },
      schema: {
        tags: ['search'],
        summary: 'Search the workspace’s documents',
        body: SearchBody,
        response: {
          200: Type.Object({ mode: Type.String(), data: Type.Array(Hit) }),
          ...problemResponses(400, 401, 403, 404, 422),
        },
      },
    },
    async (request) => {
      const { explain, ...body } = request.body;
      const result = await search.search(requireWorkspace(request), body);
      return {
        mode: result.mode,
        data: result.hits.map((h) => ({
          chunkId: h.chunkId,
          documentId: h.documentId,
          collectionId: h.collectionId,
          documentTitle: h.documentTitle,
          externalId: h.externalId,
          text: h.text,
          snippet: h.snippet,
          headingPath: h.headingPath,
          page: h.page,
          pageEnd: h.pageEnd,
          charStart: h.charStart,
          charEnd: h.charEnd,
          score: h.scores.fused,
          ...(explain
            ? {
                explain: {
                  lexical: h.scores.lexical,
                  vector: h.scores.vector,
                  lexicalRank: h.ranks.lexical,
                  vectorRank: h.ranks.vector,
                },
              }
            : {}),
        })),
      };
    },
  );
};
