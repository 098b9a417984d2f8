/**
 * Answers: retrieval-augmented answers with verifiable citations.
 *
 * One request, in order (each step is skipped when an earlier one already produced the answer):
 *  1. permission `answers`; the workspace's budget (429 `budget_exceeded`); the conversation (the
 *     caller's own, else 404) and its recent history;
 *  2. the standalone question: a follow-up is condensed with the history (by the model when one is
 *     configured, else by a deterministic rule: a follow-up that leans on the previous turn gets that
 *     turn's question appended);
 *  3. a curated answer (approved or corrected in review) for the same or a near-identical question
 *     over the same collections is served first, marked `reviewed`;
 *  4. the answer cache (key: normalised question, collections and their content versions, filters,
 *     retrieval settings, prompt version, model, profile);
 *  5. retrieval (hybrid search), injection screening of the chunks (drop or mark), the grounding
 *     threshold (weak evidence → "the documents do not contain an answer", no guessing);
 *  6. generation: the routed model (streamed, within the latency budget, optionally agentic with a
 *     `search` tool), falling back to the extractive answer when the model fails or its breaker is
 *     open; or the extractive answer directly;
 *  7. citations checked (markers naming no source removed and counted, uncited claims flagged) and
 *     resolved to quoted spans; usage, messages and review items stored; the answer cached.
 *
 * Events for streaming (`onEvent`): `retrieval` (the sources), `token` (text deltas), `citation`
 * (each resolved citation), `usage`, `done` (the whole answer; its `answer` text is authoritative:
 * when a model fails after it streamed some tokens, `done` carries the extractive fallback).
 */
import { performance } from 'node:perf_hooks';
import { sql, type Transaction } from 'kysely';
import {
  CITATION_MARKER,
  composeExtractiveAnswer,
  type EvidenceSource,
  NO_ANSWER_TEXT,
  terms,
} from '../../ai/answers/extractive.js';
import { ChatError, type ChatMessage, type ChatProvider, type ChatTool } from '../../ai/chat/index.js';
import { redactPii } from '../../ai/guardrails/pii.js';
import { screenForInjection } from '../../ai/guardrails/injection.js';
import {
  buildAnswerMessages,
  buildCondenseMessages,
  type PromptProfile,
  type PromptSource,
  renderSources,
  type PromptTemplates,
} from '../../ai/prompts/index.js';
import type { PriceTable } from '../../ai/usage/pricing.js';
import { type Quality, type Route, routeModel } from '../../ai/usage/routing.js';
import { countChatTokens, countTokens } from '../../ai/usage/tokens.js';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import { visibleCollection } from '../../platform/auth/collection-access.js';
import type { Db } from '../../platform/db/database.js';
import type { DB } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { SearchFilters, SearchHit, SearchMode, SearchService } from '../search/service.js';
import { type AnswerCache, answerCacheKey, type AnswerCacheOutcome } from './cache.js';
import {
  type AnswerSource,
  type Citation,
  checkCitations,
  citationFor,
  jaccard,
  normaliseQuestion,
  questionTerms,
  uncitedClaims,
} from './grounding.js';
import type { UsageService } from './usage.js';
import { ownedBy } from './conversations.js';

type Trx = Transaction<DB>;

export { NO_ANSWER_TEXT };

/** Messages of a conversation given to the model (and to condensing) as history. */
export const HISTORY_MESSAGES = 10;
/** Curated answers match questions at least this similar (Jaccard of content-word stems). */
export const CURATED_MIN_SIMILARITY = 0.8;

export interface AnswerSettings {
  sources: number;
  minBm25: number;
  minCosine: number;
  injection: 'drop' | 'mark';
  maxTokens: number;
  agentMaxSteps: number;
  /** Server defaults of the routing policy. */
  chatModel: string;
  strongModel: string | undefined;
  redact: { storage: boolean; provider: boolean };
}

export interface AnswerDeps {
  db: Db;
  search: SearchService;
  usage: UsageService;
  cache: AnswerCache<CachedAnswer>;
  /** The chat model of a given id (breaker-wrapped, shared); null: extractive only. */
  chat: ((model: string) => ChatProvider) | null;
  prompts: PromptTemplates;
  prices: PriceTable;
  settings: AnswerSettings;
  logger: Logger;
}

export interface AnswerOptions {
  /** Sources given to the answer (default LARDER_ANSWER_SOURCES). */
  sources?: number | undefined;
  mode?: SearchMode | undefined;
  quality?: Quality | undefined;
  /** `extractive`: never call the model for this request. */
  provider?: 'auto' | 'extractive' | undefined;
  /** false: neither read nor write the answer cache (curated answers still apply). */
  cache?: boolean | undefined;
  /** Let the model call a `search` tool before answering (models with tool support). */
  agentic?: boolean | undefined;
}

export interface AnswerRequest {
  question: string;
  collections?: string[] | undefined;
  filters?: SearchFilters | undefined;
  conversationId?: string | undefined;
  /**
   * Earlier turns supplied by the caller (e.g. an OpenAI-style `messages` array), oldest first: used
   * like a stored conversation's history when no `conversationId` is given (the last
   * HISTORY_MESSAGES count). The answer is still stored in a new conversation.
   */
  history?: { role: 'user' | 'assistant'; content: string }[] | undefined;
  options?: AnswerOptions | undefined;
}

