/**
 * `larder search` and `larder eval` as operators run them: the real binary in a child process, on the
 * embedded driver (a temporary data directory) and against PostgreSQL (with a `larder worker`).
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../src/cli/eval.js';
import { type CliResult, runCli } from './helpers/cli.js';
import { drivers } from './helpers/database.js';
import { type CliTarget, cliTarget } from './helpers/cli-target.js';

const tempDir = (prefix: string) => mkdtemp(path.join(tmpdir(), prefix));

function jsonOf(res: CliResult): unknown {
  try {
    return JSON.parse(res.stdout);
  } catch {
    throw new Error(`stdout is not JSON (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  }
}

interface Hit {
  documentTitle: string;
  externalId: string | null;
  snippet: string;
  headingPath: string[];
  score: number;
  charStart: number;
  charEnd: number;
  explain?: { lexical: number | null; vector: number | null; lexicalRank: number | null };
}

/**
 * A BEIR dataset small enough to rank by hand (BM25, one chunk per document):
 *  - q1–q4 each share their rare words with exactly one document, which comes first;
 *  - q5's relevant d7 has the same text as d3, so the pipeline stores it once (`duplicate`): the hit on
 *    the stored copy must count for d7;
 *  - q6 shares no word with the corpus: no hits (nDCG, MRR, recall and answer containment 0);
 *  - q7 has no qrels: not evaluated.
 * d6 has a `\r\n` before its answer, which ends the text: unless the span is moved by the `\r` the
 * pipeline removed, it would end past the chunk and not count as contained.
 * Hence over 6 queries nDCG@10 = MRR@10 = Recall@10 = 5/6, and over the 4 answered ones (q1, q2, q4,
 * q6) containment = overlap = chunk MRR = 3/4.
 */
async function tinyBeir(): Promise<string> {
  const dir = await tempDir('larder-beir-');
  await mkdir(path.join(dir, 'qrels'));
  const docs = [
    {
      _id: 'd1',
      title: 'Sourdough',
      text: 'Sourdough bread rises with a wild yeast starter fed on flour and water.',
    },
    { _id: 'd2', title: '', text: 'Pickled cucumbers keep for months in brine with dill and garlic.' },
    { _id: 'd3', title: 'Honey', text: 'Honey never spoils when the jar stays sealed and dry.' },
    { _id: 'd4', title: 'Salmon', text: 'Smoked salmon is cured in salt before cold smoking over oak.' },
    { _id: 'd5', title: 'Kimchi', text: 'Kimchi ferments napa cabbage with chili, garlic and fish sauce.' },
    {
      _id: 'd6',
      title: 'Jam',
      text: 'Apricot jam:\r\nboil apricots with sugar until the jam sets on a cold plate',
    },
    { _id: 'd7', title: 'Honey again', text: 'Honey never spoils when the jar stays sealed and dry.' },
  ];
  const queries: [string, string, string | null, string | null][] = [
    ['q1', 'wild yeast starter', 'd1', 'wild yeast starter'],
    ['q2', 'brine dill cucumbers', 'd2', 'in brine with dill and garlic'],
    ['q3', 'cold smoking salmon oak', 'd4', null],
    ['q4', 'apricot jam sets cold plate', 'd6', 'until the jam sets on a cold plate'],
    ['q5', 'honey jar sealed', 'd7', null],
    ['q6', 'quantum chromodynamics lattice', 'd5', 'napa cabbage'],
    ['q7', 'an unjudged query', null, null],
  ];
  const text = new Map(docs.map((d) => [d._id, d.text]));
  const lines = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
  await writeFile(path.join(dir, 'corpus.jsonl'), lines(docs));
  await writeFile(path.join(dir, 'queries.jsonl'), lines(queries.map(([id, q]) => ({ _id: id, text: q }))));
  await writeFile(
    path.join(dir, 'qrels', 'test.tsv'),
    `query-id\tcorpus-id\tscore\n${queries
      .filter(([, , doc]) => doc)
      .map(([id, , doc]) => `${id}\t${doc}\t1\n`)
      .join('')}`,
  );
  await writeFile(
    path.join(dir, 'answers.jsonl'),
    lines(
      queries
        .filter(([, , doc, answer]) => doc && answer)
        .map(([id, , doc, answer]) => ({
          _id: id,
          doc_id: doc,
          answers: [{ text: answer, answer_start: text.get(doc!)!.indexOf(answer!) }],
        })),
    ),
  );
  return dir;
}

