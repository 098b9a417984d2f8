/**
 * `larder ask` as operators run it: the real binary in a child process, on the embedded driver (a
 * temporary data directory) and against PostgreSQL (with a `larder worker`), after `larder ingest`.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCitations, trimQuote } from '../src/cli/ask.js';
import { HANDBOOK } from './helpers/answers.js';
import { type CliResult, runCli } from './helpers/cli.js';
import { type CliTarget, cliTarget } from './helpers/cli-target.js';
import { drivers } from './helpers/database.js';

interface Answer {
  answer: string;
  standaloneQuestion: string;
  provider: string;
  grounded: boolean;
  conversationId: string;
  citations: { n: number; documentTitle: string; quote: string; charStart: number; charEnd: number }[];
}

function jsonOf(res: CliResult): unknown {
  try {
    return JSON.parse(res.stdout);
  } catch {
    throw new Error(`stdout is not JSON (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  }
}

const PARENTAL = 'How many weeks of parental leave do employees get?';

describe('larder ask: output', () => {
  it('cuts long quotes at a word and prints one line per citation', () => {
    const long = `${'word '.repeat(60)}end`;
    const cut = trimQuote(long);
    expect(cut.length).toBeLessThanOrEqual(201);
    expect(cut.endsWith('word…')).toBe(true);
    expect(trimQuote('  short\n quote ')).toBe('short quote');
    const base = { chunkId: '', documentId: '', collectionId: '', charStart: 0, charEnd: 1 };
    expect(
      formatCitations([
        { ...base, n: 1, documentTitle: 'Leave', page: 3, quote: 'Sixteen weeks.' },
        { ...base, n: 2, documentTitle: 'Travel', page: null, quote: 'Economy.' },
      ]),
    ).toBe('[1] Leave (p. 3): “Sixteen weeks.”\n[2] Travel: “Economy.”\n');
  });

  it('is listed in --help', async () => {
    const help = await runCli(['--help'], {});
    expect(help.stdout).toMatch(/^\s+ask \[options\] <question>/m);
  });
});

describe.each(drivers())('larder ask (%s)', (driver) => {
  let target: CliTarget;
  const cli = (args: string[]) => runCli(args, { ...target.env, LARDER_ANSWER_MIN_BM25: '0.5' }, 90_000);

  beforeAll(async () => {
    target = await cliTarget(driver, { workerConcurrency: 4 });
    const folder = await mkdtemp(path.join(tmpdir(), 'larder-ask-src-'));
    await writeFile(path.join(folder, 'parental.md'), HANDBOOK[0]!.text);
    await writeFile(path.join(folder, 'travel.md'), HANDBOOK[1]!.text);
    const other = await mkdtemp(path.join(tmpdir(), 'larder-ask-other-'));
    await writeFile(
      path.join(other, 'bread.md'),
      '# Bread\n\nSourdough bread rises with a wild yeast starter.\n',
    );
    for (const [dir, collection] of [
      [folder, 'Handbook'],
      [other, 'Recipes'],
    ] as const) {
      const ingested = await cli([
        'ingest',
        dir,
        '--collection',
        collection,
        '--json',
        ...(driver === 'server' ? ['--wait'] : []),
      ]);
      expect(ingested.code, ingested.stderr).toBe(0);
    }
  }, 120_000);
  afterAll(async () => {
    await target.close();
  });

  it('streams the answer, then lists its citations', async () => {
    const res = await cli(['ask', PARENTAL, '--collection', 'handbook']);
    expect(res.code, res.stderr).toBe(0);
    const [answer, citations] = res.stdout.split('\n\n');
    expect(answer).toMatch(/16 weeks of parental leave/);
    expect(answer).toMatch(/\[1\]/);
    expect(citations).toMatch(/^\[1\] Parental leave: “[^\n]*16 weeks[^\n]*”$/m);
    expect(res.stdout).not.toContain('Travel expenses');
    expect(res.stdout.endsWith('”\n')).toBe(true);
  });

  it('prints the whole answer as JSON with --json, also by collection id and extractively', async () => {
    const res = await cli(['ask', 'Which class is the default for flights?', '--json', '--extractive']);
    expect(res.code, res.stderr).toBe(0);
    const answer = jsonOf(res) as Answer;
    expect(answer).toMatchObject({ provider: 'extractive', grounded: true });
    expect(answer.answer).toMatch(/Economy class/);
    expect(answer.citations[0]).toMatchObject({ n: 1, documentTitle: 'Travel expenses' });
    expect(answer.citations[0]!.quote).toMatch(/Economy class/);
    expect(answer.citations[0]!.charEnd - answer.citations[0]!.charStart).toBe(
      answer.citations[0]!.quote.length,
    );

    const recipes = await target.withDb((db) =>
      db.selectFrom('collections').select('id').where('name', '=', 'Recipes').executeTakeFirstOrThrow(),
    );
    const elsewhere = await cli(['ask', PARENTAL, '--collection', recipes.id, '--json']);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(jsonOf(elsewhere)).toMatchObject({ grounded: false, citations: [] });

    // stored in a conversation without an owner (the operator is no user)
    const conversation = await target.withDb((db) =>
      db
        .selectFrom('conversations')
        .select(['user_id', 'api_key_id'])
        .where('id', '=', answer.conversationId)
        .executeTakeFirstOrThrow(),
    );
    expect(conversation).toEqual({ user_id: null, api_key_id: null });
  });

  it('exits 1 on an unknown collection or workspace', async () => {
    const collection = await cli(['ask', PARENTAL, '--collection', 'Cellar']);
    expect(collection.code).toBe(1);
    expect(collection.stderr).toContain('No collection "Cellar"');
    expect(collection.stdout).toBe('');
    const workspace = await cli(['ask', PARENTAL, '--workspace', 'nope']);
    expect(workspace.code).toBe(1);
    expect(workspace.stderr).toMatch(/No workspace "nope"/);
  });
});
