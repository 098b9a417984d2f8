/**
 * Conversations and feedback. A conversation belongs to the user or API key that started it: nobody
 * else lists, reads, continues or deletes it (404, as for a missing one). Reviewers see the answers
 * that reach the review queue through the queue, not through conversations.
 */
import { sql } from 'kysely';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import type { Db } from '../../platform/db/database.js';
import type { FeedbackRating } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import type { Citation } from './grounding.js';
import type { Actor } from './service.js';

export function ownedBy(actor: Actor, alias = 'conversations') {
  return actor.userId
    ? sql<boolean>`${sql.ref(`${alias}.user_id`)} = ${actor.userId}`
    : actor.apiKeyId
      ? sql<boolean>`${sql.ref(`${alias}.api_key_id`)} = ${actor.apiKeyId}`
      : sql<boolean>`false`;
}

const notFound = () => new AppError('not_found', { detail: 'No such conversation' });

export class ConversationService {
  constructor(private readonly db: Db) {}

  async list(ws: WorkspaceContext, actor: Actor, query: { limit: number; before?: string | undefined }) {
    assertPermission(ws, 'answers');
    const rows = await withTenant(this.db, ws.id, (trx) => {
      let q = trx
        .selectFrom('conversations')
        .select(['id', 'title', 'collection_ids', 'created_at', 'updated_at'])
        .where('workspace_id', '=', ws.id)
        .where('deleted_at', 'is', null)
        .where(ownedBy(actor));
      if (query.before) q = q.where('updated_at', '<', new Date(query.before));
      return q.orderBy('updated_at', 'desc').orderBy('id', 'desc').limit(query.limit).execute();
    });
    return rows.map((r) => ({
      id: r.id,
      title: r.title,
      collectionIds: r.collection_ids,
      createdAt: r.created_at.toISOString(),
      updatedAt: r.updated_at.toISOString(),
    }));
  }

  async get(ws: WorkspaceContext, actor: Actor, id: string) {
    assertPermission(ws, 'answers');
    return withTenant(this.db, ws.id, async (trx) => {
      const c = await trx
        .selectFrom('conversations')
        .select(['id', 'title', 'collection_ids', 'created_at', 'updated_at'])
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .where(ownedBy(actor))
        .executeTakeFirst();
      if (!c) throw notFound();
      const messages = await trx
        .selectFrom('messages')
        .selectAll()
        .where('conversation_id', '=', id)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return {
        id: c.id,
        title: c.title,
        collectionIds: c.collection_ids,
        createdAt: c.created_at.toISOString(),
        updatedAt: c.updated_at.toISOString(),
        messages: messages.map((m) => ({
          id: m.id,
          role: m.role,
          status: m.status,
          content: m.content,
          citations: m.citations as unknown as Citation[],
          model: m.model,
          promptVersion: m.prompt_version,
          tokensIn: m.tokens_in,
          tokensOut: m.tokens_out,
          costUsd: Number(m.cost_usd),
          flags: m.flags,
          createdAt: m.created_at.toISOString(),
        })),
      };
    });
  }

  /** Soft delete: gone from every list and read at once; messages stay for the review queue until purge. */
  async remove(ws: WorkspaceContext, actor: Actor, id: string): Promise<void> {
    assertPermission(ws, 'answers');
    const result = await withTenant(this.db, ws.id, (trx) =>
      trx
        .updateTable('conversations')
        .set({ deleted_at: new Date() })
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .where(ownedBy(actor))
        .executeTakeFirst(),
    );
    if (result.numUpdatedRows === 0n) throw notFound();
  }

  /**
   * Thumbs up or down on an answer of one's own conversation (one rating per user and answer; a new
   * one replaces it). Thumbs down puts the answer in the review queue (once: an open item for the
   * answer is reused).
   */
  async feedback(
    ws: WorkspaceContext,
    actor: Actor,
    messageId: string,
    body: { rating: 'up' | 'down'; comment?: string | undefined },
  ): Promise<{ id: string; rating: 'up' | 'down'; reviewItemId: string | null }> {
    assertPermission(ws, 'answers');
    return withTenant(this.db, ws.id, async (trx) => {
      const message = await trx
        .selectFrom('messages as m')
        .innerJoin('conversations as c', 'c.id', 'm.conversation_id')
        .select(['m.id'])
        .where('m.id', '=', messageId)
        .where('m.role', '=', 'assistant')
        .where('m.status', '=', 'complete')
        .where('c.deleted_at', 'is', null)
        .where(ownedBy(actor, 'c'))
        .executeTakeFirst();
      if (!message) throw new AppError('not_found', { detail: 'No such answer' });
      const rating: FeedbackRating = body.rating === 'up' ? 1 : -1;
      const values = {
        workspace_id: ws.id,
        message_id: messageId,
        user_id: actor.userId,
        rating,
        comment: body.comment ?? null,
      };
      // API-key feedback has no user: one row per call (NULLs never conflict).
      const { id } = actor.userId
        ? await trx
            .insertInto('feedback')
            .values(values)
            .onConflict((oc) =>
              oc
                .columns(['message_id', 'user_id'])
                .doUpdateSet({ rating: values.rating, comment: values.comment }),
            )
            .returning('id')
            .executeTakeFirstOrThrow()
        : await trx.insertInto('feedback').values(values).returning('id').executeTakeFirstOrThrow();
      let reviewItemId: string | null = null;
      if (rating < 0) {
        const open = await trx
          .selectFrom('review_items')
          .select('id')
          .where('message_id', '=', messageId)
          .where('status', 'in', ['open', 'in_review'])
          .executeTakeFirst();
        if (open) {
          await trx
            .updateTable('review_items')
            .set({
              feedback_id: id,
              reason: sql<string>`case when reason like '%negative_feedback%' then reason else reason || ',negative_feedback' end`,
            })
            .where('id', '=', open.id)
            .execute();
          reviewItemId = open.id;
        } else {
          reviewItemId = (
            await trx
              .insertInto('review_items')
              .values({
                workspace_id: ws.id,
                message_id: messageId,
                feedback_id: id,
                reason: 'negative_feedback',
              })
              .returning('id')
              .executeTakeFirstOrThrow()
          ).id;
        }
      }
      return { id, rating: body.rating, reviewItemId };
    });
  }
}
