/**
 * The chat-completion provider SPI: the model behind "answers" (grounded generation with citations
 * and, later, tool use). Shapes follow the OpenAI chat-completions protocol, flattened where the wire
 * format is awkward (a tool call is `{id, name, arguments}`; usage is camel-cased).
 *
 * A provider either succeeds or throws `ChatError`; streaming yields `token` deltas as they arrive,
 * then every assembled `tool_call`, then `usage` (when the server reports it) and exactly one `done`
 * last. A stream that fails after its first token throws and is never retried (no duplicated output).
 *
 * @example
 *   const chat: ChatProvider = new CircuitBreakerChatProvider(new OpenAIChatProvider({ ... }));
 *   const result = await chat.complete({ messages: [{ role: 'user', content: 'What is pgvector?' }] });
 *   for await (const delta of chat.stream({ messages, signal })) {
 *     if (delta.type === 'token') process.stdout.write(delta.text);
 *   }
 */

/** One call of a function tool, as the model asked for it. `arguments` is the model's JSON text, unparsed and unchecked. */
export interface ChatToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  role: ChatRole;
  /** May be empty for an assistant message that only calls tools. */
  content: string;
  /** On a `tool` message: the id of the call it answers. */
  tool_call_id?: string;
  /** On an `assistant` message: the calls it made (to replay a tool-use turn). */
  tool_calls?: ChatToolCall[];
}

/** A function tool the model may call; `parameters` is a JSON Schema object. */
export interface ChatTool {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
}

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ChatTool[];
  /** Upper bound on generated tokens. */
  maxTokens?: number;
  temperature?: number;
  /** The caller's cancellation; fires → `ChatError('aborted')` promptly, retries and back-off included. */
  signal?: AbortSignal;
}

/** `other`: a reason this layer does not know (servers invent their own). */
export type ChatFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'other';

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChatResult {
  text: string;
  toolCalls: ChatToolCall[];
  finishReason: ChatFinishReason;
  /** null: the server did not report usage (common for local servers). */
  usage: ChatUsage | null;
  /** The model that answered, as the server names it (falls back to the configured model). */
  model: string;
}

export type ChatDelta =
  | { type: 'token'; text: string }
  | { type: 'tool_call'; toolCall: ChatToolCall }
  | { type: 'usage'; usage: ChatUsage }
  | { type: 'done'; finishReason: ChatFinishReason; model: string };

export interface ChatProvider {
  /** e.g. 'openai' (any OpenAI-compatible server). */
  readonly name: string;
  /** The configured model id. */
  readonly model: string;
  complete(request: ChatRequest): Promise<ChatResult>;
  /** Lazily starts the request on first iteration; breaking out of the loop cancels it. */
  stream(request: ChatRequest): AsyncIterable<ChatDelta>;
}

/**
 * - `rate_limited`: 429, after the provider's own retries;
 * - `timeout`: an attempt took longer than allowed (not retried: it already used the whole budget);
 * - `unavailable`: unreachable, 5xx, connection dropped (also mid-stream), stream ended unfinished;
 * - `rejected`: the server refused the request (4xx other than 408/409/429: bad key, unknown model, context too long);
 * - `circuit_open`: the circuit breaker is failing fast; `retryAfterMs` says until when;
 * - `bad_response`: the server answered something that is not a chat completion;
 * - `aborted`: the caller's signal fired.
 */
export type ChatErrorReason =
  'rate_limited' | 'timeout' | 'unavailable' | 'rejected' | 'circuit_open' | 'bad_response' | 'aborted';

export interface ChatErrorOptions {
  /** HTTP status of the server's answer, when there was one. */
  status?: number;
  /** How long to wait before trying again, when known (Retry-After, breaker cool-down). */
  retryAfterMs?: number;
  /** HTTP attempts made (retries included); 0 when none was (breaker open, aborted first). */
  attempts?: number;
  cause?: unknown;
}

/** A failure of a chat provider. Messages never contain credentials. */
export class ChatError extends Error {
  readonly reason: ChatErrorReason;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly attempts: number | undefined;

  constructor(reason: ChatErrorReason, message: string, options: ChatErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ChatError';
    this.reason = reason;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.attempts = options.attempts;
  }
}

/** Whether a failure says the provider is unhealthy (what a circuit breaker counts). */
export function isAvailabilityFailure(error: unknown): boolean {
  if (!(error instanceof ChatError)) return false;
  return error.reason === 'rate_limited' || error.reason === 'timeout' || error.reason === 'unavailable';
}
