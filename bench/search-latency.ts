/**
 * Search latency (p50/p95/p99) and throughput on real PostgreSQL, per mode (lexical, vector, hybrid),
 * on a synthetic corpus of a chosen size, ingested through the real pipeline.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/larder_bench_a \
 *     npx tsx bench/search-latency.ts --chunks 10000 [--queries 200] [--concurrency 1,4] [--keep] \
 *       [--reuse <collection name|id>] [--json out.jsonl]
 *
 *   --chunks N              corpus size in chunks (10000, 100000, 1000000); the collection is `bench-N`
 *   --queries N             questions sampled (seeded) from the dataset's queries.jsonl (default 200)
 *   --concurrency 1,4       one measurement per level: 1 = sequential latency, >1 = throughput under load
 *   --modes lexical,vector,hybrid
 *   --warmup N              held-out queries run per mode before measuring, untimed (default 20)
 *   --keep                  keep the bench workspace (and so the collection) for later --reuse
 *   --reuse NAME|ID         skip generation and ingestion; measure an existing collection (never deleted)
 *   --json FILE             append one JSON line per (chunks, mode, concurrency) result
 *   --max-seconds S         stop each measurement after S seconds (what finished is reported)
 *   --seed N                corpus and query sample seed (default 42)
 *   --ingest-concurrency N  documents added at once, like `larder import --concurrency` (default 4)
 *   --dataset DIR           BEIR dataset the text model and questions come from (default ../shared/eval/covidqa)
 *   Job workers per queue: LARDER_JOB_CONCURRENCY (default 2). Statement timeout: DATABASE_STATEMENT_TIMEOUT_MS.
 *
 * What it does:
 *  1. Starts a local OpenAI-compatible embeddings server (bench/lib/embeddings-server.ts: 512-d seeded
 *     random projection of hashed term counts, so similar texts get similar vectors) and points the
 *     `openai` provider at it (LARDER_EMBEDDING_PROVIDER=openai, LARDER_OPENAI_EMBEDDING_*).
 *  2. Unless --reuse: creates a workspace and the collection `bench-<chunks>` (openai provider, 512 d:
 *     the HNSW-indexed size), generates the corpus deterministically from a bigram model of the
 *     dataset's corpus.jsonl (bench/lib/bigram.ts, corpus.ts) as BEIR JSONL in a temporary directory,
 *     and ingests it like `larder import --jsonl` with in-process workers (bench/lib/ingest.ts) until
 *     every document is ready. Nothing is inserted into chunk or index tables by this script.
 *  3. VACUUM ANALYZE of documents, collections, chunks, chunk_embeddings and every `chunk_…` or
 *     `collection_…` table; prints their sizes and the collection's chunk count.
 *  4. Per mode: warm-up, then per concurrency level every query through `SearchService.search` (k = 10,
 *     default settings), with a fresh service per measurement so each question's embedding (a local
 *     round trip, reported separately) is part of vector and hybrid latency, as for a new question.
 *  5. Deletes the bench workspace (cascading to its collection) unless --keep or --reuse.
 *
 * A 1M-chunk collection takes long to ingest: ingest once with --keep, then measure with --reuse after
 * each code change (pending migrations are applied on open, but chunks already stored are not
 * re-processed: a change of what ingestion writes needs a fresh ingestion).
 */
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { operatorContext } from '../src/cli/ingest.js';
import { loadConfig } from '../src/config.js';
import { CollectionService } from '../src/modules/collections/service.js';
import { PostingsCache } from '../src/modules/search/postings-cache.js';
import { type SearchMode, type SearchPhase, SearchService } from '../src/modules/search/service.js';
import { percentile } from '../src/modules/search/eval/run.js';
import type { EmbeddingProviderName } from '../src/ai/embeddings/index.js';
import { createLogger } from '../src/platform/logger.js';
import { openRuntime, type Runtime } from '../src/runtime.js';
import { BigramModel } from './lib/bigram.js';
import { type CorpusStats, DEFAULT_CORPUS_OPTIONS, sampleQueries, writeCorpus } from './lib/corpus.js';
import { startEmbeddingsServer } from './lib/embeddings-server.js';
import { bytes, duration, int, table } from './lib/format.js';
import { ingestJsonl, type IngestResult } from './lib/ingest.js';
import { type RunResult, runQueries } from './lib/measure.js';
import {
  chunkCount,
  indexTables,
  type JobTiming,
  jobTimings,
  serverInfo,
  type TableSize,
  tableSizes,
  vacuumAnalyze,
} from './lib/pg.js';
import { compactCollection, type CompactionResult } from '../src/modules/search/compaction.js';

