/**
 * Natural cut points inside one block. Each function returns the start offsets of the pieces of
 * `text.slice(start, end)` (the first is always `start`); pieces are the spans between them.
 */

/** Line starts: table rows, records, code lines. */
export function lineStarts(text: string, start: number, end: number): number[] {
  const starts = [start];
  let i = text.indexOf('\n', start);
  while (i >= 0 && i + 1 < end) {
    starts.push(i + 1);
    i = text.indexOf('\n', i + 1);
  }
  return starts;
}

const LIST_ITEM = /^[ \t]*(?:[-*+•]|\d{1,9}[.)])[ \t]/;

/** List item starts (nested items included); continuation lines stay with their item. */
export function listItemStarts(text: string, start: number, end: number): number[] {
  const starts = [start];
  for (const line of lineStarts(text, start, end)) {
    if (line === start) continue;
    const lineEnd = text.indexOf('\n', line);
    const lineText = text.slice(line, lineEnd < 0 || lineEnd > end ? end : lineEnd);
    if (LIST_ITEM.test(lineText)) starts.push(line);
  }
  return starts;
}

const SENTENCE_END = /[.!?]+["'”’)\]]*\s+|[。！？]+["'”’」』)）\]]*\s*/g;

/** Sentence starts: after `. ! ?` followed by whitespace, or after CJK `。！？`. */
export function sentenceStarts(text: string, start: number, end: number): number[] {
  const starts = [start];
  const slice = text.slice(start, end);
  SENTENCE_END.lastIndex = 0;
  for (let m = SENTENCE_END.exec(slice); m !== null; m = SENTENCE_END.exec(slice)) {
    const next = start + m.index + m[0].length;
    if (next < end && next > (starts.at(-1) ?? start)) starts.push(next);
  }
  return starts;
}

/** `[start, end)` pairs from piece starts. */
export function toSpans(starts: number[], end: number): [number, number][] {
  return starts.map((s, i): [number, number] => [s, starts[i + 1] ?? end]);
}

/** Narrows a span to exclude leading and trailing whitespace; empty when all whitespace. */
export function trimSpan(text: string, start: number, end: number): [number, number] {
  let s = start;
  let e = end;
  while (s < e && isSpace(text.charCodeAt(s))) s++;
  while (e > s && isSpace(text.charCodeAt(e - 1))) e--;
  return [s, e];
}

function isSpace(code: number): boolean {
  // ASCII whitespace, NBSP, ideographic space and the general Unicode spaces.
  return (
    code === 0x20 ||
    (code >= 0x09 && code <= 0x0d) ||
    code === 0xa0 ||
    code === 0x3000 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0xfeff
  );
}
