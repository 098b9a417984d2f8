/**
 * `ingestion`: how fast documents become searchable, and what the pipeline costs on top of the
 * embedder.
 *
 *  - raw embedder throughput: the `openai` provider pointed at the local embeddings server
 *    (bench/lib/embeddings-server.ts), called directly with passages of chunk size in its configured
 *    batches: the ceiling of the embedding run below (same provider, same server, same process);
 *    also the bundled local model (USE lite) alone;
 *  - end-to-end ingestion (bench/lib/ingest.ts: DocumentService + in-process job workers, as
 *    `larder import` in embedded mode) of the synthetic corpus, lexical only, with embeddings from
 *    the local server, and with the default offline model (USE lite);
 *  - the pipeline-overhead ratios (end-to-end chunks/s with embeddings ÷ the same embedder's raw
 *    passages/s: local server, and the offline model) and lexical chunks/s against the 2,000
 *    chunks/s target;
 *  - the peak RSS of a `larder worker` ingesting one big Markdown file (bench/ingest-memory.ts): the
 *    build (`npm run build`, run by the suite), as a deployment runs it.
 *
 * Sizes (env overrides): BENCH_INGEST_LEXICAL_CHUNKS, BENCH_INGEST_EMBEDDED_CHUNKS,
 * BENCH_INGEST_MEMORY_MB, BENCH_INGEST_LOCAL_PASSAGES (also the chunks of the offline model's
 * end-to-end run); BENCH_INGEST_MEMORY_ENTRY=bin/larder.js measures the worker run from the sources
 * through tsx (as `npm start` does) instead of the build.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { operatorContext } from '../../src/cli/ingest.js';
import type { EmbeddingProviderName } from '../../src/ai/embeddings/index.js';
import { CollectionService } from '../../src/modules/collections/service.js';
import { embeddingInput } from '../../src/modules/documents/pipeline.js';
import { createLogger } from '../../src/platform/logger.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { measureIngestMemory, withScratchDatabase } from '../ingest-memory.js';
import { BigramModel } from '../lib/bigram.js';
import { type CorpusStats, DEFAULT_CORPUS_OPTIONS, generateDocuments, writeCorpus } from '../lib/corpus.js';
import { startEmbeddingsServer } from '../lib/embeddings-server.js';
import {
  alternate,
  type Measurement,
  ratio,
  type Suite,
  type SuiteContext,
  type SuiteResult,
} from '../lib/harness.js';
import { ingestJsonl } from '../lib/ingest.js';
import { dropWorkspace } from '../lib/pg.js';
import { benchConfig, DIMENSIONS, MODEL, PROJECTION_SEED } from '../search-latency.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATASET = path.resolve(repo, '../shared/eval/covidqa');
const LEXICAL_TARGET_CHUNKS_PER_SECOND = 2000;
const MEMORY_TARGET_MIB = 400;
const BUILT_ENTRY = 'dist/cli/main.js';
const execFileAsync = promisify(execFile);
type Kind = 'lexical' | 'embedded' | 'local';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** Passages of about one chunk each (the corpus's words per intended chunk), from its documents. */
function passages(model: BigramModel, count: number, wordsPerChunk: number): string[] {
  const out: string[] = [];
  const docs = generateDocuments(model, { ...DEFAULT_CORPUS_OPTIONS, targetChunks: 2 * count, seed: 7 });
  for (const doc of docs) {
    const words = doc.text.split(/\s+/);
    for (let i = 0; i + wordsPerChunk <= words.length && out.length < count; i += wordsPerChunk)
      out.push(words.slice(i, i + wordsPerChunk).join(' '));
    if (out.length >= count) break;
  }
  return out;
}

