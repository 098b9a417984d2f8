/**
 * The openai provider against a real HTTP server speaking the OpenAI embeddings wire protocol
 * (`POST /v1/embeddings`), through the real SDK: bodies, headers, batching, retries, errors.
 */
import { getEventListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAIEmbeddingProvider, type OpenAIProviderOptions } from './openai.js';
import { EmbeddingError } from './types.js';

interface EmbeddingsBody {
  model: string;
  input: string[];
  dimensions?: number;
  encoding_format?: string;
}

interface Received {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  body: EmbeddingsBody;
}

interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  delayMs?: number;
}

type Handler = (request: Received, attempt: number) => Reply;

const API_KEY = 'sk-test-0123456789abcdef';

/** A deterministic, text-dependent vector (not unit length: the provider normalises). */
function vectorFor(text: string, dims: number): number[] {
  let hash = 7;
  for (const char of text) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 1_000_003;
  return Array.from({ length: dims }, (_, k) => 2 * Math.sin(hash + k * 1.7));
}

function unit(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));
  return vector.map((x) => x / norm);
}

/** The answer of a well-behaved server: one vector per input, `index` in order unless shuffled. */
function embeddingsReply(body: EmbeddingsBody, dims: number, shuffle = false): Reply {
  const data = body.input.map((text, index) => ({
    object: 'embedding',
    index,
    embedding: vectorFor(text, dims),
  }));
  if (shuffle) data.reverse();
  return {
    body: { object: 'list', data, model: body.model, usage: { prompt_tokens: 3, total_tokens: 3 } },
  };
}

const servers: Server[] = [];
const providers: OpenAIEmbeddingProvider[] = [];

