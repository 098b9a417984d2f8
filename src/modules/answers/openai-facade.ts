/**
 * OpenAI-compatible facade: `POST /v1/chat/completions` and `GET /v1/models`, so chat UIs and SDKs
 * built for OpenAI ask Larder (cited answers from the workspace's documents) without changes.
 *
 * The model name selects what to answer from:
 *  - `larder`: every collection the caller sees;
 *  - `larder:<collection id>` or `larder:<collection name>` (exact name): that collection;
 *  - an optional suffix `@fast` / `@strong` sets the answer's `quality` (model routing).
 * The last `user` message is the question, earlier `user`/`assistant` messages its history (a
 * follow-up is condensed with them); `system`, `developer` and `tool` messages are ignored (Larder's
 * own prompt governs), as are sampling settings (`temperature`, `max_tokens`, …).
 *
 * Responses are real `chat.completion` objects (or `chat.completion.chunk` SSE frames ending with
 * `data: [DONE]`) with two extension members: `citations` (as `POST /v1/answers` gives them) and
 * `larder` (answer and conversation ids, grounding, provider, fallback, sources, the standalone
 * question). Errors are problem+json documents, as everywhere in the API.
 *
 * @example
 *   const client = new OpenAI({ baseURL: 'https://larder.example.com/v1', apiKey: 'lk_live_…' });
 *   const res = await client.chat.completions.create({
 *     model: 'larder:Handbook',
 *     messages: [{ role: 'user', content: 'How long is parental leave?' }],
 *   });
 *   res.choices[0].message.content; // "Employees get 16 weeks … [1]"
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import Type, { type Static } from 'typebox';
import type { Quality } from '../../ai/usage/routing.js';
import { assertPermission, requireWorkspace, type WorkspaceContext } from '../../platform/auth/access.js';
import { visibleCollection } from '../../platform/auth/collection-access.js';
import type { Db } from '../../platform/db/database.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { Nullable } from '../../platform/http/schemas.js';
import { streamEvents } from '../../platform/http/sse.js';
import { actorOf } from './routes.js';
import { CitationSchema, SourceSchema, Uuid } from './schemas.js';
import type { AnswerRequest, AnswerResult, AnswerService } from './service.js';

/** The model name of "every collection"; `larder:<collection>` names one. */
export const BASE_MODEL = 'larder';
/** The longest question accepted (as `POST /v1/answers`). */
const MAX_QUESTION = 4000;
/** Model names listed in a 404's detail at most. */
const NAMES_IN_DETAIL = 20;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// ---------------------------------------------------------------------------------------------------
// Schemas

const ContentPart = Type.Object(
  { type: Type.String(), text: Type.Optional(Type.String()) },
  { additionalProperties: true },
);
const ChatMessageSchema = Type.Object(
  {
    role: Type.Enum(['system', 'developer', 'user', 'assistant', 'tool']),
    // Null: an assistant turn that only called tools.
    content: Type.Union([Type.Null(), Type.String(), Type.Array(ContentPart, { maxItems: 100 })]),
  },
  { additionalProperties: true },
);

const ChatCompletionBody = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 300, description: '`larder`, `larder:<collection>`' }),
    messages: Type.Array(ChatMessageSchema, { minItems: 1, maxItems: 200 }),
    stream: Type.Optional(Type.Boolean()),
    stream_options: Type.Optional(
      Type.Union([
        Type.Null(),
        Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: true }),
      ]),
    ),
    n: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 1 }))),
    max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    temperature: Type.Optional(Nullable(Type.Number())),
    user: Type.Optional(Type.String()),
  },
  {
    // Clients built for OpenAI send many more settings; they do not change a Larder answer.
    additionalProperties: true,
    examples: [
      { model: 'larder', messages: [{ role: 'user', content: 'How long is parental leave?' }] },
      {
        model: 'larder:Handbook@fast',
        stream: true,
        stream_options: { include_usage: true },
        messages: [
          { role: 'user', content: 'How long is parental leave?' },
          { role: 'assistant', content: 'Employees get 16 weeks at full pay [1].' },
          { role: 'user', content: 'Who approves it?' },
        ],
      },
    ],
  },
);
type ChatCompletionRequest = Static<typeof ChatCompletionBody>;