describe('larder search / eval: command line', () => {
  it('lists both commands in --help and validates flags before opening anything', async () => {
    const help = await runCli(['--help'], {});
    expect(help.stdout).toMatch(/^\s+search\b/m);
    expect(help.stdout).toMatch(/^\s+eval\b/m);
    const mode = await runCli(['eval', '--dataset', '.', '--mode', 'fuzzy'], {});
    expect(mode.code).toBe(1);
    expect(mode.stderr).toContain('Allowed choices are hybrid, lexical, vector, all');
  });
});

describe.each(drivers())('larder search / eval (%s)', (driver) => {
  let target: CliTarget;
  let beir: string;
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, { ...target.env, ...env }, 90_000);
  const scratchCollections = () =>
    target.withDb((db) =>
      db.selectFrom('collections').select(['id', 'name']).where('name', 'like', 'eval-%').execute(),
    );

  beforeAll(async () => {
    target = await cliTarget(driver, { workerConcurrency: 8 });
    beir = await tinyBeir();
    const folder = await tempDir('larder-search-src-');
    await writeFile(
      path.join(folder, 'jams.md'),
      '# Preserves\n\n## Jam\n\nApricot jam sets on a cold plate; jam needs sugar.\n',
    );
    await writeFile(path.join(folder, 'pickles.txt'), 'Pickles keep for months in brine.\n');
    const ingested = await cli([
      'ingest',
      folder,
      '--collection',
      'Pantry',
      '--json',
      ...(driver === 'server' ? ['--wait'] : []),
    ]);
    expect(ingested.code, ingested.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await target.close();
  });

  it('prints ranked hits with title, heading path and emphasised snippet', async () => {
    const res = await cli(['search', 'apricot jam', '--collection', 'pantry', '--mode', 'lexical']);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.split('\n');
    expect(lines[0]).toMatch(/^1\. \d+\.\d{4} {2}Preserves \(jams\.md\) {2}· Preserves$/);
    expect(lines[1]).toMatch(/^ {3}\S/);
    expect(lines[1]).toContain('**Apricot** **jam** sets on a cold plate; **jam** needs sugar');
    // Only one document mentions jam.
    expect(res.stdout).not.toContain('pickles.txt');

    const none = await cli(['search', 'quantum', '--mode', 'lexical']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toBe('No results.\n');
  });

  it('prints the hits as JSON, with explain', async () => {
    const res = await cli(['search', 'brine jam', '--mode', 'lexical', '--k', '5', '--json', '--explain']);
    expect(res.code, res.stderr).toBe(0);
    const hits = jsonOf(res) as Hit[];
    expect(hits.map((h) => h.externalId).sort()).toEqual(['jams.md', 'pickles.txt']);
    for (const [i, hit] of hits.entries()) {
      expect(hit.score).toBe(hit.explain?.lexical); // lexical mode: the BM25 score itself
      expect(hit.explain).toMatchObject({ lexicalRank: i + 1, vector: null });
      expect(hit.explain?.lexical).toBeGreaterThan(0);
      expect(hit.snippet).toContain('<mark>');
    }
    expect(hits.find((h) => h.externalId === 'jams.md')?.headingPath).toEqual(['Preserves']);
  });

  it('exits 1 on an unknown collection or workspace', async () => {
    const collection = await cli(['search', 'jam', '--collection', 'Pantry', '--collection', 'Cellar']);
    expect(collection.code).toBe(1);
    expect(collection.stderr).toContain('No collection "Cellar"');
    expect(collection.stdout).toBe('');
    const workspace = await cli(['search', 'jam', '--workspace', 'nope']);
    expect(workspace.code).toBe(1);
    expect(workspace.stderr).toMatch(/No workspace "nope"\. Name one by slug or id/);
  });

  it('evaluates a BEIR dataset with hand-computed metrics and deletes its scratch collection', async () => {
    const res = await cli([
      'eval',
      '--dataset',
      beir,
      '--mode',
      'lexical',
      '--embedding',
      'none',
      '--concurrency',
      '1',
      '--json',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const report = jsonOf(res) as EvalReport;
    expect(report).toMatchObject({ mode: driver, modes: ['lexical'], k: 10, settings: { embedding: null } });
    expect(report.collection.name).toMatch(/^eval-larder-beir-[a-z0-9]+-\d{8}T\d{6}Z$/);
    expect(report.counts).toMatchObject({
      documents: 7,
      stored: 6,
      duplicates: 1,
      failed: 0,
      chunks: 6,
      queries: 6,
      queriesWithAnswers: 4,
      queriesNotEvaluated: 1,
    });
    const m = report.metrics.lexical!;
    expect(m.queries).toBe(6);
    expect(m.ndcgAt10).toBe(0.8333);
    expect(m.mrrAt10).toBe(0.8333);
    expect(m.recallAtK).toBe(0.8333);
    expect(m.answers).toEqual({ queries: 4, containedAtK: 0.75, overlapAtK: 0.75, mrrAt10: 0.75 });
    expect(m.latencyMs.p95).toBeGreaterThanOrEqual(m.latencyMs.p50);
    expect(report.settings.bm25).toEqual({ k1: 1.2, b: 0.75 });
    expect(res.stderr).toContain(`Deleted scratch collection "${report.collection.name}"`);
    expect(await scratchCollections()).toEqual([]);
  });

  it('keeps the scratch collection with --keep and prints a table', async () => {
    const res = await cli(['eval', '--dataset', beir, '--embedding', 'none', '--concurrency', '1', '--keep']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('evaluating lexical search only');
    expect(res.stdout).toMatch(/^mode +nDCG@10 +Recall@10 +MRR@10 +answer@10/m);
    expect(res.stdout).toMatch(/^lexical +0\.8333 +0\.8333 +0\.8333 +0\.7500 +0\.7500 +0\.7500 /m);
    const kept = await scratchCollections();
    expect(kept).toHaveLength(1);
    expect(res.stdout).toContain(`Kept collection "${kept[0]!.name}" (${kept[0]!.id})`);
    const docs = await target.withDb((db) =>
      db
        .selectFrom('documents')
        .select(['external_id', 'title', 'status'])
        .where('collection_id', '=', kept[0]!.id)
        .orderBy('external_id')
        .execute(),
    );
    expect(docs.map((d) => d.external_id)).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    expect(docs.every((d) => d.status === 'ready')).toBe(true);
    expect(docs.find((d) => d.external_id === 'd1')?.title).toBe('Sourdough');
    await target.withDb((db) => db.deleteFrom('collections').where('id', '=', kept[0]!.id).execute());
  });

  it('refuses vector modes without embeddings and a directory that is not BEIR (exit 1)', async () => {
    const vector = await cli(['eval', '--dataset', beir, '--mode', 'vector', '--embedding', 'none']);
    expect(vector.code).toBe(1);
    expect(vector.stderr).toContain('needs embeddings');
    const missing = await cli(['eval', '--dataset', path.join(beir, 'qrels'), '--embedding', 'none']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Not a usable BEIR dataset: .*queries\.jsonl: file not found/);
    expect(await scratchCollections()).toEqual([]);
  });
});
