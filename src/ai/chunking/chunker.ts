import type { BlockKind, PageSpan, ParsedDocument } from '../parsing/types.js';
import { lineStarts, listItemStarts, sentenceStarts, toSpans, trimSpan } from './boundaries.js';
import { SpanCounter, splitAtTokens } from './tokens.js';

export interface ChunkingOptions {
  /** Hard ceiling on a chunk's token count (o200k_base); 32–8192. */
  maxTokens: number;
  /** Tokens repeated from the end of the previous chunk of the same section; `< maxTokens / 2`. */
  overlapTokens: number;
}

export interface Chunk {
  ordinal: number;
  /** Always `doc.text.slice(charStart, charEnd)`; never starts or ends with whitespace. */
  text: string;
  charStart: number;
  charEnd: number;
  tokenCount: number;
  /** Headings in effect where the chunk starts, outermost first, markup stripped. */
  headingPath: string[];
  /** 1-based page of `charStart` / of the last character; null without `doc.pages`. */
  page: number | null;
  pageEnd: number | null;
}

export const DEFAULT_CHUNKING_OPTIONS: ChunkingOptions = { maxTokens: 400, overlapTokens: 50 };

export class ChunkingOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkingOptionsError';
  }
}

export function resolveChunkingOptions(options: Partial<ChunkingOptions> = {}): ChunkingOptions {
  const resolved = { ...DEFAULT_CHUNKING_OPTIONS, ...options };
  const { maxTokens, overlapTokens } = resolved;
  const problems: string[] = [];
  if (!Number.isInteger(maxTokens) || maxTokens < 32 || maxTokens > 8192) {
    problems.push(`maxTokens must be an integer in [32, 8192], got ${String(maxTokens)}`);
  }
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens >= maxTokens / 2) {
    problems.push(`overlapTokens must be an integer in [0, maxTokens / 2), got ${String(overlapTokens)}`);
  }
  if (problems.length > 0) throw new ChunkingOptionsError(problems.join('; '));
  return resolved;
}

/** An atomic span the packer never cuts: a whole block, or one piece of an oversized block. */
interface Unit {
  start: number;
  end: number;
  tokens: number;
  /** Index of the top-level section (H1/H2) the unit belongs to; 0 is the preamble. */
  section: number;
  isHeading: boolean;
  /** Tables, records and code: overlap may start only at a line start, never mid-row. */
  linesOnly: boolean;
  /** First piece of an oversized block: starts a fresh chunk (after its headings) so pieces align to it. */
  breakBefore: boolean;
  headingPath: string[];
}

/**
 * A section whose whole token count is at most this fraction of `maxTokens` is "tiny": consecutive
 * tiny sections share a chunk (e.g. a run of one-line H2 sections), everything else starts a new one.
 */
const TINY_SECTION_FRACTION = 1 / 8;

/**
 * Splits a parsed document into retrieval chunks.
 *
 * Blocks are walked in order; a heading of level n replaces the path from level n down, and an H1/H2
 * starts a new section. Consecutive blocks of a section are packed while the chunk stays within
 * `maxTokens`; a block that alone exceeds it is split at rows/lines (table, record, code), items
 * (list) or sentences (paragraph, quote), then at token boundaries. A chunk continuing a section
 * starts up to `overlapTokens` earlier, at a sentence or line boundary (line only in tables, records
 * and code) after the previous chunk's last heading; no overlap is added before a heading, across an
 * H1/H2 section, or where no such boundary exists (token-split runs). Consecutive sections whose whole
 * size is at most `maxTokens / 8` share a chunk. Chunk edges are trimmed by moving offsets, so inner
 * whitespace between blocks is kept verbatim.
 *
 * @example
 * const chunks = chunkDocument(parsed, { maxTokens: 512, overlapTokens: 64 });
 * chunks[0].text === parsed.text.slice(chunks[0].charStart, chunks[0].charEnd); // always true
 */
export function chunkDocument(doc: ParsedDocument, options: Partial<ChunkingOptions> = {}): Chunk[] {
  return chunkInContext(doc, options).chunks;
}

/** A heading in effect at some point of a document. */
export interface HeadingEntry {
  /** 1–6. */
  level: number;
  /** Markup stripped, as it appears in `Chunk.headingPath`. */
  title: string;
}

export interface ChunkingContext {
  /**
   * Headings in effect where `doc.text` starts, outermost first: `doc` is a window of a longer text
   * and these are the headings of the windows before it.
   */
  headings?: readonly HeadingEntry[];
}

/**
 * `chunkDocument` for one window of a longer text: chunks start under `context.headings`, and the
 * headings in effect at the end of `doc` are returned to carry into the next window.
 *
 * @example
 * let headings: HeadingEntry[] = [];
 * for (const window of windows) {
 *   const result = chunkInContext(window, options, { headings });
 *   headings = result.headings; // and store result.chunks
 * }
 */
