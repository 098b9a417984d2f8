/**
 * The `openai` chat provider: any OpenAI-compatible `POST /v1/chat/completions` (OpenAI, Ollama, vLLM,
 * llama.cpp server, LM Studio …) through the official SDK, with the SDK's own retries off.
 *
 * Retries are this provider's: up to `maxAttempts` HTTP attempts in all, on 429, 409, 5xx and
 * connection errors, waiting the server's `retry-after-ms` / `Retry-After` when sent, else
 * exponential back-off with full jitter; every wait is capped at `maxDelayMs` (a hostile
 * `Retry-After: 86400` costs at most that). Timeouts are not retried: the attempt already spent the
 * whole budget. A final 429 carries the server's uncapped `retryAfterMs`.
 *
 * `timeoutMs` is per attempt: for `complete`, the whole request (headers and body); for `stream`,
 * until the response headers and then between two chunks (an idle timeout, so long answers are fine;
 * time spent in the consumer's loop body is not counted).
 *
 * Streaming asks for `stream_options.include_usage`; usage is yielded only when the server reports it.
 * A stream is retried only while nothing has been yielded: once a token went out, any failure (dropped
 * connection, idle timeout, an in-stream error event) is thrown, never retried, so output is never
 * duplicated. A stream that ends without a `finish_reason` is `unavailable` (truncated).
 *
 * Limits: one choice (`n` = 1); function tools only; `maxTokens` is sent as `max_tokens` unless
 * `maxTokensField` says `max_completion_tokens` (newer OpenAI models reject `max_tokens`).
 *
 * @example
 *   const chat = new OpenAIChatProvider({
 *     baseUrl: 'http://localhost:11434/v1', model: 'llama3.1:8b', timeoutMs: 60_000,
 *   });
 *   const { text } = await chat.complete({ messages: [{ role: 'user', content: 'Hi' }] });
 */
import type OpenAI from 'openai';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { createOpenAIClient } from '../openai-client.js';
import type { ChatCompletionCreateParamsBase } from 'openai/resources/chat/completions';
import { abortedError, backoffDelay, parseRetryAfter, sleep } from './retry.js';
import { ChatError } from './types.js';
import type { ChatDelta, ChatProvider, ChatRequest, ChatResult } from './types.js';
import { ChunkAccumulator, toChatResult, toWireMessages, toWireTools } from './wire.js';

export interface OpenAIChatOptions {
  /** e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …`; absent (local servers): no Authorization header at all. */
  apiKey?: string | undefined;
  model: string;
  /** Per attempt; see the file comment for what it covers when streaming. */
  timeoutMs: number;
  /** HTTP attempts in all, first included (default 3; 1 = no retries). */
  maxAttempts?: number;
  /** First back-off ceiling, doubling per retry (default 500). */
  baseDelayMs?: number;
  /** Cap on every wait between attempts, Retry-After included (default 8000). */
  maxDelayMs?: number;
  maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  /** Jitter source, in [0, 1); tests inject a fixed one. */
  random?: () => number;
}

/** One HTTP attempt: its own abort controller, linked to the caller's signal, with a resettable timer. */
class Attempt {
  readonly controller = new AbortController();
  timedOut = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #forward = (): void => {
    this.controller.abort();
  };

  constructor(timeoutMs: number, signal: AbortSignal | undefined) {
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    signal?.addEventListener('abort', this.#forward, { once: true });
    this.arm();
  }

  /** (Re)starts the timeout. */
  arm(): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.#timeoutMs);
  }

  disarm(): void {
    clearTimeout(this.#timer);
  }

  /** The SDK ends a stream silently when its signal fires: this makes that an error. */
  throwIfStopped(): void {
    if (this.timedOut || this.controller.signal.aborted) throw new Error('attempt stopped');
  }

  /** Cancels whatever is still in flight and unlinks from the caller's signal. */
  dispose(): void {
    this.disarm();
    this.#signal?.removeEventListener('abort', this.#forward);
    this.controller.abort();
  }
}

export class OpenAIChatProvider implements ChatProvider {
  readonly name = 'openai';
  readonly model: string;
  readonly #options: Required<Omit<OpenAIChatOptions, 'apiKey'>> & { apiKey: string | undefined };
  readonly #client: OpenAI;

