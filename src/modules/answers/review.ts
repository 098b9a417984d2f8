/**
 * The human review loop. Answers land in the queue when they are low-confidence (weak evidence,
 * nothing quotable), flagged by a user (thumbs down), or hit a guardrail (uncited claims, invalid
 * citations, injection screening, model fallback). Reviewers (permission `review`: editors and up)
 * approve, correct (new text and citations) or reject them. Approved and corrected answers become
 * curated answers, served first for the same or a near-identical question over the same collections.
 *
 * A reviewer sees an item only when every collection its answer cites is visible to them (an
 * admin-only collection's quotes never reach an editor through the queue).
 */
import { sql, type SqlBool, type Transaction } from 'kysely';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { assertPermission, requireWorkspace, type WorkspaceContext } from '../../platform/auth/access.js';
import { visibleCollection } from '../../platform/auth/collection-access.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, ReviewStatus } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { extractCitationMarkers } from '../../ai/answers/extractive.js';
import { type Citation, normaliseQuestion, questionTerms } from './grounding.js';
import { CitationSchema, Uuid } from './schemas.js';

type Trx = Transaction<DB>;

/** messages.citations as stored (an array of Citation objects). */
const asCitations = (value: unknown): Citation[] => (Array.isArray(value) ? (value as Citation[]) : []);

export interface ReviewItem {
  id: string;
  status: ReviewStatus;
  reasons: string[];
  createdAt: string;
  resolvedAt: string | null;
  resolution: Record<string, unknown> | null;
  question: string | null;
  message: {
    id: string;
    answer: string;
    citations: Citation[];
    model: string | null;
    flags: Record<string, unknown>;
    createdAt: string;
  } | null;
  feedback: { rating: 'up' | 'down'; comment: string | null } | null;
}

export interface CorrectedCitation {
  n: number;
  chunkId: string;
  /** Span in the document's extracted text, inside the chunk; omitted: the whole chunk. */
  charStart?: number | undefined;
  charEnd?: number | undefined;
}

export type Resolution =
  | { action: 'approve'; note?: string | undefined }
  | { action: 'reject'; note?: string | undefined }
  | { action: 'correct'; answer: string; citations: CorrectedCitation[]; note?: string | undefined };

/** Every collection the message cites is visible to the reviewer. */
function citedCollectionsVisible(ws: WorkspaceContext) {
  return sql<SqlBool>`not exists (
    select 1 from jsonb_array_elements(m.citations) cit
    join collections col on col.id = (cit->>'collectionId')::uuid
    where not (${visibleCollection(ws, 'col')}))`;
}

function items(trx: Trx, ws: WorkspaceContext) {
  return trx
    .selectFrom('review_items as r')
    .leftJoin('messages as m', 'm.id', 'r.message_id')
    .leftJoin('feedback as f', 'f.id', 'r.feedback_id')
    .select([
      'r.id',
      'r.status',
      'r.reason',
      'r.created_at',
      'r.resolved_at',
      'r.resolution',
      'r.message_id',
      'm.content',
      'm.citations',
      'm.model',
      'm.flags',
      'm.created_at as message_created_at',
      'f.rating',
      'f.comment',
      // The standalone question the answer answered: the conversation's last user message before it.
      sql<string | null>`(select coalesce(q.flags->>'standalone', q.content) from messages q
        where q.conversation_id = m.conversation_id and q.role = 'user' and q.created_at <= m.created_at
        order by q.created_at desc, q.id desc limit 1)`.as('question'),
    ])
    .where('r.workspace_id', '=', ws.id)
    .where((eb) => eb.or([eb('m.id', 'is', null), citedCollectionsVisible(ws)]));
}
type ItemRow = Awaited<ReturnType<ReturnType<typeof items>['executeTakeFirstOrThrow']>>;

export class ReviewService {
  constructor(private readonly db: Db) {}

  async list(
    ws: WorkspaceContext,
    query: { status: ReviewStatus; limit: number; before?: string | undefined },
  ): Promise<ReviewItem[]> {
    assertPermission(ws, 'review');
    return withTenant(this.db, ws.id, async (trx) => {
      let q = items(trx, ws).where('r.status', '=', query.status);
      if (query.before) q = q.where('r.created_at', '<', new Date(query.before));
      const rows = await q
        .orderBy('r.created_at', 'desc')
        .orderBy('r.id', 'desc')
        .limit(query.limit)
        .execute();
      return rows.map(present);
    });
  }

  async get(ws: WorkspaceContext, id: string): Promise<ReviewItem> {
    assertPermission(ws, 'review');
    return withTenant(this.db, ws.id, async (trx) => {
      const row = await items(trx, ws).where('r.id', '=', id).executeTakeFirst();
      if (!row) throw new AppError('not_found', { detail: 'No such review item' });
      return present(row);
    });
  }