export interface Actor {
  userId: string | null;
  apiKeyId: string | null;
  requestId: string | null;
}

export type FallbackReason = ChatError['reason'] | 'latency_budget' | 'no_tool_support';

export interface AnswerFlags {
  weakEvidence: boolean;
  /** Answer sentences stating something without a citation. */
  uncitedClaims: string[];
  /** Citation markers that named no provided source (removed from the text). */
  invalidCitations: number;
  injection: { dropped: number; marked: number };
  priceUnknown: boolean;
}

export interface AnswerResult {
  id: string;
  conversationId: string;
  question: string;
  standaloneQuestion: string;
  answer: string;
  citations: Citation[];
  sources: AnswerSource[];
  /** False when the documents did not support an answer (weak evidence or nothing quotable). */
  grounded: boolean;
  /** `extractive`, `openai` or `curated`. */
  provider: string;
  model: string | null;
  promptVersion: string | null;
  extractive: boolean;
  /** Set when the model failed and the extractive answer was given instead. */
  fallback: { reason: FallbackReason; message: string } | null;
  reviewed: boolean;
  flags: AnswerFlags;
  usage: {
    tokensIn: number;
    tokensOut: number;
    costUsd: number;
    latencyMs: { retrieve: number; generate: number; total: number };
  };
  meta: {
    cache: AnswerCacheOutcome;
    curated: boolean;
    route: Route | null;
    queryVectorCache: string | null;
    reviewQueued: boolean;
    agentSteps: number;
  };
}

/** What the answer cache keeps: everything that does not depend on the request that produced it. */
export type CachedAnswer = Pick<
  AnswerResult,
  | 'answer'
  | 'citations'
  | 'sources'
  | 'grounded'
  | 'provider'
  | 'model'
  | 'promptVersion'
  | 'extractive'
  | 'flags'
>;

export type AnswerEvent =
  | {
      type: 'retrieval';
      id: string;
      conversationId: string;
      standaloneQuestion: string;
      sources: AnswerSource[];
    }
  | { type: 'token'; text: string }
  | { type: 'citation'; citation: Citation }
  | { type: 'usage'; usage: AnswerResult['usage'] }
  | { type: 'done'; answer: AnswerResult };

interface ConversationState {
  id: string;
  collectionIds: string[];
  history: { role: 'user' | 'assistant'; content: string; standalone: string | null }[];
}

interface CollectionVersion {
  id: string;
  version: string;
  vectorsVersion: string;
}

interface ProduceInput {
  ws: WorkspaceContext;
  actor: Actor;
  request: AnswerRequest;
  options: AnswerOptions;
  question: string;
  standalone: string;
  collections: CollectionVersion[];
  profile: PromptProfile | null;
  route: Route | null;
  latencyBudgetMs: number | null;
  history: ConversationState['history'];
  ids: { id: string; conversationId: string };
  onEvent: (event: AnswerEvent) => void;
  signal: AbortSignal | undefined;
}

interface Generation {
  text: string;
  citations: Citation[];
  provider: string;
  model: string | null;
  extractive: boolean;
  grounded: boolean;
  fallback: AnswerResult['fallback'];
  tokensIn: number;
  tokensOut: number;
  invalidCitations: number;
  agentSteps: number;
  /** Sources added by agentic searches. */
  sources: AnswerSource[];
}

const SEARCH_TOOL: ChatTool = {
  name: 'search',
  description:
    "Search the user's documents. Returns numbered sources to cite as [n]. Use it when the sources you have do not answer the question.",
  parameters: {
    type: 'object',
    properties: { query: { type: 'string', description: 'What to look for (keywords or a question)' } },
    required: ['query'],
    additionalProperties: false,
  },
};

const ANAPHORA =
  /\b(?:it|its|they|them|their|this|that|these|those|he|she|him|her|his|hers|there|then|such|same|former|latter|one|ones)\b/i;

/** The deterministic condensing rule (no model): see the file comment. */
export function condenseByRule(followUp: string, previousQuestion: string | null): string {
  const question = followUp.trim();
  if (!previousQuestion) return question;
  const dependent = ANAPHORA.test(question) || terms(question).length < 3;
  return dependent ? `${question} (${previousQuestion.trim()})` : question;
}

/** The default listener of non-streaming answers. */
function ignoreEvent(): void {
  // nobody listens
}

const elapsed = (since: number) => Math.round(performance.now() - since);

export class AnswerService {
  constructor(private readonly deps: AnswerDeps) {}

