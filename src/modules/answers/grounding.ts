/**
 * Grounding checks on a written answer, and the evidence its citations point at.
 *
 *  - `checkCitations`: markers `[n]` naming no provided source are removed from the text and counted
 *    (a model inventing `[7]` with six sources, or citing a source it was never given);
 *  - `uncitedClaims`: the answer's sentences that carry no marker (the no-answer sentence, short
 *    connective sentences and lead-ins ending with `:` are not claims);
 *  - `citationFor`: resolves `[n]` to its chunk, and quotes the chunk sentence that best supports the
 *    answer sentences citing it (term overlap), with its exact span; the whole chunk when none overlaps.
 *
 * A quote is always `chunkText.slice(chunkCharStart, chunkCharEnd)`, and `charStart`/`charEnd` are the
 * same span in the document's extracted text, so every citation can be re-read from the source.
 */
import {
  CITATION_MARKER,
  extractCitationMarkers,
  splitSentences,
  terms,
} from '../../ai/answers/extractive.js';

export interface AnswerSource {
  n: number;
  chunkId: string;
  documentId: string;
  collectionId: string;
  documentTitle: string;
  externalId: string | null;
  text: string;
  headingPath: string[];
  page: number | null;
  /** The chunk's span in the document's extracted text. */
  charStart: number;
  charEnd: number;
  score: number;
  scores: { lexical: number | null; vector: number | null };
  /** Looked like prompt injection (kept and marked, see LARDER_ANSWER_INJECTION). */
  flagged: boolean;
}

export interface Citation {
  n: number;
  chunkId: string;
  documentId: string;
  collectionId: string;
  documentTitle: string;
  page: number | null;
  /** The quoted evidence, exactly as in the document's extracted text. */
  quote: string;
  charStart: number;
  charEnd: number;
}

/**
 * Removes markers naming no source in `valid` (a group like `[2, 9]` keeps its valid numbers) and
 * reports the numbers cited, in order of first appearance.
 */
export function checkCitations(
  text: string,
  valid: ReadonlySet<number>,
): { text: string; cited: number[]; invalid: number } {
  let invalid = 0;
  const cleaned = text.replace(CITATION_MARKER, (marker) => {
    const numbers = extractCitationMarkers(marker);
    const kept = numbers.filter((n) => valid.has(n));
    invalid += numbers.length - kept.length;
    if (kept.length === numbers.length) return marker;
    return kept.length === 0 ? '' : `[${kept.join(', ')}]`;
  });
  // Removing a marker can leave "word ." or a double space.
  const tidied = cleaned.replace(/[ \t]+([.,;:!?])/g, '$1').replace(/[ \t]{2,}/g, ' ');
  return { text: tidied, cited: extractCitationMarkers(tidied).filter((n) => valid.has(n)), invalid };
}

const MIN_CLAIM_TERMS = 3;

/** The answer's sentences without a citation marker that state something (see the file comment). */
export function uncitedClaims(text: string, noAnswerText: string): string[] {
  const claims: string[] = [];
  for (const span of splitSentences(text)) {
    const sentence = text.slice(span.start, span.end).trim();
    if (sentence.length === 0 || sentence.includes(noAnswerText) || noAnswerText.includes(sentence)) continue;
    if (/:\s*$/.test(sentence)) continue;
    if (extractCitationMarkers(sentence).length > 0) continue;
    if (terms(sentence).length < MIN_CLAIM_TERMS) continue;
    claims.push(sentence);
  }
  return claims;
}

/** The answer sentences that cite `n`. */
function sentencesCiting(text: string, n: number): string[] {
  return splitSentences(text)
    .map((span) => text.slice(span.start, span.end))
    .filter((sentence) => extractCitationMarkers(sentence).includes(n));
}

/** Resolves `[n]` to `source`, quoting the sentence of the chunk that best supports the claims citing it. */
export function citationFor(source: AnswerSource, answerText: string): Citation {
  const claimTerms = new Set(sentencesCiting(answerText, source.n).flatMap((s) => terms(s)));
  let best: { start: number; end: number; overlap: number } | null = null;
  if (claimTerms.size > 0) {
    for (const span of splitSentences(source.text)) {
      const sentenceTerms = new Set(terms(source.text.slice(span.start, span.end)));
      let overlap = 0;
      for (const term of sentenceTerms) if (claimTerms.has(term)) overlap++;
      if (overlap > 0 && (best === null || overlap > best.overlap)) best = { ...span, overlap };
    }
  }
  const start = best?.start ?? 0;
  const end = best?.end ?? source.text.length;
  return {
    n: source.n,
    chunkId: source.chunkId,
    documentId: source.documentId,
    collectionId: source.collectionId,
    documentTitle: source.documentTitle,
    page: source.page,
    quote: source.text.slice(start, end),
    charStart: source.charStart + start,
    charEnd: source.charStart + end,
  };
}

/** Lowercase, Unicode-normalised, punctuation dropped, spaces collapsed: the exact-match key of a question. */
export function normaliseQuestion(question: string): string {
  return question
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Distinct content-word stems, sorted: the near-duplicate key of a question. */
export function questionTerms(question: string): string[] {
  return [...new Set(terms(question))].sort();
}

/** Jaccard similarity of two term sets. */
export function jaccard(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 && b.length === 0) return 1;
  const set = new Set(a);
  let shared = 0;
  for (const term of new Set(b)) if (set.has(term)) shared++;
  return shared / (set.size + new Set(b).size - shared);
}
