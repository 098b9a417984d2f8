/**
 * Embedding providers: construction from configuration, and one shared instance per (provider, model)
 * per process (so the local model's worker pool exists once).
 *
 * @example
 *   const providers = new EmbeddingProviders(embeddingOptionsFromConfig(config));
 *   const provider = providers.get({ provider: collection.embeddingProvider, model: collection.embeddingModel });
 *   if (provider) await provider.embedDocuments(texts, signal);
 *   await providers.close(); // at shutdown
 */
import type { Config } from '../../config.js';
import { LOCAL_MODEL, LocalEmbeddingProvider } from './local.js';
import { OpenAIEmbeddingProvider } from './openai.js';
import { EmbeddingError, type EmbeddingProvider } from './types.js';

export { EmbeddingError, type EmbeddingErrorReason, type EmbeddingProvider } from './types.js';
export { LOCAL_MODEL } from './local.js';

export type EmbeddingProviderName = 'local' | 'openai' | 'none';

export interface EmbeddingSettings {
  provider: EmbeddingProviderName;
  /** Absent: the provider's default (`use-lite`; the configured OpenAI model). */
  model?: string | undefined;
}

export interface EmbeddingOptions {
  localThreads: number;
  batchSize: number;
  /** Applies to every `openai` model; a collection may only choose another `model`. */
  openai: {
    baseUrl: string;
    apiKey?: string | undefined;
    model: string;
    dimensions?: number | undefined;
    timeoutMs: number;
    maxRetries: number;
    queryPrefix: string;
    documentPrefix: string;
  };
}

export function embeddingOptionsFromConfig(config: Config): EmbeddingOptions {
  return {
    localThreads: config.embeddingLocalThreads,
    batchSize: config.embeddingBatchSize,
    openai: {
      baseUrl: config.openaiEmbeddingBaseUrl,
      apiKey: config.openaiEmbeddingApiKey,
      model: config.openaiEmbeddingModel,
      dimensions: config.openaiEmbeddingDimensions,
      timeoutMs: config.openaiEmbeddingTimeoutMs,
      maxRetries: config.openaiEmbeddingMaxRetries,
      queryPrefix: config.openaiEmbeddingQueryPrefix,
      documentPrefix: config.openaiEmbeddingDocumentPrefix,
    },
  };
}

/** The model id a provider will report for `settings` (null for 'none'). */
export function resolveEmbeddingModel(settings: EmbeddingSettings, options: EmbeddingOptions): string | null {
  switch (settings.provider) {
    case 'none':
      return null;
    case 'local':
      return settings.model ?? LOCAL_MODEL;
    case 'openai':
      return settings.model ?? options.openai.model;
  }
}

/**
 * A new provider for `settings`, or null for 'none'. Nothing starts until first use. Prefer
 * `EmbeddingProviders#get`, which shares instances.
 */
export function createEmbeddingProvider(
  settings: EmbeddingSettings,
  options: EmbeddingOptions,
): EmbeddingProvider | null {
  const model = resolveEmbeddingModel(settings, options);
  switch (settings.provider) {
    case 'none':
      return null;
    case 'local':
      if (model !== LOCAL_MODEL) {
        throw new EmbeddingError(
          'rejected',
          `the local provider has one model, '${LOCAL_MODEL}', not '${String(model)}'`,
        );
      }
      return new LocalEmbeddingProvider({ threads: options.localThreads, batchSize: options.batchSize });
    case 'openai':
      return new OpenAIEmbeddingProvider({
        ...options.openai,
        model: model ?? options.openai.model,
        batchSize: options.batchSize,
      });
  }
}

/** One provider instance per (provider, model) for the life of the process. */
export class EmbeddingProviders {
  readonly #options: EmbeddingOptions;
  readonly #instances = new Map<string, EmbeddingProvider>();
  #closed = false;

  constructor(options: EmbeddingOptions) {
    this.#options = options;
  }

  /** The shared provider for `settings`; null for 'none'. Throws for an unknown local model. */
  get(settings: EmbeddingSettings): EmbeddingProvider | null {
    if (this.#closed) throw new EmbeddingError('unavailable', 'the embedding providers are closed');
    const model = resolveEmbeddingModel(settings, this.#options);
    if (model === null) return null;
    const key = `${settings.provider}\u0000${model}`;
    const existing = this.#instances.get(key);
    if (existing) return existing;
    const created = createEmbeddingProvider({ provider: settings.provider, model }, this.#options);
    if (created) this.#instances.set(key, created);
    return created;
  }

  /** Closes every provider handed out (the local worker pool terminates). */
  async close(): Promise<void> {
    this.#closed = true;
    const instances = [...this.#instances.values()];
    this.#instances.clear();
    await Promise.allSettled(instances.map((instance) => instance.close()));
  }
}