  async answer(
    ws: WorkspaceContext,
    actor: Actor,
    request: AnswerRequest,
    onEvent: (event: AnswerEvent) => void = ignoreEvent,
    signal?: AbortSignal,
  ): Promise<AnswerResult> {
    assertPermission(ws, 'answers');
    const started = performance.now();
    const { settings } = this.deps;
    const options = request.options ?? {};
    const question = request.question.trim();
    if (question.length === 0)
      throw new AppError('validation_failed', {
        detail: 'The question is empty',
        extensions: { errors: [{ in: 'body', path: '/question', message: 'must not be blank' }] },
      });

    const policy = await this.deps.usage.policy(ws.id);
    await this.deps.usage.assertWithinBudget(ws.id, policy.budgets);
    const conversation = request.conversationId
      ? await this.#conversation(ws, actor, request.conversationId)
      : null;
    const history: ConversationState['history'] =
      conversation?.history ??
      (request.history ?? [])
        .filter((m) => m.content.trim().length > 0)
        .slice(-HISTORY_MESSAGES)
        .map((m) => ({ role: m.role, content: m.content, standalone: null }));
    const collectionIds = request.collections?.length
      ? request.collections
      : (conversation?.collectionIds ?? []);
    const collections = await this.#collections(ws, collectionIds);

    const useModel = this.deps.chat !== null && options.provider !== 'extractive';
    const fastModel = policy.routing.fastModel ?? settings.chatModel;
    const route = useModel
      ? routeModel(
          {
            fastModel,
            strongModel: policy.routing.strongModel ?? settings.strongModel ?? fastModel,
            strongAboveTokens: policy.routing.strongAboveTokens,
          },
          question,
          options.quality ?? 'auto',
        )
      : null;

    let condenseTokens = { in: 0, out: 0 };
    let standalone = question;
    if (history.length > 0) {
      const condensed = await this.#condense(question, history, useModel ? fastModel : null, signal);
      standalone = condensed.question;
      condenseTokens = condensed.tokens;
    }
    const profile = await this.#profile(ws, actor);

    const { id, conversationId } = await this.#begin(
      ws,
      actor,
      conversation,
      collectionIds,
      question,
      standalone,
    );
    try {
      const result = await this.#produce({
        ws,
        actor,
        request,
        options,
        question,
        standalone,
        collections,
        profile,
        route,
        latencyBudgetMs: policy.routing.latencyBudgetMs,
        history,
        ids: { id, conversationId },
        onEvent,
        signal,
      });
      result.usage.tokensIn += condenseTokens.in;
      result.usage.tokensOut += condenseTokens.out;
      result.usage.latencyMs.total = elapsed(started);
      await this.#finish(ws, actor, result, collectionIds);
      onEvent({ type: 'usage', usage: result.usage });
      onEvent({ type: 'done', answer: result });
      return result;
    } catch (error) {
      await this.#fail(ws, id, signal?.aborted ? 'cancelled' : 'failed').catch((e: unknown) => {
        this.deps.logger.warn({ err: e }, 'answers: could not mark the message failed');
      });
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The answer itself

  async #produce(input: ProduceInput): Promise<AnswerResult> {
    const { ws, request, options, standalone, collections, route, ids, onEvent } = input;
    const { settings } = this.deps;
    const sourcesWanted = options.sources ?? settings.sources;
    const mode = options.mode ?? 'hybrid';
    const base = {
      id: ids.id,
      conversationId: ids.conversationId,
      question: input.question,
      standaloneQuestion: standalone,
      reviewed: false,
      fallback: null,
    };
    const emptyUsage = () => ({
      tokensIn: 0,
      tokensOut: 0,
      costUsd: 0,
      latencyMs: { retrieve: 0, generate: 0, total: 0 },
    });

    // Curated answers first.
    const curated = await this.#curated(ws, standalone, collections);
    if (curated) {
      onEvent({ type: 'retrieval', ...ids, standaloneQuestion: standalone, sources: [] });
      onEvent({ type: 'token', text: curated.answer });
      for (const citation of curated.citations) onEvent({ type: 'citation', citation });
      return {
        ...base,
        answer: curated.answer,
        citations: curated.citations,
        sources: [],
        grounded: true,
        provider: 'curated',
        model: null,
        promptVersion: null,
        extractive: false,
        reviewed: true,
        flags: cleanFlags(),
        usage: emptyUsage(),
        meta: {
          cache: 'bypass',
          curated: true,
          route: null,
          queryVectorCache: null,
          reviewQueued: false,
          agentSteps: 0,
        },
      };
    }

    const model = route?.model ?? 'extractive';
    const cacheable = this.deps.cache.enabled && options.cache !== false && !options.agentic;
    const cacheKey = answerCacheKey({
      workspaceId: ws.id,
      question: normaliseQuestion(standalone),
      collections,
      filters: request.filters ?? null,
      mode,
      sources: sourcesWanted,
      promptVersion: this.deps.prompts.version,
      model,
      profile: route ? input.profile : null,
    });
    if (cacheable) {
      const hit = await this.deps.cache.get(cacheKey);
      if (hit) {
        const cached = hit.value;
        onEvent({ type: 'retrieval', ...ids, standaloneQuestion: standalone, sources: cached.sources });
        onEvent({ type: 'token', text: cached.answer });
        for (const citation of cached.citations) onEvent({ type: 'citation', citation });
        return {
          ...base,
          ...cached,
          usage: emptyUsage(),
          meta: {
            cache: hit.level,
            curated: false,
            route,
            queryVectorCache: null,
            reviewQueued: false,
            agentSteps: 0,
          },
        };
      }
    }

    // Retrieval.
    const retrieveStarted = performance.now();
    const found = await this.deps.search.search(retrievalContext(ws), {
      query: standalone,
      collections: collections.map((c) => c.id),
      filters: request.filters,
      k: sourcesWanted,
      mode,
    });
    const screened = this.#screen(found.hits);
    const sources = screened.sources;
    const retrieveMs = elapsed(retrieveStarted);
    onEvent({ type: 'retrieval', ...ids, standaloneQuestion: standalone, sources });

    const flags = cleanFlags();
    flags.injection = screened.counts;
    const bestLexical = Math.max(-Infinity, ...sources.map((s) => s.scores.lexical ?? -Infinity));
    const bestVector = Math.max(-Infinity, ...sources.map((s) => s.scores.vector ?? -Infinity));
    flags.weakEvidence =
      sources.length === 0 || !(bestLexical >= settings.minBm25 || bestVector >= settings.minCosine);

    const generateStarted = performance.now();
    let generation: Generation;
    if (flags.weakEvidence) {
      generation = {
        ...noAnswer(),
        provider: route ? 'openai' : 'extractive',
        model: null,
      };
      onEvent({ type: 'token', text: generation.text });
    } else if (route) {
      generation = await this.#generate(input, route, sources);
    } else {
      generation = this.#extractive(standalone, sources, null);
      onEvent({ type: 'token', text: generation.text });
    }
    const generateMs = elapsed(generateStarted);

    const allSources = [...sources, ...generation.sources];
    flags.invalidCitations = generation.invalidCitations;
    flags.uncitedClaims =
      generation.extractive || !generation.grounded ? [] : uncitedClaims(generation.text, NO_ANSWER_TEXT);
    for (const citation of generation.citations) onEvent({ type: 'citation', citation });

    const cost = generation.model
      ? this.deps.prices.cost(generation.model, generation.tokensIn, generation.tokensOut)
      : { usd: 0, known: true };
    flags.priceUnknown = !cost.known && generation.tokensIn + generation.tokensOut > 0;
    const result: AnswerResult = {
      ...base,
      answer: generation.text,
      citations: generation.citations,
      sources: allSources,
      grounded: generation.grounded,
      provider: generation.provider,
      model: generation.model,
      promptVersion: generation.extractive ? null : this.deps.prompts.version,
      extractive: generation.extractive,
      fallback: generation.fallback,
      flags,
      usage: {
        tokensIn: generation.tokensIn,
        tokensOut: generation.tokensOut,
        costUsd: cost.usd,
        latencyMs: { retrieve: retrieveMs, generate: generateMs, total: 0 },
      },
      meta: {
        cache: cacheable ? 'miss' : 'bypass',
        curated: false,
        route,
        queryVectorCache: found.queryVectorCache,
        reviewQueued: false,
        agentSteps: generation.agentSteps,
      },
    };
    // A fallback answer is not cached: the model may be back for the next asker.
    if (cacheable && !generation.fallback) {
      await this.deps.cache.set(cacheKey, {
        answer: result.answer,
        citations: result.citations,
        sources: result.sources,
        grounded: result.grounded,
        provider: result.provider,
        model: result.model,
        promptVersion: result.promptVersion,
        extractive: result.extractive,
        flags: result.flags,
      });
    }
    return result;
  }

  /** Drops or marks chunks that look like prompt injection; numbers the rest 1…n. */
  #screen(hits: SearchHit[]): { sources: AnswerSource[]; counts: { dropped: number; marked: number } } {
    const counts = { dropped: 0, marked: 0 };
    const sources: AnswerSource[] = [];
    for (const hit of hits) {
      const flagged = screenForInjection(hit.text).suspicious;
      if (flagged && this.deps.settings.injection === 'drop') {
        counts.dropped++;
        continue;
      }
      if (flagged) counts.marked++;
      sources.push(toSource(hit, sources.length + 1, flagged));
    }
    return { sources, counts };
  }

  #extractive(question: string, sources: AnswerSource[], fallback: AnswerResult['fallback']): Generation {
    const extractive = composeExtractiveAnswer(question, sources.map(toEvidence));
    return {
      text: extractive.text,
      citations: extractive.citations.map((c) => ({
        n: c.n,
        chunkId: c.chunkId,
        documentId: c.documentId,
        collectionId: sources.find((s) => s.n === c.n)?.collectionId ?? '',
        documentTitle: c.documentTitle,
        page: c.page,
        quote: c.quote,
        charStart: c.charStart,
        charEnd: c.charEnd,
      })),
      provider: 'extractive',
      model: null,
      extractive: true,
      grounded: extractive.answerable,
      fallback,
      tokensIn: 0,
      tokensOut: 0,
      invalidCitations: 0,
      agentSteps: 0,
      sources: [],
    };
  }

  /** The model's answer (streamed), or the extractive one when the model fails. */
  async #generate(input: ProduceInput, route: Route, initialSources: AnswerSource[]): Promise<Generation> {
    const factory = this.deps.chat;
    if (!factory) throw new Error('answers: a route without a chat model');
    const chat = factory(route.model);
    const { settings } = this.deps;
    const sources = [...initialSources];
    let messages = buildAnswerMessages(this.deps.prompts, {
      question: input.standalone,
      sources: sources.map((s) => toPromptSource(s)),
      profile: input.profile ?? undefined,
      history: input.history.map((m) => ({ role: m.role, content: stripMarkers(m.content) })),
      noAnswerText: NO_ANSWER_TEXT,
    });
    if (settings.redact.provider)
      messages = messages.map((m) => ({ ...m, content: redactPii(m.content).text }));

    const controller = new AbortController();
    const abort = () => {
      controller.abort();
    };
    input.signal?.addEventListener('abort', abort, { once: true });
    const budget = { exceeded: false };
    const timer =
      input.latencyBudgetMs === null
        ? undefined
        : setTimeout(() => {
            budget.exceeded = true;
            controller.abort();
          }, input.latencyBudgetMs);

    let tokensIn = 0;
    let tokensOut = 0;
    let agentSteps = 0;
    let text = '';
    let streamed = false;
    let answeredModel = route.model;
    try {
      if (input.options.agentic) {
        const agent = await this.#agent(input, chat, messages, sources, controller.signal);
        messages = agent.messages;
        tokensIn += agent.tokensIn;
        tokensOut += agent.tokensOut;
        agentSteps = agent.steps;
        if (agent.answer !== null) {
          text = agent.answer;
          input.onEvent({ type: 'token', text });
        }
      }
      if (text === '') {
        const promptTokens = countChatTokens(messages);
        let usage: { promptTokens: number; completionTokens: number } | null = null;
        for await (const delta of chat.stream({
          messages,
          maxTokens: settings.maxTokens,
          signal: controller.signal,
        })) {
          if (delta.type === 'token') {
            text += delta.text;
            streamed = true;
            input.onEvent({ type: 'token', text: delta.text });
          } else if (delta.type === 'usage') usage = delta.usage;
          else if (delta.type === 'done') answeredModel = delta.model;
        }
        tokensIn += usage?.promptTokens ?? promptTokens;
        tokensOut += usage?.completionTokens ?? countTokens(text);
      }
    } catch (error) {
      if (input.signal?.aborted) throw error;
      const reason: FallbackReason = budget.exceeded
        ? 'latency_budget'
        : error instanceof ChatError
          ? error.reason
          : 'bad_response';
      this.deps.logger.warn(
        { err: error, model: route.model, reason },
        'answers: model failed, answering extractively',
      );
      const fallback = {
        reason,
        message: `The model (${route.model}) ${reason === 'latency_budget' ? 'did not answer within the latency budget' : `failed (${reason})`}${streamed ? ' while writing' : ''}; this is the extractive answer instead.`,
      };
      const extractive = this.#extractive(input.standalone, initialSources, fallback);
      if (!streamed) input.onEvent({ type: 'token', text: extractive.text });
      return {
        ...extractive,
        tokensIn,
        tokensOut: tokensOut + (streamed ? countTokens(text) : 0),
        model: route.model,
        agentSteps,
      };
    } finally {
      if (timer) clearTimeout(timer);
      input.signal?.removeEventListener('abort', abort);
    }

    const checked = checkCitations(text.trim(), new Set(sources.map((s) => s.n)));
    const grounded = !checked.text.includes(NO_ANSWER_TEXT) || checked.cited.length > 0;
    const byNumber = new Map(sources.map((s) => [s.n, s]));
    return {
      text: checked.text,
      citations: checked.cited.flatMap((n) => {
        const source = byNumber.get(n);
        return source ? [citationFor(source, checked.text)] : [];
      }),
      provider: 'openai',
      model: answeredModel,
      extractive: false,
      grounded,
      fallback: null,
      tokensIn,
      tokensOut,
      invalidCitations: checked.invalid,
      agentSteps,
      sources: sources.slice(initialSources.length),
    };
  }

  /**
   * Agentic mode: the model may call `search` up to `agentMaxSteps` times; each call's results join
   * the sources (numbered on) and go back as the tool's answer. Returns the model's answer when it
   * gave one without calling a tool, else the conversation to finish with a streamed answer.
   */
  async #agent(
    input: ProduceInput,
    chat: ChatProvider,
    initial: ChatMessage[],
    sources: AnswerSource[],
    signal: AbortSignal,
  ): Promise<{
    messages: ChatMessage[];
    answer: string | null;
    tokensIn: number;
    tokensOut: number;
    steps: number;
  }> {
    const messages = [...initial];
    let tokensIn = 0;
    let tokensOut = 0;
    const seen = new Set(sources.map((s) => s.chunkId));
    for (let step = 0; step < this.deps.settings.agentMaxSteps; step++) {
      const result = await chat.complete({
        messages,
        tools: [SEARCH_TOOL],
        maxTokens: this.deps.settings.maxTokens,
        signal,
      });
      tokensIn += result.usage?.promptTokens ?? countChatTokens(messages);
      tokensOut += result.usage?.completionTokens ?? countTokens(result.text);
      if (result.toolCalls.length === 0)
        return { messages, answer: result.text, tokensIn, tokensOut, steps: step };
      messages.push({ role: 'assistant', content: result.text, tool_calls: result.toolCalls });
      for (const call of result.toolCalls) {
        let query: string | null = null;
        try {
          const args = JSON.parse(call.arguments) as { query?: unknown };
          if (typeof args.query === 'string' && args.query.trim() !== '')
            query = args.query.trim().slice(0, 2000);
        } catch {
          query = null;
        }
        let content: string;
        if (call.name !== 'search' || query === null) {
          content = 'Error: call search with {"query": "…"}.';
        } else {
          const found = await this.deps.search.search(retrievalContext(input.ws), {
            query,
            collections: input.collections.map((c) => c.id),
            filters: input.request.filters,
            k: 3,
            mode: input.options.mode ?? 'hybrid',
          });
          const fresh: AnswerSource[] = [];
          for (const hit of found.hits) {
            if (seen.has(hit.chunkId)) continue;
            const flagged = screenForInjection(hit.text).suspicious;
            if (flagged && this.deps.settings.injection === 'drop') continue;
            seen.add(hit.chunkId);
            const source = toSource(hit, sources.length + 1, flagged);
            sources.push(source);
            fresh.push(source);
          }
          input.onEvent({ type: 'retrieval', ...input.ids, standaloneQuestion: query, sources: fresh });
          content =
            fresh.length === 0
              ? 'No new sources found.'
              : renderSources(
                  this.deps.prompts,
                  fresh.map((s) => toPromptSource(s, this.deps.settings.redact.provider)),
                );
        }
        messages.push({ role: 'tool', tool_call_id: call.id, content });
      }
    }
    // Out of steps: answer with what was found, no more tools.
    return { messages, answer: null, tokensIn, tokensOut, steps: this.deps.settings.agentMaxSteps };
  }

  // ---------------------------------------------------------------------------------------------
  // Conversations, collections, curated answers, persistence

  async #conversation(ws: WorkspaceContext, actor: Actor, id: string): Promise<ConversationState> {
    return withTenant(this.deps.db, ws.id, async (trx) => {
      const conversation = await trx
        .selectFrom('conversations')
        .select(['id', 'collection_ids'])
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .where(ownedBy(actor))
        .executeTakeFirst();
      if (!conversation) throw new AppError('not_found', { detail: 'No such conversation' });
      const rows = await trx
        .selectFrom('messages')
        .select(['role', 'content', 'flags'])
        .where('conversation_id', '=', id)
        .where('status', '=', 'complete')
        .where('role', 'in', ['user', 'assistant'])
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(HISTORY_MESSAGES)
        .execute();
      return {
        id: conversation.id,
        collectionIds: conversation.collection_ids,
        history: rows.reverse().map((m) => ({
          role: m.role as 'user' | 'assistant',
          content: m.content,
          standalone: typeof m.flags.standalone === 'string' ? m.flags.standalone : null,
        })),
      };
    });
  }

  async #condense(
    question: string,
    history: ConversationState['history'],
    model: string | null,
    signal: AbortSignal | undefined,
  ): Promise<{ question: string; tokens: { in: number; out: number } }> {
    const lastUser = [...history].reverse().find((m) => m.role === 'user');
    const previous = lastUser ? (lastUser.standalone ?? lastUser.content) : null;
    if (model && this.deps.chat) {
      const messages = buildCondenseMessages(this.deps.prompts, {
        history: history.map((m) => ({ role: m.role, content: stripMarkers(m.content) })),
        question,
      });
      try {
        const result = await this.deps.chat(model).complete({ messages, maxTokens: 200, signal });
        const condensed = result.text.trim().split('\n')[0]?.trim() ?? '';
        if (condensed.length > 0 && condensed.length <= 2000)
          return {
            question: condensed,
            tokens: {
              in: result.usage?.promptTokens ?? countChatTokens(messages),
              out: result.usage?.completionTokens ?? countTokens(result.text),
            },
          };
      } catch (error) {
        if (signal?.aborted) throw error;
        this.deps.logger.warn({ err: error }, 'answers: condensing with the model failed; using the rule');
      }
    }
    return { question: condenseByRule(question, previous), tokens: { in: 0, out: 0 } };
  }

  async #profile(ws: WorkspaceContext, actor: Actor): Promise<PromptProfile | null> {
    const userId = actor.userId;
    if (!userId) return null;
    const row = await withTenant(this.deps.db, ws.id, (trx) =>
      trx.selectFrom('users').select(['display_name', 'profile']).where('id', '=', userId).executeTakeFirst(),
    );
    if (!row) return null;
    const profile = row.profile as { language?: unknown; customInstructions?: unknown };
    return {
      name: row.display_name,
      role: ws.role,
      language: typeof profile.language === 'string' ? profile.language : null,
      customInstructions: typeof profile.customInstructions === 'string' ? profile.customInstructions : null,
    };
  }

  /** The collections to search (all visible ones when none are named), with their content versions. */
  async #collections(ws: WorkspaceContext, ids: string[]): Promise<CollectionVersion[]> {
    const rows = await withTenant(this.deps.db, ws.id, (trx) => {
      let query = trx
        .selectFrom('collections')
        .leftJoin('collection_stats as s', 's.collection_id', 'collections.id')
        .select([
          'collections.id',
          sql<string>`coalesce(s.version, 0)::text`.as('version'),
          sql<string>`coalesce(s.vectors_version, 0)::text`.as('vectors_version'),
        ])
        .where('collections.workspace_id', '=', ws.id)
        .where('collections.deleted_at', 'is', null)
        .where(visibleCollection(ws));
      if (ids.length > 0) query = query.where('collections.id', 'in', ids);
      return query.orderBy('collections.id').execute();
    });
    if (ids.length > 0 && rows.length !== new Set(ids).size)
      throw new AppError('not_found', { detail: 'No such collection' });
    return rows.map((r) => ({ id: r.id, version: r.version, vectorsVersion: r.vectors_version }));
  }

  /** A curated answer for this question whose collections the request covers and whose sources still exist. */
  async #curated(
    ws: WorkspaceContext,
    question: string,
    collections: CollectionVersion[],
  ): Promise<{ answer: string; citations: Citation[] } | null> {
    if (collections.length === 0) return null;
    const key = normaliseQuestion(question);
    const wanted = questionTerms(question);
    const ids = collections.map((c) => c.id);
    return withTenant(this.deps.db, ws.id, async (trx) => {
      const candidates = await trx
        .selectFrom('curated_answers')
        .select(['id', 'question_key', 'question_terms', 'answer', 'citations'])
        .where('workspace_id', '=', ws.id)
        .where('deleted_at', 'is', null)
        .where(sql<boolean>`collection_ids <@ ${sql.val(ids)}::uuid[]`)
        .where((eb) =>
          eb.or([
            eb('question_key', '=', key),
            ...(wanted.length > 0 ? [sql<boolean>`question_terms && ${sql.val(wanted)}::text[]`] : []),
          ]),
        )
        .orderBy('updated_at', 'desc')
        .limit(50)
        .execute();
      const ranked = candidates
        .map((c) => ({ c, similarity: c.question_key === key ? 2 : jaccard(c.question_terms, wanted) }))
        .filter((x) => x.similarity >= CURATED_MIN_SIMILARITY)
        .sort((a, b) => b.similarity - a.similarity);
      for (const { c } of ranked) {
        const citations = c.citations as unknown as Citation[];
        if (await citationsStillValid(trx, citations)) return { answer: c.answer, citations };
      }
      return null;
    });
  }

  /** Creates the conversation when needed, stores the question and a `streaming` answer message. */
  async #begin(
    ws: WorkspaceContext,
    actor: Actor,
    conversation: ConversationState | null,
    collectionIds: string[],
    question: string,
    standalone: string,
  ): Promise<{ id: string; conversationId: string }> {
    const store = (text: string) => (this.deps.settings.redact.storage ? redactPii(text).text : text);
    return withTenant(this.deps.db, ws.id, async (trx) => {
      const conversationId =
        conversation?.id ??
        (
          await trx
            .insertInto('conversations')
            .values({
              workspace_id: ws.id,
              user_id: actor.userId,
              api_key_id: actor.apiKeyId,
              collection_ids: collectionIds,
              title: store(question).slice(0, 200),
            })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id;
      if (conversation)
        await trx
          .updateTable('conversations')
          .set({ updated_at: new Date() })
          .where('id', '=', conversationId)
          .execute();
      await trx
        .insertInto('messages')
        .values({
          workspace_id: ws.id,
          conversation_id: conversationId,
          role: 'user',
          content: store(question),
          flags: { standalone: store(standalone) },
          request_id: actor.requestId,
        })
        .execute();
      const { id } = await trx
        .insertInto('messages')
        .values({
          workspace_id: ws.id,
          conversation_id: conversationId,
          role: 'assistant',
          status: 'streaming',
          request_id: actor.requestId,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return { id, conversationId };
    });
  }

  async #finish(
    ws: WorkspaceContext,
    actor: Actor,
    result: AnswerResult,
    collectionIds: string[],
  ): Promise<void> {
    const store = (text: string) => (this.deps.settings.redact.storage ? redactPii(text).text : text);
    const reasons = reviewReasons(result);
    await withTenant(this.deps.db, ws.id, async (trx) => {
      await trx
        .updateTable('messages')
        .set({
          status: 'complete',
          content: store(result.answer),
          citations: JSON.stringify(result.citations.map((c) => ({ ...c, quote: store(c.quote) }))),
          model: result.model ?? result.provider,
          prompt_version: result.promptVersion,
          tokens_in: result.usage.tokensIn,
          tokens_out: result.usage.tokensOut,
          cost_usd: result.usage.costUsd.toFixed(6),
          latency_ms: result.usage.latencyMs,
          flags: JSON.stringify({
            ...result.flags,
            uncitedClaims: result.flags.uncitedClaims.map(store),
            grounded: result.grounded,
            provider: result.provider,
            fallback: result.fallback,
            reviewed: result.reviewed,
            cache: result.meta.cache,
            collectionIds,
            sources: result.sources.map((s) => ({ n: s.n, chunkId: s.chunkId, documentId: s.documentId })),
          }),
        })
        .where('id', '=', result.id)
        .execute();
      await this.deps.usage.record(trx, {
        workspaceId: ws.id,
        userId: actor.userId,
        apiKeyId: actor.apiKeyId,
        feature: 'answer',
        provider: result.provider,
        model: result.model,
        tokensIn: result.usage.tokensIn,
        tokensOut: result.usage.tokensOut,
        costUsd: result.usage.costUsd,
        latencyMs: result.usage.latencyMs.total,
        stageLatencyMs: result.usage.latencyMs,
        requestId: actor.requestId,
      });
      if (reasons.length > 0) {
        await trx
          .insertInto('review_items')
          .values({ workspace_id: ws.id, message_id: result.id, reason: reasons.join(',') })
          .execute();
        result.meta.reviewQueued = true;
      }
    });
  }

  async #fail(ws: WorkspaceContext, id: string, status: 'failed' | 'cancelled'): Promise<void> {
    await withTenant(this.deps.db, ws.id, (trx) =>
      trx
        .updateTable('messages')
        .set({ status })
        .where('id', '=', id)
        .where('status', '=', 'streaming')
        .execute(),
    );
  }
}

