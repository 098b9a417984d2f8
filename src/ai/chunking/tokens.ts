import { countTokens as countO200k, decode, encode } from 'gpt-tokenizer';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { trimSpan } from './boundaries.js';

/**
 * Token counting for chunking. We use gpt-tokenizer's default export, the `o200k_base` encoding
 * (GPT-4o / GPT-5 family); counts from other embedding tokenizers differ by a few percent, which the
 * chunk budget absorbs. Special-token strings such as `<|endoftext|>` that occur in a user's document
 * are ordinary text here: the library's default would throw on them.
 */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() } as const;

/**
 * Token counts of pre-tokenizer pieces (words with their leading space or punctuation, runs of
 * digits or whitespace). BPE encodes each piece of the encoding's split pattern on its own, so a
 * text's count is the sum of its pieces' counts, and the chunker counts the same words many times
 * (each block, each chunk, each overlap candidate). Looking a frequent piece up here instead of in
 * the 200k-entry vocabulary (then byte-pair merging the rest) halves the chunker's cost. Bounded:
 * emptied when full; long pieces (rare, and costly to key) are not kept.
 */
const pieceCounts = new Map<string, number>();
const PIECE_CACHE_ENTRIES = 50_000;
const PIECE_CACHE_MAX_LENGTH = 32;

export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  let total = 0;
  for (const [piece] of text.matchAll(O200K_TOKEN_SPLIT_REGEX)) {
    let count = pieceCounts.get(piece);
    if (count === undefined) {
      count = countO200k(piece, PLAIN_TEXT);
      if (piece.length <= PIECE_CACHE_MAX_LENGTH) {
        if (pieceCounts.size >= PIECE_CACHE_ENTRIES) pieceCounts.clear();
        pieceCounts.set(piece, count);
      }
    }
    total += count;
  }
  return total;
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
