import { sniff, type ParseHint } from './sniff.js';
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

/**
 * Parsers are imported on first use: together they weigh more than a second of start-up (pdf.js,
 * mammoth, linkedom, markdown-it), which every CLI command and API replica would otherwise pay.
 */
async function parseSniffed(bytes: Uint8Array, hint: ParseHint): Promise<ParsedDocument> {
  const sniffed = await sniff(bytes, hint);
  switch (sniffed.format) {
    case 'pdf':
      return (await import('./pdf.js')).parsePdf(bytes);
    case 'docx':
      return (await import('./docx.js')).parseDocx(bytes);
    case 'html': {
      const { parseHtml } = await import('./html.js');
      return withEncoding(parseHtml(sniffed.text, { readability: true }), sniffed.encoding);
    }
    case 'json':
      return withEncoding((await import('./json.js')).parseJson(sniffed.text), sniffed.encoding);
    case 'csv':
      return withEncoding((await import('./csv.js')).parseCsv(sniffed.text), sniffed.encoding);
    case 'markdown':
      return withEncoding((await import('./markdown.js')).parseMarkdown(sniffed.text), sniffed.encoding);
    case 'text':
      return withEncoding((await import('./text.js')).parseText(sniffed.text), sniffed.encoding);
  }
}

const withEncoding = (parsed: ParsedDocument, encoding: string): ParsedDocument => ({
  ...parsed,
  metadata: { ...parsed.metadata, encoding },
});
