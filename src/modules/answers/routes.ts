/**
 * Answers API: `POST /v1/answers` (JSON, or SSE with `Accept: text/event-stream`), the caller's
 * conversations, feedback on answers, usage and the workspace's answer policy.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { requireWorkspace } from '../../platform/auth/access.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { Nullable } from '../../platform/http/schemas.js';
import { streamEvents, wantsEventStream } from '../../platform/http/sse.js';
import { ConversationService } from './conversations.js';
import { AnswerBody, AnswerSchema, CitationSchema, Uuid } from './schemas.js';
import type { Actor, AnswerService } from './service.js';
import type { UsageService } from './usage.js';

export function actorOf(request: FastifyRequest): Actor {
  const auth = request.auth;
  return {
    userId: auth?.kind === 'user' ? auth.userId : null,
    apiKeyId: auth?.kind === 'api_key' ? auth.apiKeyId : null,
    requestId: request.id,
  };
}

const SSE_DESCRIPTION = `With \`Accept: text/event-stream\` the answer streams as server-sent events, each \`data\` one JSON object:
- \`retrieval\`: \`{id, conversationId, standaloneQuestion, sources}\` (again for each agentic search, with the new sources);
- \`token\`: \`{text}\`, a delta of the answer text;
- \`citation\`: \`{citation}\`, each resolved citation once the text is complete;
- \`usage\`: \`{usage}\` (tokens, cost, latency per stage);
- \`done\`: \`{answer}\`, the whole answer as the JSON response would give it. Its \`answer\` text is authoritative: if the model fails after streaming some tokens, it is the extractive fallback;
- \`error\`: a problem document; the stream ends.

Errors found before the first event (validation, 404, 429 \`budget_exceeded\`) are ordinary problem+json responses.`;

// Null first: with type coercion on, a number branch tried first would turn null into 0.
const Budget = Nullable(Type.Number({ minimum: 0 }));
const PolicySchema = Type.Object({
  budgets: Type.Object({
    dailyTokens: Budget,
    monthlyTokens: Budget,
    dailyCostUsd: Budget,
    monthlyCostUsd: Budget,
  }),
  routing: Type.Object({
    fastModel: Nullable(Type.String({ minLength: 1, maxLength: 200 })),
    strongModel: Nullable(Type.String({ minLength: 1, maxLength: 200 })),
    strongAboveTokens: Type.Integer({ minimum: 1, maximum: 100_000 }),
    latencyBudgetMs: Nullable(Type.Integer({ minimum: 100, maximum: 600_000 })),
  }),
});
const PolicyPatch = Type.Object(
  {
    budgets: Type.Optional(Type.Partial(PolicySchema.properties.budgets, { additionalProperties: false })),
    routing: Type.Optional(Type.Partial(PolicySchema.properties.routing, { additionalProperties: false })),
  },
  {
    additionalProperties: false,
    examples: [
      {
        budgets: { dailyTokens: 200_000, monthlyCostUsd: 50 },
        routing: { strongModel: 'gpt-4o', latencyBudgetMs: 20_000 },
      },
    ],
  },
);

const ConversationSummary = Type.Object({
  id: Uuid,
  title: Type.Union([Type.String(), Type.Null()]),
  collectionIds: Type.Array(Uuid),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});
const MessageSchema = Type.Object({
  id: Uuid,
  role: Type.String(),
  status: Type.String(),
  content: Type.String(),
  citations: Type.Array(CitationSchema),
  model: Type.Union([Type.String(), Type.Null()]),
  promptVersion: Type.Union([Type.String(), Type.Null()]),
  tokensIn: Type.Integer(),
  tokensOut: Type.Integer(),
  costUsd: Type.Number(),
  flags: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Type.String({ format: 'date-time' }),
});

export function answerRoutes(answers: AnswerService, usage: UsageService): FastifyPluginAsyncTypebox {
  return async (app) => {
    const conversations = new ConversationService(app.deps.database.db);

    app.post(
      '/v1/answers',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Answer a question from the documents, with citations',
          description: SSE_DESCRIPTION,
          body: AnswerBody,
          response: {
            200: AnswerSchema,
            ...problemResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request, reply) => {
        const ws = requireWorkspace(request);
        const actor = actorOf(request);
        if (!wantsEventStream(request)) {
          const controller = new AbortController();
          const abort = () => {
            if (!reply.raw.writableFinished) controller.abort();
          };
          reply.raw.once('close', abort);
          try {
            return await answers.answer(ws, actor, request.body, undefined, controller.signal);
          } finally {
            reply.raw.off('close', abort);
          }
        }
        return streamEvents(request, reply, async (send, signal) => {
          await answers.answer(
            ws,
            actor,
            request.body,
            (event) => {
              const { type, ...data } = event;
              send(type, data);
            },
            signal,
          );
        });
      },
    );

    app.get(
      '/v1/conversations',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Your conversations, most recent first',
          querystring: Type.Object(
            {
              limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
              before: Type.Optional(
                Type.String({ format: 'date-time', description: 'Only conversations updated before this' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ data: Type.Array(ConversationSummary) }),
            ...problemResponses(400, 401, 403),
          },
        },
      },
      async (request) => ({
        data: await conversations.list(requireWorkspace(request), actorOf(request), request.query),
      }),
    );

    app.get(
      '/v1/conversations/:id',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['answers'],
          summary: 'One of your conversations with its messages',
          params: Type.Object({ id: Uuid }),
          response: {
            200: Type.Object({ ...ConversationSummary.properties, messages: Type.Array(MessageSchema) }),
            ...problemResponses(400, 401, 403, 404),
          },
        },
      },
      async (request) => conversations.get(requireWorkspace(request), actorOf(request), request.params.id),
    );

    app.delete(
      '/v1/conversations/:id',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Delete one of your conversations',
          params: Type.Object({ id: Uuid }),
          response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await conversations.remove(requireWorkspace(request), actorOf(request), request.params.id);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/v1/answers/:id/feedback',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Rate an answer (thumbs up or down, with a comment); thumbs down queues it for review',
          params: Type.Object({ id: Uuid }),
          body: Type.Object(
            {
              rating: Type.Enum(['up', 'down']),
              comment: Type.Optional(Type.String({ maxLength: 4000 })),
            },
            {
              additionalProperties: false,
              examples: [{ rating: 'down', comment: 'The leave is 16 weeks, not 12.' }],
            },
          ),
          response: {
            200: Type.Object({
              id: Uuid,
              rating: Type.Enum(['up', 'down']),
              reviewItemId: Type.Union([Uuid, Type.Null()]),
            }),
            ...problemResponses(400, 401, 403, 404),
          },
        },
      },
      async (request) =>
        conversations.feedback(requireWorkspace(request), actorOf(request), request.params.id, request.body),
    );

    app.get(
      '/v1/usage',
      {
        config: { access: { permission: 'usage:read' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Usage by day, feature and model, and the budgets',
          querystring: Type.Object(
            {
              from: Type.Optional(
                Type.String({ format: 'date', description: 'First day (UTC), default 30 days ago' }),
              ),
              to: Type.Optional(
                Type.String({ format: 'date', description: 'Last day included (UTC), default today' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              from: Type.String(),
              to: Type.String(),
              data: Type.Array(
                Type.Object({
                  day: Type.String(),
                  feature: Type.String(),
                  model: Type.Union([Type.String(), Type.Null()]),
                  requests: Type.Integer(),
                  tokensIn: Type.Integer(),
                  tokensOut: Type.Integer(),
                  costUsd: Type.Number(),
                }),
              ),
              totals: Type.Object({
                requests: Type.Integer(),
                tokensIn: Type.Integer(),
                tokensOut: Type.Integer(),
                costUsd: Type.Number(),
              }),
              budgets: Type.Array(
                Type.Object({
                  budget: Type.String(),
                  limit: Type.Number(),
                  used: Type.Number(),
                  resetsAt: Type.String(),
                }),
              ),
            }),
            ...problemResponses(400, 401, 403),
          },
        },
      },
      async (request) => {
        const ws = requireWorkspace(request);
        const today = new Date().toISOString().slice(0, 10);
        const to = request.query.to ?? today;
        const from =
          request.query.from ?? new Date(Date.parse(to) - 29 * 86_400_000).toISOString().slice(0, 10);
        if (from > to)
          throw new AppError('validation_failed', {
            detail: '`from` is after `to`',
            extensions: { errors: [{ in: 'querystring', path: '/from', message: 'after to' }] },
          });
        if (Date.parse(to) - Date.parse(from) > 366 * 86_400_000)
          throw new AppError('validation_failed', {
            detail: 'At most 366 days at a time',
            extensions: { errors: [{ in: 'querystring', path: '/from', message: 'range too long' }] },
          });
        const data = await usage.report(
          ws,
          new Date(`${from}T00:00:00Z`),
          new Date(Date.parse(`${to}T00:00:00Z`) + 86_400_000),
        );
        const totals = data.reduce(
          (t, r) => ({
            requests: t.requests + r.requests,
            tokensIn: t.tokensIn + r.tokensIn,
            tokensOut: t.tokensOut + r.tokensOut,
            costUsd: Math.round((t.costUsd + r.costUsd) * 1e6) / 1e6,
          }),
          { requests: 0, tokensIn: 0, tokensOut: 0, costUsd: 0 },
        );
        const policy = await usage.policy(ws.id);
        return { from, to, data, totals, budgets: await usage.budgetStatus(ws.id, policy.budgets) };
      },
    );

    app.get(
      '/v1/answers/policy',
      {
        config: { access: { permission: 'usage:read' as const } },
        schema: {
          tags: ['answers'],
          summary: 'The workspace’s answer policy: budgets and model routing',
          response: { 200: PolicySchema, ...problemResponses(401, 403) },
        },
      },
      async (request) => usage.policy(requireWorkspace(request).id),
    );

    app.patch(
      '/v1/answers/policy',
      {
        config: { access: { permission: 'workspace:admin' as const } },
        schema: {
          tags: ['answers'],
          summary: 'Change budgets or routing (null clears a limit or a model override)',
          body: PolicyPatch,
          response: { 200: PolicySchema, ...problemResponses(400, 401, 403) },
        },
      },
      async (request) => usage.setPolicy(requireWorkspace(request), request.body),
    );
  };
}