  constructor(options: OpenAIChatOptions) {
    this.model = options.model;
    this.#options = {
      maxAttempts: 3,
      baseDelayMs: 500,
      maxDelayMs: 8000,
      maxTokensField: 'max_tokens',
      random: Math.random,
      ...options,
      apiKey: options.apiKey,
    };
    if (!Number.isInteger(this.#options.maxAttempts) || this.#options.maxAttempts < 1) {
      throw new RangeError('maxAttempts must be a positive integer');
    }
    this.#client = createOpenAIClient({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs,
      maxRetries: 0,
    });
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    const body = { ...this.#body(request), stream: false as const };
    const { signal } = request;
    for (let attempts = 1; ; attempts++) {
      if (signal?.aborted) throw abortedError(attempts - 1, signal);
      const attempt = new Attempt(this.#options.timeoutMs, signal);
      let failure: ChatError;
      try {
        const response: unknown = await this.#client.chat.completions.create(body, {
          signal: attempt.controller.signal,
          maxRetries: 0,
        });
        attempt.throwIfStopped();
        return toChatResult(response, this.model, attempts);
      } catch (error) {
        failure = this.#toChatError(error, attempt, signal, attempts);
      } finally {
        attempt.dispose();
      }
      await this.#beforeRetry(failure, attempts, signal);
    }
  }

  async *stream(request: ChatRequest): AsyncGenerator<ChatDelta, void, undefined> {
    const body = {
      ...this.#body(request),
      stream: true as const,
      stream_options: { include_usage: true },
    };
    const { signal } = request;
    for (let attempts = 1; ; attempts++) {
      if (signal?.aborted) throw abortedError(attempts - 1, signal);
      const attempt = new Attempt(this.#options.timeoutMs, signal);
      let yielded = false;
      let failure: ChatError;
      try {
        const chunks = await this.#client.chat.completions.create(body, {
          signal: attempt.controller.signal,
          maxRetries: 0,
        });
        const acc = new ChunkAccumulator();
        attempt.arm();
        for await (const chunk of chunks) {
          attempt.disarm();
          const text = acc.add(chunk, attempts);
          if (text !== '') {
            yielded = true;
            yield { type: 'token', text };
          }
          attempt.arm();
        }
        attempt.throwIfStopped();
        if (acc.finishReason === undefined) {
          throw new ChatError('unavailable', `chat stream (model ${this.model}) ended before it finished`, {
            attempts,
          });
        }
        for (const toolCall of acc.toolCalls()) {
          yielded = true;
          yield { type: 'tool_call', toolCall };
        }
        if (acc.usage) yield { type: 'usage', usage: acc.usage };
        yield { type: 'done', finishReason: acc.finishReason, model: acc.model ?? this.model };
        return;
      } catch (error) {
        failure = this.#toChatError(error, attempt, signal, attempts);
      } finally {
        attempt.dispose();
      }
      if (yielded) throw failure;
      await this.#beforeRetry(failure, attempts, signal);
    }
  }

  /** Throws `failure` when it is final; otherwise waits the back-off (abortably). */
  async #beforeRetry(failure: ChatError, attempts: number, signal: AbortSignal | undefined): Promise<void> {
    const retryable = failure.reason === 'rate_limited' || failure.reason === 'unavailable';
    if (!retryable || attempts >= this.#options.maxAttempts) throw failure;
    await sleep(backoffDelay(attempts, failure.retryAfterMs, this.#options), signal, attempts);
  }

  #body(request: ChatRequest): ChatCompletionCreateParamsBase {
    const body: ChatCompletionCreateParamsBase = {
      model: this.model,
      messages: toWireMessages(request.messages),
    };
    if (request.tools && request.tools.length > 0) body.tools = toWireTools(request.tools);
    if (request.maxTokens !== undefined) body[this.#options.maxTokensField] = request.maxTokens;
    if (request.temperature !== undefined) body.temperature = request.temperature;
    return body;
  }

  #toChatError(
    error: unknown,
    attempt: Attempt,
    signal: AbortSignal | undefined,
    attempts: number,
  ): ChatError {
    // The caller's abort and our timer both surface from the SDK as aborts (or a silently ended stream).
    if (signal?.aborted) return abortedError(attempts, signal);
    const what = `chat completion (model ${this.model})`;
    if (attempt.timedOut || error instanceof APIConnectionTimeoutError) {
      return new ChatError('timeout', `${what} got no answer within ${this.#options.timeoutMs} ms`, {
        attempts,
      });
    }
    if (error instanceof ChatError) return error;
    if (error instanceof APIUserAbortError)
      return new ChatError('aborted', `${what} was aborted`, { attempts });
    if (error instanceof APIConnectionError) {
      return new ChatError('unavailable', `${what}: server unreachable: ${this.#redact(error.message)}`, {
        attempts,
        cause: error,
      });
    }
    if (error instanceof APIError) {
      const { status, headers } = error as APIError;
      const message = `${what}: ${this.#redact(error.message)}`;
      const options = { attempts, status, retryAfterMs: parseRetryAfter(headers) };
      // No status: an error event inside a stream, i.e. the server failed while generating.
      if (status === undefined || status === 409 || status >= 500) {
        return new ChatError('unavailable', message, options);
      }
      if (status === 429) return new ChatError('rate_limited', message, options);
      if (status === 408) return new ChatError('timeout', message, options);
      return new ChatError('rejected', message, options);
    }
    if (error instanceof SyntaxError) {
      return new ChatError('bad_response', `${what}: unparseable answer: ${error.message}`, { attempts });
    }
    // undici's "terminated" (connection dropped mid-body) and other transport failures.
    const message = error instanceof Error ? error.message : String(error);
    return new ChatError('unavailable', `${what} failed: ${this.#redact(message)}`, {
      attempts,
      cause: error,
    });
  }

  /** Servers sometimes echo the key in error messages; never let it reach a log. */
  #redact(message: string): string {
    const key = this.#options.apiKey;
    return key ? message.split(key).join('[redacted]') : message;
  }
}
