import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alignAnswerSpan, BeirFormatError, corpusLines, loadBeir, loadBeirTopics } from './beir.js';

let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'larder-beir-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Files {
  corpus?: string;
  queries?: string;
  qrels?: string;
  answers?: string;
  split?: string;
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

const valid = {
  corpus: jsonl([
    { _id: 1, title: 'One', text: 'Compost the kitchen scraps.' },
    { _id: 'd2', text: 'No title here.' },
    { _id: 'd3', title: '', text: 'Third document 😀 with an emoji before the answer.' },
  ]),
  queries: jsonl([
    { _id: 10, text: 'what to compost' },
    { _id: 'q2', text: 'only judged non-relevant' },
    { _id: 'q3', text: 'never judged' },
    { _id: 'q4', text: 'graded' },
  ]),
  qrels: 'query-id\tcorpus-id\tscore\n10\t1\t1\nq2\td2\t0\nq4\td2\t2\nq4\t1\t1\nq4\td3\t0\nq4\tmissing\t1\n',
};

async function dataset(files: Files): Promise<string> {
  const dir = path.join(root, `ds${n++}`);
  await mkdir(path.join(dir, 'qrels'), { recursive: true });
  if (files.corpus !== undefined) await writeFile(path.join(dir, 'corpus.jsonl'), files.corpus);
  if (files.queries !== undefined) await writeFile(path.join(dir, 'queries.jsonl'), files.queries);
  if (files.qrels !== undefined)
    await writeFile(path.join(dir, 'qrels', `${files.split ?? 'test'}.tsv`), files.qrels);
  if (files.answers !== undefined) await writeFile(path.join(dir, 'answers.jsonl'), files.answers);
  return dir;
}

async function formatError(promise: Promise<unknown>): Promise<BeirFormatError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BeirFormatError);
  return error as BeirFormatError;
}

