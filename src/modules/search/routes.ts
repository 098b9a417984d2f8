/**
 * POST /v1/search: hybrid (default), lexical or vector search over the workspace's collections
 * (permission `search`: viewers and up, API keys with the `search` scope).
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { requireWorkspace } from '../../platform/auth/access.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { NullableResult } from '../../platform/http/schemas.js';
import { QueryVectorCache } from './query-vectors.js';
import { PostingsCache } from './postings-cache.js';
import { DEFAULT_CONVEX_ALPHA, DEFAULT_RRF_K, type FusionOptions } from './fusion.js';
import { MAX_SEARCH_DEPTH, SearchService } from './service.js';
import type { AppDeps } from '../../app.js';

const Uuid = Type.String({ format: 'uuid' });
export const MAX_K = 100;

/** Document filters, applied inside the search SQL (shared with answers). */
export const SearchFiltersSchema = Type.Object(
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
);

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
        '`hybrid`: BM25 and vector rankings fused (see `fusion`); documents not yet embedded still appear through BM25',
    }),
    filters: Type.Optional(SearchFiltersSchema),
    fusion: Type.Optional(
      Type.Object(
        {
          method: Type.Enum(['convex', 'rrf'], {
            default: 'convex',
            description:
              '`convex`: α · BM25/max + (1 − α) · cosine/max (each list normalised by its best score); `rrf`: Σ weight / (k + rank)',
          }),
          alpha: Type.Optional(
            Type.Number({
              minimum: 0,
              maximum: 1,
              description: `convex: the lexical list's weight (default ${DEFAULT_CONVEX_ALPHA})`,
            }),
          ),
          k: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 1000,
              description: `rrf: rank constant (default ${DEFAULT_RRF_K})`,
            }),
          ),
          weights: Type.Optional(
            Type.Object(
              {
                lexical: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
                vector: Type.Optional(Type.Number({ minimum: 0, maximum: 10 })),
              },
              { additionalProperties: false, description: 'rrf: list weights (default 1 each)' },
            ),
          ),
        },
        { additionalProperties: false, description: 'How hybrid mode fuses the lexical and vector lists' },
      ),
    ),
    efSearch: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'HNSW search breadth' })),
    exact: Type.Optional(Type.Boolean({ description: 'Exact vector search instead of the HNSW index' })),
    explain: Type.Optional(
      Type.Boolean({ default: false, description: 'Include per-component scores and ranks' }),
    ),
    cursor: Type.Optional(
      Type.String({
        maxLength: 200,
        description: `\`nextCursor\` of the previous page, with the same body otherwise (results page to a depth of ${MAX_SEARCH_DEPTH})`,
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      { query: 'How long is parental leave?', k: 5 },
      {
        query: 'expense limits for travel',
        collections: ['0190f5a2-7c3e-7d4a-9b1e-2f6c8d9e0a1b'],
        mode: 'hybrid',
        k: 10,
        filters: { metadata: { team: 'finance' }, createdAfter: '2026-01-01T00:00:00Z' },
        explain: true,
      },
      { query: 'reset a password', mode: 'hybrid', fusion: { method: 'rrf', k: 60 } },
    ],
  },
);

function fusionOptions(
  body:
    | {
        method: 'convex' | 'rrf';
        alpha?: number;
        k?: number;
        weights?: { lexical?: number; vector?: number };
      }
    | undefined,
): FusionOptions | undefined {
  if (!body) return undefined;
  const foreign = body.method === 'rrf' ? ['alpha'] : ['k', 'weights'];
  const misplaced = foreign.find((key) => key in body);
  if (misplaced)
    throw new AppError('validation_failed', {
      detail: `fusion.${misplaced} does not apply to the ${body.method} method`,
      extensions: { errors: [{ in: 'body', path: `/fusion/${misplaced}`, message: 'not for this method' }] },
    });
  if (body.method === 'rrf') return { method: 'rrf', k: body.k, weights: body.weights };
  return { method: 'convex', alpha: body.alpha };
}