export function chunkInContext(
  doc: ParsedDocument,
  options: Partial<ChunkingOptions> = {},
  context: ChunkingContext = {},
): { chunks: Chunk[]; headings: HeadingEntry[] } {
  const opts = resolveChunkingOptions(options);
  const path = (context.headings ?? []).map((h) => ({ ...h }));
  // Every count the chunker takes is of a span of this text: one pass of the tokenizer's split
  // pattern over it, instead of one per block, candidate chunk and overlap (~2.5 times the text).
  const counter = new SpanCounter(doc.text);
  const units = buildUnits(doc, opts.maxTokens, path, counter);
  return { chunks: packUnits(doc, units, opts, counter), headings: path };
}

/** `path` is the heading stack in effect at the start of `doc`; it is left as in effect at its end. */
function buildUnits(
  doc: ParsedDocument,
  maxTokens: number,
  path: HeadingEntry[],
  counter: SpanCounter,
): Unit[] {
  const { text } = doc;
  const units: Unit[] = [];
  let headingPath: string[] = path.map((h) => h.title);
  let section = 0;
  let seenContent = false;

  for (const block of doc.blocks) {
    const [start, end] = trimSpan(text, clamp(block.start, text.length), clamp(block.end, text.length));
    if (start >= end) continue;

    if (block.kind === 'heading') {
      const level = clamp(block.level ?? 1, 6) || 1;
      while ((path.at(-1)?.level ?? 0) >= level) path.pop();
      path.push({ level, title: headingTitle(text.slice(start, end)) });
      headingPath = path.map((h) => h.title);
      if (level <= 2 && seenContent) section++;
    }
    seenContent = true;

    const tokens = counter.count(start, end);
    const linesOnly = block.kind === 'table' || block.kind === 'record' || block.kind === 'code';
    const base = { section, isHeading: block.kind === 'heading', linesOnly, headingPath };
    if (tokens <= maxTokens) {
      units.push({ ...base, start, end, tokens, breakBefore: false });
      continue;
    }
    splitBlock(text, counter, block.kind, start, end, maxTokens).forEach(([s, e, t], i) => {
      units.push({ ...base, start: s, end: e, tokens: t, breakBefore: i === 0 });
    });
  }
  return units;
}

type Splitter = (text: string, start: number, end: number) => number[];

const SPLITTERS: Record<BlockKind, Splitter[]> = {
  table: [lineStarts],
  record: [lineStarts],
  code: [lineStarts],
  list: [listItemStarts, lineStarts, sentenceStarts],
  paragraph: [sentenceStarts, lineStarts],
  quote: [sentenceStarts, lineStarts],
  heading: [sentenceStarts],
};

/** Pieces of an oversized block, each within `maxTokens`, as `[start, end, tokens]`. */
function splitBlock(
  text: string,
  counter: SpanCounter,
  kind: BlockKind,
  start: number,
  end: number,
  maxTokens: number,
): [number, number, number][] {
  const out: [number, number, number][] = [];
  const recurse = (s: number, e: number, splitters: Splitter[]): void => {
    const [first, ...rest] = splitters;
    if (first === undefined) {
      for (const [ps, pe] of splitAtTokens(text, s, e, maxTokens)) {
        const [ts, te] = trimSpan(text, ps, pe);
        if (ts < te) out.push([ts, te, counter.count(ts, te)]);
      }
      return;
    }
    for (const [ps, pe] of toSpans(first(text, s, e), e)) {
      const [ts, te] = trimSpan(text, ps, pe);
      if (ts >= te) continue;
      const tokens = counter.count(ts, te);
      if (tokens <= maxTokens) out.push([ts, te, tokens]);
      else recurse(ts, te, rest);
    }
  };
  recurse(start, end, SPLITTERS[kind]);
  return out;
}

