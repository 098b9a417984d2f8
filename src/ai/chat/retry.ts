/**
 * Retry timing for chat providers: exponential back-off with full jitter, Retry-After parsing, and an
 * abortable sleep. Pure apart from `sleep`; the random source is injected so tests are deterministic.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ChatError } from './types.js';

export interface BackoffOptions {
  /** First back-off ceiling; doubles per retry. */
  baseDelayMs: number;
  /** Upper bound of any wait, Retry-After included, so a hostile server cannot stall a request. */
  maxDelayMs: number;
  /** In [0, 1). */
  random: () => number;
}

/**
 * The wait before retry number `retry` (1-based): the server's Retry-After when it sent one, else
 * "full jitter" (uniform in [0, base·2^(retry-1)]); either way at most `maxDelayMs`.
 */
export function backoffDelay(
  retry: number,
  retryAfterMs: number | undefined,
  options: BackoffOptions,
): number {
  if (retryAfterMs !== undefined) return Math.min(Math.max(0, retryAfterMs), options.maxDelayMs);
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(options.random() * ceiling);
}

interface HeaderSource {
  get(name: string): string | null;
}

/**
 * `retry-after-ms` (milliseconds, non-standard but sent by OpenAI) wins over `Retry-After` (seconds
 * or an HTTP date). Unparseable or negative values are ignored (→ undefined: use the back-off).
 */
export function parseRetryAfter(headers: HeaderSource | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return value;
  }
  const header = headers.get('retry-after');
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function abortedError(attempts: number, signal: AbortSignal): ChatError {
  return new ChatError('aborted', 'chat completion was aborted', { attempts, cause: signal.reason });
}

/** Resolves after `ms`, or rejects with `ChatError('aborted')` as soon as `signal` fires. */
export async function sleep(ms: number, signal: AbortSignal | undefined, attempts: number): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : {});
  } catch (error) {
    if (signal?.aborted) throw abortedError(attempts, signal);
    throw error;
  }
}