// ---------------------------------------------------------------------------------------------------

/**
 * Answering includes retrieving its sources: a caller with `answers` (e.g. an API key scoped to answers
 * only) searches for them as if it held `search`. Collection visibility is unchanged.
 */
function retrievalContext(ws: WorkspaceContext): WorkspaceContext {
  if (ws.permissions.has('search')) return ws;
  return { ...ws, permissions: new Set([...ws.permissions, 'search']) };
}

function cleanFlags(): AnswerFlags {
  return {
    weakEvidence: false,
    uncitedClaims: [],
    invalidCitations: 0,
    injection: { dropped: 0, marked: 0 },
    priceUnknown: false,
  };
}

function noAnswer(): Omit<Generation, 'provider' | 'model'> {
  return {
    text: NO_ANSWER_TEXT,
    citations: [],
    extractive: false,
    grounded: false,
    fallback: null,
    tokensIn: 0,
    tokensOut: 0,
    invalidCitations: 0,
    agentSteps: 0,
    sources: [],
  };
}

/** Why an answer goes to the review queue (none: it does not). */
export function reviewReasons(result: AnswerResult): string[] {
  if (result.reviewed) return [];
  const reasons: string[] = [];
  if (result.flags.weakEvidence || !result.grounded) reasons.push('low_confidence');
  if (result.flags.uncitedClaims.length > 0) reasons.push('uncited_claims');
  if (result.flags.invalidCitations > 0) reasons.push('invalid_citations');
  if (result.flags.injection.dropped + result.flags.injection.marked > 0) reasons.push('injection_screened');
  if (result.fallback) reasons.push('model_fallback');
  return reasons;
}

