/**
 * The contract between parsers and the chunker. A parser turns bytes into one plain `text` plus
 * structure; every offset indexes into `text` (UTF-16 code units, i.e. JavaScript string indices), so
 * a chunk's `[charStart, charEnd)` can be highlighted in the extracted text exactly.
 */

export type BlockKind = 'heading' | 'paragraph' | 'list' | 'code' | 'table' | 'quote' | 'record';

export interface Block {
  kind: BlockKind;
  /** Inclusive start offset into `ParsedDocument.text`. */
  start: number;
  /** Exclusive end offset. `text.slice(start, end)` is the block's text. */
  end: number;
  /** Heading level 1–6 (headings only). */
  level?: number;
}

export interface PageSpan {
  /** 1-based page number. */
  page: number;
  start: number;
  end: number;
}

export interface ParsedDocument {
  /** The extracted text, normalised to `\n` line endings. */
  text: string;
  /** Blocks in document order, non-overlapping, each within `text`. */
  blocks: Block[];
  /** PDFs: which part of `text` each page produced. */
  pages?: PageSpan[];
  /** A title found in the content (first H1, <title>, PDF/DOCX metadata). */
  title?: string;
  /** The detected format, e.g. `text/markdown`. */
  mime: string;
  metadata: Record<string, unknown>;
}

/** A parse failure a user can act on (unsupported, corrupt, empty); ends the document `failed`. */
export class ParseError extends Error {
  constructor(
    readonly reason: 'unsupported' | 'corrupt' | 'empty' | 'too_large',
    message: string,
  ) {
    super(message);
    this.name = 'ParseError';
  }
}
