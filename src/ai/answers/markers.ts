/**
 * Citation markers in an answer's text: `[2]`, `[1, 3]`, `[1; 3]`, `[1][2]`, `[2-4]` / `[2–4]`.
 * Used to validate a model's answer: markers naming no source are removed by the caller.
 *
 *   extractCitationMarkers('Sixteen weeks [1][3], paid [2, 4], see also [5-6].') // [1, 3, 2, 4, 5, 6]
 */

/** One citation marker (global: use with matchAll/replace). */
export const CITATION_MARKER =
  /\[\s*(\d{1,4}(?:\s*[-–]\s*\d{1,4})?(?:\s*[,;]\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?)*)\s*\]/g;
/** A range wider than this is not a citation (`[1-2000]` reads as data, not as 2,000 sources). */
const MAX_RANGE = 50;

/** The distinct citation numbers in `answerText`, in order of first appearance. */
export function extractCitationMarkers(answerText: string): number[] {
  const seen = new Set<number>();
  for (const match of answerText.matchAll(CITATION_MARKER)) {
    for (const item of (match[1] ?? '').split(/[,;]/)) {
      const [from, to] = item.split(/[-–]/).map((part) => Number.parseInt(part.trim(), 10));
      if (from === undefined) continue;
      if (to === undefined) {
        seen.add(from);
      } else if (to >= from && to - from < MAX_RANGE) {
        for (let n = from; n <= to; n++) seen.add(n);
      }
    }
  }
  return [...seen];
}
