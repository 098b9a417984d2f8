/**
 * A local HTTP server speaking the OpenAI embeddings wire protocol (`POST /v1/embeddings`) whose
 * vectors carry meaning: a seeded random projection of the text's hashed term counts.
 *
 * A text's terms (lower-cased letter/digit runs of 2+ characters, minus a short English stop list)
 * are counted; each term is hashed to one of 2^20 buckets, and each bucket has a fixed pseudo-random
 * ±1 row of `dims` values (seeded by the bucket and the server's seed). The vector is the sum of the
 * rows weighted by 1 + ln(tf), L2-normalised. By the Johnson–Lindenstrauss property, the cosine of two
 * vectors approximates the cosine of their (log-)term-count vectors: texts sharing words get similar
 * vectors, the same text always gets the same vector, and a question is near the chunks that use its
 * words. Deterministic across runs and machines.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fnv1a, mulberry32 } from './prng.js';

const BUCKETS = 1 << 20;
/** Projection rows kept in memory (each `dims` float32s); the cache is cleared when full. */
const MAX_CACHED_ROWS = 100_000;

const STOP_WORDS = new Set(
  (
    'a an and are as at be been but by can could did do does for from had has have how if in into is it ' +
    'its may might more most no not of on or our so such than that the their them then there these they ' +
    'this those to was we were what when where which while who whom why will with would you your also ' +
    'been being both each other some any all after before between during et al'
  ).split(' '),
);

export function terms(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const match of text.toLowerCase().matchAll(/[\p{L}\p{N}]{2,}/gu)) {
    const term = match[0];
    if (STOP_WORDS.has(term)) continue;
    counts.set(term, (counts.get(term) ?? 0) + 1);
  }
  return counts;
}

export class HashProjection {
  readonly #rows = new Map<number, Float32Array>();

  constructor(
    readonly dims: number,
    readonly seed: number,
  ) {}

  #row(bucket: number): Float32Array {
    let row = this.#rows.get(bucket);
    if (row) return row;
    if (this.#rows.size >= MAX_CACHED_ROWS) this.#rows.clear();
    const next = mulberry32(Math.imul(bucket + 1, 0x9e3779b1) ^ this.seed);
    row = new Float32Array(this.dims);
    for (let i = 0; i < this.dims; i++) row[i] = next() < 0.5 ? -1 : 1;
    this.#rows.set(bucket, row);
    return row;
  }

  embed(text: string): number[] {
    const sum = new Float64Array(this.dims);
    for (const [term, tf] of terms(text)) {
      const row = this.#row(fnv1a(term) % BUCKETS);
      const weight = 1 + Math.log(tf);
      for (let i = 0; i < this.dims; i++) sum[i] = (sum[i] ?? 0) + weight * (row[i] ?? 0);
    }
    let norm = 0;
    for (const x of sum) norm += x * x;
    if (norm === 0) {
      // No content word at all: a fixed unit vector (never all-zero; cosine is then defined).
      sum[0] = 1;
      norm = 1;
    }
    const scale = 1 / Math.sqrt(norm);
    // 7 significant decimals: plenty for float4 storage, a third of the JSON of full doubles.
    return Array.from(sum, (x) => Math.round(x * scale * 1e7) / 1e7);
  }
}

export interface EmbeddingsServerStats {
  requests: number;
  inputs: number;
  /** Time spent computing vectors and JSON (the server's own CPU work), ms. */
  busyMs: number;
}

export interface BenchEmbeddingsServer {
  baseUrl: string;
  stats: EmbeddingsServerStats;
  close(): Promise<void>;
}

interface Body {
  model?: unknown;
  input?: unknown;
  dimensions?: unknown;
}

/** Starts the server on 127.0.0.1 (`port` 0: any free port). */
export async function startEmbeddingsServer(options: {
  dims: number;
  seed: number;
  port?: number;
}): Promise<BenchEmbeddingsServer> {
  const projection = new HashProjection(options.dims, options.seed);
  const stats: EmbeddingsServerStats = { requests: 0, inputs: 0, busyMs: 0 };
  const fail = (res: ServerResponse, status: number, message: string) => {
    res.statusCode = status;
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error' } }));
  };
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      stats.requests += 1;
      res.setHeader('content-type', 'application/json');
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') {
        fail(res, 404, 'not found');
        return;
      }
      const started = performance.now();
      let body: Body;
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as Body;
      } catch {
        fail(res, 400, 'invalid JSON');
        return;
      }
      const input = typeof body.input === 'string' ? [body.input] : body.input;
      if (!Array.isArray(input) || !input.every((t) => typeof t === 'string')) {
        fail(res, 400, 'input must be a string or an array of strings');
        return;
      }
      if (body.dimensions !== undefined && body.dimensions !== options.dims) {
        fail(res, 400, `this server only makes ${options.dims}-dimensional vectors`);
        return;
      }
      const model = typeof body.model === 'string' ? body.model : 'bench';
      stats.inputs += input.length;
      const payload = JSON.stringify({
        object: 'list',
        model,
        data: input.map((text: string, index) => ({
          object: 'embedding',
          index,
          embedding: projection.embed(text),
        })),
        usage: { prompt_tokens: input.length, total_tokens: input.length },
      });
      stats.busyMs += performance.now() - started;
      res.end(payload);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    stats,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