  async resolve(
    ws: WorkspaceContext,
    reviewerId: string | null,
    id: string,
    resolution: Resolution,
  ): Promise<ReviewItem & { curatedAnswerId: string | null }> {
    assertPermission(ws, 'review');
    const curatedAnswerId = await withTenant(this.db, ws.id, async (trx) => {
      const row = await items(trx, ws).where('r.id', '=', id).forUpdate('r').executeTakeFirst();
      if (!row) throw new AppError('not_found', { detail: 'No such review item' });
      if (row.status === 'resolved' || row.status === 'dismissed')
        throw new AppError('conflict', { detail: `The item is already ${row.status}` });
      let curatedId: string | null = null;
      if (resolution.action !== 'reject') {
        if (!row.message_id || row.content === null)
          throw new AppError('conflict', { detail: 'The answer of this item no longer exists' });
        const question = row.question;
        if (!question)
          throw new AppError('conflict', { detail: 'The question of this answer no longer exists' });
        const { answer, citations } =
          resolution.action === 'correct'
            ? await corrected(trx, ws, resolution)
            : { answer: row.content, citations: asCitations(row.citations) };
        const requested = ((row.flags as { collectionIds?: string[] }).collectionIds ?? []).filter(Boolean);
        const collectionIds = [...new Set([...requested, ...citations.map((c) => c.collectionId)])].sort();
        if (collectionIds.length === 0)
          throw new AppError('conflict', { detail: 'A curated answer needs a collection: cite a source' });
        curatedId = (
          await trx
            .insertInto('curated_answers')
            .values({
              workspace_id: ws.id,
              collection_ids: collectionIds,
              question,
              question_key: normaliseQuestion(question),
              question_terms: questionTerms(question),
              answer,
              citations: JSON.stringify(citations),
              source_message_id: row.message_id,
              review_item_id: id,
              created_by: reviewerId,
            })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id;
      }
      await trx
        .updateTable('review_items')
        .set({
          status: resolution.action === 'reject' ? 'dismissed' : 'resolved',
          resolved_by: reviewerId,
          resolved_at: new Date(),
          resolution: JSON.stringify({
            action: resolution.action,
            note: resolution.note ?? null,
            curatedAnswerId: curatedId,
          }),
        })
        .where('id', '=', id)
        .execute();
      return curatedId;
    });
    return { ...(await this.get(ws, id)), curatedAnswerId };
  }
}

function present(row: ItemRow): ReviewItem {
  return {
    id: row.id,
    status: row.status,
    reasons: row.reason.split(','),
    createdAt: row.created_at.toISOString(),
    resolvedAt: row.resolved_at?.toISOString() ?? null,
    resolution: row.resolution,
    question: row.question,
    message:
      row.message_id && row.content !== null
        ? {
            id: row.message_id,
            answer: row.content,
            citations: asCitations(row.citations),
            model: row.model,
            flags: row.flags ?? {},
            createdAt: (row.message_created_at ?? row.created_at).toISOString(),
          }
        : null,
    feedback:
      row.rating === null ? null : { rating: row.rating > 0 ? 'up' : 'down', comment: row.comment ?? null },
  };
}

/** A reviewer's corrected answer: its citations resolved against live chunks the reviewer can see. */
async function corrected(
  trx: Trx,
  ws: WorkspaceContext,
  resolution: Extract<Resolution, { action: 'correct' }>,
): Promise<{ answer: string; citations: Citation[] }> {
  const invalid = (path: string, message: string, detail: string) =>
    new AppError('validation_failed', { detail, extensions: { errors: [{ in: 'body', path, message }] } });
  const numbers = new Set(resolution.citations.map((c) => c.n));
  if (numbers.size !== resolution.citations.length)
    throw invalid('/citations', 'duplicate n', 'Each citation needs its own n');
  const unknown = extractCitationMarkers(resolution.answer).filter((n) => !numbers.has(n));
  if (unknown.length > 0)
    throw invalid(
      '/answer',
      'unknown marker',
      `The answer cites [${unknown.join(', ')}] but no such citation is given`,
    );
  const ids = [...new Set(resolution.citations.map((c) => c.chunkId))];
  const chunks =
    ids.length === 0
      ? []
      : await trx
          .selectFrom('chunks as c')
          .innerJoin('documents as d', 'd.id', 'c.document_id')
          .innerJoin('collections as col', 'col.id', 'c.collection_id')
          .select([
            'c.id',
            'c.text',
            'c.char_start',
            'c.char_end',
            'c.page',
            'c.document_id',
            'c.collection_id',
            'd.title',
          ])
          .where('c.id', 'in', ids)
          .where('d.deleted_at', 'is', null)
          .where('col.deleted_at', 'is', null)
          .where(visibleCollection(ws, 'col'))
          .execute();
  const byId = new Map(chunks.map((c) => [c.id, c]));
  const citations = resolution.citations.map((c, i): Citation => {
    const chunk = byId.get(c.chunkId);
    if (!chunk) throw invalid(`/citations/${i}/chunkId`, 'no such chunk', 'A cited chunk does not exist');
    const start = c.charStart ?? chunk.char_start;
    const end = c.charEnd ?? chunk.char_end;
    if (start < chunk.char_start || end > chunk.char_end || start >= end)
      throw invalid(`/citations/${i}`, 'span outside the chunk', 'A citation span must lie inside its chunk');
    return {
      n: c.n,
      chunkId: chunk.id,
      documentId: chunk.document_id,
      collectionId: chunk.collection_id,
      documentTitle: chunk.title,
      page: chunk.page,
      quote: chunk.text.slice(start - chunk.char_start, end - chunk.char_start),
      charStart: start,
      charEnd: end,
    };
  });
  return { answer: resolution.answer.trim(), citations };
}

// ---------------------------------------------------------------------------------------------------

const ReviewItemSchema = Type.Object({
  id: Uuid,
  status: Type.Enum(['open', 'in_review', 'resolved', 'dismissed']),
  reasons: Type.Array(Type.String(), {
    description:
      '`low_confidence`, `negative_feedback`, `uncited_claims`, `invalid_citations`, `injection_screened`, `model_fallback`',
  }),
  createdAt: Type.String({ format: 'date-time' }),
  resolvedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  resolution: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  question: Type.Union([Type.String(), Type.Null()]),
  message: Type.Union([
    Type.Object({
      id: Uuid,
      answer: Type.String(),
      citations: Type.Array(CitationSchema),
      model: Type.Union([Type.String(), Type.Null()]),
      flags: Type.Record(Type.String(), Type.Unknown()),
      createdAt: Type.String({ format: 'date-time' }),
    }),
    Type.Null(),
  ]),
  feedback: Type.Union([
    Type.Object({ rating: Type.Enum(['up', 'down']), comment: Type.Union([Type.String(), Type.Null()]) }),
    Type.Null(),
  ]),
});

const ResolveBody = Type.Union(
  [
    Type.Object(
      { action: Type.Literal('approve'), note: Type.Optional(Type.String({ maxLength: 4000 })) },
      { additionalProperties: false },
    ),
    Type.Object(
      { action: Type.Literal('reject'), note: Type.Optional(Type.String({ maxLength: 4000 })) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        action: Type.Literal('correct'),
        answer: Type.String({ minLength: 1, maxLength: 20_000 }),
        citations: Type.Array(
          Type.Object(
            {
              n: Type.Integer({ minimum: 1, maximum: 100 }),
              chunkId: Uuid,
              charStart: Type.Optional(Type.Integer({ minimum: 0 })),
              charEnd: Type.Optional(Type.Integer({ minimum: 0 })),
            },
            { additionalProperties: false },
          ),
          { maxItems: 50 },
        ),
        note: Type.Optional(Type.String({ maxLength: 4000 })),
      },
      { additionalProperties: false },
    ),
  ],
  {
    examples: [
      { action: 'approve' },
      {
        action: 'correct',
        answer: 'Parental leave is 16 weeks at full pay [1].',
        citations: [{ n: 1, chunkId: '0190f5a2-7c3e-7d4a-9b1e-2f6c8d9e0a1b' }],
      },
    ],
  },
);

export const reviewRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const review = new ReviewService(app.deps.database.db);
  app.get(
    '/v1/review-items',
    {
      config: { access: { permission: 'review' as const } },
      schema: {
        tags: ['review'],
        summary: 'The review queue, newest first',
        querystring: Type.Object(
          {
            status: Type.Enum(['open', 'in_review', 'resolved', 'dismissed'], { default: 'open' }),
            limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
            before: Type.Optional(Type.String({ format: 'date-time' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ data: Type.Array(ReviewItemSchema) }),
          ...problemResponses(400, 401, 403),
        },
      },
    },
    async (request) => ({ data: await review.list(requireWorkspace(request), request.query) }),
  );
  app.get(
    '/v1/review-items/:id',
    {
      config: { access: { permission: 'review' as const } },
      schema: {
        tags: ['review'],
        summary: 'One review item with its question, answer and feedback',
        params: Type.Object({ id: Uuid }),
        response: { 200: ReviewItemSchema, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => review.get(requireWorkspace(request), request.params.id),
  );
  app.post(
    '/v1/review-items/:id/resolve',
    {
      config: { access: { permission: 'review' as const } },
      schema: {
        tags: ['review'],
        summary: 'Approve, correct or reject; approved and corrected answers become curated answers',
        params: Type.Object({ id: Uuid }),
        body: ResolveBody,
        response: {
          200: Type.Object({
            ...ReviewItemSchema.properties,
            curatedAnswerId: Type.Union([Uuid, Type.Null()]),
          }),
          ...problemResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const reviewer = request.auth?.kind === 'user' ? request.auth.userId : null;
      return review.resolve(requireWorkspace(request), reviewer, request.params.id, request.body);
    },
  );
};
