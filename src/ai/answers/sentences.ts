/**
 * Rule-based sentence splitting with exact offsets: every span satisfies
 * `text.slice(span.start, span.end) === sentence`, trimmed of surrounding whitespace and of a leading
 * bullet or heading marker.
 *
 *   splitSentences('Dr. Lee measured 3.5 mg/kg. It worked!\n- Take it daily')
 *   // → [{start: 0, end: 27}, {start: 28, end: 38}, {start: 41, end: 54}]
 *
 * Two passes. Lines are first grouped into blocks: a blank line, a bullet or numbered item, a Markdown
 * heading, a table row, a line ending in `:`/`;`, or a short title-like line (no end punctuation, not
 * ending in a function word, followed by a capitalised line) ends a block; other single newlines are
 * taken as hard wrapping inside a sentence. Within a block a sentence ends at `.`, `!`, `?`, `…` (runs of
 * them, then closing quotes or brackets) followed by whitespace and a word that does not start in lower
 * case, unless the `.` ends a known abbreviation (`e.g.`, `Dr.`, `Fig. 2`, `et al. (2009)`), an initial
 * (`J. Smith`, `U.S.`) or, having no whitespace after it, is inside a number, a URL or a dotted
 * abbreviation. Runs longer than MAX_SENTENCE characters (tables, lists flattened by a parser) are cut
 * at whitespace.
 *
 * Limits: sentences that start in lower case are merged with the previous one; an abbreviation that
 * really ends a sentence before a capitalised word (`… in the U.S. The …`) does not split; no language
 * other than English is modelled.
 */
import { STOP_WORDS } from './terms.js';

export interface SentenceSpan {
  /** Offset of the sentence's first character. */
  start: number;
  /** Offset just past its last character. */
  end: number;
}

const MAX_SENTENCE = 1_000;

/** Never end a sentence: titles before a name, Latin and scholarly abbreviations. */
const ABBREVIATIONS = new Set(
  (
    'mr mrs ms mx dr prof sr jr st mt rev hon gen col capt lt sgt gov sen rep pres ' +
    'e.g i.e cf vs viz approx ca resp incl esp dept est misc'
  ).split(' '),
);
/** Do not end a sentence when a number or code follows (`Fig. 3`, `No. 12`, `no. KF906251`, `Jan. 5`). */
const NUMBER_ABBREVIATIONS = new Set(
  (
    'no nos fig figs tab eq eqs ref refs sec ch vol pp p art para ' +
    'jan feb mar apr jun jul aug sep sept oct nov dec'
  ).split(' '),
);
/** End a sentence only when a capitalised word follows (`… and so on, etc. The next …`). */
const SOFT_ABBREVIATIONS = new Set(['etc', 'al', 'inc', 'ltd', 'co', 'corp', 'bros']);

const TERMINATORS = '.!?…';
const CLOSERS = '"\'”’»)]}';
const OPENERS = '"\'“‘«([{¿¡';
const BULLET_OR_HEADING =
  /^(?:[ \t]*(?:[-*+•‣◦▪▸–—·]|\(?\d{1,2}[.)]|\(?[a-zA-Z]\))[ \t]+|[ \t]{0,3}#{1,6}[ \t]+)/;
const HEADING = /^[ \t]{0,3}#{1,6}[ \t]/;
const TABLE_ROW = /[|\t]/;

function isSpace(ch: string): boolean {
  return /\s/u.test(ch);
}

/** Sentence spans of `text`, in order, non-overlapping, each trimmed and non-empty. */
export function splitSentences(text: string): SentenceSpan[] {
  const spans: SentenceSpan[] = [];
  for (const block of splitBlocks(text)) {
    const marker = BULLET_OR_HEADING.exec(text.slice(block.start, block.end));
    const start = block.start + (marker ? marker[0].length : 0);
    splitBlock(text, start, block.end, spans);
  }
  return spans;
}

interface Line {
  start: number;
  end: number;
  text: string;
}

function lines(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    const lineEnd = end > start && text.charAt(end - 1) === '\r' ? end - 1 : end;
    out.push({ start, end: lineEnd, text: text.slice(start, lineEnd) });
    if (nl === -1) return out;
    start = nl + 1;
  }
}

/** Groups lines into blocks that no sentence crosses. */
function splitBlocks(text: string): SentenceSpan[] {
  const blocks: SentenceSpan[] = [];
  let current: SentenceSpan | null = null;
  let previous: Line | null = null;
  for (const line of lines(text)) {
    if (line.text.trim() === '') {
      if (current) blocks.push(current);
      current = null;
      previous = null;
      continue;
    }
    if (current && previous && endsBlock(previous.text, line.text)) {
      blocks.push(current);
      current = null;
    }
    if (current) current.end = line.end;
    else current = { start: line.start, end: line.end };
    previous = line;
  }
  if (current) blocks.push(current);
  return blocks;
}