const LarderExtension = Type.Object({
  answerId: Uuid,
  conversationId: Uuid,
  standaloneQuestion: Type.String({ description: 'The question as searched (follow-ups condensed)' }),
  grounded: Type.Boolean(),
  provider: Type.String(),
  fallback: Type.Union([Type.Object({ reason: Type.String(), message: Type.String() }), Type.Null()]),
  reviewed: Type.Boolean(),
  sources: Type.Array(SourceSchema),
});

const ChatCompletionSchema = Type.Object({
  id: Type.String({ description: '`chatcmpl-` and the answer message id' }),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({
        role: Type.Literal('assistant'),
        content: Type.String(),
        refusal: Type.Null(),
      }),
      logprobs: Type.Null(),
      finish_reason: Type.Literal('stop'),
    }),
  ),
  usage: Type.Object({
    prompt_tokens: Type.Integer(),
    completion_tokens: Type.Integer(),
    total_tokens: Type.Integer(),
  }),
  citations: Type.Array(CitationSchema),
  larder: LarderExtension,
});

const ModelSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
});

const STREAM_DESCRIPTION = `Answers from the workspace's documents like OpenAI's chat completions (see the model names in \`GET /v1/models\`; a suffix \`@fast\` or \`@strong\` picks the model tier). The last \`user\` message is the question, earlier \`user\`/\`assistant\` messages the history.

With \`stream: true\` the answer streams as \`data: {chat.completion.chunk}\` frames: a role chunk, one chunk per text delta, a final chunk with \`finish_reason: "stop"\` and the \`citations\` and \`larder\` members (there \`larder.answer\` is the authoritative text), a usage chunk (\`choices: []\`) when \`stream_options.include_usage\`, then \`data: [DONE]\`. Errors found before streaming are problem+json responses.`;

// ---------------------------------------------------------------------------------------------------
// Model names

interface ModelChoice {
  /** Undefined: every collection the caller sees. */
  collections: string[] | undefined;
  quality: Quality | undefined;
}

/** The collections the caller sees, by name: what the model names refer to. */
async function visibleCollections(db: Db, ws: WorkspaceContext) {
  assertPermission(ws, 'answers');
  return withTenant(db, ws.id, (trx) =>
    trx
      .selectFrom('collections')
      .select(['id', 'name', 'created_at'])
      .where('workspace_id', '=', ws.id)
      .where('deleted_at', 'is', null)
      .where(visibleCollection(ws))
      .orderBy('name')
      .orderBy('id')
      .execute(),
  );
}

/** `larder[:collection][@fast|@strong]` → what to answer from; anything else is a 404. */
async function resolveModel(db: Db, ws: WorkspaceContext, model: string): Promise<ModelChoice> {
  const suffix = /@(fast|strong)$/.exec(model);
  const quality = suffix ? (suffix[1] as Quality) : undefined;
  const name = suffix ? model.slice(0, suffix.index) : model;
  if (name === BASE_MODEL) {
    assertPermission(ws, 'answers');
    return { collections: undefined, quality };
  }
  const visible = await visibleCollections(db, ws);
  if (name.startsWith(`${BASE_MODEL}:`)) {
    const wanted = name.slice(BASE_MODEL.length + 1);
    const found =
      (UUID.test(wanted) ? visible.find((c) => c.id === wanted.toLowerCase()) : undefined) ??
      visible.find((c) => c.name === wanted);
    if (found) return { collections: [found.id], quality };
  }
  const names = modelNames(visible);
  throw new AppError('not_found', {
    detail:
      `The model "${model}" does not exist. Models (GET /v1/models): ` +
      `${names.slice(0, NAMES_IN_DETAIL).join(', ')}${names.length > NAMES_IN_DETAIL ? ', …' : ''}` +
      ' (optionally with @fast or @strong).',
  });
}

const modelNames = (collections: { name: string }[]) => [
  BASE_MODEL,
  ...collections.map((c) => `${BASE_MODEL}:${c.name}`),
];

// ---------------------------------------------------------------------------------------------------
// Messages → question and history