export const MODEL = 'larder-bench-hash-512';
export const DIMENSIONS = 512;
/** Fixed, not --seed: a reused collection's vectors must match the server's whatever the corpus seed. */
export const PROJECTION_SEED = 0x1a2de5;
export const K = 10;
export const MODES: readonly SearchMode[] = ['lexical', 'vector', 'hybrid'];

/**
 * The configuration the search benchmarks run with: the `openai` provider pointed at the local
 * embeddings server (bench/lib/embeddings-server.ts), logs at `warn`.
 */
export function benchConfig(embeddingsBaseUrl: string, env: NodeJS.ProcessEnv = process.env) {
  return loadConfig({
    ...env,
    LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
    LARDER_EMBEDDING_PROVIDER: 'openai',
    LARDER_OPENAI_EMBEDDING_BASE_URL: embeddingsBaseUrl,
    LARDER_OPENAI_EMBEDDING_MODEL: MODEL,
    LARDER_OPENAI_EMBEDDING_DIMENSIONS: String(DIMENSIONS),
    LARDER_OPENAI_EMBEDDING_API_KEY: 'larder-bench-local',
  });
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function usage(message?: string): never {
  if (message) log(`search-latency: ${message}`);
  log(
    'usage: DATABASE_URL=… npx tsx bench/search-latency.ts --chunks N [--queries 200] [--concurrency 1,4]\n' +
      '         [--modes lexical,vector,hybrid] [--warmup 20] [--keep] [--reuse NAME|ID] [--json FILE]\n' +
      '         [--max-seconds S] [--seed 42] [--ingest-concurrency 4] [--dataset DIR]',
  );
  process.exit(message ? 1 : 0);
}

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer, got ${value}`);
  return n;
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        chunks: { type: 'string' },
        queries: { type: 'string' },
        concurrency: { type: 'string' },
        modes: { type: 'string' },
        warmup: { type: 'string' },
        keep: { type: 'boolean' },
        reuse: { type: 'string' },
        json: { type: 'string' },
        'max-seconds': { type: 'string' },
        seed: { type: 'string' },
        'ingest-concurrency': { type: 'string' },
        dataset: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
  if (parsed.help) usage();
  if (parsed.reuse === undefined && parsed.chunks === undefined) usage('--chunks or --reuse is required');
  const modes = (parsed.modes ?? MODES.join(',')).split(',').map((m) => m.trim());
  for (const m of modes)
    if (!(MODES as readonly string[]).includes(m)) usage(`unknown mode ${m} (lexical, vector, hybrid)`);
  const concurrency = (parsed.concurrency ?? '1,4')
    .split(',')
    .map((c) => positiveInt(c.trim(), 'concurrency', 1));
  const maxSeconds = parsed['max-seconds'] === undefined ? undefined : Number(parsed['max-seconds']);
  if (maxSeconds !== undefined && !(maxSeconds > 0)) usage('--max-seconds must be a positive number');
  return {
    chunks: parsed.chunks === undefined ? undefined : positiveInt(parsed.chunks, 'chunks', 1),
    queries: positiveInt(parsed.queries, 'queries', 200),
    concurrency,
    modes: modes as SearchMode[],
    warmup: parsed.warmup === '0' ? 0 : positiveInt(parsed.warmup, 'warmup', 20),
    keep: parsed.keep === true,
    reuse: parsed.reuse,
    json: parsed.json,
    maxSeconds,
    seed: positiveInt(parsed.seed, 'seed', DEFAULT_CORPUS_OPTIONS.seed),
    ingestConcurrency: positiveInt(parsed['ingest-concurrency'], 'ingest-concurrency', 4),
    dataset: path.resolve(parsed.dataset ?? '../shared/eval/covidqa'),
  };
}

type Options = ReturnType<typeof parseOptions>;

function gitCommit(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: null, dirty: null };
  }
}

export interface Target {
  collectionId: string;
  collectionName: string;
  workspaceId: string;
  workspaceSlug: string;
  embedding: { provider: string; model: string; dimensions: number | null } | null;
}

async function findCollection(runtime: Runtime, wanted: string): Promise<Target> {
  const { rows } = await sql<{
    id: string;
    name: string;
    workspace_id: string;
    slug: string;
    embedding_provider: string | null;
    embedding_model: string | null;
    embedding_dimensions: number | null;
  }>`
    select c.id, c.name, c.workspace_id, w.slug, c.embedding_provider, c.embedding_model, c.embedding_dimensions
    from collections c join workspaces w on w.id = c.workspace_id
    where c.deleted_at is null and w.deleted_at is null and (c.name = ${wanted} or c.id::text = ${wanted})
    order by c.created_at desc
  `.execute(runtime.database.db);
  const [row] = rows;
  if (!row) throw new Error(`--reuse ${wanted}: no such collection in this database`);
  if (rows.length > 1)
    log(
      `Note: ${rows.length} collections are named "${wanted}"; using the newest (${row.id}, workspace ${row.slug})`,
    );
  return {
    collectionId: row.id,
    collectionName: row.name,
    workspaceId: row.workspace_id,
    workspaceSlug: row.slug,
    embedding:
      row.embedding_provider && row.embedding_model
        ? {
            provider: row.embedding_provider,
            model: row.embedding_model,
            dimensions: row.embedding_dimensions,
          }
        : null,
  };
}

export interface IngestionReport extends Omit<IngestResult, 'timeline'> {
  corpus: CorpusStats & {
    generationSeconds: number;
    seed: number;
    wordsPerChunk: number;
    model: BigramModel['stats'];
  };
  lexicalChunksPerSecond: number;
  jobs: JobTiming[];
  embeddingServer: { requests: number; inputs: number; busySeconds: number };
  jobConcurrency: number;
  addConcurrency: number;
  /** The last compaction of the postings lists, run to completion after ingestion (before measuring). */
  compaction: CompactionResult & { seconds: number };
}

/**
 * Generates the corpus of `options.chunks` chunks and ingests it into a new workspace and collection
 * `bench-<chunks>` (openai provider → the local server) with in-process workers; `created` is called
 * as soon as the workspace exists (for the caller's clean-up).
 */
export async function ingest(
  config: ReturnType<typeof loadConfig>,
  options: Pick<Options, 'dataset' | 'seed' | 'ingestConcurrency'> & {
    chunks: number;
    log?: (line: string) => void;
  },
  server: Awaited<ReturnType<typeof startEmbeddingsServer>>,
  created: (workspace: { id: string; slug: string }) => void,
  signal: AbortSignal,
): Promise<{ target: Target; report: IngestionReport }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const logger = createLogger(config);
  const runtime = await openRuntime(config, logger, {
    migrate: true,
    jobs: 'work',
    redis: false,
    pollingIntervalSeconds: 0.5,
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'larder-bench-corpus-'));
  try {
    const db = runtime.database.db;
    const stamp = Date.now().toString(36);
    const workspace = await db
      .insertInto('workspaces')
      .values({ name: `Search benchmark ${options.chunks}`, slug: `bench-${options.chunks}-${stamp}` })
      .returning(['id', 'slug'])
      .executeTakeFirstOrThrow();
    created(workspace);
    const ws = operatorContext(workspace.id);
    const collections = new CollectionService(db, {
      embeddings: runtime.embeddings,
      jobs: runtime.jobs,
      defaultProvider: 'openai',
    });
    const collection = await collections.create(
      ws,
      null,
      { name: `bench-${options.chunks}`, embedding: { provider: 'openai' as EmbeddingProviderName } },
      { actor: { type: 'system' }, userAgent: 'larder bench/search-latency' },
    );
    log(
      `Created workspace ${workspace.slug}, collection ${collection.name} (${collection.id}; ` +
        `${collection.embedding_provider ?? 'no'} ${collection.embedding_model ?? ''} ${collection.embedding_dimensions ?? ''} d)`,
    );

    const genStarted = performance.now();
    const model = await BigramModel.fromBeirCorpus(path.join(options.dataset, 'corpus.jsonl'));
    const file = path.join(dir, 'corpus.jsonl');
    const corpusOptions = { ...DEFAULT_CORPUS_OPTIONS, targetChunks: options.chunks, seed: options.seed };
    const corpus = await writeCorpus(file, model, corpusOptions);
    const generationSeconds = (performance.now() - genStarted) / 1000;
    log(
      `Generated ${int(corpus.documents)} documents (${int(corpus.words)} words, ${bytes(corpus.bytes)}, ` +
        `${int(corpus.intendedChunks)} intended chunks) in ${duration(generationSeconds)} from a bigram model ` +
        `(${int(model.stats.tokens)} tokens, ${int(model.stats.vocabulary)} words, ${int(model.stats.bigrams)} bigrams); ` +
        `ingesting with ${options.ingestConcurrency} adders and ${config.jobConcurrency} workers per queue…`,
    );

    const result = await ingestJsonl({
      runtime,
      ws,
      collectionId: collection.id,
      file,
      totalDocuments: corpus.documents,
      concurrency: options.ingestConcurrency,
      signal,
      log,
    });
    const jobs = await jobTimings(db, workspace.id);
    // Search is measured in the steady state: whatever the compaction jobs left, merged now.
    const compactionStarted = performance.now();
    const compaction = await compactCollection(db, workspace.id, collection.id, { maxBatches: Infinity });
    const compactionSeconds = (performance.now() - compactionStarted) / 1000;
    log(
      `Final compaction: ${int(compaction.listsMerged)} lists merged into ${int(compaction.listsWritten)} in ${duration(compactionSeconds)}`,
    );
    const { timeline: _timeline, ...rest } = result;
    return {
      target: {
        collectionId: collection.id,
        collectionName: collection.name,
        workspaceId: workspace.id,
        workspaceSlug: workspace.slug,
        embedding: collection.embedding_model
          ? {
              provider: collection.embedding_provider ?? 'openai',
              model: collection.embedding_model,
              dimensions: collection.embedding_dimensions,
            }
          : null,
      },
      report: {
        ...rest,
        corpus: {
          ...corpus,
          generationSeconds,
          seed: options.seed,
          wordsPerChunk: corpusOptions.wordsPerChunk,
          model: model.stats,
        },
        lexicalChunksPerSecond: result.searchableSeconds > 0 ? result.chunks / result.searchableSeconds : 0,
        jobs,
        embeddingServer: {
          requests: server.stats.requests,
          inputs: server.stats.inputs,
          busySeconds: server.stats.busyMs / 1000,
        },
        jobConcurrency: config.jobConcurrency,
        compaction: { ...compaction, seconds: compactionSeconds },
        addConcurrency: options.ingestConcurrency,
      },
    };
  } finally {
    await runtime.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function printIngestion(r: IngestionReport) {
  const out = [
    `Ingestion: ${int(r.documents)} documents → ${int(r.chunks)} chunks in ${duration(r.readySeconds)} ` +
      `(${r.chunksPerSecond.toFixed(1)} chunks/s end to end; lexically indexed after ${duration(r.searchableSeconds)}, ` +
      `${r.lexicalChunksPerSecond.toFixed(1)} chunks/s; all added after ${duration(r.addSeconds)}); ` +
      `${r.failedDocuments} failed`,
    `  corpus generation (not counted): ${duration(r.corpus.generationSeconds)}, ${bytes(r.corpus.bytes)}; ` +
      `${r.addConcurrency} adders, ${r.jobConcurrency} workers per queue; embeddings server: ` +
      `${int(r.embeddingServer.requests)} requests, ${int(r.embeddingServer.inputs)} texts, ` +
      `${r.embeddingServer.busySeconds.toFixed(1)} s busy`,
  ];
  for (const f of r.failures) out.push(`  failed: ${f}`);
  if (r.jobs.length > 0) {
    out.push(
      table(
        ['job', 'completed', 'failed/retried', 'busy', 'mean ms', 'p95 ms', 'max ms'],
        r.jobs.map((j) => [
          j.queue,
          int(j.completed),
          int(j.failedOrRetried),
          duration(j.busySeconds),
          j.meanMs.toFixed(0),
          j.p95Ms.toFixed(0),
          j.maxMs.toFixed(0),
        ]),
      ),
    );
  }
  return out.join('\n');
}

function printSizes(sizes: TableSize[]) {
  const main = table(
    ['table', 'rows (est.)', 'total', 'heap', 'toast', 'indexes'],
    sizes.map((s) => [
      s.table,
      int(s.rows),
      bytes(s.totalBytes),
      bytes(s.heapBytes),
      bytes(s.toastBytes),
      bytes(s.indexBytes),
    ]),
  );
  const indexes = table(
    ['index', 'table', 'size'],
    sizes.flatMap((s) => s.indexes.filter((i) => i.bytes > 0).map((i) => [i.name, s.table, bytes(i.bytes)])),
  );
  return `Table sizes (whole tables: every collection in this database)\n${main}\n\n${indexes}`;
}

async function main() {
  const options = parseOptions();
  if (!process.env.DATABASE_URL)
    usage('set DATABASE_URL to a PostgreSQL database of your own (it is migrated on open)');
  const controller = new AbortController();
  // A function, so narrowing does not assume it stays false across awaits.
  const aborted = () => controller.signal.aborted;
  let interrupts = 0;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    log('Interrupted: stopping and cleaning up (Ctrl-C again to exit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const server = await startEmbeddingsServer({ dims: DIMENSIONS, seed: PROJECTION_SEED });
  const config = benchConfig(server.baseUrl);
  const logger = createLogger(config);
  // Migrates, then serves the measurement and the clean-up; ingestion has its own runtime with workers.
  const runtime = await openRuntime(config, logger, { migrate: true, jobs: 'none', redis: false });
  const db = runtime.database.db;
  // An object: assigned in a callback, so narrowing must not assume it stays undefined.
  const state: { created?: { id: string; slug: string } } = {};
  try {
    let target: Target;
    let ingestion: IngestionReport | null = null;
    if (options.reuse !== undefined) {
      target = await findCollection(runtime, options.reuse);
      log(
        `Reusing collection ${target.collectionName} (${target.collectionId}) in workspace ${target.workspaceSlug}`,
      );
      if (target.embedding?.model !== MODEL)
        log(
          `Note: its embedding model is ${target.embedding?.model ?? 'none'}, not this benchmark's ${MODEL}`,
        );
    } else {
      const chunks = options.chunks ?? 0;
      const result = await ingest(
        config,
        { ...options, chunks },
        server,
        (w) => {
          state.created = w;
        },
        controller.signal,
      );
      target = result.target;
      ingestion = result.report;
      log(printIngestion(ingestion));
    }
    if (aborted()) return;

    const tables = ['documents', 'collections', ...(await indexTables(db))];
    const vacuumStarted = performance.now();
    await vacuumAnalyze(db, tables);
    const vacuumSeconds = (performance.now() - vacuumStarted) / 1000;
    const sizes = await tableSizes(
      db,
      tables.filter((t) => t !== 'documents' && t !== 'collections'),
    );
    const counts = await chunkCount(db, target.collectionId);
    const info = await serverInfo(db);
    const git = gitCommit();
    log(`VACUUM ANALYZE of ${tables.join(', ')}: ${duration(vacuumSeconds)}`);

    // The warm-up questions are held out (the next ones of the same seeded sample), so the measured
    // questions find in the postings cache only what other questions put there, as on a live server.
    const sampled = await sampleQueries(
      path.join(options.dataset, 'queries.jsonl'),
      options.queries + options.warmup,
      options.seed,
    );
    const queries = sampled.slice(0, options.queries);
    const warmupQueries = sampled.slice(options.queries);
    const ws = operatorContext(target.workspaceId);

    // The query-embedding round trip alone (it is inside every vector and hybrid latency below).
    let embedMs: { p50: number; p95: number } | null = null;
    const provider = target.embedding
      ? runtime.embeddings.get({
          provider: target.embedding.provider as EmbeddingProviderName,
          model: target.embedding.model,
        })
      : undefined;
    if (provider) {
      const times: number[] = [];
      for (const q of queries.slice(0, 50)) {
        const t0 = performance.now();
        await provider.embedQuery(q.text);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      embedMs = {
        p50: Math.round(percentile(times, 0.5) * 10) / 10,
        p95: Math.round(percentile(times, 0.95) * 10) / 10,
      };
    }

    const results: RunResult[] = [];
    for (const mode of options.modes) {
      if (aborted()) break;
      // The service as the API builds it: LARDER_SEARCH_EXACT_BELOW and LARDER_SEARCH_POSTINGS_CACHE_MB
      // apply; each mode starts with an empty postings cache, shared by its warm-up and measurement.
      const cacheMb = runtime.config.searchPostingsCacheMb;
      const searchOptions = {
        exactBelow: runtime.config.searchExactBelow,
        postingsCache: cacheMb > 0 ? new PostingsCache(cacheMb * 1024 * 1024) : undefined,
      };
      if (warmupQueries.length > 0) {
        log(`Warm-up (${mode}): ${warmupQueries.length} held-out queries`);
        await runQueries(new SearchService(db, runtime.embeddings, searchOptions), ws, warmupQueries, {
          mode,
          collectionId: target.collectionId,
          k: K,
          concurrency: 1,
          signal: controller.signal,
        });
      }
      for (const concurrency of options.concurrency) {
        if (aborted()) break;
        log(`Measuring ${mode} at concurrency ${concurrency}: ${queries.length} queries`);
        // Where the time goes: each phase's own duration (they overlap: see SearchService).
        const phaseTimes = new Map<SearchPhase, number[]>();
        const onPhase = (phase: SearchPhase, ms: number) => {
          phaseTimes.set(phase, [...(phaseTimes.get(phase) ?? []), ms]);
        };
        const measured = await runQueries(
          new SearchService(db, runtime.embeddings, { ...searchOptions, onPhase }),
          ws,
          queries,
          {
            mode,
            collectionId: target.collectionId,
            k: K,
            concurrency,
            maxSeconds: options.maxSeconds,
            signal: controller.signal,
          },
        );
        const phasesMs = Object.fromEntries(
          [...phaseTimes].map(([phase, times]) => {
            times.sort((a, b) => a - b);
            const at = (q: number) => Math.round(percentile(times, q) * 10) / 10;
            return [phase, { p50: at(0.5), p95: at(0.95) }];
          }),
        );
        const result = { ...measured, phasesMs };
        results.push(result);
        log(
          `  ${mode} ×${concurrency}: p50 ${result.latencyMs.p50} ms, p95 ${result.latencyMs.p95} ms, ` +
            `p99 ${result.latencyMs.p99} ms, ${result.qps} q/s` +
            (result.errors > 0 ? `, ${result.errors} errors (${result.firstError ?? ''})` : '') +
            `; phases p50/p95 ms: ${Object.entries(phasesMs)
              .map(([phase, t]) => `${phase} ${t.p50}/${t.p95}`)
              .join(', ')}`,
        );
        if (options.json) {
          const line = {
            bench: 'search-latency',
            at: new Date().toISOString(),
            ...git,
            postgres: info.postgres,
            pgvector: info.pgvector,
            node: process.version,
            targetChunks: options.chunks ?? null,
            chunks: counts.chunks,
            documents: counts.documents,
            collection: { id: target.collectionId, name: target.collectionName },
            embedding: target.embedding,
            k: K,
            ...result,
            queryEmbeddingMs: embedMs,
            warmup: options.warmup,
            postingsCacheMb: runtime.config.searchPostingsCacheMb,
            // What the cache held after this mode's warm-up and measurement.
            postingsCache: searchOptions.postingsCache
              ? { lists: searchOptions.postingsCache.size, bytes: searchOptions.postingsCache.bytes }
              : null,
            querySeed: options.seed,
            sizes: sizes.map(({ indexes: _indexes, ...s }) => s),
            ingestion,
          };
          await appendFile(options.json, `${JSON.stringify(line)}\n`);
        }
      }
    }

    const out: string[] = [
      `Search latency — collection ${target.collectionName} (${target.collectionId}), workspace ${target.workspaceSlug}: ` +
        `${int(counts.chunks)} chunks, ${int(counts.documents)} documents`,
      `PostgreSQL ${info.postgres}, pgvector ${info.pgvector ?? '?'}, Node ${process.version}, commit ${git.commit ?? '?'}` +
        `${git.dirty ? ' (uncommitted changes)' : ''}; SearchService.search, k = ${K}, default settings; ` +
        `${queries.length} questions (${path.basename(options.dataset)}, seed ${options.seed}), warm-up ${options.warmup} per mode, ` +
        `postings cache ${runtime.config.searchPostingsCacheMb} MiB`,
      `Embeddings: ${target.embedding ? `${target.embedding.provider} ${target.embedding.model} (${target.embedding.dimensions ?? '?'} d)` : 'none'}` +
        (embedMs
          ? `; query embedding round trip (included in vector/hybrid): p50 ${embedMs.p50.toFixed(1)} ms, p95 ${embedMs.p95.toFixed(1)} ms`
          : ''),
      '',
    ];
    if (ingestion) out.push(printIngestion(ingestion), '');
    out.push(printSizes(sizes), '');
    out.push(
      table(
        [
          'mode',
          'conc',
          'queries',
          'errors',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'mean ms',
          'max ms',
          'q/s',
          'hits',
        ],
        results.map((r) => [
          r.mode,
          String(r.concurrency),
          `${r.queries}${r.truncated ? '*' : ''}`,
          String(r.errors),
          r.latencyMs.p50.toFixed(1),
          r.latencyMs.p95.toFixed(1),
          r.latencyMs.p99.toFixed(1),
          r.latencyMs.mean.toFixed(1),
          r.latencyMs.max.toFixed(1),
          r.qps.toFixed(1),
          r.meanHits.toFixed(1),
        ]),
      ),
    );
    if (results.some((r) => r.truncated)) out.push('* stopped early (--max-seconds or interrupt)');
    if (results.some((r) => r.errors > 0))
      out.push(
        ...results
          .filter((r) => r.firstError)
          .map((r) => `errors in ${r.mode} ×${r.concurrency}: ${r.firstError ?? ''}`),
      );
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    const created = state.created;
    if (created) {
      if (options.keep)
        log(`Kept workspace ${created.slug}; measure again with --reuse bench-${options.chunks ?? ''}`);
      else {
        const started = performance.now();
        await db.deleteFrom('workspaces').where('id', '=', created.id).execute();
        log(`Deleted workspace ${created.slug} in ${duration((performance.now() - started) / 1000)}`);
      }
    }
    await runtime.close();
    await server.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// Run as a script only (the bench suites import the functions above).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  try {
    await main();
  } catch (error) {
    log(`search-latency: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  }
}
