import { paragraphBlocks } from './builder.js';
import type { ParsedDocument } from './types.js';

export const TEXT_MIME = 'text/plain';

/** Plain text: the text as decoded, one paragraph block per blank-line-separated run. */
export function parseText(text: string): ParsedDocument {
  return { text, blocks: paragraphBlocks(text), mime: TEXT_MIME, metadata: {} };
}
