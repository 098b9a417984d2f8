import { parseCsv } from './csv.js';
import { parseDocx } from './docx.js';
import { parseHtml } from './html.js';
import { parseJson } from './json.js';
import { parseMarkdown } from './markdown.js';
import { parsePdf } from './pdf.js';
import { sniff, type ParseHint } from './sniff.js';
import { parseText } from './text.js';
import { ParseError, type ParsedDocument } from './types.js';

export { ParseError } from './types.js';
export type { Block, BlockKind, PageSpan, ParsedDocument } from './types.js';
export type { ParseHint } from './sniff.js';

/**
 * Turns an uploaded file into text plus structure, detecting the format from the content (the
 * filename and declared mime only break ties). Throws `ParseError` for anything a user must fix.
 *
 * @example
 *   const doc = await parseDocument(bytes, { filename: 'handbook.pdf' });
 *   doc.text.slice(doc.blocks[0].start, doc.blocks[0].end); // the first block's text
 */
export async function parseDocument(bytes: Uint8Array, hint: ParseHint): Promise<ParsedDocument> {
  if (bytes.length === 0) throw new ParseError('empty', 'the file is empty');
  const parsed = await parseSniffed(bytes, hint);
  if (parsed.text.trim() === '' || parsed.blocks.length === 0) {
    throw new ParseError('empty', 'no text could be extracted from the file');
  }
  return parsed;
}

async function parseSniffed(bytes: Uint8Array, hint: ParseHint): Promise<ParsedDocument> {
  const sniffed = await sniff(bytes, hint);
  switch (sniffed.format) {
    case 'pdf':
      return parsePdf(bytes);
    case 'docx':
      return parseDocx(bytes);
    case 'html':
      return withEncoding(parseHtml(sniffed.text, { readability: true }), sniffed.encoding);
    case 'json':
      return withEncoding(parseJson(sniffed.text), sniffed.encoding);
    case 'csv':
      return withEncoding(parseCsv(sniffed.text), sniffed.encoding);
    case 'markdown':
      return withEncoding(parseMarkdown(sniffed.text), sniffed.encoding);
    case 'text':
      return withEncoding(parseText(sniffed.text), sniffed.encoding);
  }
}

const withEncoding = (parsed: ParsedDocument, encoding: string): ParsedDocument => ({
  ...parsed,
  metadata: { ...parsed.metadata, encoding },
});