type ChatMessage = ChatCompletionRequest['messages'][number];

function textOf(message: ChatMessage, index: number): string {
  const { content } = message;
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, i) => {
      if (part.type !== 'text' || typeof part.text !== 'string')
        throw new AppError('validation_failed', {
          detail: `Only text content parts are supported (messages[${index}].content[${i}] is "${part.type}")`,
          extensions: {
            errors: [{ in: 'body', path: `/messages/${index}/content/${i}/type`, message: 'must be text' }],
          },
        });
      return part.text;
    })
    .join('\n');
}

/** The last user message is the question; earlier user and assistant messages are its history. */
export function questionAndHistory(messages: ChatMessage[]): {
  question: string;
  history: NonNullable<AnswerRequest['history']>;
} {
  const turns = messages
    .map((m, i) => ({ role: m.role, content: textOf(m, i), index: i }))
    .filter(
      (m): m is { role: 'user' | 'assistant'; content: string; index: number } =>
        m.role === 'user' || m.role === 'assistant',
    );
  const last = turns.findLastIndex((m) => m.role === 'user');
  const asked = turns.at(last);
  const question = last === -1 || !asked ? '' : asked.content.trim();
  if (question.length === 0 || question.length > MAX_QUESTION)
    throw new AppError('validation_failed', {
      detail:
        question.length === 0
          ? 'No question: the messages need a non-empty user message'
          : `The question is longer than ${MAX_QUESTION} characters`,
      extensions: {
        errors: [
          {
            in: 'body',
            path: last === -1 || !asked ? '/messages' : `/messages/${asked.index}/content`,
            message: question.length === 0 ? 'no user question' : `longer than ${MAX_QUESTION}`,
          },
        ],
      },
    });
  return {
    question,
    history: turns.slice(0, last).map((m) => ({ role: m.role, content: m.content })),
  };
}

// ---------------------------------------------------------------------------------------------------
// Presenters

function larderExtension(answer: AnswerResult) {
  return {
    answerId: answer.id,
    conversationId: answer.conversationId,
    standaloneQuestion: answer.standaloneQuestion,
    grounded: answer.grounded,
    provider: answer.provider,
    fallback: answer.fallback,
    reviewed: answer.reviewed,
    sources: answer.sources,
  };
}

const usageOf = (answer: AnswerResult) => ({
  prompt_tokens: answer.usage.tokensIn,
  completion_tokens: answer.usage.tokensOut,
  total_tokens: answer.usage.tokensIn + answer.usage.tokensOut,
});

export function presentCompletion(answer: AnswerResult, model: string, created: number) {
  return {
    id: `chatcmpl-${answer.id}`,
    object: 'chat.completion' as const,
    created,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant' as const, content: answer.answer, refusal: null },
        logprobs: null,
        finish_reason: 'stop' as const,
      },
    ],
    usage: usageOf(answer),
    citations: answer.citations,
    larder: larderExtension(answer),
  };
}

/**
 * SSE frames as OpenAI writes them: data only. A problem after streaming began goes out as OpenAI's
 * `{"error": {message, type, code}}` frame (which its clients raise), keeping the problem's members.
 */
function dataFrame(event: string, data: unknown): string {
  if (event !== 'error') return `data: ${JSON.stringify(data)}\n\n`;
  const problem = data as { title: string; detail?: string; code: string };
  const error = { ...problem, message: problem.detail ?? problem.title, type: problem.code };
  return `data: ${JSON.stringify({ error })}\n\n`;
}

/**
 * OpenAI's clients read an error's message from `error.message` of the body: problem documents of
 * these routes carry that member too (RFC 9457 allows extension members), so a client shows the detail.
 */
function withOpenAiError(reply: FastifyReply, payload: unknown): unknown {
  const type = reply.getHeader('content-type');
  if (typeof payload !== 'string' || typeof type !== 'string' || !type.startsWith('application/problem+json'))
    return payload;
  try {
    const problem = JSON.parse(payload) as { title?: string; detail?: string; code?: string };
    const error = { message: problem.detail ?? problem.title, type: problem.code, code: problem.code };
    return JSON.stringify({ ...problem, error });
  } catch {
    return payload;
  }
}

