import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { countTokens as libraryCount } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../bench/lib/prng.js';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { ASCII_SCANNER, countTokens, SpanCounter, splitPieces } from './tokens.js';

const PLAIN_TEXT = { disallowedSpecial: new Set<string>() } as const;
const reference = (text: string) => libraryCount(text, PLAIN_TEXT);

// Characters the o200k split pattern treats differently: letters by case, marks, digits, spaces,
// line breaks, punctuation, apostrophes of contractions, CJK, emoji (surrogate pairs, ZWJ).
const POOL = [
  ...'abcdefghijklmnopqrstuvwxyz'.split(''),
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split(''),
  ...'0123456789'.split(''),
  ' ',
  ' ',
  ' ',
  '  ',
  '\n',
  '\r\n',
  '\t',
  '\u00a0',
  ...'.,;:!?\'"()[]{}<>/\\|-_=+*&^%$#@~`'.split(''),
  "'s",
  "'LL",
  "'re",
  'é',
  'ß',
  'İ',
  'ǅ',
  'e\u0301',
  'Ω',
  'я',
  'ע',
  'ب',
  'क्ष',
  '中',
  '文',
  'の',
  '한',
  '😀',
  '👩‍💻',
  '🇫🇷',
  '\u200b',
  '<|endoftext|>',
  '<|fim_prefix|>',
];

/** `length` draws from `pool`, concatenated. */
const randomText = (next: () => number, pool: readonly string[], length: number) => {
  let text = '';
  for (let i = 0; i < length; i++) text += pool[Math.floor(next() * pool.length)] ?? '';
  return text;
};

/** The texts of the first `count` documents of covidqa. */
const covidqaTexts = (count: number) =>
  readFileSync(
    path.resolve(
      path.dirname(fileURLToPath(import.meta.url)),
      '../../../../shared/eval/covidqa/corpus.jsonl',
    ),
    'utf8',
  )
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(0, count)
    .map((line) => (JSON.parse(line) as { text: string }).text);

describe('splitPieces', () => {
  const regexPieces = (text: string) =>
    [...text.matchAll(O200K_TOKEN_SPLIT_REGEX)].map((m): [number, number] => [
      m.index,
      m.index + m[0].length,
    ]);
  // Every ASCII code unit (controls, \v and \f, a lone \r included) and runs that exercise each
  // alternative's edges, mixed with the non-ASCII entries of POOL (where the regular expression decides).
  const ascii = Array.from({ length: 128 }, (_, c) => String.fromCharCode(c));
  const edges = [
    ' ',
    ' ',
    '  ',
    '\n',
    '\r',
    '\r\n',
    '\t',
    "'",
    "'s",
    "'T",
    "'ll",
    "'Ve",
    "'re",
    "'x",
    'ABC',
    'Ab',
    'aB',
    '123',
    '4567',
    '/',
    ' .',
    '.\n/',
  ];
  const wide = POOL.filter((entry) => Array.from(entry).some((c) => c.charCodeAt(0) >= 0x80));

  it('splits exactly as the o200k pattern does, on ASCII text and on text mixing in every other class', () => {
    const next = mulberry32(5);
    for (const [pool, texts] of [
      [[...ascii, ...edges, ...'etaoinshr'.split('')], 4000],
      [[...ascii, ...edges, ...wide], 4000],
      [[...edges, ...wide, ...'aZ9.'.split('')], 2000],
    ] as const) {
      for (let n = 0; n < texts; n++) {
        const text = randomText(next, pool, 1 + Math.floor(next() * 30));
        expect(splitPieces(text), JSON.stringify(text)).toEqual(regexPieces(text));
      }
    }
  });

  it('scans ASCII itself only for the pattern it implements (gpt-tokenizer’s o200k pattern today)', () => {
    // Fails when a gpt-tokenizer upgrade changes the pattern: check the scanner against the new one
    // (the tests above) before updating SCANNED_PATTERN; until then every piece goes to the regex.
    expect(ASCII_SCANNER).toBe(true);
  });

  it('splits real documents exactly as the pattern does', () => {
    for (const text of covidqaTexts(200)) expect(splitPieces(text)).toEqual(regexPieces(text));
    expect(splitPieces('')).toEqual([]);
  });
});

