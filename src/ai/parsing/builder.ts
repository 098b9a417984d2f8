import type { Block, BlockKind } from './types.js';

/** Blocks are separated by a blank line, so paragraph splitting and chunk boundaries agree. */
export const BLOCK_SEPARATOR = '\n\n';

/**
 * Builds a document's `text` from block texts, recording each block's offsets as it goes, so the
 * offsets cannot drift from the text they index.
 */
export class TextBuilder {
  private readonly parts: string[] = [];
  private length = 0;
  readonly blocks: Block[] = [];

  /** Appends a block (trimmed); empty blocks are dropped. */
  add(kind: BlockKind, text: string, level?: number): void {
    const trimmed = text.trim();
    if (trimmed === '') return;
    if (this.parts.length > 0) this.push(BLOCK_SEPARATOR);
    const start = this.length;
    this.push(trimmed);
    this.blocks.push(
      level === undefined ? { kind, start, end: this.length } : { kind, start, end: this.length, level },
    );
  }

  /** Appends text that belongs to no block (e.g. a CSV header line). */
  addLoose(text: string): void {
    const trimmed = text.trim();
    if (trimmed === '') return;
    if (this.parts.length > 0) this.push(BLOCK_SEPARATOR);
    this.push(trimmed);
  }

  get text(): string {
    return this.parts.join('');
  }

  private push(part: string): void {
    this.parts.push(part);
    this.length += part.length;
  }
}

/**
 * Splits `text` on blank lines into paragraph blocks whose offsets are shifted by `base`; each block
 * is trimmed of surrounding whitespace so it starts and ends on content.
 */
export function paragraphBlocks(text: string, base = 0, kind: BlockKind = 'paragraph'): Block[] {
  const blocks: Block[] = [];
  const separator = /\n[ \t]*\n/g;
  let from = 0;
  const emit = (to: number): void => {
    const slice = text.slice(from, to);
    const lead = slice.length - slice.trimStart().length;
    const content = slice.trim();
    if (content !== '') {
      const start = base + from + lead;
      blocks.push({ kind, start, end: start + content.length });
    }
  };
  for (let match = separator.exec(text); match !== null; match = separator.exec(text)) {
    emit(match.index);
    from = match.index + match[0].length;
  }
  emit(text.length);
  return blocks;
}
