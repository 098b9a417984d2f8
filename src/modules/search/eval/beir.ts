/**
 * Reads a BEIR-format evaluation directory:
 *
 *   corpus.jsonl        {"_id", "title", "text"}            one document per line
 *   queries.jsonl       {"_id", "text"}
 *   qrels/<split>.tsv   query-id \t corpus-id \t score      header line, graded relevance, 0 = not relevant
 *   answers.jsonl       {"_id": query id, "doc_id", "answers": [{"text", "answer_start"}]}   optional
 *
 * Ids may be JSON numbers; they are turned into strings everywhere. Every malformed line fails with a
 * {@link BeirFormatError} naming the file and the 1-based line.
 *
 * Relevance: qrels rows with score ≤ 0 are judged non-relevant and are left out of `qrels` (so they can never
 * enter an ideal DCG); queries are kept only if at least one document is relevant to them, the set BEIR and
 * trec_eval average over.
 *
 * @example
 *   const { corpus, queries, qrels, answers } = await loadBeir('/data/covidqa');
 *   // large corpora: const topics = await loadBeirTopics(dir); for await (const doc of corpusLines(dir)) …
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';

export class BeirFormatError extends Error {
  override readonly name = 'BeirFormatError';
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    reason: string,
  ) {
    super(line === undefined ? `${file}: ${reason}` : `${file}:${line}: ${reason}`);
  }
}

export interface BeirDocument {
  id: string;
  title: string;
  text: string;
}

/** An answer span: `[start, end)` in the document's `text`, as JavaScript (UTF-16) string offsets once aligned. */
export interface BeirAnswerSpan {
  start: number;
  end: number;
  text: string;
}

export interface BeirAnswer {
  docId: string;
  spans: BeirAnswerSpan[];
}

export interface BeirTopics {
  /** Query id → text, only queries with at least one relevant document. */
  queries: Map<string, string>;
  /** Query id → (document id → grade > 0). */
  qrels: Map<string, Map<string, number>>;
  /** Query id → answer, when the directory has `answers.jsonl` (only for the queries kept). */
  answers?: Map<string, BeirAnswer>;
  stats: BeirStats;
}

export interface BeirDataset extends BeirTopics {
  corpus: BeirDocument[];
}

export interface BeirStats {
  queriesInFile: number;
  /** Queries with no qrels row at all: not evaluated. */
  queriesWithoutQrels: number;
  /** Queries whose qrels rows all have score ≤ 0: not evaluated (the metrics are undefined for them). */
  queriesWithoutRelevant: number;
  qrelsRows: number;
  /** qrels rows with score ≤ 0, left out of `qrels`. */
  nonRelevantQrels: number;
  /** Relevant qrels pointing at a document missing from the corpus (only counted by {@link loadBeir}). */
  qrelsUnknownDocuments: number;
  /** Answer spans whose offsets were Unicode code points and were converted to UTF-16 offsets. */
  answerSpansRealigned: number;
  /** Answer spans dropped because their text is not at their offset (or their document is missing). */
  answerSpansDropped: number;
}

export interface BeirOptions {
  /** Which `qrels/<split>.tsv` to read. */
  split?: string;
}

/**
 * Streams `corpus.jsonl` one line at a time, for corpora too large to hold in memory. Does not check for
 * duplicate ids (that needs every id in memory; {@link loadBeir} does).
 */
export async function* corpusLines(dir: string): AsyncGenerator<BeirDocument> {
  for await (const { doc } of numberedCorpus(dir)) yield doc;
}

async function* numberedCorpus(
  dir: string,
): AsyncGenerator<{ doc: BeirDocument; file: string; line: number }> {
  for await (const { value, file, line } of jsonLines(path.join(dir, 'corpus.jsonl'))) {
    const id = readId(value, '_id', file, line);
    const title = value.title ?? '';
    if (typeof title !== 'string') throw new BeirFormatError(file, line, '"title" must be a string');
    if (typeof value.text !== 'string') throw new BeirFormatError(file, line, '"text" must be a string');
    yield { doc: { id, title, text: value.text }, file, line };
  }
}

