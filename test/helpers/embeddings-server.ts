/**
 * A local HTTP server speaking the OpenAI embeddings wire protocol (`POST /v1/embeddings`), for
 * end-to-end tests of the `openai` provider: deterministic text-dependent vectors, a record of every
 * input it embedded, switchable failures (429 with Retry-After, 401), and held answers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Body {
  model: string;
  input: string[];
  dimensions?: number;
}

export interface EmbeddingsServer {
  baseUrl: string;
  /** Every input text received (after prefixes), in arrival order, per model. */
  inputs: { model: string; text: string }[];
  /** Requests received, retries included. */
  requests: number;
  /** Answer the next `n` requests with 429 (Retry-After: 0). */
  rateLimitNext(n: number): void;
  /** Answer every request with 401 until switched off. */
  reject(on: boolean): void;
  /** Answer no request before `gate` settles (until called again). */
  hold(gate: Promise<unknown>): void;
  close(): Promise<void>;
}

/** Deterministic, text-dependent, never all-zero. */
export function fakeVector(text: string, dims: number): number[] {
  let hash = 7;
  for (const char of text) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) % 1_000_003;
  return Array.from({ length: dims }, (_, k) => Math.sin(hash + k * 1.7) + 0.01);
}

export async function startEmbeddingsServer(dims: number): Promise<EmbeddingsServer> {
  let rateLimited = 0;
  let rejecting = false;
  let gate: Promise<unknown> = Promise.resolve();
  const state: Pick<EmbeddingsServer, 'inputs' | 'requests'> = { inputs: [], requests: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void gate.finally(answer));
    const answer = () => {
      state.requests += 1;
      res.setHeader('content-type', 'application/json');
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
        return;
      }
      if (rejecting) {
        res.statusCode = 401;
        res.end(
          JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }),
        );
        return;
      }
      if (rateLimited > 0) {
        rateLimited -= 1;
        res.statusCode = 429;
        res.setHeader('retry-after', '0');
        res.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests' } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Body;
      const size = body.dimensions ?? dims;
      for (const text of body.input) state.inputs.push({ model: body.model, text });
      res.end(
        JSON.stringify({
          object: 'list',
          model: body.model,
          data: body.input.map((text, index) => ({
            object: 'embedding',
            index,
            embedding: fakeVector(text, size),
          })),
          usage: { prompt_tokens: body.input.length, total_tokens: body.input.length },
        }),
      );
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    get inputs() {
      return state.inputs;
    },
    get requests() {
      return state.requests;
    },
    rateLimitNext(n) {
      rateLimited = n;
    },
    reject(on) {
      rejecting = on;
    },
    hold(until) {
      gate = until;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