/** A page cursor: the offset, bound to the request it pages through. */
function requestHash(body: object): string {
  const { cursor: _cursor, explain: _explain, ...rest } = body as Record<string, unknown>;
  return createHash('sha256').update(JSON.stringify(rest)).digest('base64url').slice(0, 16);
}
const encodeCursor = (offset: number, hash: string) =>
  Buffer.from(JSON.stringify({ o: offset, h: hash })).toString('base64url');
function decodeCursor(cursor: string, hash: string): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const { o, h } = (parsed ?? {}) as { o?: unknown; h?: unknown };
  if (typeof o !== 'number' || !Number.isInteger(o) || o < 0 || h !== hash)
    throw new AppError('validation_failed', {
      detail: 'The cursor is not valid for this search (it must come with the same body as its page)',
      extensions: { errors: [{ in: 'body', path: '/cursor', message: 'invalid cursor' }] },
    });
  return o;
}

const Hit = Type.Object({
  chunkId: Uuid,
  documentId: Uuid,
  collectionId: Uuid,
  documentTitle: Type.String(),
  externalId: NullableResult(Type.String()),
  text: Type.String(),
  snippet: Type.String({ description: 'Matching passages, terms in <mark>…</mark>' }),
  headingPath: Type.Array(Type.String()),
  page: NullableResult(Type.Integer()),
  pageEnd: NullableResult(Type.Integer()),
  charStart: Type.Integer({ description: 'Span in the document’s extracted text' }),
  charEnd: Type.Integer(),
  score: Type.Number({
    description:
      'hybrid: the fused score (convex: in [0, 1]; rrf: Σ weight / (k + rank)); lexical: the BM25 score; vector: the cosine similarity',
  }),
  explain: Type.Optional(
    Type.Object({
      lexical: NullableResult(Type.Number(), { description: 'BM25 score' }),
      vector: NullableResult(Type.Number(), { description: 'Cosine similarity' }),
      lexicalRank: NullableResult(Type.Integer()),
      vectorRank: NullableResult(Type.Integer()),
    }),
  ),
});

/**
 * The process's search service: one query-vector cache (memory, and Redis when configured) shared by
 * `POST /v1/search` and answers.
 */
export function createSearchService(
  deps: Pick<AppDeps, 'database' | 'embeddings' | 'redis' | 'logger' | 'config'>,
): SearchService {
  return new SearchService(deps.database.db, deps.embeddings, {
    queryVectors: new QueryVectorCache(deps.redis, deps.logger),
    exactBelow: deps.config.searchExactBelow,
    ...(deps.config.searchPostingsCacheMb > 0
      ? { postingsCache: new PostingsCache(deps.config.searchPostingsCacheMb * 1024 * 1024) }
      : {}),
  });
}

export const searchRoutes =
  (search: SearchService): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/v1/search',
      {
        config: { access: { permission: 'search' as const } },
        schema: {
          tags: ['search'],
          summary: 'Search the workspace’s documents',
          body: SearchBody,
          response: {
            200: Type.Object({
              mode: Type.String(),
              data: Type.Array(Hit),
              nextCursor: NullableResult(Type.String(), {
                description: 'Pass as `cursor` (same body) for the next page; null on the last page',
              }),
              meta: Type.Object({
                queryVectorCache: Type.Union([Type.Enum(['memory', 'redis', 'miss']), Type.Null()], {
                  description: 'Where the query embedding came from; null when none was needed',
                }),
              }),
            }),
            ...problemResponses(400, 401, 403, 404, 422),
          },
        },
      },
      async (request) => {
        const { explain, cursor, fusion, ...body } = request.body;
        const hash = requestHash(request.body);
        const offset = cursor === undefined ? 0 : decodeCursor(cursor, hash);
        const result = await search.search(requireWorkspace(request), {
          ...body,
          offset,
          fusion: fusionOptions(fusion),
        });
        return {
          mode: result.mode,
          nextCursor: result.nextOffset === null ? null : encodeCursor(result.nextOffset, hash),
          meta: { queryVectorCache: result.queryVectorCache },
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
