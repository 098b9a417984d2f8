import { extractText, getDocumentProxy } from 'unpdf';

import { BLOCK_SEPARATOR, paragraphBlocks } from './builder.js';
import { normaliseNewlines } from './decode.js';
import { describe } from './sniff.js';
import { ParseError, type Block, type PageSpan, type ParsedDocument } from './types.js';

export const PDF_MIME = 'application/pdf';

/** Acrobat's rule: a complete file has `%%EOF` within its last 1024 bytes. */
const EOF_WINDOW = 1024;

/**
 * Extracts a PDF's text page by page (pages joined by a blank line, each page's span recorded in
 * `pages`); blank lines within a page split it into paragraph blocks.
 *
 * @example
 *   const doc = await parsePdf(bytes); // doc.pages → [{ page: 1, start: 0, end: 42 }, …]
 */
export async function parsePdf(bytes: Uint8Array): Promise<ParsedDocument> {
  // pdf.js reconstructs broken files leniently and would return part of a truncated upload as if it
  // were whole; a missing trailer marker means the upload was cut short.
  if (!hasEofMarker(bytes)) throw new ParseError('corrupt', 'the PDF is truncated (no %%EOF marker)');

  let pageTexts: string[];
  let info: unknown;
  try {
    // pdf.js may transfer (detach) the buffer it is given, so it gets a copy.
    const pdf = await getDocumentProxy(bytes.slice());
    try {
      pageTexts = (await extractText(pdf, { mergePages: false })).text;
      info = (await pdf.getMetadata().catch(() => undefined))?.info;
    } finally {
      await pdf.destroy();
    }
  } catch (error) {
    if (error instanceof Error && error.name === 'PasswordException') {
      throw new ParseError('unsupported', 'the PDF is password-protected');
    }
    throw new ParseError('corrupt', `the PDF cannot be read: ${describe(error)}`);
  }

  let text = '';
  const pages: PageSpan[] = [];
  const blocks: Block[] = [];
  pageTexts.forEach((raw, index) => {
    const pageText = tidyPage(raw);
    if (pageText !== '' && text !== '') text += BLOCK_SEPARATOR;
    const start = text.length;
    text += pageText;
    pages.push({ page: index + 1, start, end: text.length });
    blocks.push(...paragraphBlocks(pageText, start));
  });

  return {
    text,
    blocks,
    pages,
    title: metadataTitle(info),
    mime: PDF_MIME,
    metadata: { pageCount: pageTexts.length },
  };
}

function hasEofMarker(bytes: Uint8Array): boolean {
  const tail = new TextDecoder('latin1').decode(bytes.subarray(Math.max(0, bytes.length - EOF_WINDOW)));
  return tail.includes('%%EOF');
}

/** Trailing spaces on lines and runs of blank lines are layout noise. */
const tidyPage = (raw: string): string =>
  normaliseNewlines(raw)
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();

function metadataTitle(info: unknown): string | undefined {
  if (typeof info !== 'object' || info === null || !('Title' in info)) return undefined;
  const title = info.Title;
  return typeof title === 'string' && title.trim() !== '' ? title.trim() : undefined;
}
