/**
 * Builds the AnswerService from the process's configuration and shared infrastructure (one per app:
 * its chat providers and circuit breakers, caches and prompt templates are process-wide).
 */
import { CircuitBreakerChatProvider, type ChatProvider, OpenAIChatProvider } from '../../ai/chat/index.js';
import { loadPromptTemplates } from '../../ai/prompts/index.js';
import { parsePriceTable, PriceTable } from '../../ai/usage/pricing.js';
import type { AppDeps } from '../../app.js';
import { piiRedactionTargets } from '../../config.js';
import { createSearchService } from '../search/routes.js';
import type { SearchService } from '../search/service.js';
import { AnswerCache } from './cache.js';
import { AnswerService, type CachedAnswer } from './service.js';
import { UsageService } from './usage.js';

export function createAnswerService(
  deps: Omit<AppDeps, 'keys'>,
  /** The process's search service, when it has one (its query-vector cache is then shared). */
  search: SearchService = createSearchService(deps),
): {
  answers: AnswerService;
  usage: UsageService;
} {
  const { config } = deps;
  const usage = new UsageService(deps.database.db);
  let chat: ((model: string) => ChatProvider) | null = null;
  if (config.chatProvider === 'openai') {
    const providers = new Map<string, ChatProvider>();
    chat = (model) => {
      let provider = providers.get(model);
      if (!provider) {
        provider = new CircuitBreakerChatProvider(
          new OpenAIChatProvider({
            baseUrl: config.chatBaseUrl,
            apiKey: config.chatApiKey,
            model,
            timeoutMs: config.chatTimeoutMs,
            maxAttempts: config.chatMaxAttempts,
          }),
        );
        providers.set(model, provider);
      }
      return provider;
    };
  }
  const redact = piiRedactionTargets(config.piiRedaction);
  const answers = new AnswerService({
    db: deps.database.db,
    search,
    usage,
    cache: new AnswerCache<CachedAnswer>(config.answerCacheTtlSeconds, deps.redis, deps.logger),
    chat,
    prompts: loadPromptTemplates({ version: config.promptVersion, dir: config.promptsDir }),
    prices: new PriceTable(parsePriceTable(config.chatPrices)),
    settings: {
      sources: config.answerSources,
      minBm25: config.answerMinBm25,
      minCosine: config.answerMinCosine,
      injection: config.answerInjection,
      maxTokens: config.chatMaxTokens,
      agentMaxSteps: config.answerAgentMaxSteps,
      chatModel: config.chatModel,
      strongModel: config.chatStrongModel,
      redact: { storage: redact.has('storage'), provider: redact.has('provider') },
    },
    logger: deps.logger,
  });
  return { answers, usage };
}
