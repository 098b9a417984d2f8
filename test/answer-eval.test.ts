/**
 * `larder eval --answers`: the real binary answers a tiny BEIR dataset's questions with the extractive
 * answerer on the scratch collection, re-reads every citation from the stored chunks, and removes the
 * conversations (and review items) its answers created, with the scratch collection.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../src/cli/eval.js';
import { OFF_TOPIC_QUESTIONS } from '../src/modules/answers/eval.js';
import { runCli } from './helpers/cli.js';
import { type CliTarget, cliTarget } from './helpers/cli-target.js';
import { drivers } from './helpers/database.js';

/**
 * Four documents, three questions with gold answers (each answered by one document's sentence that
 * shares the question's words) and one question without: only the three are asked.
 */
async function tinyBeir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'larder-answer-beir-'));
  await mkdir(path.join(dir, 'qrels'));
  const docs = [
    {
      _id: 'd1',
      title: 'Incubation',
      text: 'Coronaviruses infect birds and mammals. The median incubation period of the novel coronavirus is 5.2 days. Symptoms vary.',
    },
    {
      _id: 'd2',
      title: 'Transmission',
      text: 'Respiratory droplets spread the virus between people. Hand washing with soap reduces transmission of respiratory infections.',
    },
    {
      _id: 'd3',
      title: 'Reservoir',
      text: 'Many coronaviruses circulate in animals. Horseshoe bats are the likely natural reservoir of SARS-related coronaviruses.',
    },
    {
      _id: 'd4',
      title: 'Vaccines',
      text: 'Vaccine trials measure antibody titres in volunteers over several months.',
    },
  ];
  const queries: [string, string, string, string | null][] = [
    ['q1', 'What is the median incubation period of the novel coronavirus?', 'd1', '5.2 days'],
    ['q2', 'Does hand washing with soap reduce transmission?', 'd2', 'Hand washing with soap'],
    ['q3', 'Which bats are the natural reservoir of SARS-related coronaviruses?', 'd3', 'Horseshoe bats'],
    ['q4', 'How are vaccine trials run?', 'd4', null],
  ];
  const text = new Map(docs.map((d) => [d._id, d.text]));
  const lines = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
  await writeFile(path.join(dir, 'corpus.jsonl'), lines(docs));
  await writeFile(path.join(dir, 'queries.jsonl'), lines(queries.map(([id, q]) => ({ _id: id, text: q }))));
  await writeFile(
    path.join(dir, 'qrels', 'test.tsv'),
    `query-id\tcorpus-id\tscore\n${queries.map(([id, , doc]) => `${id}\t${doc}\t1\n`).join('')}`,
  );
  await writeFile(
    path.join(dir, 'answers.jsonl'),
    lines(
      queries
        .filter(([, , , answer]) => answer)
        .map(([id, , doc, answer]) => ({
          _id: id,
          doc_id: doc,
          answers: [{ text: answer, answer_start: text.get(doc)!.indexOf(answer!) }],
        })),
    ),
  );
  return dir;
}

describe.each(drivers())('larder eval --answers (%s)', (driver) => {
  let target: CliTarget;
  let beir: string;
  // A low BM25 bar: four documents give small IDFs (and it shows the setting reaches the eval).
  const cli = (args: string[]) =>
    runCli(args, { ...target.env, LARDER_ANSWER_MIN_BM25: '1', LARDER_ANSWER_MIN_COSINE: '0.5' }, 120_000);

  beforeAll(async () => {
    target = await cliTarget(driver, { workerConcurrency: 4 });
    beir = await tinyBeir();
  }, 120_000);
  afterAll(async () => {
    await target.close();
  });

  it('answers every question with gold answers, checks the citations and cleans up', async () => {
    const res = await cli([
      'eval',
      '--dataset',
      beir,
      '--mode',
      'lexical',
      '--embedding',
      'none',
      '--answers',
      '--json',
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(
      `Answering (extractive, lexical): 3 questions + ${OFF_TOPIC_QUESTIONS.length} off-topic`,
    );
    const report = JSON.parse(res.stdout) as EvalReport;
    const a = report.answers!;
    expect(a).toMatchObject({
      mode: 'lexical',
      provider: 'extractive',
      questions: 3,
      answered: 1,
      firstCitationHasAnswer: 1,
      anyCitationHasAnswer: 1,
      anySourceHasAnswer: 1,
      offTopic: { questions: OFF_TOPIC_QUESTIONS.length },
    });
    expect(a.firstQuoteHasAnswer).toBe(1);
    // Every citation re-read from the stored chunk, the off-topic answers' too.
    expect(a.citations.total).toBeGreaterThanOrEqual(3);
    expect(a.citations).toMatchObject({ citationsResolve: 1, unresolved: [] });
    expect(a.citations.resolved).toBe(a.citations.total);
    expect(a.latencyMs.p95).toBeGreaterThanOrEqual(a.latencyMs.p50!);
    expect(a.thresholds.configured).toMatchObject({ minBm25: 1, minCosine: 0.5, onTopicRefused: 0 });
    expect(a.thresholds.bm25.onTopic.n).toBe(3);
    expect(a.thresholds.bm25.onTopic.p10).toBeGreaterThan(1);
    expect(a.thresholds.bm25Sweep.map((r) => r.minBm25)).toContain(4);
    expect(a.thresholds.cosineSweep).toEqual([]);

    const left = await target.withDb(async (db) => ({
      collections: await db.selectFrom('collections').select('id').where('name', 'like', 'eval-%').execute(),
      conversations: await db.selectFrom('conversations').select('id').execute(),
      messages: await db.selectFrom('messages').select('id').execute(),
      reviews: await db.selectFrom('review_items').select('id').execute(),
    }));
    expect(left).toEqual({ collections: [], conversations: [], messages: [], reviews: [] });
  });

  it('prints the answer table under the retrieval table', async () => {
    const res = await cli([
      'eval',
      '--dataset',
      beir,
      '--mode',
      'lexical',
      '--embedding',
      'none',
      '--answers',
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Answers \(extractive, lexical retrieval, [\d.]+ s\)$/m);
    expect(res.stdout).toMatch(/^answered +1\.0000$/m);
    expect(res.stdout).toMatch(/^citations resolve +1\.0000 \((\d+)\/\1\)$/m);
    expect(res.stdout).toMatch(/^off-topic refused +\d\.\d{4} of 40$/m);
    expect(res.stdout).toMatch(/^refused at BM25 ≥ 1 or cos ≥ 0\.5 +on-topic 0\.0000, off-topic \d\.\d{4}$/m);
  });
});
