import { detectEncoding, StreamingTextDecoder } from '../parsing/decode.js';
import { MARKDOWN_MIME, parseMarkdown } from '../parsing/markdown.js';
import { parseText } from '../parsing/text.js';
import type { Block, ParsedDocument } from '../parsing/types.js';
import {
  type Chunk,
  type ChunkingOptions,
  ChunkingOptionsError,
  chunkInContext,
  type HeadingEntry,
  resolveChunkingOptions,
} from './chunker.js';
import { safeOffset } from './tokens.js';

export interface StreamChunkingOptions extends ChunkingOptions {
  format: 'markdown' | 'text';
  /** Target window size in characters (default 1_000_000). A window is parsed and chunked on its own. */
  windowChars?: number;
}

export const DEFAULT_WINDOW_CHARS = 1_000_000;

/**
 * Bytes the encoding is detected on. `decodeText` looks at the UTF-16 shape of the first 4 KiB only,
 * so that part is exact; UTF-8 validity is judged on this prefix instead of the whole input.
 */
const DETECT_BYTES = 64 * 1024;

/** A heading boundary within this fraction of `windowChars` of the target is preferred to any other. */
const HEADING_REACH = 1 / 4;

/**
 * Chunks a Markdown or plain-text upload without holding it whole: the bytes are decoded as they
 * arrive and the text is cut into windows of about `windowChars` characters, each parsed and chunked
 * on its own, so memory is O(window) whatever the file size. Chunks carry GLOBAL ordinals and offsets
 * into the whole decoded, newline-normalised text (`decodeText(allBytes).text`), and the heading path
 * of earlier windows; one array is yielded per window (never an empty one).
 *
 * Windows end at a blank line outside fenced code (and, for Markdown, outside `<!-- -->`, `<pre>`,
 * `<script>`, `<style>` and `<textarea>` blocks), the one nearest to `windowChars`: preferably right
 * before a heading within `windowChars / 4`, then one followed by a line at column 0 that is not a list
 * item (nothing can continue across it), then any. Failing all within `2 × windowChars`, the window
 * ends at the last line break, and as a last resort mid-line (a single line longer than that). A text
 * no longer than `windowChars` is one window, and its chunks equal `chunkDocument(parseDocument(bytes))`.
 *
 * Differences from chunking the whole text at once: a chunk never spans two windows, and the first
 * chunk of a window has no overlap with the previous window; a loose list or indented code block cut by
 * a window becomes two blocks. The encoding is detected on the first 64 KiB: a file that is valid UTF-8
 * there but not later decodes the invalid bytes as U+FFFD, where `decodeText` would fall back to
 * windows-1252 for the whole file. Unlike `parseDocument`, nothing checks that the bytes are text
 * rather than binary: sniff the first part before choosing this path.
 *
 * @example
 *   for await (const chunks of chunkTextStream(Readable.from(file), { format: 'markdown', maxTokens: 400, overlapTokens: 50 })) {
 *     await store(chunks);
 *   }
 */
export async function* chunkTextStream(
  parts: AsyncIterable<Uint8Array>,
  options: StreamChunkingOptions,
): AsyncGenerator<Chunk[]> {
  const { format, windowChars = DEFAULT_WINDOW_CHARS, ...chunking } = options;
  const opts = resolveChunkingOptions(chunking);
  if (!Number.isInteger(windowChars) || windowChars < 1) {
    throw new ChunkingOptionsError(`windowChars must be a positive integer, got ${String(windowChars)}`);
  }

  const windower = new Windower(format, windowChars);
  let headings: HeadingEntry[] = [];
  let ordinal = 0;
  const chunkWindow = (window: TextWindow): Chunk[] => {
    const result = chunkInContext(parseWindow(window, format), opts, { headings });
    headings = result.headings;
    const chunks = result.chunks.map((chunk) => ({
      ...chunk,
      ordinal: ordinal + chunk.ordinal,
      charStart: window.start + chunk.charStart,
      charEnd: window.start + chunk.charEnd,
    }));
    ordinal += chunks.length;
    return chunks;
  };

  for await (const text of decodeParts(parts)) {
    for (const window of windower.push(text)) {
      const chunks = chunkWindow(window);
      if (chunks.length > 0) yield chunks;
    }
  }
  for (const window of windower.end()) {
    const chunks = chunkWindow(window);
    if (chunks.length > 0) yield chunks;
  }
}