describe('loadBeir', () => {
  it('loads corpus, queries with relevant documents and graded qrels, stringifying numeric ids', async () => {
    const data = await loadBeir(await dataset(valid));
    expect(data.corpus).toEqual([
      { id: '1', title: 'One', text: 'Compost the kitchen scraps.' },
      { id: 'd2', title: '', text: 'No title here.' },
      { id: 'd3', title: '', text: 'Third document 😀 with an emoji before the answer.' },
    ]);
    expect([...data.queries]).toEqual([
      ['10', 'what to compost'],
      ['q4', 'graded'],
    ]);
    expect(data.qrels.get('10')).toEqual(new Map([['1', 1]]));
    // grade-0 rows are not in qrels
    expect(data.qrels.get('q4')).toEqual(
      new Map([
        ['d2', 2],
        ['1', 1],
        ['missing', 1],
      ]),
    );
    expect(data.qrels.has('q2')).toBe(false);
    expect(data.answers).toBeUndefined();
    expect(data.stats).toEqual({
      queriesInFile: 4,
      queriesWithoutQrels: 1,
      queriesWithoutRelevant: 1,
      qrelsRows: 6,
      nonRelevantQrels: 2,
      qrelsUnknownDocuments: 1,
      answerSpansRealigned: 0,
      answerSpansDropped: 0,
    });
  });

  it('reads another split, tolerates CRLF, a BOM, blank lines and a missing header', async () => {
    const dir = await dataset({
      corpus: '\uFEFF' + valid.corpus.replaceAll('\n', '\r\n') + '\r\n\r\n',
      queries: valid.queries,
      qrels: '10\t1\t1\r\n\r\nq4\td3\t3\r\n',
      split: 'dev',
    });
    const data = await loadBeir(dir, { split: 'dev' });
    expect(data.corpus.map((d) => d.id)).toEqual(['1', 'd2', 'd3']);
    expect(data.corpus[0]!.text).toBe('Compost the kitchen scraps.');
    expect([...data.queries.keys()]).toEqual(['10', 'q4']);
    expect(data.qrels.get('q4')).toEqual(new Map([['d3', 3]]));
  });

  it('streams the corpus with corpusLines', async () => {
    const ids: string[] = [];
    for await (const doc of corpusLines(await dataset(valid))) ids.push(doc.id);
    expect(ids).toEqual(['1', 'd2', 'd3']);
  });

  it('names the file and line of a malformed line', async () => {
    const badJson = await dataset({ ...valid, corpus: valid.corpus + '\n{"_id": "d4", "text": \n' });
    const e = await formatError(loadBeir(badJson));
    expect(e.file).toBe(path.join(badJson, 'corpus.jsonl'));
    expect(e.line).toBe(5); // the blank line 4 still counts
    expect(e.message).toMatch(/corpus\.jsonl:5: invalid JSON/);

    const noText = await dataset({
      ...valid,
      corpus: jsonl([
        { _id: 'a', text: 'x' },
        { _id: 'b', title: 't' },
      ]),
    });
    expect((await formatError(loadBeir(noText))).message).toMatch(/corpus\.jsonl:2: "text" must be a string/);

    const noId = await dataset({ ...valid, queries: jsonl([{ text: 'x' }]) });
    expect((await formatError(loadBeirTopics(noId))).message).toMatch(/queries\.jsonl:1: "_id" must be/);

    const array = await dataset({ ...valid, queries: '[1, 2]\n' });
    expect((await formatError(loadBeirTopics(array))).message).toMatch(
      /queries\.jsonl:1: expected a JSON object/,
    );
  });

  it('rejects malformed qrels', async () => {
    const cases: [string, RegExp][] = [
      ['query-id\tcorpus-id\tscore\n10 1 1\n', /test\.tsv:2: expected 3 tab-separated columns/],
      // (a first line with a non-numeric score is taken for the header)
      ['10\t1\t1\n10\td2\tyes\n', /test\.tsv:2: score "yes" is not a number/],
      ['10\t1\t\n', /test\.tsv:1: expected 3 tab-separated columns|score "" is not a number/],
      ['10\t1\t1\nnope\t1\t1\n', /test\.tsv:2: query "nope" is not in queries\.jsonl/],
      ['10\t1\t1\n10\t1\t2\n', /test\.tsv:2: conflicting scores 1 and 2/],
    ];
    for (const [qrels, message] of cases) {
      const e = await formatError(loadBeirTopics(await dataset({ ...valid, qrels })));
      expect(e.message).toMatch(message);
    }
    // an identical repeated row is harmless
    const repeated = await loadBeirTopics(await dataset({ ...valid, qrels: '10\t1\t1\n10\t1\t1\n' }));
    expect(repeated.stats.qrelsRows).toBe(1);
  });

  it('rejects duplicate ids and missing files', async () => {
    const dupDoc = await dataset({
      ...valid,
      corpus: jsonl([
        { _id: 1, text: 'a' },
        { _id: '1', text: 'b' },
      ]),
    });
    expect((await formatError(loadBeir(dupDoc))).message).toMatch(
      /corpus\.jsonl:2: duplicate document id "1"/,
    );

    const dupQuery = await dataset({
      ...valid,
      queries: jsonl([
        { _id: 'q', text: 'a' },
        { _id: 'q', text: 'b' },
      ]),
    });
    expect((await formatError(loadBeirTopics(dupQuery))).message).toMatch(
      /queries\.jsonl:2: duplicate query id/,
    );

    const noQrels = await dataset({ corpus: valid.corpus, queries: valid.queries });
    const e = await formatError(loadBeirTopics(noQrels));
    expect(e.message).toBe(`${path.join(noQrels, 'qrels', 'test.tsv')}: file not found`);
  });
});

