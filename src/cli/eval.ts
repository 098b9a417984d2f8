/**
 * `larder eval --dataset DIR`: measures retrieval quality on a BEIR dataset through the real system.
 * The corpus goes into a scratch collection through DocumentService (exactly as `larder import` sends
 * it: externalId = `_id`, title when non-empty, text as text/plain), the command waits until every
 * document is ready (embedded mode: it processes them itself; server mode: a `larder worker` must
 * run), runs each evaluated query through SearchService in every requested mode, and scores the
 * rankings (src/modules/search/eval/run.ts explains the metrics). The scratch collection is deleted at
 * the end, also after a failure or Ctrl-C, unless --keep.
 *
 * @example
 *   larder eval --dataset ./covidqa --mode lexical --embedding none
 *   larder eval --dataset ./covidqa --mode all --embedding local --json > covidqa.json
 *   larder eval --dataset ./covidqa --mode lexical --embedding none --answers
 *
 * With --answers, every evaluated question with gold answers (and a fixed set of off-topic questions)
 * also goes through AnswerService with the extractive answerer on the scratch collection, scored by
 * src/modules/answers/eval.ts (answered rate, answer in the first citation, citations re-read from
 * the stored chunks, the weak-evidence thresholds' trade-off). The conversations those answers create
 * are removed again (unless --keep).
 *
 * Exit status: 0 done, 2 done but some documents failed to import or process (scored without them),
 * 1 fatal error (bad dataset, unknown workspace), 78 invalid configuration, 130 interrupted.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { type BeirDataset, BeirFormatError, loadBeir } from '../modules/search/eval/beir.js';
import { type ModeMetrics, runQueries, scoreRun } from '../modules/search/eval/run.js';
import { type SearchMode, SearchService } from '../modules/search/service.js';
import { DEFAULT_FUSION, type FusionOptions } from '../modules/search/fusion.js';
import type { AuditContext } from '../modules/audit/service.js';
import { DocumentService } from '../modules/documents/service.js';
import type { EmbeddingProviderName } from '../ai/embeddings/index.js';
import { parseRecord } from './import.js';
import { CliError, EXIT_INTERRUPTED, EXIT_PARTIAL, itemFailure, pool } from './ingest.js';
import { type Failure, Reporter, Tally, waitForDocuments } from './progress.js';
import { asOperator, type Operator } from './search.js';
import { createAnswerService } from '../modules/answers/wiring.js';
import {
  type AnswerEvalSummary,
  type EvalQuestion,
  loadChunkSpans,
  OFF_TOPIC_QUESTIONS,
  removeEvalConversations,
  runAnswerEval,
  summariseAnswerEval,
} from '../modules/answers/eval.js';

export interface EvalOptions {
  dataset: string;
  mode: SearchMode | 'all';
  k: number;
  embedding?: EmbeddingProviderName;
  workspace?: string;
  split: string;
  json?: boolean;
  keep?: boolean;
  concurrency: number;
  /** Also measure answer grounding with the extractive answerer. */
  answers?: boolean;
}

const ALL_MODES: readonly SearchMode[] = ['lexical', 'vector', 'hybrid'];

