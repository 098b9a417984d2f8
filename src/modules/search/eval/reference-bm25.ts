/**
 * A deliberately plain Okapi BM25, used only to check the SQL implementation: both are fed the same tokens
 * (the lexemes of PostgreSQL's tsvectors, read with {@link parseTsvector}), so any difference in scores is a
 * difference in the formula, not in tokenisation.
 *
 * For a query Q and a document D (N documents, avgdl = mean document length):
 *
 *   idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))                       (Lucene's variant: always > 0)
 *   score(D, Q) = Σ_{t ∈ distinct(Q)} idf(t) · tf(t,D)·(k1 + 1) / (tf(t,D) + k1·(1 − b + b·|D|/avgdl))
 *
 * Choices (each the Lucene / "BM25 classic" one):
 * - Query terms are de-duplicated: a term repeated in the query counts once (no qtf weighting).
 * - The idf is Lucene's, not Robertson–Spärck Jones' `ln((N − df + 0.5)/(df + 0.5))`, which goes negative for
 *   terms in more than half the documents and would make a matching document rank below a non-matching one.
 * - Only documents containing at least one query term are returned (as `@@` would select them in SQL); a
 *   term absent from the corpus contributes nothing.
 *
 * @example
 *   const bm25 = new ReferenceBm25([{ id: 'a', ...parseTsvector("'cat':1 'sat':2") }], { k1: 1.2, b: 0.75 });
 *   bm25.score(['cat']); // → [{ id: 'a', score: 0.2876… }]
 */

export interface Bm25Document {
  id: string;
  /** Term → frequency in the document (frequencies > 0). */
  tf: ReadonlyMap<string, number>;
  /** Document length |D| in the same unit as the tfs (normally Σ tf, like `chunks.lexeme_count`). */
  length: number;
}

export interface Bm25Parameters {
  /** Term-frequency saturation; 0 makes scoring binary (a present term contributes its idf). */
  k1: number;
  /** Length normalisation in [0, 1]; 0 ignores document length. */
  b: number;
}

export interface Bm25Score {
  id: string;
  score: number;
}

export class ReferenceBm25 {
  readonly #docs: readonly Bm25Document[];
  readonly #df = new Map<string, number>();
  readonly #avgdl: number;
  readonly #k1: number;
  readonly #b: number;

  constructor(docs: readonly Bm25Document[], { k1, b }: Bm25Parameters) {
    if (!(k1 >= 0) || !Number.isFinite(k1)) throw new RangeError(`k1 must be a finite number ≥ 0, got ${k1}`);
    if (!(b >= 0 && b <= 1)) throw new RangeError(`b must be in [0, 1], got ${b}`);
    this.#docs = docs;
    this.#k1 = k1;
    this.#b = b;
    let total = 0;
    for (const doc of docs) {
      total += doc.length;
      for (const [term, tf] of doc.tf) if (tf > 0) this.#df.set(term, (this.#df.get(term) ?? 0) + 1);
    }
    this.#avgdl = docs.length === 0 ? 0 : total / docs.length;
  }

  get documentCount(): number {
    return this.#docs.length;
  }

  get averageLength(): number {
    return this.#avgdl;
  }

  /** Document frequency of a term (0 if absent). */
  df(term: string): number {
    return this.#df.get(term) ?? 0;
  }

