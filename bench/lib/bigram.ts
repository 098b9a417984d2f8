/**
 * A word-bigram language model with unigram backoff, trained on real text, for generating synthetic
 * corpora whose term frequencies follow the natural (Zipf) distribution of the training text.
 *
 * Words are whitespace-separated tokens kept as written (case and attached punctuation included), so
 * the generated text looks like the source and sentence ends carry their full stop. A sentence starts
 * after a virtual START token and ends at END; at each step the next word comes from the bigram
 * distribution of the previous word, except with probability `backoff` (or when the previous word was
 * never followed by anything) from the unigram distribution.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Rng } from './prng.js';

const END = 0;

export interface BigramModelStats {
  sentences: number;
  tokens: number;
  vocabulary: number;
  bigrams: number;
}

export class BigramModel {
  /** Word of each id; id 0 is END. */
  readonly #words: string[];
  /** Cumulative unigram counts by id (END included: it ends a sentence). */
  readonly #unigram: Float64Array;
  /** Row r (r = previous id + 1; row 0 is START): successors in [offsets[r], offsets[r + 1]). */
  readonly #offsets: Int32Array;
  readonly #next: Int32Array;
  readonly #cumulative: Float64Array;
  readonly stats: BigramModelStats;

  private constructor(sentences: string[][]) {
    const ids = new Map<string, number>([['', END]]);
    this.#words = [''];
    const unigram: number[] = [0];
    const rows = new Map<number, Map<number, number>>();
    const bump = (row: number, next: number) => {
      let m = rows.get(row);
      if (!m) rows.set(row, (m = new Map<number, number>()));
      m.set(next, (m.get(next) ?? 0) + 1);
    };
    let tokens = 0;
    for (const sentence of sentences) {
      let prev = -1;
      for (const word of sentence) {
        let id = ids.get(word);
        if (id === undefined) {
          id = this.#words.length;
          ids.set(word, id);
          this.#words.push(word);
          unigram.push(0);
        }
        unigram[id] = (unigram[id] ?? 0) + 1;
        bump(prev + 1, id);
        prev = id;
        tokens += 1;
      }
      unigram[END] = (unigram[END] ?? 0) + 1;
      bump(prev + 1, END);
    }
    this.#unigram = new Float64Array(unigram.length);
    let sum = 0;
    unigram.forEach((c, i) => {
      sum += c;
      this.#unigram[i] = sum;
    });
    const rowCount = this.#words.length + 1;
    this.#offsets = new Int32Array(rowCount + 1);
    let bigrams = 0;
    for (let r = 0; r < rowCount; r++) {
      this.#offsets[r] = bigrams;
      bigrams += rows.get(r)?.size ?? 0;
    }
    this.#offsets[rowCount] = bigrams;
    this.#next = new Int32Array(bigrams);
    this.#cumulative = new Float64Array(bigrams);
    for (let r = 0; r < rowCount; r++) {
      const m = rows.get(r);
      if (!m) continue;
      let at = this.#offsets[r] ?? 0;
      let cumulative = 0;
      // Sorted by id: the order is deterministic whatever the Map's insertion history.
      for (const [next, count] of [...m.entries()].sort((a, b) => a[0] - b[0])) {
        cumulative += count;
        this.#next[at] = next;
        this.#cumulative[at] = cumulative;
        at += 1;
      }
    }
    this.stats = { sentences: sentences.length, tokens, vocabulary: this.#words.length - 1, bigrams };
  }

  /** Trains on the `title` and `text` of every line of a BEIR corpus.jsonl. */
  static async fromBeirCorpus(file: string): Promise<BigramModel> {
    const sentences: string[][] = [];
    const input = createReadStream(file);
    const reader = createInterface({ input, crlfDelay: Infinity });
    for await (const line of reader) {
      if (line.trim() === '') continue;
      const record = JSON.parse(line) as { title?: unknown; text?: unknown };
      for (const field of [record.title, record.text]) {
        if (typeof field === 'string') sentences.push(...splitSentences(field));
      }
    }
    if (sentences.length === 0) throw new Error(`${file}: no text to train on`);
    return new BigramModel(sentences);
  }

  /** One sentence of `minWords`–`maxWords` words. */
  sentence(rng: Rng, backoff: number, minWords = 4, maxWords = 60): string[] {
    const out: string[] = [];
    let prev = -1;
    for (let attempts = 0; out.length < maxWords && attempts < maxWords * 4; attempts++) {
      const row = prev + 1;
      const start = this.#offsets[row] ?? 0;
      const end = this.#offsets[row + 1] ?? 0;
      const id =
        end > start && rng.next() >= backoff
          ? (this.#next[pick(this.#cumulative, start, end, rng.next())] ?? END)
          : pick(this.#unigram, 0, this.#unigram.length, rng.next());
      if (id === END) {
        if (out.length >= minWords) return out;
        continue;
      }
      out.push(this.#words[id] ?? '');
      prev = id;
    }
    const last = out.length - 1;
    if (last >= 0 && !/[.!?]$/.test(out[last] ?? '')) out[last] = `${out[last] ?? ''}.`;
    return out;
  }
}

/**
 * Index in [start, end) of the first count above `u` × total, where `cumulative[start..end)` are
 * running counts from 0 (each bigram row, and the unigram table, starts its own sum): binary search.
 */
function pick(cumulative: Float64Array, start: number, end: number, u: number): number {
  const target = u * (cumulative[end - 1] ?? 0);
  let lo = start;
  let hi = end - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((cumulative[mid] ?? 0) > target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Lines, then sentences (after . ! ? followed by white space); sentences under 3 words are dropped. */
export function splitSentences(text: string): string[][] {
  const out: string[][] = [];
  for (const line of text.split(/\n+/)) {
    for (const sentence of line.split(/(?<=[.!?])\s+/)) {
      const words = sentence.split(/\s+/).filter((w) => w !== '');
      if (words.length >= 3) out.push(words);
    }
  }
  return out;
}