/** Decoded, newline-normalised text, piece by piece; the encoding is detected on the first bytes. */
async function* decodeParts(parts: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  let decoder: StreamingTextDecoder | undefined;
  let head: Uint8Array = new Uint8Array(0);
  for await (const part of parts) {
    if (decoder !== undefined) {
      yield decoder.write(part);
      continue;
    }
    // Detection always sees the same DETECT_BYTES, however the input is split into parts.
    head = concat(head, part);
    if (head.length < DETECT_BYTES) continue;
    decoder = new StreamingTextDecoder(detectEncoding(head.subarray(0, DETECT_BYTES), { complete: false }));
    yield decoder.write(head);
    head = new Uint8Array(0);
  }
  decoder ??= new StreamingTextDecoder(detectEncoding(head));
  yield decoder.write(head);
  yield decoder.end();
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Where a window (or parse slice) starts: scanner state there. */
interface ScanState {
  /** The fenced code or HTML block open at this point (only after a forced cut), else null. */
  open: OpenBlock | null;
  /** False only after a mid-line cut. */
  atLineStart: boolean;
}

/** A slice of the whole text, to be parsed and chunked on its own. */
interface TextWindow extends ScanState {
  text: string;
  /** Offset of `text` in the whole text. */
  start: number;
}

/** A Markdown construct in which a blank line does not end the block. */
interface OpenBlock {
  /** The closing line: a fence of `char` at least `length` long, or a line containing `closing`. */
  fence?: { char: string; length: number };
  closing?: string;
  /** The opening line, left-trimmed: re-parsed before a window that starts inside the block. */
  opener: string;
}

/**
 * Splits a growing text into windows. A cut is decided on a view of exactly `2 × windowChars`
 * characters (or the rest of the text at its end), so the windows depend on the text only, never on
 * how it arrived.
 */
class Windower {
  /** Text not yet windowed, starting at offset `start` of the whole text. */
  private buffer = '';
  private start = 0;
  /** Arrived text not yet appended to `buffer` (joined once, rather than a deep rope of tiny strings). */
  private pending: string[] = [];
  private pendingLength = 0;
  private state: ScanState = { open: null, atLineStart: true };

  constructor(
    private readonly format: Format,
    private readonly windowChars: number,
  ) {}

  push(text: string): TextWindow[] {
    this.pending.push(text);
    this.pendingLength += text.length;
    const windows: TextWindow[] = [];
    if (this.buffer.length + this.pendingLength < 2 * this.windowChars) return windows;
    this.flushPending();
    while (this.buffer.length >= 2 * this.windowChars) windows.push(this.cutWindow());
    return windows;
  }

  end(): TextWindow[] {
    this.flushPending();
    const windows: TextWindow[] = [];
    while (this.buffer.length > this.windowChars) windows.push(this.cutWindow());
    if (this.buffer.length > 0) windows.push(this.take({ at: this.buffer.length, ...this.state }));
    return windows;
  }

  private flushPending(): void {
    if (this.pending.length === 0) return;
    this.buffer += this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
  }

  private cutWindow(): TextWindow {
    const view = this.buffer.slice(0, 2 * this.windowChars);
    return this.take(chooseCut(view, this.windowChars, this.format, this.state));
  }

  private take(cut: Cut): TextWindow {
    const window = { text: this.buffer.slice(0, cut.at), start: this.start, ...this.state };
    this.buffer = this.buffer.slice(cut.at);
    this.start += cut.at;
    this.state = { open: cut.open, atLineStart: cut.atLineStart };
    return window;
  }
}

type Format = StreamChunkingOptions['format'];

interface Cut extends ScanState {
  at: number;
}

/** A line start after the first line of a view, with what precedes it. */
interface LineStart {
  at: number;
  /** Construct open at `at`. */
  open: OpenBlock | null;
  /** The previous line is blank (spaces and tabs only). */
  afterBlank: boolean;
}

/**
 * Every line start of `view` after its first line (and before its end), tracking fenced code and
 * HTML blocks in Markdown. A view that starts mid-line skips the rest of that line.
 */
function* lineStarts(view: string, format: Format, state: ScanState): Generator<LineStart> {
  let open = state.open;
  let line = 0;
  if (!state.atLineStart) {
    line = view.indexOf('\n') + 1;
    if (line === 0 || line >= view.length) return;
    yield { at: line, open, afterBlank: false };
  }
  for (let newline = view.indexOf('\n', line); newline >= 0; newline = view.indexOf('\n', line)) {
    const blank = matchesAt(BLANK_LINE, view, line) !== null;
    if (format === 'markdown' && !blank) open = advance(view, line, newline, open);
    line = newline + 1;
    if (line >= view.length) return;
    yield { at: line, open, afterBlank: blank };
  }
}

/**
 * A blank line outside any open construct: the parse of the text on either side equals the parse of
 * the whole there, except that a list item or indented code continuing after it would be split.
 */
const isSafe = (l: LineStart): boolean => l.afterBlank && l.open === null;

/**
 * A safe boundary followed by a line that starts at column 0 and is not a list item: nothing before it
 * can continue past it, so parsing the text in pieces cut there yields exactly the blocks of parsing
 * it whole (offsets shifted).
 */
const isStrong = (view: string, l: LineStart, format: Format): boolean =>
  isSafe(l) && (format === 'text' || (!/[ \t\n]/.test(view.charAt(l.at)) && !isListItemAt(view, l.at)));

/**
 * Where to end the window starting at `view[0]`: the boundary nearest to `windowChars`, preferring a
 * strong boundary before a heading within reach, then a strong one, then any safe one; else the last
 * line start in the view; else `windowChars`, mid-line (one line longer than the view).
 */
function chooseCut(view: string, windowChars: number, format: Format, state: ScanState): Cut {
  const reach = windowChars * HEADING_REACH;
  const best: (LineStart | undefined)[] = [undefined, undefined, undefined];
  let lastLine: LineStart | undefined;
  const distance = (l: LineStart): number => Math.abs(l.at - windowChars);
  const offer = (rank: number, l: LineStart): void => {
    const current = best[rank];
    if (current === undefined || distance(l) < distance(current)) best[rank] = l;
  };

  for (const l of lineStarts(view, format, state)) {
    lastLine = l;
    if (!isSafe(l)) continue;
    offer(2, l);
    if (!isStrong(view, l, format)) continue;
    offer(1, l);
    if (format === 'markdown' && distance(l) <= reach && isHeadingLine(view, l.at)) offer(0, l);
  }

  const chosen = best[0] ?? best[1] ?? best[2] ?? lastLine;
  if (chosen !== undefined) return { at: chosen.at, open: chosen.open, atLineStart: true };
  // Never between the halves of a surrogate pair.
  const at = safeOffset(view, windowChars);
  return { at: at > 0 ? at : windowChars + 1, open: state.open, atLineStart: false };
}

const BLANK_LINE = /[ \t]*\n/y;
/** A fence, also right after list markers (`- ```js`); blockquoted fences end at a blank line anyway. */
const FENCE_OPEN = /[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)*(`{3,}|~{3,})([^\n]*)\n/y;
const FENCE_CLOSE = /[ \t]*(`{3,}|~{3,})[ \t]*\n/y;
const HTML_OPEN = / {0,3}<(?:(!--)|(script|pre|style|textarea)(?=[\s>]))/iy;
const ATX_HEADING = /#{1,6}(?:[ \t\n]|$)/y;
const SETEXT_UNDERLINE = / {0,3}(?:=+|-+)[ \t]*\n/y;
const LIST_ITEM = /(?:[-*+]|\d{1,9}[.)])(?:[ \t\n]|$)/y;