afterEach(async () => {
  await Promise.all(providers.splice(0).map((provider) => provider.close()));
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** Starts the fake API; `requests` records every request received, retries included. */
async function startApi(handler: Handler): Promise<{ baseUrl: string; requests: Received[] }> {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received: Received = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as EmbeddingsBody,
      };
      requests.push(received);
      const reply = handler(received, requests.length);
      const send = (): void => {
        if (res.destroyed) return;
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.body ?? {}));
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}/v1`, requests };
}

function provider(baseUrl: string, options: Partial<OpenAIProviderOptions> = {}): OpenAIEmbeddingProvider {
  const created = new OpenAIEmbeddingProvider({
    baseUrl,
    apiKey: API_KEY,
    model: 'text-embedding-3-small',
    batchSize: 64,
    timeoutMs: 5_000,
    maxRetries: 2,
    queryPrefix: '',
    documentPrefix: '',
    ...options,
  });
  providers.push(created);
  return created;
}

async function failure(promise: Promise<unknown>): Promise<EmbeddingError> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(EmbeddingError);
  return outcome as EmbeddingError;
}

describe('OpenAIEmbeddingProvider', () => {
  it('sends model, input, dimensions and float encoding with the bearer key; returns unit vectors', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 8));
    const embeddings = provider(api.baseUrl, { dimensions: 8 });
    const vectors = await embeddings.embedDocuments(['alpha', 'beta']);
    expect(api.requests).toHaveLength(1);
    const [request] = api.requests;
    expect(request!.method).toBe('POST');
    expect(request!.url).toBe('/v1/embeddings');
    expect(request!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(request!.body).toEqual({
      model: 'text-embedding-3-small',
      input: ['alpha', 'beta'],
      dimensions: 8,
      encoding_format: 'float',
    });
    expect(vectors).toHaveLength(2);
    expect(vectors[0]![0]).toBeCloseTo(unit(vectorFor('alpha', 8))[0]!, 12);
    expect(vectors[1]).toEqual(unit(vectorFor('beta', 8)));
    expect(await embeddings.dimensions()).toBe(8);
    expect(api.requests).toHaveLength(1); // configured dimensions need no probe
  });

  it('sends no Authorization header when there is no key (local servers)', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 4));
    await provider(api.baseUrl, { apiKey: undefined, dimensions: 4 }).embedQuery('hello');
    expect(api.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('applies the document prefix to chunks and the query prefix to queries', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 4));
    const embeddings = provider(api.baseUrl, {
      dimensions: 4,
      documentPrefix: 'search_document: ',
      queryPrefix: 'search_query: ',
    });
    const [document] = await embeddings.embedDocuments(['pgvector']);
    const query = await embeddings.embedQuery('pgvector');
    expect(api.requests.map((r) => r.body.input)).toEqual([
      ['search_document: pgvector'],
      ['search_query: pgvector'],
    ]);
    expect(document).toEqual(unit(vectorFor('search_document: pgvector', 4)));
    expect(query).toEqual(unit(vectorFor('search_query: pgvector', 4)));
  });

  it('sends ceil(n / batchSize) requests and keeps input order, even when the server shuffles `index`', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 6, true));
    const texts = Array.from({ length: 10 }, (_, i) => `text ${i}`);
    const vectors = await provider(api.baseUrl, { dimensions: 6, batchSize: 4 }).embedDocuments(texts);
    expect(api.requests.map((r) => r.body.input.length)).toEqual([4, 4, 2]);
    expect(api.requests.flatMap((r) => r.body.input)).toEqual(texts);
    expect(vectors).toEqual(texts.map((text) => unit(vectorFor(text, 6))));
  });

  it('leaves no listeners on a long-lived caller signal (the SDK never removes its own)', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 4));
    const p = provider(api.baseUrl, { batchSize: 1 });
    const job = new AbortController();
    await p.embedDocuments(
      Array.from({ length: 15 }, (_, i) => `text ${i}`),
      job.signal,
    );
    expect(api.requests).toHaveLength(15);
    expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
  });

  it('retries a 429 after Retry-After, then succeeds', async () => {
    const api = await startApi((request, attempt) =>
      attempt === 1
        ? { status: 429, headers: { 'retry-after': '0' }, body: { error: { message: 'slow down' } } }
        : embeddingsReply(request.body, 4),
    );
    const vectors = await provider(api.baseUrl, { dimensions: 4, maxRetries: 1 }).embedDocuments(['a']);
    expect(vectors).toHaveLength(1);
    expect(api.requests).toHaveLength(2);
    expect(api.requests[1]!.headers['x-stainless-retry-count']).toBe('1');
  });

  it('retries a 500 with exponential back-off, then succeeds', async () => {
    const api = await startApi((request, attempt) =>
      attempt === 1
        ? { status: 500, body: { error: { message: 'boom' } } }
        : embeddingsReply(request.body, 4),
    );
    expect(await provider(api.baseUrl, { dimensions: 4, maxRetries: 1 }).embedQuery('a')).toHaveLength(4);
    expect(api.requests).toHaveLength(2);
  });

  it('gives up on a persistent 500 after maxRetries + 1 attempts: unavailable, retryable', async () => {
    const api = await startApi(() => ({
      status: 500,
      headers: { 'retry-after': '0' },
      body: { error: { message: 'down' } },
    }));
    const error = await failure(provider(api.baseUrl, { dimensions: 4, maxRetries: 2 }).embedQuery('a'));
    expect(error).toMatchObject({ reason: 'unavailable', retryable: true, status: 500 });
    expect(api.requests).toHaveLength(3);
  });

  it('reports a rate limit that outlasts the retries as rate_limited, retryable', async () => {
    const api = await startApi(() => ({ status: 429, headers: { 'retry-after': '0' }, body: {} }));
    const error = await failure(provider(api.baseUrl, { dimensions: 4, maxRetries: 1 }).embedQuery('a'));
    expect(error).toMatchObject({ reason: 'rate_limited', retryable: true, status: 429 });
    expect(api.requests).toHaveLength(2);
  });

  it('times out a slow server: timeout, retryable', async () => {
    const api = await startApi((request) => ({ ...embeddingsReply(request.body, 4), delayMs: 2_000 }));
    const error = await failure(
      provider(api.baseUrl, { dimensions: 4, timeoutMs: 100, maxRetries: 0 }).embedQuery('a'),
    );
    expect(error).toMatchObject({ reason: 'timeout', retryable: true });
    expect(api.requests).toHaveLength(1);
  });

  it('does not retry a 401 and never repeats the key, even when the server echoes it', async () => {
    const api = await startApi(() => ({
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${API_KEY}`, type: 'invalid_request_error' } },
    }));
    const error = await failure(provider(api.baseUrl, { dimensions: 4, maxRetries: 2 }).embedQuery('a'));
    expect(error).toMatchObject({ reason: 'rejected', retryable: false, status: 401 });
    expect(api.requests).toHaveLength(1);
    expect(error.message).toContain('[redacted]');
    expect(error.message).not.toContain(API_KEY);
    expect(JSON.stringify(error)).not.toContain(API_KEY);
  });

  it('rejects a 400 (e.g. input too long) without retrying', async () => {
    const api = await startApi(() => ({
      status: 400,
      body: { error: { message: 'maximum context length' } },
    }));
    const error = await failure(provider(api.baseUrl, { dimensions: 4 }).embedDocuments(['a']));
    expect(error).toMatchObject({ reason: 'rejected', retryable: false, status: 400 });
    expect(api.requests).toHaveLength(1);
  });

  it('treats wrong dimensions, wrong counts, bad indexes and non-numbers as bad_response', async () => {
    const replies: ((body: EmbeddingsBody) => Reply)[] = [
      (body) => embeddingsReply(body, 7), // configured 8
      (body) => embeddingsReply({ ...body, input: body.input.slice(1) }, 8), // one vector missing
      (body) => ({
        body: { data: body.input.map((_, i) => ({ index: 0, embedding: vectorFor(`${i}`, 8) })) },
      }),
      (body) => ({
        body: { data: body.input.map((_, index) => ({ index, embedding: [...vectorFor('x', 7), null] })) },
      }),
      (body) => ({
        body: { data: body.input.map((_, index) => ({ index, embedding: new Array(8).fill(0) })) },
      }),
      () => ({ body: { object: 'list' } }),
    ];
    let next = 0;
    const api = await startApi((request) => replies[next++]!(request.body));
    const embeddings = provider(api.baseUrl, { dimensions: 8 });
    for (const [i] of replies.entries()) {
      const error = await failure(embeddings.embedDocuments(['a', 'b']));
      expect(error, `reply ${i}`).toMatchObject({ reason: 'bad_response', retryable: false });
    }
    expect(api.requests).toHaveLength(replies.length);
  });

  it('discovers the dimensions with one probe request when not configured, and caches them', async () => {
    const api = await startApi((request) => embeddingsReply(request.body, 12));
    const embeddings = provider(api.baseUrl, { dimensions: undefined });
    const sizes = await Promise.all([
      embeddings.dimensions(),
      embeddings.dimensions(),
      embeddings.dimensions(),
    ]);
    expect(sizes).toEqual([12, 12, 12]);
    expect(await embeddings.dimensions()).toBe(12);
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]!.body).not.toHaveProperty('dimensions');
    expect(await embeddings.embedDocuments(['x'])).toEqual([unit(vectorFor('x', 12))]);
    expect(api.requests).toHaveLength(2);
  });

  it('aborts an in-flight request and a Retry-After wait promptly', async () => {
    const slow = await startApi((request) => ({ ...embeddingsReply(request.body, 4), delayMs: 5_000 }));
    const controller = new AbortController();
    const pending = provider(slow.baseUrl, { dimensions: 4 }).embedDocuments(['a'], controller.signal);
    setTimeout(() => {
      controller.abort();
    }, 50);
    expect(await failure(pending)).toMatchObject({ reason: 'aborted', retryable: false });

    const limited = await startApi(() => ({ status: 429, headers: { 'retry-after': '30' }, body: {} }));
    const waiting = new AbortController();
    const started = Date.now();
    const backingOff = provider(limited.baseUrl, { dimensions: 4 }).embedQuery('a', waiting.signal);
    setTimeout(() => {
      waiting.abort();
    }, 100);
    expect(await failure(backingOff)).toMatchObject({ reason: 'aborted' });
    expect(Date.now() - started).toBeLessThan(5_000);

    expect(await failure(provider(slow.baseUrl).embedQuery('a', AbortSignal.abort()))).toMatchObject({
      reason: 'aborted',
    });
  });

  it('reports a server that is not there as unavailable', async () => {
    const api = await startApi(() => ({}));
    const server = servers.pop()!;
    await new Promise((resolve) => server.close(resolve));
    const error = await failure(provider(api.baseUrl, { dimensions: 4, maxRetries: 0 }).embedQuery('a'));
    expect(error).toMatchObject({ reason: 'unavailable', retryable: true });
  });

  it('refuses calls after close()', async () => {
    const embeddings = provider('http://127.0.0.1:9/v1');
    await embeddings.close();
    expect(await failure(embeddings.embedQuery('a'))).toMatchObject({ reason: 'unavailable' });
  });
});