describe('countTokens', () => {
  it('counts exactly as gpt-tokenizer (o200k_base) on random text of every character class', () => {
    const next = mulberry32(42);
    for (let n = 0; n < 3000; n++) {
      const text = randomText(next, POOL, 1 + Math.floor(next() * 40));
      // Twice: the second count is answered from the piece cache.
      expect([countTokens(text), countTokens(text)], JSON.stringify(text)).toEqual([
        reference(text),
        reference(text),
      ]);
    }
  });

  it('counts exactly as gpt-tokenizer on real documents, whole and in arbitrary slices', () => {
    const texts = covidqaTexts(40);
    const next = mulberry32(7);
    for (const text of texts) {
      expect(countTokens(text)).toBe(reference(text));
      for (let n = 0; n < 20; n++) {
        const start = Math.floor(next() * text.length);
        const slice = text.slice(start, start + Math.floor(next() * 2000));
        expect(countTokens(slice), JSON.stringify(slice.slice(0, 80))).toBe(reference(slice));
      }
    }
  });

  it('stays exact for long pieces (not cached) and after the cache fills and is emptied', () => {
    const long = `${'a'.repeat(500)} ${'9'.repeat(90)} ${'—'.repeat(70)} Pneumonoultramicroscopicsilicovolcanoconiosis`;
    expect(countTokens(long)).toBe(reference(long));
    // More distinct pieces than the cache holds (50,000): it is emptied and refilled on the way.
    const words: string[] = [];
    for (let i = 0; i < 60_000; i++) words.push(`w${i.toString(36)}x`);
    const text = words.join(' ');
    expect(countTokens(text)).toBe(reference(text));
    expect(countTokens(text)).toBe(reference(text));
    expect(countTokens('')).toBe(0);
  });
});

describe('SpanCounter', () => {
  const expectSpans = (text: string, next: () => number, spans: number) => {
    const counter = new SpanCounter(text);
    expect(counter.count(0, text.length)).toBe(reference(text));
    for (let n = 0; n < spans; n++) {
      const a = Math.floor(next() * (text.length + 1));
      const b = Math.floor(next() * (text.length + 1));
      const [start, end] = a <= b ? [a, b] : [b, a];
      expect(counter.count(start, end), JSON.stringify([start, end, text.slice(start, end)])).toBe(
        reference(text.slice(start, end)),
      );
    }
  };

  it('counts any span exactly as gpt-tokenizer counts the slice, on text of every character class', () => {
    const next = mulberry32(11);
    for (let n = 0; n < 300; n++)
      expectSpans(randomText(next, POOL, 20 + Math.floor(next() * 200)), next, 40);
  });

  it('stays exact where the split pattern looks ahead: whitespace runs, line breaks, contractions', () => {
    // Few classes, many runs: `\s*[\r\n]+` and `\s+(?!\S)` decide on the whole run, `'ll` needs 3 units.
    const pool = [
      ' ',
      ' ',
      '  ',
      '\n',
      '\r\n',
      '\t',
      '\u00a0',
      'a',
      'B',
      'x',
      '1',
      "'",
      'l',
      'L',
      's',
      've',
      '.',
      '/',
      '😀',
    ];
    const next = mulberry32(12);
    for (let n = 0; n < 400; n++) expectSpans(randomText(next, pool, 10 + Math.floor(next() * 80)), next, 60);
  });

  it('counts the spans the chunker asks for on real documents (sentence and paragraph edges)', () => {
    const texts = covidqaTexts(30);
    const next = mulberry32(13);
    for (const text of texts) {
      expectSpans(text, next, 30);
      // Spans from one sentence start to a later sentence end, as the packer and overlap search count.
      const counter = new SpanCounter(text);
      const edges = [...text.matchAll(/[.!?]\s+/g)].map((m) => m.index + 1);
      for (let n = 0; n < 30 && edges.length > 1; n++) {
        const i = Math.floor(next() * edges.length);
        const j = Math.min(edges.length - 1, i + 1 + Math.floor(next() * 6));
        const start = (edges[i] ?? 0) + 1;
        const end = edges[j] ?? text.length;
        expect(counter.count(start, end)).toBe(reference(text.slice(start, end)));
      }
    }
  });
});