function toSource(hit: SearchHit, n: number, flagged: boolean): AnswerSource {
  return {
    n,
    chunkId: hit.chunkId,
    documentId: hit.documentId,
    collectionId: hit.collectionId,
    documentTitle: hit.documentTitle,
    externalId: hit.externalId,
    text: hit.text,
    headingPath: hit.headingPath,
    page: hit.page,
    charStart: hit.charStart,
    charEnd: hit.charEnd,
    score: hit.scores.fused,
    scores: { lexical: hit.scores.lexical, vector: hit.scores.vector },
    flagged,
  };
}

function toEvidence(source: AnswerSource): EvidenceSource {
  return {
    n: source.n,
    chunkId: source.chunkId,
    documentId: source.documentId,
    documentTitle: source.documentTitle,
    text: source.text,
    charStart: source.charStart,
    page: source.page,
    score: source.score,
  };
}

function toPromptSource(source: AnswerSource, redact = false): PromptSource {
  return {
    n: source.n,
    title: source.documentTitle,
    page: source.page,
    text: redact ? redactPii(source.text).text : source.text,
    flagged: source.flagged,
  };
}

/** History given back to the model without the old turn's citation markers (its sources are gone). */
const SPACED_MARKER = new RegExp(`\\s*${CITATION_MARKER.source}`, 'g');

function stripMarkers(text: string): string {
  return text.replace(SPACED_MARKER, '');
}

/** Every cited chunk still exists, in a live document, with the quoted text at the cited span. */
async function citationsStillValid(trx: Trx, citations: Citation[]): Promise<boolean> {
  if (citations.length === 0) return true;
  const chunks = await trx
    .selectFrom('chunks as c')
    .innerJoin('documents as d', 'd.id', 'c.document_id')
    .select(['c.id', 'c.text', 'c.char_start'])
    .where(
      'c.id',
      'in',
      citations.map((c) => c.chunkId),
    )
    .where('d.deleted_at', 'is', null)
    .where('d.status', 'in', ['searchable', 'ready'])
    .execute();
  const byId = new Map(chunks.map((c) => [c.id, c]));
  return citations.every((c) => {
    const chunk = byId.get(c.chunkId);
    return chunk?.text.slice(c.charStart - chunk.char_start, c.charEnd - chunk.char_start) === c.quote;
  });
}
