import { TextBuilder } from './builder.js';
import type { ParsedDocument } from './types.js';

export const CSV_MIME = 'text/csv';

const DELIMITERS = [',', ';', '\t'] as const;

/**
 * Parses CSV into one `record` block per row, rendered `column: value; column: value` on a single
 * line so a chunk always cites whole rows. The header row opens `text` but is not a block.
 *
 * @example
 *   parseCsv('name,city\nAda,London').text; // 'name, city\n\nname: Ada; city: London'
 */
export function parseCsv(source: string): ParsedDocument {
  const delimiter = detectDelimiter(source);
  const rows = parseCsvRows(source, delimiter).filter((row) => row.some((field) => field.trim() !== ''));
  const [header = [], ...records] = rows;
  const columns = header.map((name, index) => oneLine(name) || `column ${index + 1}`);

  const builder = new TextBuilder();
  builder.addLoose(columns.join(', '));
  for (const record of records) {
    const pairs = record
      .map((value, index) => [columns[index] ?? `column ${index + 1}`, oneLine(value)] as const)
      .filter(([, value]) => value !== '')
      .map(([column, value]) => `${column}: ${value}`);
    builder.add('record', pairs.join('; '));
  }

  return {
    text: builder.text,
    blocks: builder.blocks,
    mime: CSV_MIME,
    metadata: { columns, rowCount: records.length, delimiter },
  };
}

/**
 * RFC 4180: fields may be quoted; inside quotes, delimiters and newlines are literal and `""` is a
 * quote. Lenient where the RFC is silent: an unterminated quote runs to the end of input, and a quote
 * inside an unquoted field is kept as a character. Expects `\n` line endings.
 */
export function parseCsvRows(source: string, delimiter = ','): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let fieldStarted = false;

  for (let i = 0; i < source.length; i += 1) {
    const char = source.charAt(i);
    if (quoted) {
      if (char !== '"') field += char;
      else if (source.charAt(i + 1) === '"') {
        field += '"';
        i += 1;
      } else quoted = false;
    } else if (char === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
    } else if (char === delimiter) {
      row.push(field);
      field = '';
      fieldStarted = false;
    } else if (char === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      fieldStarted = false;
    } else {
      field += char;
      fieldStarted = true;
    }
  }
  if (fieldStarted || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** Picks the delimiter that occurs most often outside quotes in the first record. */
function detectDelimiter(source: string): string {
  const counts = new Map<string, number>();
  let quoted = false;
  for (const char of source) {
    if (char === '"') quoted = !quoted;
    else if (!quoted && char === '\n') break;
    else if (!quoted) counts.set(char, (counts.get(char) ?? 0) + 1);
  }
  let best: string = DELIMITERS[0];
  for (const delimiter of DELIMITERS) {
    if ((counts.get(delimiter) ?? 0) > (counts.get(best) ?? 0)) best = delimiter;
  }
  return best;
}

const oneLine = (value: string): string => value.replace(/\s+/g, ' ').trim();