  /** Lucene's idf: ln(1 + (N − df + 0.5) / (df + 0.5)). */
  idf(term: string): number {
    const df = this.df(term);
    return Math.log(1 + (this.#docs.length - df + 0.5) / (df + 0.5));
  }

  /** Scores of the documents matching at least one distinct query term, best first, ties by id ascending. */
  score(queryTerms: readonly string[]): Bm25Score[] {
    const terms = [...new Set(queryTerms)]
      .filter((t) => this.df(t) > 0)
      .map((t) => [t, this.idf(t)] as const);
    if (terms.length === 0) return [];
    const out: Bm25Score[] = [];
    for (const doc of this.#docs) {
      // avgdl is 0 only when every document is empty, and empty documents match nothing.
      const norm = this.#k1 * (1 - this.#b + (this.#avgdl > 0 ? (this.#b * doc.length) / this.#avgdl : 0));
      let score = 0;
      let matched = false;
      for (const [t, idf] of terms) {
        const tf = doc.tf.get(t) ?? 0;
        if (tf <= 0) continue;
        matched = true;
        score += (idf * (tf * (this.#k1 + 1))) / (tf + norm);
      }
      if (matched) out.push({ id: doc.id, score });
    }
    return out.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }
}

// ---------------------------------------------------------------------------------------------------
// tsvector text

/** Thrown when a string is not PostgreSQL's tsvector text format. */
export class TsvectorFormatError extends Error {
  override readonly name = 'TsvectorFormatError';
}

/**
 * Parses PostgreSQL's tsvector text output (`tsv::text`) into term frequencies and a length.
 *
 * - Lexemes are single-quoted; inside, `''` is a quote and a backslash escapes the next character (PostgreSQL
 *   doubles both on output: the lexeme `it's` prints as `'it''s'`, `a\b` as `'a\\b'`). Unquoted lexemes, as
 *   accepted on input, are read too.
 * - tf = number of positions (`'note':2,7` → 2); weight letters (`3A`, `4b`) are ignored; a lexeme without
 *   positions (a stripped tsvector) counts 1.
 * - length = Σ tf, the same definition as `chunks.lexeme_count`
 *   (`sum(greatest(cardinality(positions), 1))`).
 *
 * PostgreSQL itself caps what a tsvector can record — positions above 16383 are clamped to 16383 (and merged),
 * and a lexeme keeps at most 256 positions — so for very long texts these tfs are the database's view, not
 * the true counts. That is the point: the reference sees what the SQL sees.
 *
 * @example
 *   parseTsvector("'compost':4 'kitchen':5 'note':2,7 'plain':1"); // tf: compost 1, kitchen 1, note 2, plain 1; length 5
 */
export function parseTsvector(text: string): { tf: Map<string, number>; length: number } {
  const tf = new Map<string, number>();
  let length = 0;
  let i = 0;
  const n = text.length;
  const fail = (why: string): never => {
    throw new TsvectorFormatError(`invalid tsvector at offset ${i}: ${why} in ${JSON.stringify(text)}`);
  };
  const at = (j: number): string => text.charAt(j); // '' past the end
  const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

  while (i < n) {
    if (isSpace(at(i))) {
      i++;
      continue;
    }
    let lexeme = '';
    if (at(i) === "'") {
      i++;
      for (;;) {
        if (i >= n) fail('unterminated quoted lexeme');
        const c = at(i);
        if (c === "'") {
          if (at(i + 1) === "'") {
            lexeme += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\\') {
          if (i + 1 >= n) fail('dangling backslash');
          lexeme += at(i + 1);
          i += 2;
          continue;
        }
        lexeme += c;
        i++;
      }
    } else {
      while (i < n && !isSpace(at(i)) && at(i) !== ':') {
        if (at(i) === "'") fail('quote inside an unquoted lexeme');
        if (at(i) === '\\') {
          if (i + 1 >= n) fail('dangling backslash');
          i++;
        }
        lexeme += at(i);
        i++;
      }
    }
    if (lexeme === '') fail('empty lexeme');

    let count = 0;
    if (at(i) === ':') {
      i++;
      for (;;) {
        const start = i;
        while (i < n && at(i) >= '0' && at(i) <= '9') i++;
        if (i === start) fail('expected a position');
        if (i < n && /[A-Da-d]/.test(at(i))) i++;
        count++;
        if (at(i) !== ',') break;
        i++;
      }
    }
    if (i < n && !isSpace(at(i))) fail('expected whitespace after a lexeme');
    const occurrences = Math.max(count, 1);
    // tsv::text never repeats a lexeme; in hand-written input a repeat adds up.
    tf.set(lexeme, (tf.get(lexeme) ?? 0) + occurrences);
    length += occurrences;
  }
  return { tf, length };
}