/** Whether the newline between two non-blank lines is a boundary rather than hard wrapping. */
function endsBlock(previous: string, next: string): boolean {
  if (BULLET_OR_HEADING.test(next) || HEADING.test(previous)) return true;
  if (TABLE_ROW.test(previous) || TABLE_ROW.test(next)) return true;
  const prev = previous.trim();
  if (/[:;]$/.test(prev)) return true;
  // A short line without end punctuation before a capitalised one is a title or a label.
  const last = prev.charAt(prev.length - 1);
  if (prev.length <= 60 && !/[.!?…,\-–—(/&]/.test(last) && /^\s*[\p{Lu}\p{N}"“‘«]/u.test(next)) {
    const lastWord = /[\p{L}\p{N}]+$/u.exec(prev)?.[0].toLowerCase() ?? '';
    return !STOP_WORDS.has(lastWord);
  }
  return false;
}

function splitBlock(text: string, blockStart: number, blockEnd: number, out: SentenceSpan[]): void {
  let start = blockStart;
  let i = blockStart;
  while (i < blockEnd) {
    if (!TERMINATORS.includes(text.charAt(i))) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < blockEnd && TERMINATORS.includes(text.charAt(j))) j++;
    const runEnd = j;
    while (j < blockEnd && CLOSERS.includes(text.charAt(j))) j++;
    if (j >= blockEnd) break;
    if (!isSpace(text.charAt(j))) {
      i = j;
      continue;
    }
    let next = j;
    while (next < blockEnd && isSpace(text.charAt(next))) next++;
    if (next < blockEnd && isBoundary(text, start, i, runEnd, next, blockEnd)) {
      push(text, start, j, out);
      start = next;
    }
    i = next;
  }
  push(text, start, blockEnd, out);
}

/** The first character of the next sentence, past opening quotes and brackets. */
function firstSignificant(text: string, from: number, end: number): string {
  let k = from;
  while (k < end && OPENERS.includes(text.charAt(k))) k++;
  return text.charAt(k);
}

/** The word starting at `from` (up to the next whitespace). */
function nextWord(text: string, from: number, end: number): string {
  let k = from;
  while (k < end && !isSpace(text.charAt(k))) k++;
  return text.slice(from, k);
}

function isBoundary(
  text: string,
  sentenceStart: number,
  at: number,
  runEnd: number,
  next: number,
  blockEnd: number,
): boolean {
  const first = firstSignificant(text, next, blockEnd);
  if (/\p{Ll}/u.test(first)) return false;
  // Only a single full stop can end an abbreviation; `?`, `!`, `…` and `...` end the sentence.
  if (runEnd - at > 1 || text.charAt(at) !== '.') return true;

  let w = at;
  while (w > sentenceStart && /[\p{L}\p{N}.]/u.test(text.charAt(w - 1))) w--;
  const word = text.slice(w, at);
  const lower = word.toLowerCase();
  if (ABBREVIATIONS.has(lower)) return false;
  if (NUMBER_ABBREVIATIONS.has(lower)) return !/\p{N}/u.test(nextWord(text, next, blockEnd));
  if (SOFT_ABBREVIATIONS.has(lower)) return /\p{Lu}/u.test(first);
  // Initials and dotted acronyms: `J. Smith`, `U.S. Army`, `Ph.D. students`.
  if (/^\p{Lu}$/u.test(word)) return false;
  if (word.includes('.') && word.split('.').every((part) => part.length <= 2 && /^\p{L}+$/u.test(part))) {
    return false;
  }
  return true;
}

/** Records the trimmed sentence `[start, end)`, cutting over-long runs at whitespace. */
function push(text: string, start: number, end: number, out: SentenceSpan[]): void {
  let s = start;
  let e = end;
  while (s < e && isSpace(text.charAt(s))) s++;
  while (e > s && isSpace(text.charAt(e - 1))) e--;
  while (e - s > MAX_SENTENCE) {
    let cut = text.lastIndexOf(' ', s + MAX_SENTENCE);
    if (cut <= s) {
      cut = s + MAX_SENTENCE;
      if (/[\udc00-\udfff]/.test(text.charAt(cut))) cut++;
    }
    push(text, s, cut, out);
    s = cut;
    while (s < e && isSpace(text.charAt(s))) s++;
  }
  if (/[\p{L}\p{N}]/u.test(text.slice(s, e))) out.push({ start: s, end: e });
}
