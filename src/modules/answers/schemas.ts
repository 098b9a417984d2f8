/** TypeBox schemas of the answers API (request bodies, the answer, citations, sources). */
import Type from 'typebox';
import { SearchFiltersSchema } from '../search/routes.js';

export const Uuid = Type.String({ format: 'uuid' });
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);

export const AnswerOptionsSchema = Type.Object(
  {
    sources: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 20,
        description: 'Chunks given as sources (default LARDER_ANSWER_SOURCES)',
      }),
    ),
    mode: Type.Optional(
      Type.Enum(['hybrid', 'lexical', 'vector'], { description: 'Retrieval mode (default hybrid)' }),
    ),
    quality: Type.Optional(
      Type.Enum(['auto', 'fast', 'strong'], {
        description: '`auto` (default) routes long or complex questions to the strong model',
      }),
    ),
    provider: Type.Optional(
      Type.Enum(['auto', 'extractive'], {
        description: '`extractive`: never call the model for this request',
      }),
    ),
    cache: Type.Optional(Type.Boolean({ description: 'false: bypass the answer cache (default true)' })),
    agentic: Type.Optional(
      Type.Boolean({ description: 'Let the model call a `search` tool (bounded steps) before answering' }),
    ),
  },
  { additionalProperties: false },
);

export const AnswerBody = Type.Object(
  {
    question: Type.String({ minLength: 1, maxLength: 4000, examples: ['How long is parental leave?'] }),
    collections: Type.Optional(
      Type.Array(Uuid, {
        maxItems: 50,
        description: 'Collection ids; omitted: the conversation’s, else all',
      }),
    ),
    filters: Type.Optional(SearchFiltersSchema),
    conversationId: Type.Optional(
      Type.String({ format: 'uuid', description: 'Continue this conversation (yours); omitted: a new one' }),
    ),
    options: Type.Optional(AnswerOptionsSchema),
  },
  {
    additionalProperties: false,
    examples: [
      { question: 'How long is parental leave?' },
      {
        question: 'And is it paid?',
        conversationId: '0190f5a2-7c3e-7d4a-9b1e-2f6c8d9e0a1b',
        options: { quality: 'fast' },
      },
    ],
  },
);

export const CitationSchema = Type.Object({
  n: Type.Integer({ description: 'The marker `[n]` in the answer text' }),
  chunkId: Uuid,
  documentId: Uuid,
  collectionId: Uuid,
  documentTitle: Type.String(),
  page: NullableInt,
  quote: Type.String({ description: 'The evidence, verbatim from the document’s extracted text' }),
  charStart: Type.Integer({ description: 'Span of the quote in the document’s extracted text' }),
  charEnd: Type.Integer(),
});

export const SourceSchema = Type.Object({
  n: Type.Integer(),
  chunkId: Uuid,
  documentId: Uuid,
  collectionId: Uuid,
  documentTitle: Type.String(),
  externalId: NullableString,
  text: Type.String(),
  headingPath: Type.Array(Type.String()),
  page: NullableInt,
  charStart: Type.Integer(),
  charEnd: Type.Integer(),
  score: Type.Number(),
  scores: Type.Object({
    lexical: Type.Union([Type.Number(), Type.Null()]),
    vector: Type.Union([Type.Number(), Type.Null()]),
  }),
  flagged: Type.Boolean({ description: 'Looked like prompt injection; given to the model marked as such' }),
});

const UsageSchema = Type.Object({
  tokensIn: Type.Integer(),
  tokensOut: Type.Integer(),
  costUsd: Type.Number(),
  latencyMs: Type.Object({ retrieve: Type.Integer(), generate: Type.Integer(), total: Type.Integer() }),
});

export const AnswerSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'The answer message (for feedback)' }),
  conversationId: Uuid,
  question: Type.String(),
  standaloneQuestion: Type.String({ description: 'The question as searched (follow-ups condensed)' }),
  answer: Type.String({ description: 'Claims cite sources as [n]' }),
  citations: Type.Array(CitationSchema),
  sources: Type.Array(SourceSchema),
  grounded: Type.Boolean({ description: 'false: the documents did not support an answer' }),
  provider: Type.String({ description: '`extractive`, `openai` or `curated`' }),
  model: NullableString,
  promptVersion: NullableString,
  extractive: Type.Boolean({ description: 'The answer quotes evidence verbatim instead of a model’s prose' }),
  fallback: Type.Union([Type.Object({ reason: Type.String(), message: Type.String() }), Type.Null()]),
  reviewed: Type.Boolean({ description: 'A curated answer, approved or corrected by a reviewer' }),
  flags: Type.Object({
    weakEvidence: Type.Boolean(),
    uncitedClaims: Type.Array(Type.String()),
    invalidCitations: Type.Integer(),
    injection: Type.Object({ dropped: Type.Integer(), marked: Type.Integer() }),
    priceUnknown: Type.Boolean(),
  }),
  usage: UsageSchema,
  meta: Type.Object({
    cache: Type.Enum(['memory', 'redis', 'miss', 'bypass']),
    curated: Type.Boolean(),
    route: Type.Union([
      Type.Object({ model: Type.String(), tier: Type.String(), reason: Type.String() }),
      Type.Null(),
    ]),
    queryVectorCache: NullableString,
    reviewQueued: Type.Boolean(),
    agentSteps: Type.Integer(),
  }),
});