const matchesAt = (regex: RegExp, text: string, at: number): RegExpExecArray | null => {
  regex.lastIndex = at;
  return regex.exec(text);
};

const isListItemAt = (view: string, at: number): boolean => matchesAt(LIST_ITEM, view, at) !== null;

/** The construct open after the line `[line, newline)`. */
function advance(view: string, line: number, newline: number, open: OpenBlock | null): OpenBlock | null {
  if (open?.fence !== undefined) {
    const close = matchesAt(FENCE_CLOSE, view, line);
    const marker = close?.[1] ?? '';
    const closes = marker.startsWith(open.fence.char) && marker.length >= open.fence.length;
    return closes ? null : open;
  }
  if (open?.closing !== undefined) {
    return view.slice(line, newline).toLowerCase().includes(open.closing) ? null : open;
  }

  const fence = matchesAt(FENCE_OPEN, view, line);
  const marker = fence?.[1] ?? '';
  // A backtick fence's info string cannot contain a backtick (that is inline code).
  if (marker !== '' && !(marker.startsWith('`') && fence?.[2]?.includes('`') === true)) {
    return {
      fence: { char: marker.charAt(0), length: marker.length },
      opener: view.slice(line, newline).trimStart(),
    };
  }
  const html = matchesAt(HTML_OPEN, view, line);
  const tag = (html?.[1] ?? html?.[2])?.toLowerCase();
  if (html === null || tag === undefined) return null;
  const closing = tag === '!--' ? '-->' : `</${tag}>`;
  const rest = view.slice(html.index + html[0].length, newline).toLowerCase();
  return rest.includes(closing) ? null : { closing, opener: view.slice(line, newline).trimStart() };
}

