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

function pieceCount(piece: string): number {
  let count = pieceCounts.get(piece);
  if (count === undefined) {
    count = countO200k(piece, PLAIN_TEXT);
    if (piece.length <= PIECE_CACHE_MAX_LENGTH) {
      if (pieceCounts.size >= PIECE_CACHE_ENTRIES) pieceCounts.clear();
      pieceCounts.set(piece, count);
    }
  }
  return count;
}

export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  let total = 0;
  for (const [piece] of text.matchAll(O200K_TOKEN_SPLIT_REGEX)) total += pieceCount(piece);
  return total;
}

/** The split pattern, matched from a given offset of a text (`lastIndex`). */
const SPLIT_FROM = new RegExp(O200K_TOKEN_SPLIT_REGEX.source, 'gu');

/** JavaScript's `\s` (what the split pattern's whitespace alternatives match), by code unit. */
function isSpace(code: number): boolean {
  return code <= 0x20
    ? code === 0x20 || (code >= 0x09 && code <= 0x0d)
    : code === 0xa0 ||
        code === 0x1680 ||
        (code >= 0x2000 && code <= 0x200a) ||
        code === 0x2028 ||
        code === 0x2029 ||
        code === 0x202f ||
        code === 0x205f ||
        code === 0x3000 ||
        code === 0xfeff;
}

/**
 * Token counts of any spans of one text, from one pass of the split pattern over all of it: what
 * `countTokens(text.slice(start, end))` returns, without re-reading the span. The chunker counts every
 * block, then every candidate chunk and overlap, ~2.5 times the text in all; with this, once.
 *
 * A span is split like the whole text except near its edges: at its start (usually inside a piece,
 * e.g. `word` of ` word`) the pattern is run from the start until it meets a piece boundary of the
 * whole text, after which both agree; at its end, a piece of the whole text is the span's own only if
 * matching it looked at nothing beyond the span. How far matching a piece looks is bounded by `reach`:
 * a few code units past it (a contraction such as `'ll`, a surrogate pair) or, when whitespace follows,
 * to the end of that whitespace run (`\s*[\r\n]+` and `\s+(?!\S)` scan the whole run). The last
 * pieces, from the first whose reach is not inside the span, are split again on their own. Anything
 * unusual (a gap between matches) falls back to counting the slice.
 *
 * @example
 * const counter = new SpanCounter(text);
 * counter.count(10, 500) === countTokens(text.slice(10, 500)); // always
 */
export class SpanCounter {
  readonly #text: string;
  /** Piece k is `[starts[k], starts[k + 1])`; `starts[pieces] === text.length`. */
  readonly #starts: Int32Array;
  /** Tokens of pieces `0 … k − 1`. */
  readonly #prefix: Int32Array;
  /** The furthest code unit that matching piece k (or any before it) may have looked at; non-decreasing. */
  readonly #reach: Int32Array;
  readonly #pieces: number;
  /** False when the pattern left a gap (never seen): every count is then `countTokens` of the slice. */
  readonly #exact: boolean;

  constructor(text: string) {
    this.#text = text;
    const starts: number[] = [];
    const prefix: number[] = [0];
    let at = 0;
    let total = 0;
    let exact = true;
    for (const match of text.matchAll(O200K_TOKEN_SPLIT_REGEX)) {
      if (match.index !== at) exact = false;
      starts.push(match.index);
      at = match.index + match[0].length;
      total += pieceCount(match[0]);
      prefix.push(total);
    }
    if (at !== text.length) exact = false;
    starts.push(text.length);
    this.#pieces = starts.length - 1;
    this.#starts = Int32Array.from(starts);
    this.#prefix = Int32Array.from(prefix);
    this.#reach = new Int32Array(this.#pieces);
    let reach = 0;
    let run = 0;
    for (let k = 0; k < this.#pieces; k++) {
      const end = this.#starts[k + 1] ?? text.length;
      if (run < end) run = end;
      while (run < text.length && isSpace(text.charCodeAt(run))) run++;
      reach = Math.max(reach, end + 4, run + 2);
      this.#reach[k] = reach;
    }
    this.#exact = exact;
  }

  /** `countTokens(text.slice(start, end))`. */
  count(start: number, end: number): number {
    const text = this.#text;
    if (end <= start) return 0;
    const slow = () => countTokens(text.slice(start, end));
    if (!this.#exact) return slow();
    // The span's own first pieces, until one ends on a piece boundary of the whole text.
    let head = 0;
    let at = start;
    let first = this.#firstAtLeast(this.#starts, 0, at);
    while (this.#starts[first] !== at) {
      SPLIT_FROM.lastIndex = at;
      const match = SPLIT_FROM.exec(text);
      if (match?.index !== at) return slow();
      const next = at + match[0].length;
      // Matching it must not have looked past the span (nor reached it at all: then the span is short).
      if (next >= end || this.#reachOf(next) >= end) return slow();
      head += pieceCount(match[0]);
      at = next;
      first = this.#firstAtLeast(this.#starts, 0, at);
    }
    // Whole-text pieces from `first` while their reach stays inside the span, then the rest on its own.
    const last = this.#firstAtLeast(this.#reach, first, end);
    if (last === first) return head + countTokens(text.slice(at, end));
    const tail = this.#starts[last] ?? end;
    return head + (this.#prefix[last] ?? 0) - (this.#prefix[first] ?? 0) + countTokens(text.slice(tail, end));
  }

  /** The reach of a piece of the span ending at `end`, as the constructor computes it. */
  #reachOf(end: number): number {
    let run = end;
    while (run < this.#text.length && isSpace(this.#text.charCodeAt(run))) run++;
    return Math.max(end + 4, run + 2);
  }

  /** The first piece index ≥ `from` whose `values` entry is ≥ `bound` (`pieces` if none); `values` ascends. */
  #firstAtLeast(values: Int32Array, from: number, bound: number): number {
    let lo = from;
    let hi = this.#pieces;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((values[mid] ?? 0) < bound) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
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
