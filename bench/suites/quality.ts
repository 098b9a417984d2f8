/**
 * `quality`: retrieval and answer quality on covidqa through `larder eval --answers` (src/cli/eval.ts),
 * run as the CLI in server mode against the run's database while this process works the job queue
 * in-process (as `larder worker` would).
 *
 * Full: `--mode all --embedding local --answers` (document-level nDCG@10, Recall@10, MRR@10 and
 * chunk-level answer-in-top-10 for lexical, vector and hybrid; answer grounding in hybrid mode), plus
 * `--mode lexical --embedding none --answers` (answer grounding on a lexical-only collection).
 * BENCH_QUALITY_VECTOR_ANSWERS=1 adds `--mode vector --embedding local --answers` (another ~4 min).
 * Quick: the first 5 documents and their questions, lexical only.
 *
 * The numbers are deterministic (same corpus, same model, same ranking), so this suite runs one round
 * whatever --rounds says.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EvalReport } from '../../src/cli/eval.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/platform/logger.js';
import { openRuntime } from '../../src/runtime.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from '../lib/harness.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATASET = path.resolve(repo, '../shared/eval/covidqa');

/** The environment of the eval and of the in-process worker: the run's database, its Redis if any. */
function benchEnv(ctx: SuiteContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: ctx.databaseUrl, LOG_LEVEL: 'warn' };
  if (ctx.redisUrl) env.REDIS_URL = ctx.redisUrl;
  else delete env.REDIS_URL;
  return env;
}

interface EvalRun {
  mode: 'all' | 'lexical' | 'vector' | 'hybrid';
  embedding: 'local' | 'none';
}

async function lines(file: string): Promise<string[]> {
  const out: string[] = [];
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) if (line.trim() !== '') out.push(line);
  return out;
}

/** The first `documents` documents of a BEIR directory, with their questions, qrels and answers. */
async function subset(from: string, to: string, documents: number): Promise<void> {
  await mkdir(path.join(to, 'qrels'), { recursive: true });
  const corpus = (await lines(path.join(from, 'corpus.jsonl'))).slice(0, documents);
  const ids = new Set(corpus.map((l) => String((JSON.parse(l) as { _id: string | number })._id)));
  const [header, ...qrels] = await lines(path.join(from, 'qrels', 'test.tsv'));
  const kept = qrels.filter((l) => ids.has(l.split('\t')[1] ?? ''));
  const queries = new Set(kept.map((l) => l.split('\t')[0]));
  const byId = (l: string) => queries.has(String((JSON.parse(l) as { _id: string | number })._id));
  await writeFile(path.join(to, 'corpus.jsonl'), `${corpus.join('\n')}\n`);
  await writeFile(path.join(to, 'qrels', 'test.tsv'), `${[header, ...kept].join('\n')}\n`);
  await writeFile(
    path.join(to, 'queries.jsonl'),
    `${(await lines(path.join(from, 'queries.jsonl'))).filter(byId).join('\n')}\n`,
  );
  await writeFile(
    path.join(to, 'answers.jsonl'),
    `${(await lines(path.join(from, 'answers.jsonl'))).filter(byId).join('\n')}\n`,
  );
}