/** `eval-<dataset>-<UTC time>`, e.g. `eval-covidqa-20250314T101500Z`. */
export function scratchName(dataset: string, now = new Date()): string {
  const slug =
    path
      .basename(path.resolve(dataset))
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 60) || 'dataset';
  return `eval-${slug}-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

const seconds = (ms: number) => Math.round(ms / 10) / 100;

async function loadDataset(dir: string, split: string): Promise<BeirDataset> {
  try {
    return await loadBeir(dir, { split });
  } catch (error) {
    if (error instanceof BeirFormatError) throw new CliError(`Not a usable BEIR dataset: ${error.message}`);
    throw error;
  }
}

/** Every document of the dataset through DocumentService; returns BEIR id → external id holding it. */
async function importCorpus(
  op: Operator,
  documents: DocumentService,
  collectionId: string,
  data: BeirDataset,
  tally: Tally,
  options: { concurrency: number; signal: AbortSignal },
): Promise<Map<string, string>> {
  const audit: AuditContext = { actor: { type: 'system' }, userAgent: 'larder eval' };
  const canonical = new Map<string, string>();
  await pool(data.corpus, options.concurrency, options.signal, async (doc) => {
    const at = { path: doc.id };
    let record;
    try {
      // The same validation and defaults as `larder import` (a BEIR line is an import line).
      record = parseRecord(JSON.stringify({ _id: doc.id, title: doc.title, text: doc.text }));
    } catch (error) {
      tally.fail({ ...at, code: 'invalid_document', message: (error as Error).message });
      return;
    }
    const content = Buffer.from(record.text, 'utf8');
    try {
      const result = await documents.add(
        op.ws,
        null,
        collectionId,
        { content, mime: record.mime, externalId: record.externalId, title: record.title },
        audit,
      );
      tally.record(result.outcome, content.length, record.externalId, result.document);
      // Identical text under another id is stored once: hits on that copy count for both ids.
      canonical.set(doc.id, result.document.external_id ?? doc.id);
    } catch (error) {
      const failure = itemFailure(error);
      if (!failure) throw error;
      tally.fail({ ...at, ...failure }, content.length);
    }
  });
  return canonical;
}

async function chunkCount(documents: DocumentService, op: Operator, collectionId: string) {
  let total = 0;
  let cursor: string | undefined;
  do {
    const page = await documents.list(op.ws, collectionId, {}, { limit: 1000, cursor });
    for (const d of page.data) total += d.chunk_count;
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return total;
}

export interface EvalReport {
  dataset: { name: string; path: string; split: string };
  mode: 'embedded' | 'server';
  workspace: { id: string; slug: string };
  collection: { id: string; name: string; kept: boolean };
  modes: SearchMode[];
  k: number;
  counts: {
    documents: number;
    stored: number;
    duplicates: number;
    failed: number;
    chunks: number;
    queries: number;
    queriesWithAnswers: number;
    queriesNotEvaluated: number;
    answerSpansDropped: number;
  };
  metrics: Partial<Record<SearchMode, ModeMetrics>>;
  timings: {
    importSeconds: number;
    processingSeconds: number;
    searchSeconds: Partial<Record<SearchMode, number>>;
  };
  settings: {
    textSearchConfig: string;
    chunking: unknown;
    embedding: { provider: string; model: string | null; dimensions: number | null } | null;
    bm25: { k1: number; b: number };
    fusion: FusionOptions;
    searchK: number;
  };
  failures: (Failure | { externalId: string; documentId: string; error: string })[];
  /** With --answers: answer grounding (src/modules/answers/eval.ts), in the retrieval mode given. */
  answers?: AnswerEvalSummary & { mode: SearchMode; provider: 'extractive'; seconds: number };
}

const pct = (n: number | null | undefined) => (n === null || n === undefined ? '–' : n.toFixed(4));

export function formatReport(r: EvalReport): string {
  const out = [
    `Dataset ${r.dataset.name} (${r.dataset.split}): ${r.counts.documents} documents, ${r.counts.chunks} chunks, ` +
      `${r.counts.queries} queries (${r.counts.queriesWithAnswers} with answers); ${r.mode} mode, workspace ${r.workspace.slug}`,
    `Import ${r.timings.importSeconds.toFixed(1)} s, processing ${r.timings.processingSeconds.toFixed(1)} s` +
      (r.counts.duplicates > 0 ? `; ${r.counts.duplicates} duplicate text(s) stored once` : '') +
      (r.counts.failed > 0 ? `; ${r.counts.failed} document(s) FAILED (scored without them)` : ''),
    `Embeddings: ${r.settings.embedding ? `${r.settings.embedding.provider} ${r.settings.embedding.model}` : 'none'}; ` +
      `BM25 k1=${r.settings.bm25.k1} b=${r.settings.bm25.b}; fusion ${JSON.stringify(r.settings.fusion)}; chunking ${JSON.stringify(r.settings.chunking)}`,
    '',
  ];
  const head = [
    'mode',
    'nDCG@10',
    `Recall@${r.k}`,
    'MRR@10',
    `answer@${r.k}`,
    `≥50%@${r.k}`,
    'chunkMRR@10',
    'p50 ms',
    'p95 ms',
  ];
  const rows = r.modes.map((mode) => {
    const m = r.metrics[mode];
    return [
      mode,
      pct(m?.ndcgAt10),
      pct(m?.recallAtK),
      pct(m?.mrrAt10),
      pct(m?.answers?.containedAtK),
      pct(m?.answers?.overlapAtK),
      pct(m?.answers?.mrrAt10),
      m ? m.latencyMs.p50.toFixed(1) : '–',
      m ? m.latencyMs.p95.toFixed(1) : '–',
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  out.push(line(head), ...rows.map(line));
  if (r.answers) out.push('', ...formatAnswers(r.answers));
  if (r.collection.kept) out.push('', `Kept collection "${r.collection.name}" (${r.collection.id}).`);
  return `${out.join('\n')}\n`;
}

function formatAnswers(a: NonNullable<EvalReport['answers']>): string[] {
  const t = a.thresholds;
  const rows: [string, string][] = [
    ['questions', String(a.questions)],
    ['answered', pct(a.answered)],
    ['first citation has answer', pct(a.firstCitationHasAnswer)],
    ['  (of answered)', pct(a.firstCitationHasAnswerWhenAnswered)],
    ['first quote has answer', pct(a.firstQuoteHasAnswer)],
    ['any citation has answer', pct(a.anyCitationHasAnswer)],
    ['any source has answer', pct(a.anySourceHasAnswer)],
    [
      'citations resolve',
      `${pct(a.citations.citationsResolve)} (${a.citations.resolved}/${a.citations.total})`,
    ],
    ['latency p50 / p95 ms', `${a.latencyMs.p50 ?? '–'} / ${a.latencyMs.p95 ?? '–'}`],
    ['off-topic refused', `${pct(a.offTopic.refused)} of ${a.offTopic.questions}`],
    [
      `refused at BM25 ≥ ${t.configured.minBm25} or cos ≥ ${t.configured.minCosine}`,
      `on-topic ${pct(t.configured.onTopicRefused)}, off-topic ${pct(t.configured.offTopicRefused)}`,
    ],
    [
      'best BM25 p10/p50/p90',
      `on-topic ${t.bm25.onTopic.p10 ?? '–'}/${t.bm25.onTopic.p50 ?? '–'}/${t.bm25.onTopic.p90 ?? '–'}, ` +
        `off-topic ${t.bm25.offTopic.p10 ?? '–'}/${t.bm25.offTopic.p50 ?? '–'}/${t.bm25.offTopic.p90 ?? '–'}`,
    ],
  ];
  if (t.cosine.onTopic.n > 0)
    rows.push([
      'best cosine p10/p50/p90',
      `on-topic ${t.cosine.onTopic.p10 ?? '–'}/${t.cosine.onTopic.p50 ?? '–'}/${t.cosine.onTopic.p90 ?? '–'}, ` +
        `off-topic ${t.cosine.offTopic.p10 ?? '–'}/${t.cosine.offTopic.p50 ?? '–'}/${t.cosine.offTopic.p90 ?? '–'}`,
    ]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return [
    `Answers (${a.provider}, ${a.mode} retrieval, ${a.seconds.toFixed(1)} s)`,
    ...rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`),
  ];
}