// ---------------------------------------------------------------------------------------------------
// Routes

export function chatCompletionRoutes(answers: AnswerService): FastifyPluginAsyncTypebox {
  return async (app) => {
    const db = app.deps.database.db;
    app.addHook('onSend', async (_request, reply, payload) => withOpenAiError(reply, payload));

    app.get(
      '/v1/models',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['openai'],
          summary: 'The model names you can ask (OpenAI-compatible): `larder` and `larder:<collection>`',
          response: {
            200: Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelSchema) }),
            ...problemResponses(401, 403),
          },
        },
      },
      async (request) => {
        const collections = await visibleCollections(db, requireWorkspace(request));
        return {
          object: 'list' as const,
          data: [
            { id: BASE_MODEL, object: 'model' as const, created: 0, owned_by: 'larder' },
            ...collections.map((c) => ({
              id: `${BASE_MODEL}:${c.name}`,
              object: 'model' as const,
              created: Math.floor(c.created_at.getTime() / 1000),
              owned_by: 'larder',
            })),
          ],
        };
      },
    );

    app.post(
      '/v1/chat/completions',
      {
        config: { access: { permission: 'answers' as const } },
        schema: {
          tags: ['openai'],
          summary: 'Answer the last user message with citations (OpenAI chat-completions compatible)',
          description: STREAM_DESCRIPTION,
          body: ChatCompletionBody,
          response: {
            200: ChatCompletionSchema,
            ...problemResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request, reply) => {
        const ws = requireWorkspace(request);
        const actor = actorOf(request);
        const body = request.body;
        const created = Math.floor(Date.now() / 1000);
        const { question, history } = questionAndHistory(body.messages);
        const choice = await resolveModel(db, ws, body.model);
        const answerRequest: AnswerRequest = {
          question,
          history,
          collections: choice.collections,
          options: choice.quality ? { quality: choice.quality } : undefined,
        };

        if (body.stream !== true) {
          const controller = new AbortController();
          const abort = () => {
            if (!reply.raw.writableFinished) controller.abort();
          };
          reply.raw.once('close', abort);
          try {
            const answer = await answers.answer(ws, actor, answerRequest, undefined, controller.signal);
            return presentCompletion(answer, body.model, created);
          } finally {
            reply.raw.off('close', abort);
          }
        }

        const includeUsage = body.stream_options?.include_usage === true;
        return streamEvents(
          request,
          reply,
          async (send, signal) => {
            let id = `chatcmpl-${request.id}`;
            let streamed = '';
            let started = false;
            const chunk = (
              delta: { role?: 'assistant'; content?: string },
              finishReason: 'stop' | null = null,
            ) => ({
              id,
              object: 'chat.completion.chunk',
              created,
              model: body.model,
              choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
            });
            const content = (text: string) => {
              if (text.length === 0) return;
              streamed += text;
              send('chunk', chunk({ content: text }));
            };
            await answers.answer(
              ws,
              actor,
              answerRequest,
              (event) => {
                if (!started) {
                  if (event.type === 'retrieval') id = `chatcmpl-${event.id}`;
                  started = true;
                  send('chunk', chunk({ role: 'assistant', content: '' }));
                }
                if (event.type === 'token') content(event.text);
                if (event.type !== 'done') return;
                const answer = event.answer;
                // `done` is authoritative: a model that failed mid-answer is followed by the extractive one.
                if (answer.answer.startsWith(streamed)) content(answer.answer.slice(streamed.length));
                else if (answer.fallback) content(`\n\n---\n${answer.fallback.message}\n\n${answer.answer}`);
                send('chunk', {
                  ...chunk({}, 'stop'),
                  citations: answer.citations,
                  larder: { ...larderExtension(answer), answer: answer.answer },
                });
                if (includeUsage)
                  send('usage', {
                    id,
                    object: 'chat.completion.chunk',
                    created,
                    model: body.model,
                    choices: [],
                    usage: usageOf(answer),
                  });
              },
              signal,
            );
          },
          { frame: dataFrame, end: 'data: [DONE]\n\n' },
        );
      },
    );
  };
}
