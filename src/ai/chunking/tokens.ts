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
  let total = 0;
  for (let at = 0, end = 0; (end = nextPiece(text, at)) >= 0; at = end)
    total += pieceCount(text.slice(pieceStart, end));
  return total;
}

/** The split pattern, matched from a given offset of a text (`lastIndex`). */
const SPLIT_FROM = new RegExp(O200K_TOKEN_SPLIT_REGEX.source, 'gu');

// ASCII classes of the split pattern: \p{Ll}, \p{Lu}, \p{N}, \s (JavaScript's), and the rest
// (`[^\s\p{L}\p{N}]`: punctuation, symbols, control characters).
const OTHER = 0;
const LOWER = 1;
const UPPER = 2;
const DIGIT = 3;
const SPACE = 4;
/** Past the end of the text. */
const END = 5;
/** A code unit ≥ 0x80: its class needs Unicode tables, so the regular expression decides. */
const WIDE = 6;

/**
 * The o200k split pattern `asciiPieceEnd` implements. Should gpt-tokenizer ever ship another, the
 * scanner stands down and every piece goes through the regular expression (slower, still exact).
 */
const SCANNED_PATTERN = String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE]))?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'(?:[sS]|[dD]|[mM]|[tT]|[lL][lL]|[vV][eE]|[rR][eE]))?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
export const ASCII_SCANNER = O200K_TOKEN_SPLIT_REGEX.source === SCANNED_PATTERN;
const ASCII_CLASS = Uint8Array.from({ length: 128 }, (_, c) =>
  c >= 0x61 && c <= 0x7a
    ? LOWER
    : c >= 0x41 && c <= 0x5a
      ? UPPER
      : c >= 0x30 && c <= 0x39
        ? DIGIT
        : isSpace(c)
          ? SPACE
          : OTHER,
);

function classAt(text: string, at: number): number {
  if (at >= text.length) return END;
  const code = text.charCodeAt(at);
  return code < 0x80 ? (ASCII_CLASS[code] ?? OTHER) : WIDE;
}

/** ASCII case folding of a code unit (exact for the letters of the contractions). */
const fold = (code: number) => code | 0x20;

/** `'s 'd 'm 't 'll 've 're` (any case) at `at`: the offset after it, else `at`. */
function contractionEnd(text: string, at: number): number {
  if (text.charCodeAt(at) !== 0x27) return at;
  const a = fold(text.charCodeAt(at + 1));
  if (a === 0x73 || a === 0x64 || a === 0x6d || a === 0x74) return at + 2; // s d m t
  const b = fold(text.charCodeAt(at + 2));
  if ((a === 0x6c && b === 0x6c) || ((a === 0x76 || a === 0x72) && b === 0x65)) return at + 3; // ll ve re
  return at;
}

/**
 * The end of the split pattern's piece that starts at `at`, decided from ASCII code units alone, or
 * −1 when a code unit it had to classify is not ASCII (the regular expression then decides). The
 * pattern's alternatives in order (first match wins, each greedy, backtracking as the engine does):
 *  1. `[^\r\n\p{L}\p{N}]?[\p{Lu}…]*[\p{Ll}…]+` + contraction: an optional prefix, capitals, then lower case;
 *  2. `[^\r\n\p{L}\p{N}]?[\p{Lu}…]+[\p{Ll}…]*` + contraction: capitals only (1 failed, so no lower case follows);
 *  3. `\p{N}{1,3}`;
 *  4. ` ?[^\s\p{L}\p{N}]+[\r\n/]*`: punctuation, after at most one space;
 *  5. `\s*[\r\n]+`: a whitespace run up to its last line break;
 *  6. `\s+(?!\S)`: a whitespace run, less its last character if text follows it;
 *  7. `\s+`.
 * Written to give the regular expression's pieces, and checked against it (tokens.test.ts).
 */
