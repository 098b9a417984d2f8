/**
 * `larder import --jsonl FILE`: one document per line, e.g. a BEIR corpus. The file is streamed line
 * by line (never loaded whole) and each record goes through DocumentService like any upload.
 *
 * A line is a JSON object:
 *   { "_id": "630", "title": "…", "text": "…", "metadata": { … }, "mime": "text/markdown", … }
 *  - `_id` or `external_id` (string or number): the document's `externalId` — required, so a re-run
 *    skips what is stored and replaces what changed;
 *  - `text` (required, non-empty): the content, read as plain text unless `mime` says otherwise;
 *  - `title` (optional; an empty string means none), `metadata` (optional object);
 *  - every other field is kept in the metadata (`metadata` wins on a clash).
 * Bad lines are reported with their number and do not stop the import (exit status 2 at the end).
 *
 * @example
 *   larder import --jsonl corpus.jsonl --collection covidqa --wait --json
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Config } from '../config.js';
import { CliError, type CommonOptions, pool, runCommand } from './ingest.js';

export interface ImportOptions extends CommonOptions {
  jsonl: string;
}

const MIMES = new Set(['text/plain', 'text/markdown', 'text/html', 'text/csv', 'application/json']);
const KNOWN = new Set(['_id', 'external_id', 'title', 'text', 'metadata', 'mime']);
const MAX_EXTERNAL_ID = 1000;
const MAX_TITLE = 500;

export interface ImportRecord {
  externalId: string;
  text: string;
  title: string | undefined;
  mime: string;
  metadata: Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one line; throws a message for the operator when it is not a usable record. */
export function parseRecord(line: string): ImportRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new Error(`invalid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new Error('not a JSON object');
  const id = value._id ?? value.external_id;
  if (!(typeof id === 'string' && id.length > 0) && !(typeof id === 'number' && Number.isFinite(id)))
    throw new Error('missing _id (or external_id): a non-empty string or a number');
  const externalId = String(id);
  if (externalId.length > MAX_EXTERNAL_ID)
    throw new Error(`_id is longer than ${MAX_EXTERNAL_ID} characters`);
  if (typeof value.text !== 'string' || value.text.trim() === '')
    throw new Error('missing text: a non-empty string');
  if (value.title !== undefined && value.title !== null && typeof value.title !== 'string')
    throw new Error('title must be a string');
  if (value.metadata !== undefined && value.metadata !== null && !isObject(value.metadata))
    throw new Error('metadata must be a JSON object');
  const mime = value.mime ?? 'text/plain';
  if (typeof mime !== 'string' || !MIMES.has(mime))
    throw new Error(`mime must be one of ${[...MIMES].join(', ')}`);
  const extra = Object.fromEntries(Object.entries(value).filter(([k]) => !KNOWN.has(k)));
  const title = typeof value.title === 'string' && value.title.trim() !== '' ? value.title : undefined;
  return {
    externalId,
    text: value.text,
    title: title?.slice(0, MAX_TITLE),
    mime,
    metadata: { ...extra, ...(isObject(value.metadata) ? value.metadata : {}) },
  };
}

interface Line {
  number: number;
  text: string;
}

/** The file's lines with their numbers (blank lines skipped), counting the bytes read. */
async function* lines(file: string, progress: { bytes: number }): AsyncGenerator<Line> {
  const input = createReadStream(file);
  const reader = createInterface({ input, crlfDelay: Infinity });
  let number = 0;
  try {
    for await (const raw of reader) {
      number += 1;
      progress.bytes += Buffer.byteLength(raw) + 1;
      const text = number === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      yield { number, text };
    }
  } finally {
    reader.close();
    input.destroy();
  }
}

export async function importCommand({ config }: { config: Config }, opts: ImportOptions) {
  const read = { bytes: 0 };
  let size = 0;
  await runCommand(config, opts, {
    command: 'import',
    source: opts.jsonl,
    reporter: { unit: 'lines', fraction: () => (size > 0 ? Math.min(1, read.bytes / size) : undefined) },
    async precheck() {
      const info = await stat(opts.jsonl).catch(() => undefined);
      if (!info?.isFile()) throw new CliError(`${opts.jsonl}: no such file`);
      size = info.size;
    },
    async body(run) {
      await pool(lines(opts.jsonl, read), run.concurrency, run.signal, async (line) => {
        let record: ImportRecord;
        try {
          record = parseRecord(line.text);
        } catch (error) {
          run.tally.fail({ line: line.number, code: 'invalid_line', message: (error as Error).message });
          return;
        }
        const content = Buffer.from(record.text, 'utf8');
        await run.store({
          externalId: record.externalId,
          at: { line: line.number },
          sha256: createHash('sha256').update(content).digest('hex'),
          bytes: content.length,
          title: record.title,
          metadata: record.metadata,
          upload: () =>
            run.documents.add(
              run.ws,
              null,
              run.collectionId,
              {
                content,
                mime: record.mime,
                externalId: record.externalId,
                title: record.title,
                metadata: record.metadata,
              },
              run.audit,
            ),
        });
      });
    },
  });
}