/** Every evaluated question with gold answers through AnswerService, then the off-topic ones. */
async function evalAnswers(
  op: Operator,
  config: Config,
  data: BeirDataset,
  options: { collectionId: string; mode: SearchMode; keep: boolean; signal: AbortSignal },
): Promise<NonNullable<EvalReport['answers']>> {
  const { runtime, ws } = op;
  const { answers } = createAnswerService(runtime);
  const actor = { userId: null, apiKeyId: null, requestId: null };
  const onTopic: EvalQuestion[] = [];
  for (const [queryId, question] of data.queries) {
    const golds = data.answers
      ?.get(queryId)
      ?.spans.map((s) => s.text)
      .filter((t) => t.trim().length > 0);
    if (golds && golds.length > 0) onTopic.push({ queryId, question, golds });
  }
  const offTopic = OFF_TOPIC_QUESTIONS.map((question, i) => ({
    queryId: `off-topic-${i + 1}`,
    question,
    golds: null,
  }));
  process.stderr.write(
    `Answering (extractive, ${options.mode}): ${onTopic.length} questions + ${offTopic.length} off-topic…\n`,
  );
  const started = performance.now();
  let lastNote = performance.now();
  const { run, conversationIds } = await runAnswerEval(
    {
      answer: (question) =>
        answers.answer(ws, actor, {
          question,
          collections: [options.collectionId],
          options: { provider: 'extractive', cache: false, mode: options.mode },
        }),
      chunks: (ids) => loadChunkSpans(runtime.database.db, ws.id, ids),
      signal: options.signal,
      onProgress: (done, total) => {
        if (performance.now() - lastNote < 10_000) return;
        lastNote = performance.now();
        process.stderr.write(`  answers: ${done}/${total}\n`);
      },
    },
    onTopic,
    offTopic,
  );
  const seconds_ = seconds(performance.now() - started);
  if (!options.keep) await removeEvalConversations(runtime.database.db, ws.id, conversationIds);
  return {
    mode: options.mode,
    provider: 'extractive',
    seconds: seconds_,
    ...summariseAnswerEval(run, { minBm25: config.answerMinBm25, minCosine: config.answerMinCosine }),
  };
}