/** Queries, qrels and answers, without the corpus. Answer offsets are as written in the file (unverified). */
export async function loadBeirTopics(dir: string, { split = 'test' }: BeirOptions = {}): Promise<BeirTopics> {
  const stats: BeirStats = {
    queriesInFile: 0,
    queriesWithoutQrels: 0,
    queriesWithoutRelevant: 0,
    qrelsRows: 0,
    nonRelevantQrels: 0,
    qrelsUnknownDocuments: 0,
    answerSpansRealigned: 0,
    answerSpansDropped: 0,
  };

  const allQueries = new Map<string, string>();
  for await (const { value, file, line } of jsonLines(path.join(dir, 'queries.jsonl'))) {
    const id = readId(value, '_id', file, line);
    if (typeof value.text !== 'string') throw new BeirFormatError(file, line, '"text" must be a string');
    if (allQueries.has(id)) throw new BeirFormatError(file, line, `duplicate query id ${JSON.stringify(id)}`);
    allQueries.set(id, value.text);
  }
  stats.queriesInFile = allQueries.size;

  const judged = new Set<string>();
  const qrels = new Map<string, Map<string, number>>();
  const qrelsFile = path.join(dir, 'qrels', `${split}.tsv`);
  const seen = new Map<string, number>();
  for await (const { columns, file, line } of tsvRows(qrelsFile)) {
    const [queryId, docId, score] = columns;
    if (columns.length !== 3 || !queryId || !docId || score === undefined) {
      throw new BeirFormatError(file, line, 'expected 3 tab-separated columns: query-id, corpus-id, score');
    }
    const grade = Number(score);
    if (score.trim() === '' || !Number.isFinite(grade)) {
      throw new BeirFormatError(file, line, `score ${JSON.stringify(score)} is not a number`);
    }
    if (!allQueries.has(queryId)) {
      throw new BeirFormatError(file, line, `query ${JSON.stringify(queryId)} is not in queries.jsonl`);
    }
    const key = `${queryId}\t${docId}`;
    const previous = seen.get(key);
    if (previous !== undefined && previous !== grade) {
      throw new BeirFormatError(file, line, `conflicting scores ${previous} and ${grade} for the same pair`);
    }
    if (previous !== undefined) continue;
    seen.set(key, grade);
    stats.qrelsRows++;
    judged.add(queryId);
    if (grade <= 0) {
      stats.nonRelevantQrels++;
      continue;
    }
    let grades = qrels.get(queryId);
    if (!grades) qrels.set(queryId, (grades = new Map<string, number>()));
    grades.set(docId, grade);
  }

  const queries = new Map<string, string>();
  for (const [id, text] of allQueries) {
    if (qrels.has(id)) queries.set(id, text);
    else if (judged.has(id)) stats.queriesWithoutRelevant++;
    else stats.queriesWithoutQrels++;
  }

  const answersFile = path.join(dir, 'answers.jsonl');
  const answers = (await exists(answersFile)) ? await readAnswers(answersFile, queries) : undefined;
  return { queries, qrels, ...(answers && { answers }), stats };
}

/**
 * Everything in memory. Also checks corpus ids are unique, counts relevant qrels that point nowhere, and aligns
 * answer offsets with the document text: BEIR/SQuAD-style offsets are Unicode code points (Python string
 * indices), JavaScript strings index UTF-16 code units, and the two differ after any character outside the
 * BMP. A span is kept if its text is found at its offset read either way; otherwise it is dropped (counted).
 */
export async function loadBeir(dir: string, options: BeirOptions = {}): Promise<BeirDataset> {
  const topics = await loadBeirTopics(dir, options);
  const corpus: BeirDocument[] = [];
  const byId = new Map<string, BeirDocument>();
  for await (const { doc, file, line } of numberedCorpus(dir)) {
    if (byId.has(doc.id)) {
      throw new BeirFormatError(file, line, `duplicate document id ${JSON.stringify(doc.id)}`);
    }
    byId.set(doc.id, doc);
    corpus.push(doc);
  }
  for (const grades of topics.qrels.values()) {
    for (const docId of grades.keys()) if (!byId.has(docId)) topics.stats.qrelsUnknownDocuments++;
  }
  if (topics.answers) {
    for (const answer of topics.answers.values()) {
      const text = byId.get(answer.docId)?.text;
      const spans: BeirAnswerSpan[] = [];
      for (const span of answer.spans) {
        const aligned = text === undefined ? undefined : alignAnswerSpan(span, text);
        if (!aligned) topics.stats.answerSpansDropped++;
        else {
          if (aligned.start !== span.start) topics.stats.answerSpansRealigned++;
          spans.push(aligned);
        }
      }
      answer.spans = spans;
    }
  }
  return { ...topics, corpus };
}