describe('answers', () => {
  const text = 'Third document 😀 with an emoji before the answer.';

  it('keeps UTF-16 offsets and converts code-point offsets (BEIR/SQuAD are Python indices)', async () => {
    const utf16Start = text.indexOf('the answer');
    const codePointStart = Array.from(text.slice(0, utf16Start)).length; // one less: the emoji is 2 code units
    expect(codePointStart).toBe(utf16Start - 1);
    const dir = await dataset({
      ...valid,
      answers: jsonl([
        { _id: 'q4', doc_id: 'd3', answers: [{ text: 'the answer', answer_start: codePointStart }] },
        { _id: 10, doc_id: 1, answers: [{ text: 'kitchen', answer_start: 12 }] },
        { _id: 'q2', doc_id: 'd2', answers: [{ text: 'title', answer_start: 3 }] }, // query not evaluated
      ]),
    });

    const raw = await loadBeirTopics(dir);
    expect(raw.answers?.get('q4')).toEqual({
      docId: 'd3',
      spans: [{ start: codePointStart, end: codePointStart + 10, text: 'the answer' }],
    });
    expect(raw.answers?.has('q2')).toBe(false);

    const data = await loadBeir(dir);
    expect(data.answers?.get('q4')?.spans).toEqual([
      { start: utf16Start, end: utf16Start + 10, text: 'the answer' },
    ]);
    expect(data.answers?.get('10')).toEqual({ docId: '1', spans: [{ start: 12, end: 19, text: 'kitchen' }] });
    expect(data.stats.answerSpansRealigned).toBe(1);
    expect(data.stats.answerSpansDropped).toBe(0);
  });

  it('drops spans whose text is not at their offset, or whose document is missing', async () => {
    const dir = await dataset({
      ...valid,
      answers: jsonl([
        {
          _id: 'q4',
          doc_id: 'd3',
          answers: [
            { text: 'the answer', answer_start: 0 },
            { text: 'Third', answer_start: 0 },
          ],
        },
        { _id: 10, doc_id: 'gone', answers: [{ text: 'x', answer_start: 0 }] },
      ]),
    });
    const data = await loadBeir(dir);
    expect(data.answers?.get('q4')?.spans).toEqual([{ start: 0, end: 5, text: 'Third' }]);
    expect(data.answers?.get('10')?.spans).toEqual([]);
    expect(data.stats.answerSpansDropped).toBe(2);
  });

  it('validates answer lines', async () => {
    const cases: [unknown, RegExp][] = [
      [{ _id: 'q4', doc_id: 'd3' }, /answers\.jsonl:1: "answers" must be an array/],
      [{ _id: 'q4', doc_id: 'd3', answers: [{ text: 'x', answer_start: -1 }] }, /answers\[0\]\.answer_start/],
      [{ _id: 'q4', doc_id: 'd3', answers: [{ answer_start: 1 }] }, /answers\[0\]\.text must be a string/],
      [{ _id: 'q4', answers: [] }, /"doc_id" must be/],
    ];
    for (const [row, message] of cases) {
      const e = await formatError(loadBeirTopics(await dataset({ ...valid, answers: jsonl([row]) })));
      expect(e.message).toMatch(message);
    }
  });

  it('aligns a single span against a text', () => {
    expect(alignAnswerSpan({ start: 2, end: 3, text: 'b' }, 'a b')).toEqual({ start: 2, end: 3, text: 'b' });
    expect(alignAnswerSpan({ start: 2, end: 3, text: 'b' }, '😀 b')).toEqual({ start: 3, end: 4, text: 'b' });
    expect(alignAnswerSpan({ start: 9, end: 10, text: 'b' }, 'a b')).toBeUndefined();
  });
});

const covidqa = '/work/shared/eval/covidqa';

describe.skipIf(!existsSync(covidqa))('the covidqa dataset', () => {
  it('loads completely, with every answer span found in its document', async () => {
    const data = await loadBeir(covidqa);
    expect(data.corpus).toHaveLength(98);
    expect(data.queries.size).toBe(1380);
    expect(data.qrels.size).toBe(1380);
    expect(data.answers?.size).toBe(1380);
    expect(data.stats.qrelsUnknownDocuments).toBe(0);
    expect(data.stats.answerSpansDropped).toBe(0);
    const text = new Map(data.corpus.map((d) => [d.id, d.text]));
    for (const answer of data.answers!.values()) {
      for (const span of answer.spans)
        expect(text.get(answer.docId)!.slice(span.start, span.end)).toBe(span.text);
    }
  });
});
