/**
 * The official `openai` SDK client as every Larder provider builds it (embeddings, chat): only what the
 * configuration says. Explicit nulls stop the SDK from reading OPENAI_* environment variables behind
 * the configuration's back; without a key (local servers) no Authorization header is sent at all.
 */
import OpenAI from 'openai';

/** Satisfies the SDK's credentials check when there is no key; the Authorization header is then removed. */
const NO_KEY = 'larder-no-api-key';

export function createOpenAIClient(options: {
  baseUrl: string;
  apiKey?: string | undefined;
  timeoutMs: number;
  maxRetries: number;
}): OpenAI {
  const hasKey = options.apiKey !== undefined && options.apiKey !== '';
  return new OpenAI({
    baseURL: options.baseUrl,
    apiKey: hasKey ? options.apiKey : NO_KEY,
    adminAPIKey: null,
    organization: null,
    project: null,
    webhookSecret: null,
    timeout: options.timeoutMs,
    maxRetries: options.maxRetries,
    logLevel: 'off',
    ...(hasKey ? {} : { defaultHeaders: { Authorization: null } }),
  });
}