/** An ATX heading at column 0, or a line underlined as a setext heading (underline in view). */
function isHeadingLine(view: string, line: number): boolean {
  if (matchesAt(ATX_HEADING, view, line) !== null) return true;
  const newline = view.indexOf('\n', line);
  return newline >= 0 && matchesAt(SETEXT_UNDERLINE, view, newline + 1) !== null;
}

/** Markdown is parsed in slices of about this many characters, cut at strong boundaries. */
const PARSE_SLICE_CHARS = 32 * 1024;

/**
 * Parses a window. Markdown is parsed in slices (which bounds the garbage of one parse: an mdast cost
 * ~200 bytes per character, markdown-it's tokens far less) cut at strong boundaries (which give exactly the blocks of one parse); a window with no
 * strong boundary is parsed whole. A window that starts inside a fenced code or HTML block (a forced
 * cut) is parsed after that block's opening line, so its content is not read as Markdown (a
 * `# comment` would become a heading); offsets are shifted back, clamping the first block to 0.
 */
function parseWindow(window: TextWindow, format: Format): ParsedDocument {
  const { text } = window;
  if (format === 'text') return parseText(text);
  const blocks: Block[] = [];
  let from = 0;
  const parseSlice = (to: number, opener: string | undefined): void => {
    const prefix = opener === undefined ? '' : `${opener}\n`;
    for (const block of parseMarkdown(prefix + text.slice(from, to)).blocks) {
      const start = from + Math.max(0, block.start - prefix.length);
      const end = from + block.end - prefix.length;
      if (end > start) blocks.push({ ...block, start, end });
    }
    from = to;
  };
  for (const l of lineStarts(text, format, window)) {
    if (l.at - from < PARSE_SLICE_CHARS || !isStrong(text, l, format)) continue;
    parseSlice(l.at, from === 0 ? window.open?.opener : undefined);
  }
  parseSlice(text.length, from === 0 ? window.open?.opener : undefined);
  return { text, blocks, mime: MARKDOWN_MIME, metadata: {} };
}
