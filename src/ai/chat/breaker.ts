/**
 * A circuit breaker around any ChatProvider, so a dead model server costs callers nothing but a
 * fast `ChatError('circuit_open')` instead of a timeout each.
 *
 * - closed → open after `failureThreshold` consecutive failures, or when at least `minimumCalls`
 *   outcomes in the last `windowMs` include a share ≥ `failureRate` of failures;
 * - open → half-open once `coolDownMs` has passed (checked on the next call: no timers);
 * - half-open: exactly one trial call goes through, others fail fast; its success closes the
 *   circuit, its failure re-opens it for another cool-down.
 *
 * Only availability failures count (`timeout`, `unavailable`, `rate_limited` i.e. 429 after the
 * provider's retries): a `rejected` request (400, 401 …) or a `bad_response` proves the server is up
 * and counts as a success; an `aborted` call counts as nothing. A stream's outcome is known when it
 * ends: any delta received is a success, even if the consumer breaks out early.
 *
 * Limits: state is per process (several instances each keep their own), and concurrent calls that
 * were admitted while closed all run to completion even once the circuit opens.
 *
 * @example
 *   const chat = new CircuitBreakerChatProvider(new OpenAIChatProvider({ ... }), { coolDownMs: 30_000 });
 *   try { await chat.complete(request); } catch (e) { if (e instanceof ChatError && e.reason === 'circuit_open') ... }
 */
import { ChatError, isAvailabilityFailure } from './types.js';
import type { ChatDelta, ChatProvider, ChatRequest, ChatResult } from './types.js';

export interface CircuitBreakerOptions {
  /** Consecutive availability failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** Share of failures in the window that opens the circuit, in (0, 1] (default 0.5). */
  failureRate?: number;
  /** Outcomes needed in the window before the rate is judged (default 10). */
  minimumCalls?: number;
  /** Length of the sliding window for the failure rate (default 60 000). */
  windowMs?: number;
  /** Time open before a trial call is let through (default 30 000). */
  coolDownMs?: number;
  /** Milliseconds clock; tests inject a fake one. */
  now?: () => number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

type Outcome = 'success' | 'failure' | 'neutral';

export class CircuitBreakerChatProvider implements ChatProvider {
  readonly name: string;
  readonly model: string;
  readonly #inner: ChatProvider;
  readonly #options: Required<CircuitBreakerOptions>;
  #state: CircuitState = 'closed';
  #openedAt = 0;
  #consecutiveFailures = 0;
  #window: { at: number; failed: boolean }[] = [];
  #trialInFlight = false;

  constructor(inner: ChatProvider, options: CircuitBreakerOptions = {}) {
    this.#inner = inner;
    this.name = inner.name;
    this.model = inner.model;
    this.#options = {
      failureThreshold: 5,
      failureRate: 0.5,
      minimumCalls: 10,
      windowMs: 60_000,
      coolDownMs: 30_000,
      now: Date.now,
      ...options,
    };
  }

  /** The state as of now (an open circuit past its cool-down reads as half-open). */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#options.now() - this.#openedAt >= this.#options.coolDownMs) {
      return 'half_open';
    }
    return this.#state;
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    const trial = this.#admit();
    try {
      const result = await this.#inner.complete(request);
      this.#record('success', trial);
      return result;
    } catch (error) {
      this.#record(classify(error), trial);
      throw error;
    }
  }

  async *stream(request: ChatRequest): AsyncGenerator<ChatDelta, void, undefined> {
    const trial = this.#admit();
    let outcome: Outcome = 'neutral';
    try {
      for await (const delta of this.#inner.stream(request)) {
        outcome = 'success';
        yield delta;
      }
      outcome = 'success';
    } catch (error) {
      outcome = classify(error);
      throw error;
    } finally {
      this.#record(outcome, trial);
    }
  }

  /** Lets a call through (returns whether it is the half-open trial) or throws `circuit_open`. */
  #admit(): boolean {
    const state = this.state;
    if (state === 'closed') return false;
    if (state === 'half_open' && !this.#trialInFlight) {
      this.#state = 'half_open';
      this.#trialInFlight = true;
      return true;
    }
    const retryAfterMs =
      state === 'open' ? this.#openedAt + this.#options.coolDownMs - this.#options.now() : undefined;
    throw new ChatError(
      'circuit_open',
      `chat provider ${this.name} (model ${this.model}) is failing; not calling it for now`,
      { attempts: 0, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
    );
  }

  #record(outcome: Outcome, trial: boolean): void {
    if (trial) {
      this.#trialInFlight = false;
      if (outcome === 'success') this.#close();
      else if (outcome === 'failure') this.#open();
      // neutral (aborted): stay half-open, the next call is the trial.
      return;
    }
    // A call admitted while closed may finish after the circuit opened: it no longer counts.
    if (this.#state !== 'closed' || outcome === 'neutral') return;
    const now = this.#options.now();
    this.#window = this.#window.filter((o) => now - o.at < this.#options.windowMs);
    this.#window.push({ at: now, failed: outcome === 'failure' });
    this.#consecutiveFailures = outcome === 'failure' ? this.#consecutiveFailures + 1 : 0;
    const failures = this.#window.filter((o) => o.failed).length;
    if (
      this.#consecutiveFailures >= this.#options.failureThreshold ||
      (this.#window.length >= this.#options.minimumCalls &&
        failures / this.#window.length >= this.#options.failureRate)
    ) {
      this.#open();
    }
  }

  #open(): void {
    this.#state = 'open';
    this.#openedAt = this.#options.now();
  }

  #close(): void {
    this.#state = 'closed';
    this.#consecutiveFailures = 0;
    this.#window = [];
  }
}

function classify(error: unknown): Outcome {
  if (isAvailabilityFailure(error)) return 'failure';
  // Aborted, or not a ChatError at all (a bug, not the server's health): counts as nothing.
  if (!(error instanceof ChatError) || error.reason === 'aborted') return 'neutral';
  return 'success';
}
