/**
 * The chat provider layer end to end: `OpenAIChatProvider` (through the real `openai` SDK) against a
 * local HTTP server speaking the chat-completions wire protocol, JSON and SSE; retries, timeouts,
 * aborts, dropped streams; and the circuit breaker on a fake clock.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CircuitBreakerChatProvider } from '../src/ai/chat/breaker.js';
import { OpenAIChatProvider, type OpenAIChatOptions } from '../src/ai/chat/openai.js';
import { backoffDelay, parseRetryAfter } from '../src/ai/chat/retry.js';
import { ChatError, type ChatDelta, type ChatProvider, type ChatRequest } from '../src/ai/chat/types.js';
import { startChatServer, type ChatServer } from './helpers/chat-server.js';

let server: ChatServer;

beforeAll(async () => {
  server = await startChatServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
  server.fallback = { kind: 'answer', text: 'Hello from the fake model.' };
});

function provider(options: Partial<OpenAIChatOptions> = {}): OpenAIChatProvider {
  return new OpenAIChatProvider({
    baseUrl: server.baseUrl,
    apiKey: 'sk-test-secret',
    model: 'test-model',
    timeoutMs: 2000,
    maxAttempts: 3,
    baseDelayMs: 10,
    maxDelayMs: 100,
    random: () => 0.5,
    ...options,
  });
}

const ask: ChatRequest = { messages: [{ role: 'user', content: 'What is pgvector?' }] };

async function collect(stream: AsyncIterable<ChatDelta>): Promise<ChatDelta[]> {
  const deltas: ChatDelta[] = [];
  for await (const delta of stream) deltas.push(delta);
  return deltas;
}

async function failure(promise: Promise<unknown>): Promise<ChatError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChatError);
  return error as ChatError;
}

const tokens = (deltas: ChatDelta[]) => deltas.flatMap((d) => (d.type === 'token' ? [d.text] : [])).join('');

describe('OpenAIChatProvider', () => {
  it('answers non-streaming with text, usage and model, sending the request in wire format', async () => {
    server.enqueue({ kind: 'answer', text: 'pgvector is a Postgres extension.' });
    const result = await provider().complete({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is pgvector?' },
      ],
      maxTokens: 64,
      temperature: 0.2,
    });
    expect(result).toMatchObject({
      text: 'pgvector is a Postgres extension.',
      toolCalls: [],
      finishReason: 'stop',
      model: 'test-model',
    });
    expect(result.usage?.completionTokens).toBe(5);
    expect(result.usage?.promptTokens).toBeGreaterThan(0);
    expect(server.requests).toHaveLength(1);
    const [received] = server.requests;
    expect(received!.body).toMatchObject({ model: 'test-model', max_tokens: 64, temperature: 0.2 });
    expect(received!.body.stream).toBe(false);
    expect(received!.headers.authorization).toBe('Bearer sk-test-secret');
  });

  it('tolerates a local server without usage, id or key (no Authorization header)', async () => {
    server.enqueue({ kind: 'answer', text: 'ok', usage: false, omitId: true });
    const result = await provider({ apiKey: undefined }).complete(ask);
    expect(result).toMatchObject({ text: 'ok', usage: null, finishReason: 'stop' });
    expect(server.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('streams tokens that concatenate to the full text, then usage and done', async () => {
    const text = 'Larder stores chunks in PostgreSQL with pgvector and full-text search.';
    server.enqueue({ kind: 'answer', text });
    const deltas = await collect(provider().stream(ask));
    expect(tokens(deltas)).toBe(text);
    expect(deltas.filter((d) => d.type === 'token').length).toBeGreaterThan(5);
    expect(deltas.at(-2)).toMatchObject({ type: 'usage', usage: { completionTokens: 10 } });
    expect(deltas.at(-1)).toEqual({ type: 'done', finishReason: 'stop', model: 'test-model' });
    expect(server.requests[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('streams without usage or ids when the server sends none', async () => {
    server.enqueue({ kind: 'answer', text: 'short answer', usage: false, omitId: true });
    const deltas = await collect(provider().stream(ask));
    expect(tokens(deltas)).toBe('short answer');
    expect(deltas.some((d) => d.type === 'usage')).toBe(false);
    expect(deltas.at(-1)).toMatchObject({ type: 'done', finishReason: 'stop' });
  });

  it('assembles streamed tool calls from argument fragments, and sends tools in wire format', async () => {
    const args1 = JSON.stringify({ query: 'refund policy', limit: 5 });
    const args2 = JSON.stringify({ id: 'doc-42' });
    server.enqueue({
      kind: 'answer',
      text: '',
      toolCalls: [
        { id: 'call_a', name: 'search', arguments: args1 },
        { name: 'open_document', arguments: args2 },
      ],
      fragmentSize: 2,
    });
    const deltas = await collect(
      provider().stream({
        ...ask,
        tools: [
          {
            name: 'search',
            description: 'Search the knowledge base',
            parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
          },
        ],
      }),
    );
    expect(deltas.filter((d) => d.type === 'tool_call')).toEqual([
      { type: 'tool_call', toolCall: { id: 'call_a', name: 'search', arguments: args1 } },
      { type: 'tool_call', toolCall: { id: 'call_1', name: 'open_document', arguments: args2 } },
    ]);
    expect(deltas.at(-1)).toMatchObject({ type: 'done', finishReason: 'tool_calls' });
    expect(server.requests[0]!.body.tools).toEqual([
      {
        type: 'function',
        function: {
          name: 'search',
          description: 'Search the knowledge base',
          parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
        },
      },
    ]);
  });

  it('returns tool calls non-streaming and replays a tool turn in wire format', async () => {
    server.enqueue({
      kind: 'answer',
      text: '',
      toolCalls: [{ id: 'call_x', name: 'search', arguments: '{"q":"a"}' }],
    });
    const first = await provider().complete(ask);
    expect(first).toMatchObject({
      text: '',
      finishReason: 'tool_calls',
      toolCalls: [{ id: 'call_x', name: 'search', arguments: '{"q":"a"}' }],
    });
    server.enqueue({ kind: 'answer', text: 'Found it.' });
    await provider().complete({
      messages: [
        ...ask.messages,
        { role: 'assistant', content: '', tool_calls: first.toolCalls },
        { role: 'tool', content: '[1] result', tool_call_id: 'call_x' },
      ],
    });
    expect(server.requests[1]!.body.messages).toEqual([
      { role: 'user', content: 'What is pgvector?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_x', type: 'function', function: { name: 'search', arguments: '{"q":"a"}' } },
        ],
      },
      { role: 'tool', content: '[1] result', tool_call_id: 'call_x' },
    ]);
  });

  it('retries a 429 after the server’s retry-after-ms, then succeeds', async () => {
    server.enqueue({ kind: 'error', status: 429, headers: { 'retry-after-ms': '250' } });
    const started = Date.now();
    const result = await provider({ maxDelayMs: 2000 }).complete(ask);
    expect(result.text).toBe('Hello from the fake model.');
    expect(server.requests).toHaveLength(2);
    const waited = server.requests[1]!.at - server.requests[0]!.at;
    expect(waited).toBeGreaterThanOrEqual(240);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('caps a hostile Retry-After at maxDelayMs, and reports the server’s wait on a final 429', async () => {
    server.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '3600' } });
    const started = Date.now();
    await provider({ maxDelayMs: 150 }).complete(ask);
    const waited = server.requests[1]!.at - server.requests[0]!.at;
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(1000);

    server.requests.length = 0;
    server.fallback = { kind: 'error', status: 429, headers: { 'retry-after': '3600' } };
    const error = await failure(provider({ maxDelayMs: 20 }).complete(ask));
    expect(error).toMatchObject({
      reason: 'rate_limited',
      status: 429,
      retryAfterMs: 3_600_000,
      attempts: 3,
    });
    expect(server.requests).toHaveLength(3);
  });

  it('exhausts its attempts on 500s → unavailable, with the attempts the server saw', async () => {
    server.fallback = { kind: 'error', status: 500, message: 'boom' };
    const error = await failure(provider({ maxAttempts: 4 }).complete(ask));
    expect(error).toMatchObject({ reason: 'unavailable', status: 500, attempts: 4 });
    expect(server.requests).toHaveLength(4);
  });

  it('retries a stream that fails before its first token', async () => {
    server.enqueue({ kind: 'error', status: 503 }, { kind: 'drop', text: 'never shown', afterTokens: 0 });
    const deltas = await collect(provider().stream(ask));
    expect(tokens(deltas)).toBe('Hello from the fake model.');
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry a 401: rejected, key redacted from the message', async () => {
    server.enqueue({ kind: 'error', status: 401, message: 'Incorrect API key provided: sk-test-secret' });
    const error = await failure(provider().complete(ask));
    expect(error).toMatchObject({ reason: 'rejected', status: 401, attempts: 1 });
    expect(error.message).not.toContain('sk-test-secret');
    expect(server.requests).toHaveLength(1);
  });

  it('times out a slow answer (not retried)', async () => {
    server.enqueue({ kind: 'answer', text: 'too late', delayMs: 1000 });
    const started = Date.now();
    const error = await failure(provider({ timeoutMs: 150 }).complete(ask));
    expect(error).toMatchObject({ reason: 'timeout', attempts: 1 });
    expect(Date.now() - started).toBeLessThan(800);
    expect(server.requests).toHaveLength(1);
  });

  it('times out a stream that goes idle between chunks', async () => {
    server.enqueue({ kind: 'answer', text: 'one two three', chunkDelayMs: 600 });
    const error = await failure(collect(provider({ timeoutMs: 200 }).stream(ask)));
    expect(error.reason).toBe('timeout');
  });

  it('stops promptly when the caller aborts, during a request and during a back-off', async () => {
    server.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    setTimeout(() => {
      controller.abort();
    }, 100);
    const started = Date.now();
    const error = await failure(
      provider({ timeoutMs: 5000 }).complete({ ...ask, signal: controller.signal }),
    );
    expect(error.reason).toBe('aborted');
    expect(Date.now() - started).toBeLessThan(1000);

    server.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '30' } });
    const during = new AbortController();
    setTimeout(() => {
      during.abort();
    }, 100);
    const t0 = Date.now();
    const streamed = await failure(
      collect(provider({ maxDelayMs: 30_000 }).stream({ ...ask, signal: during.signal })),
    );
    expect(streamed).toMatchObject({ reason: 'aborted', attempts: 1 });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('throws when a stream drops after tokens, without retrying (no duplicated output)', async () => {
    server.enqueue({ kind: 'drop', text: 'alpha beta gamma delta', afterTokens: 2 });
    const seen: string[] = [];
    const error = await failure(
      (async () => {
        for await (const delta of provider().stream(ask)) if (delta.type === 'token') seen.push(delta.text);
      })(),
    );
    expect(error.reason).toBe('unavailable');
    expect(seen.join('')).toBe('alpha beta');
    expect(server.requests).toHaveLength(1);
  });

  it('cancels the request when the consumer stops reading', async () => {
    server.enqueue({ kind: 'answer', text: 'a b c d e f g h', chunkDelayMs: 30 });
    const seen: string[] = [];
    for await (const delta of provider().stream(ask)) {
      if (delta.type === 'token') seen.push(delta.text);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['a', ' b']);
  });
});

describe('the fake server speaks the real protocol', () => {
  it('is parsed by the official openai client, JSON and SSE', async () => {
    const client = new OpenAI({ baseURL: server.baseUrl, apiKey: 'sk-x', maxRetries: 0 });
    server.enqueue({ kind: 'answer', text: 'plain answer' });
    const completion = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(completion.choices[0]?.message.content).toBe('plain answer');
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);

    server.enqueue({
      kind: 'answer',
      text: 'streamed answer here',
      toolCalls: [{ id: 'call_1', name: 'f', arguments: '{"a":1}' }],
    });
    const stream = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let args = '';
    let finish: string | null = null;
    let usage: number | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      const choice = chunk.choices[0];
      text += choice?.delta.content ?? '';
      args += choice?.delta.tool_calls?.[0]?.function?.arguments ?? '';
      finish = choice?.finish_reason ?? finish;
      usage = chunk.usage?.completion_tokens ?? usage;
    }
    expect({ text, args, finish, usage }).toEqual({
      text: 'streamed answer here',
      args: '{"a":1}',
      finish: 'tool_calls',
      usage: 4,
    });
  });
});

describe('retry timing', () => {
  it('parses retry-after-ms, Retry-After seconds and dates; ignores garbage', () => {
    const h = (entries: Record<string, string>) => new Headers(entries);
    expect(parseRetryAfter(h({ 'retry-after-ms': '120', 'retry-after': '9' }))).toBe(120);
    expect(parseRetryAfter(h({ 'retry-after': '2' }))).toBe(2000);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter(h({ 'retry-after': 'Wed, 01 Jan 2025 00:00:05 GMT' }), now)).toBe(5000);
    expect(parseRetryAfter(h({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(parseRetryAfter(h({}))).toBeUndefined();
  });

  it('uses full jitter under an exponential ceiling, capped', () => {
    const options = { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, undefined, options))).toEqual([99, 199, 399, 799, 999]);
    expect(backoffDelay(3, undefined, { ...options, random: () => 0 })).toBe(0);
    expect(backoffDelay(1, 50_000, options)).toBe(1000);
  });
});

describe('CircuitBreakerChatProvider', () => {
  function clock() {
    let t = 1_000_000;
    return {
      now: () => t,
      advance(ms: number) {
        t += ms;
      },
    };
  }

  it('opens after consecutive failures, fails fast, half-opens after the cool-down, closes on success', async () => {
    const time = clock();
    const breaker = new CircuitBreakerChatProvider(provider({ maxAttempts: 1 }), {
      failureThreshold: 3,
      coolDownMs: 10_000,
      now: time.now,
    });
    server.fallback = { kind: 'error', status: 502 };
    for (let i = 0; i < 3; i++) expect((await failure(breaker.complete(ask))).reason).toBe('unavailable');
    expect(breaker.state).toBe('open');
    expect(server.requests).toHaveLength(3);

    const fast = await failure(breaker.complete(ask));
    expect(fast).toMatchObject({ reason: 'circuit_open', retryAfterMs: 10_000, attempts: 0 });
    await expect(collect(breaker.stream(ask))).rejects.toMatchObject({ reason: 'circuit_open' });
    expect(server.requests).toHaveLength(3);

    time.advance(10_000);
    expect(breaker.state).toBe('half_open');
    // The trial fails: open again for another cool-down.
    expect((await failure(breaker.complete(ask))).reason).toBe('unavailable');
    expect(breaker.state).toBe('open');
    expect(server.requests).toHaveLength(4);

    time.advance(10_000);
    server.fallback = { kind: 'answer', text: 'back' };
    expect(tokens(await collect(breaker.stream(ask)))).toBe('back');
    expect(breaker.state).toBe('closed');
    expect((await breaker.complete(ask)).text).toBe('back');
  });

  it('lets exactly one trial through while half-open', async () => {
    const time = clock();
    const breaker = new CircuitBreakerChatProvider(provider({ maxAttempts: 1 }), {
      failureThreshold: 1,
      coolDownMs: 1000,
      now: time.now,
    });
    server.enqueue({ kind: 'error', status: 500 }, { kind: 'answer', text: 'trial', delayMs: 100 });
    await failure(breaker.complete(ask));
    time.advance(1000);
    const trial = breaker.complete(ask);
    expect((await failure(breaker.complete(ask))).reason).toBe('circuit_open');
    expect((await trial).text).toBe('trial');
    expect(breaker.state).toBe('closed');
    expect(server.requests).toHaveLength(2);
  });

  it('opens on a failure rate within the window', async () => {
    const time = clock();
    const inner: ChatProvider = {
      name: 'scripted',
      model: 'm',
      complete: async () => {
        if (outcomes.shift()) throw new ChatError('timeout', 'slow');
        return { text: 'ok', toolCalls: [], finishReason: 'stop', usage: null, model: 'm' };
      },
      stream: () => {
        throw new Error('unused');
      },
    };
    // fail, ok, fail, ok, …: never 3 in a row, but half of 6 calls.
    const outcomes = [true, false, true, false, true, false];
    const breaker = new CircuitBreakerChatProvider(inner, {
      failureThreshold: 3,
      failureRate: 0.5,
      minimumCalls: 6,
      windowMs: 60_000,
      now: time.now,
    });
    for (let i = 0; i < 5; i++) {
      await breaker.complete(ask).catch(() => undefined);
      time.advance(1000);
    }
    expect(breaker.state).toBe('closed');
    await breaker.complete(ask);
    expect(breaker.state).toBe('open');
  });

  it('is not opened by rejected requests (401) or aborted ones', async () => {
    const time = clock();
    const breaker = new CircuitBreakerChatProvider(provider(), { failureThreshold: 2, now: time.now });
    server.fallback = { kind: 'error', status: 401 };
    for (let i = 0; i < 4; i++) expect((await failure(breaker.complete(ask))).reason).toBe('rejected');
    expect(breaker.state).toBe('closed');
    expect(server.requests).toHaveLength(4);

    const controller = new AbortController();
    controller.abort();
    for (let i = 0; i < 3; i++) {
      expect((await failure(breaker.complete({ ...ask, signal: controller.signal }))).reason).toBe('aborted');
    }
    expect(breaker.state).toBe('closed');
  });
});