/** `node bin/larder.js eval … --answers --json` against the run's database; its JSON report. */
async function larderEval(ctx: SuiteContext, dataset: string, workspace: string, run: EvalRun) {
  const args = [
    path.join(repo, 'bin/larder.js'),
    'eval',
    '--dataset',
    dataset,
    '--mode',
    run.mode,
    '--embedding',
    run.embedding,
    '--workspace',
    workspace,
    '--answers',
    '--json',
  ];
  ctx.log(`larder ${args.slice(1).join(' ')}`);
  const child = spawn(process.execPath, args, {
    cwd: repo,
    env: benchEnv(ctx),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const abort = () => child.kill('SIGINT');
  ctx.signal.addEventListener('abort', abort);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    for (const line of s.split('\n')) if (line.trim() !== '') ctx.log(`  eval: ${line}`);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  ctx.signal.removeEventListener('abort', abort);
  if (code !== 0) throw new Error(`larder eval exited with ${code}: ${stderr.slice(-2000)}`);
  return JSON.parse(stdout) as EvalReport;
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  let dataset = DATASET;
  if (ctx.quick) {
    dataset = path.join(ctx.tmpDir, 'covidqa-5');
    await subset(DATASET, dataset, 5);
  }
  const runs: EvalRun[] = ctx.quick
    ? [{ mode: 'lexical', embedding: 'none' }]
    : [
        { mode: 'all', embedding: 'local' },
        { mode: 'lexical', embedding: 'none' },
        ...(process.env.BENCH_QUALITY_VECTOR_ANSWERS === '1'
          ? [{ mode: 'vector', embedding: 'local' } as const]
          : []),
      ];

  // This process is the worker: the eval CLI (server mode) only queues.
  const config = loadConfig(benchEnv(ctx));
  const runtime = await openRuntime(config, createLogger(config), {
    migrate: true,
    jobs: 'work',
    redis: ctx.redisUrl !== undefined,
    pollingIntervalSeconds: 0.5,
  });
  const measurements: Measurement[] = [];
  const reports: Record<string, unknown>[] = [];
  const add = (name: string, unit: string, value: number | null | undefined, group: string) => {
    if (value === null || value === undefined) return;
    if (measurements.some((m) => m.name === name)) return;
    measurements.push({ name, unit, better: 'higher', values: [value], group });
  };
  try {
    const stamp = Date.now().toString(36);
    const workspace = await runtime.database.db
      .insertInto('workspaces')
      .values({ name: 'Quality benchmark', slug: `bench-quality-${stamp}` })
      .returning(['id', 'slug'])
      .executeTakeFirstOrThrow();
    try {
      for (const evalRun of runs) {
        const report = await larderEval(ctx, dataset, workspace.slug, evalRun);
        const { thresholds: _thresholds, ...answers } = report.answers ?? { thresholds: undefined };
        reports.push({
          run: evalRun,
          counts: report.counts,
          metrics: report.metrics,
          timings: report.timings,
          settings: report.settings,
          answers,
        });
        for (const mode of report.modes) {
          const m = report.metrics[mode];
          if (!m) continue;
          const group = `retrieval ${mode}`;
          add(`${mode} nDCG@10 (document)`, 'score', m.ndcgAt10, group);
          add(`${mode} Recall@10 (document)`, 'score', m.recallAtK, group);
          add(`${mode} MRR@10 (document)`, 'score', m.mrrAt10, group);
          add(`${mode} answer in a top-10 chunk`, 'share', m.answers?.containedAtK, group);
          add(`${mode} MRR@10 (chunk with the answer)`, 'score', m.answers?.mrrAt10, group);
        }
        const a = report.answers;
        if (a) {
          const group = `answers ${a.mode}`;
          const collection = evalRun.embedding === 'none' ? 'lexical-only collection' : 'local embeddings';
          add(
            `answers (${a.mode}, ${collection}): first citation holds the gold answer`,
            'share',
            a.firstCitationHasAnswer,
            group,
          );
          add(`answers (${a.mode}, ${collection}): answered`, 'share', a.answered, group);
          add(
            `answers (${a.mode}, ${collection}): citations resolve`,
            'share',
            a.citations.citationsResolve,
            group,
          );
          add(`answers (${a.mode}, ${collection}): off-topic refused`, 'share', a.offTopic.refused, group);
        }
      }
    } finally {
      await runtime.database.db.deleteFrom('workspaces').where('id', '=', workspace.id).execute();
    }
  } finally {
    await runtime.close();
  }
  const retrievalModes = ['lexical', 'vector', 'hybrid'].filter((mode) =>
    measurements.some((m) => m.name === `${mode} nDCG@10 (document)`),
  );
  const answerRows = measurements.filter((m) => m.name.endsWith('first citation holds the gold answer'));
  return {
    suite: 'quality',
    description:
      'Retrieval and answer quality on covidqa (BEIR) through `larder eval --answers`: document-level ' +
      'nDCG@10, Recall@10, MRR@10, chunk-level answer-in-top-10, and answer grounding with the extractive answerer.',
    settings: {
      dataset: ctx.quick ? 'covidqa, first 5 documents and their questions' : 'covidqa',
      runs,
      embeddingModel: 'local (USE lite) for vector and hybrid',
      reports,
    },
    measurements,
    ratios: [],
    charts: [
      {
        id: 'retrieval',
        title: 'Retrieval quality on covidqa',
        unit: '',
        measurements: retrievalModes.flatMap((mode) => [
          `${mode} nDCG@10 (document)`,
          `${mode} answer in a top-10 chunk`,
        ]),
      },
      ...(answerRows.length > 0
        ? [
            {
              id: 'answers',
              title: 'Answer grounding on covidqa',
              unit: '',
              measurements: answerRows.map((m) => m.name),
            },
          ]
        : []),
    ],
    notes: [
      'One round: the scores are deterministic (same corpus, model and ranking every run), so repeating ' +
        'them measures nothing; the JSON keeps one value per measurement all the same.',
      'Each eval imports the corpus into a scratch collection through the real pipeline (this process works ' +
        'the queue), scores every question with a relevant document, and asks every question with a gold ' +
        'answer through AnswerService (extractive) plus 40 off-topic questions; see docs/search.md and docs/answers.md.',
      "Answer grounding is measured in the eval run's mode: hybrid (with local embeddings) and lexical " +
        '(lexical-only collection); BENCH_QUALITY_VECTOR_ANSWERS=1 adds vector.',
    ],
  };
}

export const suite: Suite = {
  name: 'quality',
  description: 'covidqa retrieval (nDCG@10, Recall@10, MRR@10, answer in top 10) and answer grounding',
  run,
};
