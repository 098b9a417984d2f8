/**
 * `search`: latency (p50/p95/p99) and throughput per mode (lexical, vector, hybrid) at one or more
 * corpus sizes, with bench/search-latency.ts's corpus, ingestion and measurement: the synthetic corpus
 * ingested through the real pipeline (openai provider → the local embeddings server, 512 d), then the
 * sampled covidqa questions through `SearchService.search` (k = 10, default settings).
 *
 * Sizes: BENCH_SEARCH_SIZES (default 10000; 100000 ingests for ~21 min, so it is opt-in:
 * BENCH_SEARCH_SIZES=10000,100000); quick: 300. Each round measures every mode once (alternating the
 * order) on the same collection; the collection is ingested once per size.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { operatorContext } from '../../src/cli/ingest.js';
import type { EmbeddingProviderName } from '../../src/ai/embeddings/index.js';
import type { SearchMode } from '../../src/modules/search/service.js';
import { PostingsCache } from '../../src/modules/search/postings-cache.js';
import { SearchService } from '../../src/modules/search/service.js';
import { createLogger } from '../../src/platform/logger.js';
import { openRuntime } from '../../src/runtime.js';
import { sampleQueries } from '../lib/corpus.js';
import { startEmbeddingsServer } from '../lib/embeddings-server.js';
import {
  alternate,
  type Chart,
  type Measurement,
  type Suite,
  type SuiteContext,
  type SuiteResult,
} from '../lib/harness.js';
import { runQueries } from '../lib/measure.js';
import { chunkCount, dropWorkspace, indexTables, vacuumAnalyze } from '../lib/pg.js';
import {
  benchConfig,
  DIMENSIONS,
  ingest,
  type IngestionReport,
  K,
  MODEL,
  MODES,
  PROJECTION_SEED,
} from '../search-latency.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATASET = path.resolve(repo, '../shared/eval/covidqa');

function sizesFromEnv(quick: boolean): number[] {
  const raw = process.env.BENCH_SEARCH_SIZES;
  if (raw === undefined || raw === '') return quick ? [300] : [10_000];
  return raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_SEARCH_SIZES: bad size ${s}`);
    return n;
  });
}

const label = (chunks: number) =>
  chunks >= 1000 && chunks % 1000 === 0 ? `${chunks / 1000}k` : String(chunks);

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const sizes = sizesFromEnv(ctx.quick);
  const queryCount = ctx.quick ? 20 : 200;
  const warmup = ctx.quick ? 3 : 20;
  const throughputConcurrency = 4;
  const measurements: Measurement[] = [];
  const charts: Chart[] = [];
  const collections: Record<string, unknown>[] = [];
  const server = await startEmbeddingsServer({ dims: DIMENSIONS, seed: PROJECTION_SEED });
  const config = benchConfig(server.baseUrl, { ...process.env, DATABASE_URL: ctx.databaseUrl });
  const runtime = await openRuntime(config, createLogger(config), {
    migrate: true,
    jobs: 'none',
    redis: false,
  });
  const db = runtime.database.db;
  try {
    // Warm-up questions are held out (the next ones of the same seeded sample): the measured ones find
    // in the postings cache only what other questions put there, as on a live server.
    const sampled = await sampleQueries(path.join(DATASET, 'queries.jsonl'), queryCount + warmup, 42);
    const queries = sampled.slice(0, queryCount);
    const warmupQueries = sampled.slice(queryCount);
    for (const chunks of sizes) {
      const created: { workspace?: { id: string; slug: string } } = {};
      try {
        ctx.log(`ingesting ${chunks} chunks…`);
        const { target, report } = await ingest(
          config,
          {
            chunks,
            dataset: DATASET,
            seed: 42,
            ingestConcurrency: 4,
            log: (line) => {
              ctx.log(line);
            },
          },
          server,
          (w) => {
            created.workspace = w;
          },
          ctx.signal,
        );
        await vacuumAnalyze(db, ['documents', 'collections', ...(await indexTables(db))]);
        const counts = await chunkCount(db, target.collectionId);
        const { jobs: _jobs, ...ingestion } = report satisfies IngestionReport;
        collections.push({ targetChunks: chunks, ...counts, ingestion });
        ctx.log(`${counts.chunks} chunks in ${counts.documents} documents; measuring`);

        const ws = operatorContext(target.workspaceId);
        const size = label(chunks);
        const row = (mode: SearchMode, what: string, unit: string, better: 'higher' | 'lower') => {
          const m: Measurement = { name: `${size} ${mode} ${what}`, unit, better, values: [], group: size };
          measurements.push(m);
          return m;
        };
        const rows = Object.fromEntries(
          MODES.map((mode) => [
            mode,
            {
              p50: row(mode, 'p50', 'ms', 'lower'),
              p95: row(mode, 'p95', 'ms', 'lower'),
              p99: row(mode, 'p99', 'ms', 'lower'),
              qps: row(mode, 'q/s (1 client)', 'q/s', 'higher'),
              qps4: row(mode, `q/s (${throughputConcurrency} clients)`, 'q/s', 'higher'),
            },
          ]),
        ) as Record<SearchMode, Record<'p50' | 'p95' | 'p99' | 'qps' | 'qps4', Measurement>>;
        const cacheMb = runtime.config.searchPostingsCacheMb;
        const measure = async (mode: SearchMode, concurrency: number, list = queries) => {
          // A fresh service per measurement, as the API builds it: each question's embedding is part of
          // its latency; its postings cache (LARDER_SEARCH_POSTINGS_CACHE_MB) is warmed by the held-out
          // questions first, so that no round finds the lists of its own questions from a previous one.
          const service = new SearchService(db, runtime.embeddings, {
            exactBelow: runtime.config.searchExactBelow,
            postingsCache: cacheMb > 0 ? new PostingsCache(cacheMb * 1024 * 1024) : undefined,
          });
          const options = { mode, collectionId: target.collectionId, k: K, signal: ctx.signal };
          if (list !== warmupQueries)
            await runQueries(service, ws, warmupQueries, { ...options, concurrency: 1 });
          const result = await runQueries(service, ws, list, { ...options, concurrency });
          if (result.errors > 0)
            throw new Error(`${mode}: ${result.errors} errors (${result.firstError ?? ''})`);
          return result;
        };
        for (const mode of MODES) await measure(mode, 1, warmupQueries);
        await alternate(
          ctx.rounds,
          Object.fromEntries(
            MODES.map((mode) => [
              mode,
              async () => {
                const sequential = await measure(mode, 1);
                const loaded = await measure(mode, throughputConcurrency);
                const r = rows[mode];
                r.p50.values.push(sequential.latencyMs.p50);
                r.p95.values.push(sequential.latencyMs.p95);
                r.p99.values.push(sequential.latencyMs.p99);
                r.qps.values.push(sequential.qps);
                r.qps4.values.push(loaded.qps);
              },
            ]),
          ) as Record<SearchMode, () => Promise<void>>,
        );
        charts.push(
          {
            id: `latency-${size}`,
            title: `Search latency, ${size} chunks (1 client)`,
            unit: 'ms',
            measurements: MODES.flatMap((mode) => [rows[mode].p50.name, rows[mode].p95.name]),
          },
          {
            id: `throughput-${size}`,
            title: `Search throughput, ${size} chunks`,
            unit: 'q/s',
            measurements: MODES.flatMap((mode) => [rows[mode].qps.name, rows[mode].qps4.name]),
          },
        );
      } finally {
        if (created.workspace) await dropWorkspace(db, created.workspace.id);
      }
    }
  } finally {
    await runtime.close();
    await server.close();
  }
  return {
    suite: 'search',
    description:
      'Search latency (p50/p95/p99) and throughput per mode on the synthetic corpus ingested through the ' +
      'real pipeline, through SearchService.search (k = 10, default settings).',
    settings: {
      sizes,
      queries: queryCount,
      warmupPerMode: warmup,
      warmupQuestions: 'held out; run before every measurement, into that measurement’s fresh postings cache',
      postingsCacheMb: runtime.config.searchPostingsCacheMb,
      throughputConcurrency,
      dataset: 'synthetic (bigram model of covidqa), seed 42; covidqa questions, seed 42',
      embedding: {
        provider: 'openai' as EmbeddingProviderName,
        model: MODEL,
        dimensions: DIMENSIONS,
        server: 'local (bench/lib/embeddings-server.ts)',
      },
      searchExactBelow: runtime.config.searchExactBelow,
      collections,
    },
    measurements,
    ratios: [],
    charts,
    notes: [
      'One collection per size, ingested once; every round runs each mode once (order alternating) over ' +
        'the same questions, sequentially (latency, q/s with 1 client) and with 4 concurrent clients.',
      'Vector and hybrid latencies include embedding the question (a local HTTP round trip), as for a new ' +
        'question.',
      'The database holds only this collection while it is measured: a collection below ' +
        'LARDER_SEARCH_EXACT_BELOW (5,000) chunks is scanned exactly, larger ones go through the HNSW index.',
      'Sizes: BENCH_SEARCH_SIZES (default 10000; 100000 is opt-in: its ingestion takes ~21 min).',
    ],
  };
}

export const suite: Suite = {
  name: 'search',
  description: 'search latency p50/p95/p99 and q/s per mode (lexical, vector, hybrid) per corpus size',
  run,
};