export async function evalCommand({ config }: { config: Config }, opts: EvalOptions) {
  const embedded = !config.databaseUrl;
  const controller = new AbortController();
  // A function, so narrowing does not assume it stays false across awaits.
  const aborted = () => controller.signal.aborted;
  let interrupts = 0;
  let scratch: { id: string; name: string } | undefined;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts > 1) {
      if (scratch && !opts.keep)
        process.stderr.write(
          `Exiting at once: collection "${scratch.name}" (${scratch.id}) is left behind\n`,
        );
      process.exit(EXIT_INTERRUPTED);
    }
    process.stderr.write('Interrupted: cleaning up (press Ctrl-C again to exit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const data = await loadDataset(opts.dataset, opts.split).catch((error: unknown) => {
      process.stderr.write(`larder: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
      return undefined;
    });
    if (!data) return;
    const provider = opts.embedding ?? config.embeddingProvider;
    const modes =
      opts.mode === 'all' ? ALL_MODES.filter((m) => provider !== 'none' || m === 'lexical') : [opts.mode];
    if (provider === 'none' && modes.some((m) => m !== 'lexical')) {
      process.stderr.write(
        `larder: --mode ${opts.mode} needs embeddings: pass --embedding local or openai\n`,
      );
      process.exitCode = 1;
      return;
    }
    if (opts.mode === 'all' && provider === 'none')
      process.stderr.write('No embeddings (--embedding none): evaluating lexical search only\n');
    const searchK = Math.max(opts.k, 10);

    await asOperator(config, 'eval', opts.workspace, embedded ? 'work' : 'produce', async (op) => {
      const { runtime, ws, collections, workspace } = op;
      const audit: AuditContext = { actor: { type: 'system' }, userAgent: 'larder eval' };
      const collection = await collections.create(
        ws,
        null,
        { name: scratchName(opts.dataset), embedding: provider === 'none' ? null : { provider } },
        audit,
      );
      scratch = collection;
      process.stderr.write(
        `Created scratch collection "${collection.name}" in workspace ${workspace.slug}` +
          ` (${collection.embedding_provider ? `embeddings: ${collection.embedding_provider} ${collection.embedding_model}` : 'lexical only'})\n`,
      );
      try {
        const documents = new DocumentService(runtime.database.db, runtime.jobs, runtime.events, {
          uploadLimitBytes: config.uploadLimitBytes,
          urlFetchTimeoutMs: config.urlFetchTimeoutMs,
          allowPrivateUrls: config.urlAllowPrivate,
        });
        const tally = new Tally();
        const reporter = new Reporter(tally, { unit: 'documents', total: () => data.corpus.length });
        const started = performance.now();
        reporter.start();
        let canonical: Map<string, string>;
        let stored: number;
        try {
          canonical = await importCorpus(op, documents, collection.id, data, tally, {
            concurrency: opts.concurrency,
            signal: controller.signal,
          });
          stored = performance.now();
          if (!aborted()) reporter.processing();
          await waitForDocuments(tally, reporter, {
            statuses: (ids) => documents.statuses(ws, ids),
            signal: controller.signal,
            embedded,
          });
        } finally {
          reporter.stop();
        }
        const processed = performance.now();
        if (aborted()) return;

        const search = new SearchService(runtime.database.db, runtime.embeddings, {
          exactBelow: runtime.config.searchExactBelow,
        });
        const metrics: EvalReport['metrics'] = {};
        const searchSeconds: EvalReport['timings']['searchSeconds'] = {};
        const texts = new Map(data.corpus.map((d) => [d.id, d.text]));
        for (const mode of modes) {
          const t0 = performance.now();
          process.stderr.write(`Searching (${mode}): ${data.queries.size} queries…\n`);
          let lastNote = performance.now();
          const runs = await runQueries(search, ws, {
            collectionId: collection.id,
            mode,
            k: searchK,
            queries: data.queries,
            signal: controller.signal,
            onProgress: (done) => {
              if (performance.now() - lastNote < 10_000) return;
              lastNote = performance.now();
              process.stderr.write(`  ${mode}: ${done}/${data.queries.size} queries\n`);
            },
          });
          if (aborted()) return;
          searchSeconds[mode] = seconds(performance.now() - t0);
          metrics[mode] = scoreRun(data, runs, { k: opts.k, texts, canonical });
        }
        // The answer service retrieves in hybrid mode by default: the eval's mode when it names one.
        const answerReport = opts.answers
          ? await evalAnswers(op, runtime.config, data, {
              collectionId: collection.id,
              mode: modes.length === 1 && modes[0] ? modes[0] : 'hybrid',
              keep: opts.keep === true,
              signal: controller.signal,
            })
          : undefined;
        if (aborted()) return;

        const processingFailures = tally.processingFailures();
        const report: EvalReport = {
          dataset: {
            name: path.basename(path.resolve(opts.dataset)),
            path: path.resolve(opts.dataset),
            split: opts.split,
          },
          mode: embedded ? 'embedded' : 'server',
          workspace: { id: workspace.id, slug: workspace.slug },
          collection: { id: collection.id, name: collection.name, kept: opts.keep === true },
          modes,
          k: opts.k,
          counts: {
            documents: data.corpus.length,
            stored: tally.counts.created,
            duplicates: tally.counts.duplicate,
            failed: tally.counts.failed + processingFailures.length,
            chunks: await chunkCount(documents, op, collection.id),
            queries: data.queries.size,
            queriesWithAnswers: data.answers?.size ?? 0,
            queriesNotEvaluated: data.stats.queriesWithoutQrels + data.stats.queriesWithoutRelevant,
            answerSpansDropped: data.stats.answerSpansDropped,
          },
          metrics,
          timings: {
            importSeconds: seconds(stored - started),
            processingSeconds: seconds(processed - stored),
            searchSeconds,
          },
          settings: {
            textSearchConfig: collection.text_search_config,
            chunking: collection.chunking,
            embedding: collection.embedding_provider
              ? {
                  provider: collection.embedding_provider,
                  model: collection.embedding_model,
                  dimensions: collection.embedding_dimensions,
                }
              : null,
            bm25: { k1: collection.bm25_k1, b: collection.bm25_b },
            fusion: DEFAULT_FUSION,
            searchK,
          },
          failures: [...tally.failures, ...processingFailures],
          ...(answerReport && { answers: answerReport }),
        };
        process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : formatReport(report));
        process.exitCode = report.counts.failed > 0 ? EXIT_PARTIAL : 0;
      } finally {
        if (!opts.keep) {
          await collections.delete(ws, collection.id, audit);
          process.stderr.write(`Deleted scratch collection "${collection.name}"\n`);
        }
        scratch = undefined;
      }
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (controller.signal.aborted) process.exitCode = EXIT_INTERRUPTED;
  }
}