function packUnits(doc: ParsedDocument, units: Unit[], opts: ChunkingOptions, counter: SpanCounter): Chunk[] {
  const { text } = doc;
  const { maxTokens } = opts;
  const tiny = maxTokens * TINY_SECTION_FRACTION;
  const sectionTokens = new Map<number, number>();
  for (const u of units) sectionTokens.set(u.section, (sectionTokens.get(u.section) ?? 0) + u.tokens);
  const sectionOf = (i: number): number => units[i]?.section ?? -1;
  const isSectionStart = (i: number): boolean => i === 0 || sectionOf(i - 1) !== sectionOf(i);

  const pages = doc.pages === undefined ? [] : [...doc.pages].sort((a, b) => a.start - b.start);
  const chunks: Chunk[] = [];
  let i = 0;
  // Start offset and token count of the overlap carried into the chunk beginning at unit i.
  let overlap: { start: number; tokens: number } | null = null;

  while (i < units.length) {
    const first = units[i];
    if (first === undefined) break;
    let sum = (overlap?.tokens ?? 0) + first.tokens;
    let j = i + 1;
    let onlyHeadings = overlap === null && first.isHeading;
    // Whole tiny sections may be merged only into a chunk that itself holds whole tiny sections.
    const mergeable =
      overlap === null && isSectionStart(i) && (sectionTokens.get(first.section) ?? 0) <= tiny;
    for (;;) {
      const next = units[j];
      if (next === undefined) break;
      const prev = units[j - 1];
      // An oversized block starts a fresh chunk, unless only its headings precede it there.
      if (next.breakBefore && !(onlyHeadings && next.section === prev?.section)) break;
      const gap = prev !== undefined && text.slice(prev.end, next.start).includes('\n') ? 1 : 0;
      if (next.section !== sectionOf(j - 1)) {
        const nextTotal = sectionTokens.get(next.section) ?? 0;
        if (!mergeable || nextTotal > tiny || sum + gap + nextTotal > maxTokens) break;
      }
      if (sum + gap + next.tokens > maxTokens) break;
      sum += gap + next.tokens;
      onlyHeadings &&= next.isHeading;
      j++;
    }
    // Never end a chunk on a heading whose content follows in the same section.
    while (j - 1 > i && units[j - 1]?.isHeading === true && sectionOf(j) === sectionOf(j - 1)) j--;

    // The real count of the exact span decides; the packing sum is only an estimate.
    let start: number = overlap?.start ?? first.start;
    let end = units[j - 1]?.end ?? first.end;
    // (A chunk of exactly one unit has the unit's count.)
    let tokens = overlap === null && j === i + 1 ? first.tokens : counter.count(start, end);
    while (tokens > maxTokens) {
      if (overlap !== null) {
        overlap = null;
        start = first.start;
      } else if (j - 1 > i) {
        j--;
        end = units[j - 1]?.end ?? first.end;
      } else {
        break; // A single unit is within budget by construction.
      }
      tokens = counter.count(start, end);
    }

    chunks.push({
      ordinal: chunks.length,
      text: text.slice(start, end),
      charStart: start,
      charEnd: end,
      tokenCount: tokens,
      headingPath: overlap === null ? first.headingPath : headingPathAt(units, i, start),
      page: pageAt(pages, start, 'start'),
      pageEnd: pageAt(pages, end - 1, 'end'),
    });

    const next = units[j];
    overlap =
      next !== undefined && opts.overlapTokens > 0 && next.section === sectionOf(j - 1) && !next.isHeading
        ? findOverlap(text, counter, units, i, j, start, opts.overlapTokens, maxTokens - next.tokens)
        : null;
    i = j;
  }
  return chunks;
}

/**
 * The earliest sentence/line boundary in the previous chunk (after its last heading and within the
 * section) from which the tail up to the chunk's end fits `budget` tokens.
 */
function findOverlap(
  text: string,
  counter: SpanCounter,
  units: Unit[],
  from: number,
  to: number,
  chunkStart: number,
  overlapTokens: number,
  roomLeft: number,
): { start: number; tokens: number } | null {
  const last = units[to - 1];
  if (last === undefined) return null;
  const budget = Math.min(overlapTokens, roomLeft);
  if (budget <= 0) return null;
  let floor = chunkStart;
  for (let k = to - 1; k >= from; k--) {
    const u = units[k];
    if (u?.section !== last.section) break;
    if (u.isHeading) {
      floor = Math.max(floor, u.end);
      break;
    }
  }
  // Candidate starts: unit starts, line starts and sentence starts, scanned from the end backwards.
  const candidates = new Set<number>();
  for (let k = to - 1; k >= from; k--) {
    const u = units[k];
    if (u === undefined || u.end <= floor) break;
    const s = Math.max(u.start, floor);
    for (const c of lineStarts(text, s, u.end)) candidates.add(c);
    if (!u.linesOnly) for (const c of sentenceStarts(text, s, u.end)) candidates.add(c);
    // Units far before the budget cannot contribute; stop once enough text is in view (the last
    // unit's span is the one its count was taken on).
    if ((k === to - 1 ? u.tokens : counter.count(u.start, last.end)) > budget) break;
  }
  let best: { start: number; tokens: number } | null = null;
  for (const c of [...candidates].sort((a, b) => b - a)) {
    const [s] = trimSpan(text, c, last.end);
    if (s >= last.end || s <= chunkStart) continue;
    const tokens = counter.count(s, last.end);
    if (tokens > budget) break;
    best = { start: s, tokens };
  }
  // A sliver (a closing code fence, a lone row) repeats without adding context.
  return best !== null && best.tokens * 4 >= overlapTokens ? best : null;
}

function headingPathAt(units: Unit[], i: number, offset: number): string[] {
  for (let k = i - 1; k >= 0; k--) {
    const u = units[k];
    if (u !== undefined && u.start <= offset) return u.headingPath;
  }
  return units[i]?.headingPath ?? [];
}

/** `sorted` is ordered by start. */
function pageAt(sorted: PageSpan[], offset: number, edge: 'start' | 'end'): number | null {
  if (sorted.length === 0) return null;
  // Last page starting at or before offset.
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid]?.start ?? 0) <= offset) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  const page = sorted[found];
  if (page === undefined) return sorted[0]?.page ?? null;
  // Offsets in the gap after a page belong to the next page when a span starts there.
  if (edge === 'start' && offset >= page.end) return sorted[found + 1]?.page ?? page.page;
  return page.page;
}

function headingTitle(raw: string): string {
  return raw
    .replace(/^#{1,6}[ \t]*/, '')
    .replace(/[ \t]+#+[ \t]*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function clamp(n: number, max: number): number {
  return Math.max(0, Math.min(Math.trunc(n), max));
}
