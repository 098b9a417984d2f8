/**
 * Deterministic synthetic corpus for the search benchmarks: documents generated from a bigram model
 * of a real corpus (see bigram.ts), written as BEIR-style JSONL (`_id`, `title`, `text`), plus a seeded
 * sample of real questions.
 *
 * Each document is meant to become `c` chunks (c log-uniform in [minChunks, maxChunks]: many short
 * documents, a few long ones) and gets `c × wordsPerChunk` words in paragraphs of 2–6 sentences;
 * documents are added until the intended chunks reach the target. The pipeline's chunker decides the
 * real count (reported after ingestion).
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { BigramModel } from './bigram.js';
import { Rng } from './prng.js';

export interface CorpusOptions {
  targetChunks: number;
  seed: number;
  wordsPerChunk: number;
  minChunks: number;
  maxChunks: number;
  /** Probability of drawing the next word from the unigram distribution instead of the bigram one. */
  backoff: number;
}

export const DEFAULT_CORPUS_OPTIONS: Omit<CorpusOptions, 'targetChunks'> = {
  seed: 42,
  // Calibrated with the pipeline's chunker (400 tokens, 50 overlap, o200k_base): ~1.45 tokens per word
  // on this text and chunks end at paragraph boundaries (~310 tokens on average), so 200 words per
  // intended chunk give 1.00 real chunks per intended one (3,003 for 3,000).
  wordsPerChunk: 200,
  minChunks: 2,
  maxChunks: 40,
  backoff: 0.1,
};

export interface CorpusDocument {
  _id: string;
  title: string;
  text: string;
}

export interface CorpusStats {
  documents: number;
  intendedChunks: number;
  words: number;
  bytes: number;
}

/** The documents, one at a time (a 1M-chunk corpus is ~2 GB of text: never held whole). */
export function* generateDocuments(
  model: BigramModel,
  options: CorpusOptions,
): Generator<CorpusDocument & { intendedChunks: number; words: number }> {
  const rng = new Rng(options.seed);
  let remaining = options.targetChunks;
  for (let i = 0; remaining > 0; i++) {
    const intended = Math.min(remaining, rng.logInt(options.minChunks, options.maxChunks));
    remaining -= intended;
    const wordTarget = intended * options.wordsPerChunk;
    const paragraphs: string[] = [];
    let words = 0;
    while (words < wordTarget) {
      const sentences: string[] = [];
      const count = rng.int(2, 6);
      for (let s = 0; s < count && words < wordTarget; s++) {
        const sentence = model.sentence(rng, options.backoff);
        words += sentence.length;
        sentences.push(sentence.join(' '));
      }
      paragraphs.push(sentences.join(' '));
    }
    const title = model
      .sentence(rng, options.backoff, 4, rng.int(4, 12))
      .join(' ')
      .replace(/[.!?,;:]+$/, '');
    yield {
      _id: `bench-${String(i).padStart(7, '0')}`,
      title,
      text: paragraphs.join('\n\n'),
      intendedChunks: intended,
      words,
    };
  }
}

/** Writes the corpus as JSONL; returns what it wrote. */
export async function writeCorpus(
  file: string,
  model: BigramModel,
  options: CorpusOptions,
): Promise<CorpusStats> {
  const out = createWriteStream(file);
  const stats: CorpusStats = { documents: 0, intendedChunks: 0, words: 0, bytes: 0 };
  try {
    for (const doc of generateDocuments(model, options)) {
      const line = `${JSON.stringify({ _id: doc._id, title: doc.title, text: doc.text })}\n`;
      stats.documents += 1;
      stats.intendedChunks += doc.intendedChunks;
      stats.words += doc.words;
      stats.bytes += Buffer.byteLength(line);
      if (!out.write(line)) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'finish');
  }
  return stats;
}

export interface Query {
  id: string;
  text: string;
}

/** A seeded sample of `count` questions from a BEIR queries.jsonl (`_id`, `text`). */
export async function sampleQueries(file: string, count: number, seed: number): Promise<Query[]> {
  const all: Query[] = [];
  const reader = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of reader) {
    if (line.trim() === '') continue;
    const record = JSON.parse(line) as { _id?: unknown; text?: unknown };
    if (typeof record.text === 'string' && record.text.trim() !== '')
      all.push({ id: String(record._id), text: record.text });
  }
  if (all.length === 0) throw new Error(`${file}: no queries`);
  return new Rng(seed ^ 0x5eed).sample(all, count);
}