/**
 * Locates an answer span in its document's text: at its offset as UTF-16 code units, else as Unicode code
 * points. Returns the span in UTF-16 offsets, or `undefined` if the text is at neither.
 */
export function alignAnswerSpan(span: BeirAnswerSpan, docText: string): BeirAnswerSpan | undefined {
  if (docText.startsWith(span.text, span.start)) return span;
  const start = codePointToUtf16(docText, span.start);
  if (start !== undefined && docText.startsWith(span.text, start)) {
    return { start, end: start + span.text.length, text: span.text };
  }
  return undefined;
}

function codePointToUtf16(text: string, codePoints: number): number | undefined {
  let units = 0;
  for (let cp = 0; cp < codePoints; cp++) {
    if (units >= text.length) return undefined;
    units += (text.codePointAt(units) ?? 0) > 0xffff ? 2 : 1;
  }
  return units;
}

async function readAnswers(file: string, queries: ReadonlyMap<string, string>) {
  const answers = new Map<string, BeirAnswer>();
  for await (const { value, line } of jsonLines(file)) {
    const queryId = readId(value, '_id', file, line);
    const docId = readId(value, 'doc_id', file, line);
    if (!Array.isArray(value.answers)) throw new BeirFormatError(file, line, '"answers" must be an array');
    const spans = (value.answers as unknown[]).map((a, i): BeirAnswerSpan => {
      const where = `answers[${i}]`;
      if (!isRecord(a)) throw new BeirFormatError(file, line, `${where} must be an object`);
      if (typeof a.text !== 'string') throw new BeirFormatError(file, line, `${where}.text must be a string`);
      const start = a.answer_start;
      if (typeof start !== 'number' || !Number.isInteger(start) || start < 0) {
        throw new BeirFormatError(file, line, `${where}.answer_start must be a non-negative integer`);
      }
      return { start, end: start + a.text.length, text: a.text };
    });
    if (answers.has(queryId)) {
      throw new BeirFormatError(file, line, `duplicate answers for query ${JSON.stringify(queryId)}`);
    }
    if (queries.has(queryId)) answers.set(queryId, { docId, spans });
  }
  return answers;
}

// ---------------------------------------------------------------------------------------------------
// Line readers

async function* lines(file: string): AsyncGenerator<{ text: string; line: number }> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('ready', resolve);
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BeirFormatError(file, undefined, code === 'ENOENT' ? 'file not found' : String(error));
  }
  const reader = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of reader) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      yield { text, line };
    }
  } finally {
    reader.close();
    stream.destroy();
  }
}

async function* jsonLines(
  file: string,
): AsyncGenerator<{ value: Record<string, unknown>; file: string; line: number }> {
  for await (const { text, line } of lines(file)) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new BeirFormatError(file, line, `invalid JSON (${(error as Error).message})`);
    }
    if (!isRecord(value)) throw new BeirFormatError(file, line, 'expected a JSON object');
    yield { value, file, line };
  }
}

/** Rows of a qrels file; the header (a first row whose score column is not a number) is skipped. */
async function* tsvRows(file: string): AsyncGenerator<{ columns: string[]; file: string; line: number }> {
  let first = true;
  for await (const { text, line } of lines(file)) {
    const columns = text.split('\t').map((c) => c.trim());
    if (first) {
      first = false;
      if (columns.length === 3 && Number.isNaN(Number(columns[2]))) continue;
    }
    yield { columns, file, line };
  }
}

function readId(value: Record<string, unknown>, key: string, file: string, line: number): string {
  const id = value[key];
  if (typeof id === 'number' && Number.isFinite(id)) return String(id);
  if (typeof id === 'string' && id !== '') return id;
  throw new BeirFormatError(file, line, `"${key}" must be a non-empty string or a number`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