function asciiPieceEnd(text: string, at: number): number {
  const first = classAt(text, at);
  if (first === WIDE) return -1;
  const code = text.charCodeAt(at);
  // 1 and 2: letters, from `at` or after a one-character prefix (not \r, \n, a letter or a digit).
  const letters =
    first === LOWER || first === UPPER ? at : first === DIGIT || code === 0x0a || code === 0x0d ? -1 : at + 1;
  if (letters >= 0) {
    const kind = classAt(text, letters);
    if (kind === WIDE) return -1;
    if (kind === LOWER || kind === UPPER) {
      let end = letters;
      while (classAt(text, end) === UPPER) end++;
      let next = classAt(text, end);
      if (next === LOWER) {
        while (classAt(text, end) === LOWER) end++;
        next = classAt(text, end);
      }
      return next === WIDE ? -1 : contractionEnd(text, end);
    }
  }
  // 3: one to three digits.
  if (first === DIGIT) {
    let end = at + 1;
    while (end < at + 3 && classAt(text, end) === DIGIT) end++;
    return end < at + 3 && classAt(text, end) === WIDE ? -1 : end;
  }
  // 4: punctuation, optionally after one space, then line breaks and slashes.
  const punctuation = first === OTHER ? at : code === 0x20 ? at + 1 : -1;
  if (punctuation >= 0) {
    const kind = classAt(text, punctuation);
    if (kind === WIDE) return -1;
    if (kind === OTHER) {
      let end = punctuation;
      while (classAt(text, end) === OTHER) end++;
      if (classAt(text, end) === WIDE) return -1;
      for (let c = text.charCodeAt(end); c === 0x0a || c === 0x0d || c === 0x2f; c = text.charCodeAt(end))
        end++;
      return end;
    }
  }
  // 5, 6, 7: whitespace (`first` is SPACE here).
  let end = at;
  while (classAt(text, end) === SPACE) end++;
  if (classAt(text, end) === WIDE) return -1;
  for (let k = end - 1; k >= at; k--) {
    const c = text.charCodeAt(k);
    if (c === 0x0a || c === 0x0d) return k + 1;
  }
  return end === text.length || end - at === 1 ? end : end - 1;
}

/** Where the piece found by the last `nextPiece` starts (`at`, unless the pattern skipped a gap). */
let pieceStart = 0;

/**
 * The end of the split pattern's next piece at or after `at` (its start in `pieceStart`), or −1 when
 * none is left: `text.matchAll(O200K_TOKEN_SPLIT_REGEX)`, one piece at a time, without running the
 * regular expression on ASCII text (half of the chunker's time went to it).
 */
function nextPiece(text: string, at: number): number {
  if (at >= text.length) return -1;
  const end = ASCII_SCANNER ? asciiPieceEnd(text, at) : -1;
  if (end > at) {
    pieceStart = at;
    return end;
  }
  SPLIT_FROM.lastIndex = at;
  const match = SPLIT_FROM.exec(text);
  if (match === null) return -1;
  pieceStart = match.index;
  return match.index + match[0].length;
}

/** The split pattern's pieces of `text` as `[start, end)` offsets (what gpt-tokenizer encodes one by one). */
export function splitPieces(text: string): [number, number][] {
  const pieces: [number, number][] = [];
  for (let at = 0, end = 0; (end = nextPiece(text, at)) >= 0; at = end) pieces.push([pieceStart, end]);
  return pieces;
}

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
    for (let end = 0; (end = nextPiece(text, at)) >= 0; at = end) {
      if (pieceStart !== at) exact = false;
      starts.push(pieceStart);
      total += pieceCount(text.slice(pieceStart, end));
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
      const next = nextPiece(text, at);
      if (next < 0 || pieceStart !== at) return slow();
      // Matching it must not have looked past the span (nor reached it at all: then the span is short).
      if (next >= end || this.#reachOf(next) >= end) return slow();
      head += pieceCount(text.slice(at, next));
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
