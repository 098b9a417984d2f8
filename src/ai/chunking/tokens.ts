import { countTokens as countO200k, decode, encode } from 'gpt-tokenizer';
import { trimSpan } from './boundaries.js';

/**
 * Token counting for chunking. We use gpt-tokenizer's default export, the `o200k_base` encoding
 * (GPT-4o / GPT-5 family); counts from other embedding tokenizers differ by a few percent, which the
 * chunk budget absorbs. Special-token strings such as `<|endoftext|>` that occur in a user's document
 * are ordinary text here: the library's default would throw on them.
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() } as const;

export function countTokens(text: string): number {
  return text.length === 0 ? 0 : countO200k(text, PLAIN_TEXT);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** Moves `offset` back by one if it would land between the two halves of a surrogate pair. */
export function safeOffset(text: string, offset: number): number {
  if (offset > 0 && offset < text.length && isHighSurrogate(text.charCodeAt(offset - 1))) {
    const next = text.charCodeAt(offset);
    if (next >= 0xdc00 && next <= 0xdfff) return offset - 1;
  }
  return offset;
}

/**
 * Splits `text.slice(start, end)` at token boundaries into pieces of at most `maxTokens` tokens each
 * (counted after trimming, since ` word` and `word` can tokenize differently),
 * returned as `[start, end)` offsets into `text`. The span is encoded once; a piece's end is found by
 * decoding its tokens and checking that the result is a verbatim prefix of the remaining text, so a
 * cut never lands inside a multi-byte character (a token holding half of an emoji decodes to U+FFFD and
 * fails the check) nor, therefore, inside a surrogate pair.
 */
export function splitAtTokens(
  text: string,
  start: number,
  end: number,
  maxTokens: number,
): [number, number][] {
  const tokens = encode(text.slice(start, end), PLAIN_TEXT);
  const pieces: [number, number][] = [];
  let pos = start;
  let k = 0;
  while (k < tokens.length && pos < end) {
    let take = Math.min(maxTokens, tokens.length - k);
    let pieceEnd = -1;
    // Shrink until the decoded tokens are an exact prefix whose re-encoding fits the budget.
    while (take > 0) {
      const decoded = decode(tokens.slice(k, k + take));
      const candidateEnd = safeOffset(text, pos + decoded.length);
      if (
        candidateEnd > pos &&
        candidateEnd <= end &&
        text.startsWith(decoded, pos) &&
        countTokens(text.slice(...trimSpan(text, pos, candidateEnd))) <= maxTokens
      ) {
        pieceEnd = candidateEnd;
        break;
      }
      take--;
    }
    if (pieceEnd < 0) {
      // A single token shorter than one character (half an emoji): grow until a character completes.
      take = 1;
      while (k + take <= tokens.length) {
        const decoded = decode(tokens.slice(k, k + take));
        if (text.startsWith(decoded, pos) && decoded.length > 0) {
          pieceEnd = safeOffset(text, pos + decoded.length);
          if (pieceEnd > pos) break;
        }
        take++;
      }
      if (pieceEnd <= pos) {
        // Unreachable for valid input; never loop forever on malformed text.
        pieces.push([pos, end]);
        return pieces;
      }
    }
    pieces.push([pos, pieceEnd]);
    pos = pieceEnd;
    k += take;
  }
  if (pos < end) pieces.push([pos, end]);
  return pieces;
}