async function embedRate(
  runtime: Runtime,
  provider: EmbeddingProviderName,
  model: string | undefined,
  texts: string[],
): Promise<number> {
  const embedder = runtime.embeddings.get({ provider, ...(model === undefined ? {} : { model }) });
  if (!embedder) throw new Error(`no ${provider} embedding provider`);
  const started = performance.now();
  const vectors = await embedder.embedDocuments(texts);
  const seconds = (performance.now() - started) / 1000;
  if (vectors.length !== texts.length) throw new Error(`${provider}: ${vectors.length} vectors`);
  return texts.length / seconds;
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const sizes = {
    lexicalChunks: envInt('BENCH_INGEST_LEXICAL_CHUNKS', ctx.quick ? 200 : 5000),
    embeddedChunks: envInt('BENCH_INGEST_EMBEDDED_CHUNKS', ctx.quick ? 200 : 2000),
    memoryMegabytes: envInt('BENCH_INGEST_MEMORY_MB', ctx.quick ? 2 : 200),
    localPassages: envInt('BENCH_INGEST_LOCAL_PASSAGES', ctx.quick ? 8 : 100),
  };
  // The worker the memory measurement spawns: the build, as deployed (`npm run build`, run here so it
  // is never stale), unless BENCH_INGEST_MEMORY_ENTRY names another entry (bin/larder.js: the sources
  // through tsx, as `npm start` runs them; its loader and compiled modules add ~100 MiB).
  const entry = process.env.BENCH_INGEST_MEMORY_ENTRY;
  const memoryEntry = path.resolve(repo, entry === undefined || entry === '' ? BUILT_ENTRY : entry);
  if (memoryEntry === path.resolve(repo, BUILT_ENTRY)) {
    ctx.log('building the worker (npm run build)');
    await execFileAsync('npm', ['run', '--silent', 'build'], { cwd: repo });
  }
  const server = await startEmbeddingsServer({ dims: DIMENSIONS, seed: PROJECTION_SEED });
  const config = benchConfig(server.baseUrl, { ...process.env, DATABASE_URL: ctx.databaseUrl });
  // No job workers here: the memory measurement's document must go to its own `larder worker`. The
  // end-to-end runs open a runtime with in-process workers for the time of their ingestion.
  const runtime = await openRuntime(config, createLogger(config), {
    migrate: true,
    jobs: 'none',
    redis: false,
  });
  const db = runtime.database.db;
  const dir = path.join(ctx.tmpDir, 'ingestion');
  await mkdir(dir, { recursive: true });
  const m = (name: string, unit: string, group: string): Measurement => ({
    name,
    unit,
    better: 'higher',
    values: [],
    group,
  });
  const raw = m('raw embedder: openai provider → local server', 'passages/s', 'embedder');
  const rawLocal = m('raw embedder: local model (USE lite)', 'passages/s', 'embedder');
  const rawLocalSame = m("raw embedder: local model on the run's chunk inputs", 'passages/s', 'embedder');
  const lexDocs = m('end to end, lexical only (documents/s)', 'documents/s', 'end to end');
  const lexChunks = m('end to end, lexical only', 'chunks/s', 'end to end');
  const embDocs = m('end to end, with embeddings (documents/s)', 'documents/s', 'end to end');
  const embChunks = m('end to end, with embeddings', 'chunks/s', 'end to end');
  const localChunks = m('end to end, with the local model (USE lite)', 'chunks/s', 'end to end');
  const rss: Measurement = {
    name: `worker peak RSS, ${sizes.memoryMegabytes} MB Markdown`,
    unit: 'MiB',
    better: 'lower',
    values: [],
    group: 'memory',
  };
  const memoryChunks = m(`worker, ${sizes.memoryMegabytes} MB Markdown`, 'chunks/s', 'memory');
  const details: Record<string, unknown>[] = [];

  try {
    const model = await BigramModel.fromBeirCorpus(path.join(DATASET, 'corpus.jsonl'));
    const corpora: Record<Kind, { file: string; stats: CorpusStats }> = {
      lexical: { file: path.join(dir, 'lexical.jsonl'), stats: undefined as unknown as CorpusStats },
      embedded: { file: path.join(dir, 'embedded.jsonl'), stats: undefined as unknown as CorpusStats },
      local: { file: path.join(dir, 'local.jsonl'), stats: undefined as unknown as CorpusStats },
    };
    for (const [kind, chunks] of [
      ['lexical', sizes.lexicalChunks],
      ['embedded', sizes.embeddedChunks],
      ['local', sizes.localPassages],
    ] as const)
      corpora[kind].stats = await writeCorpus(corpora[kind].file, model, {
        ...DEFAULT_CORPUS_OPTIONS,
        targetChunks: chunks,
      });
    const texts = passages(model, sizes.embeddedChunks, DEFAULT_CORPUS_OPTIONS.wordsPerChunk);
    const localTexts = texts.slice(0, sizes.localPassages);
    ctx.log(
      `corpora: ${corpora.lexical.stats.documents} documents (lexical), ${corpora.embedded.stats.documents} ` +
        `(embedded); ${texts.length} passages for the raw embedder`,
    );
    // Untimed warm-ups: HTTP keep-alive and projection rows; the local model's load.
    await embedRate(runtime, 'openai', MODEL, texts.slice(0, 64));
    await embedRate(runtime, 'local', undefined, localTexts.slice(0, 2));

    // The local model's own rate on exactly what its end-to-end round embedded: the chunks' embedding
    // inputs (heading path + text, with the chunker's overlap), so the ratio measures the pipeline and
    // not the difference between the chunks and the raw passages (~9% longer, mostly the overlap).
    let localInputs: string[] = [];
    const endToEnd = async (kind: Kind, round: number) => {
      const stamp = `${kind}-${round}-${Date.now().toString(36)}`;
      const workspace = await db
        .insertInto('workspaces')
        .values({ name: `Ingestion benchmark ${stamp}`, slug: `bench-ingest-${stamp}` })
        .returning(['id', 'slug'])
        .executeTakeFirstOrThrow();
      try {
        const ws = operatorContext(workspace.id);
        const collections = new CollectionService(db, {
          embeddings: runtime.embeddings,
          jobs: runtime.jobs,
          defaultProvider: 'openai',
        });
        const collection = await collections.create(
          ws,
          null,
          {
            name: `bench-ingest-${kind}`,
            embedding:
              kind === 'lexical'
                ? null
                : { provider: (kind === 'local' ? 'local' : 'openai') as EmbeddingProviderName },
          },
          { actor: { type: 'system' }, userAgent: 'larder bench/ingestion' },
        );
        const corpus = corpora[kind];
        const workers = await openRuntime(config, createLogger(config), {
          migrate: false,
          jobs: 'work',
          redis: false,
          pollingIntervalSeconds: 0.5,
        });
        // Untimed: the offline model loads into the workers' threads on first use (seconds), a
        // start-up cost, not throughput.
        if (kind === 'local')
          await workers.embeddings.get({ provider: 'local' })?.embedDocuments(['warm-up']);
        const result = await ingestJsonl({
          runtime: workers,
          ws,
          collectionId: collection.id,
          file: corpus.file,
          totalDocuments: corpus.stats.documents,
          concurrency: 4,
          signal: ctx.signal,
          log: (line) => {
            ctx.log(line);
          },
        }).finally(() => workers.close());
        if (result.failedDocuments > 0)
          throw new Error(`${kind}: ${result.failedDocuments} documents failed: ${result.failures[0] ?? ''}`);
        const docsPerSecond = result.documents / result.readySeconds;
        if (kind === 'lexical') lexDocs.values.push(docsPerSecond);
        if (kind === 'embedded') embDocs.values.push(docsPerSecond);
        ({ lexical: lexChunks, embedded: embChunks, local: localChunks })[kind].values.push(
          result.chunksPerSecond,
        );
        if (kind === 'local') {
          const chunks = await db
            .selectFrom('chunks')
            .select(['heading_path', 'text'])
            .where('collection_id', '=', collection.id)
            .orderBy('document_id')
            .orderBy('ordinal')
            .execute();
          localInputs = chunks.map((c) => embeddingInput(c.heading_path, c.text));
        }
        const { timeline: _timeline, failures: _failures, ...rest } = result;
        details.push({ kind, round, ...rest });
        ctx.log(
          `round ${round + 1} ${kind}: ${result.documents} documents, ${result.chunks} chunks in ` +
            `${result.readySeconds.toFixed(1)} s (${result.chunksPerSecond.toFixed(0)} chunks/s)`,
        );
      } finally {
        await dropWorkspace(db, workspace.id);
      }
    };

    await alternate(ctx.rounds, {
      raw: async () => {
        raw.values.push(await embedRate(runtime, 'openai', MODEL, texts));
      },
      embedded: (round) => endToEnd('embedded', round),
      lexical: (round) => endToEnd('lexical', round),
      local: async (round) => {
        const rate = await embedRate(runtime, 'local', undefined, localTexts);
        rawLocal.values.push(rate);
        ctx.log(`round ${round + 1} raw local model: ${rate.toFixed(1)} passages/s`);
        await endToEnd('local', round);
        const same = await embedRate(runtime, 'local', undefined, localInputs);
        rawLocalSame.values.push(same);
        ctx.log(
          `round ${round + 1} raw local model on the round's ${localInputs.length} chunk inputs: ${same.toFixed(1)}/s`,
        );
      },
      memory: async () => {
        const result = await withScratchDatabase(ctx.databaseUrl, (databaseUrl) =>
          measureIngestMemory({
            databaseUrl,
            megabytes: sizes.memoryMegabytes,
            entry: memoryEntry,
            dir,
            signal: ctx.signal,
          }),
        );
        if (result.status !== 'ready') throw new Error(`memory: document ${result.status}: ${result.error}`);
        rss.values.push(result.workerPeakRssMiB);
        memoryChunks.values.push(result.chunksPerSecond);
        details.push({ kind: 'memory', ...result });
        ctx.log(
          `memory: ${result.megabytes} MiB → ${result.chunks} chunks, peak RSS ${result.workerPeakRssMiB} MiB`,
        );
      },
    });
  } finally {
    await runtime.close();
    await server.close();
  }

  const memoryTarget: Measurement = {
    name: `target: peak RSS (${MEMORY_TARGET_MIB} MiB)`,
    unit: 'MiB',
    better: 'lower',
    values: rss.values.map(() => MEMORY_TARGET_MIB),
  };
  const lexicalTarget: Measurement = {
    name: `target: lexical (${LEXICAL_TARGET_CHUNKS_PER_SECOND} chunks/s)`,
    unit: 'chunks/s',
    better: 'higher',
    values: lexChunks.values.map(() => LEXICAL_TARGET_CHUNKS_PER_SECOND),
  };
  return {
    suite: 'ingestion',
    description:
      'Ingestion throughput through the real pipeline (lexical only and with embeddings) against the raw ' +
      'embedder alone, and the peak RSS of a worker ingesting one big Markdown file.',
    settings: {
      ...sizes,
      dataset: 'synthetic (bigram model of covidqa), seed 42',
      embedding: `openai provider → local server (${MODEL}, ${DIMENSIONS} d), batch ${config.embeddingBatchSize}`,
      jobConcurrency: config.jobConcurrency,
      addConcurrency: 4,
      memoryWorker: `node ${path.relative(repo, memoryEntry)} worker, LARDER_JOB_CONCURRENCY=1, no embeddings`,
      runs: details,
    },
    measurements: [
      raw,
      rawLocal,
      rawLocalSame,
      lexDocs,
      lexChunks,
      embDocs,
      embChunks,
      localChunks,
      memoryChunks,
      rss,
    ],
    ratios: [
      ratio('pipeline efficiency: end-to-end with embeddings / raw embedder', embChunks, raw, 0.9),
      ratio(
        "pipeline efficiency, local model: end to end / raw local model on the run's chunk inputs",
        localChunks,
        rawLocalSame,
        0.9,
      ),
      ratio('lexical end to end / 2,000 chunks/s target', lexChunks, lexicalTarget, 1),
      ratio('memory headroom: 400 MiB target / worker peak RSS', memoryTarget, rss, 1),
    ],
    charts: [
      {
        id: 'throughput',
        title: 'Ingestion and embedding throughput',
        unit: '/s',
        measurements: [
          raw.name,
          embChunks.name,
          lexChunks.name,
          rawLocal.name,
          rawLocalSame.name,
          localChunks.name,
        ],
      },
      { id: 'memory', title: 'Worker peak RSS', unit: 'MiB', measurements: [rss.name] },
    ],
    notes: [
      'End to end = from the first document added to every document `ready` (lexical collections: ' +
        'indexed; with embeddings: embedded too); polled every 50 ms.',
      `Raw embedder = \`embedDocuments\` on ${sizes.embeddedChunks} passages of ` +
        `${DEFAULT_CORPUS_OPTIONS.wordsPerChunk} words, one caller, batches of ${config.embeddingBatchSize}; ` +
        `the pipeline runs ${config.jobConcurrency} embed jobs at once, so its ratio may exceed 1.`,
      'Two overhead ratios, each comparing like with like: the openai provider → local server (an ' +
        "embedder far faster than any real model, so the ratio measures the pipeline's own ceiling), and " +
        `the default offline model (USE lite, in its worker threads): a ${sizes.localPassages}-chunk corpus ` +
        'end to end against the model alone on the very inputs that run embedded (its chunks, read back ' +
        'right after it), back to back in the same step. The model alone on the raw passages is reported ' +
        "too; the chunks' inputs are ~9% longer (overlap, heading path), so the model is slower on them.",
      `Peak RSS is the worker's VmHWM (bench/ingest-memory.ts) for ${sizes.memoryMegabytes} MB, ` +
        `running ${path.relative(repo, memoryEntry)}. The file is streamed, so the peak is mostly the ` +
        'process and its garbage, not the file: the built worker idles at ~190 MiB. From the sources ' +
        'through tsx (BENCH_INGEST_MEMORY_ENTRY=bin/larder.js, ' +
        "as `npm start` runs) it is ~100 MiB higher: tsx's loader and compiled modules, in the main thread " +
        'and the parsing thread.',
      'The embeddings server runs in the bench process (beside the in-process workers) in both the raw ' +
        'and the end-to-end measurement.',
    ],
  };
}

export const suite: Suite = {
  name: 'ingestion',
  description: 'ingestion throughput (lexical, with embeddings) vs the raw embedder; worker peak RSS',
  run,
};
