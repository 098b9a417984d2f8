import { describe, expect, it } from 'vitest';

import {
  type GeneratedHeading,
  generatedParts,
  generateMarkdown,
} from '../../../test/fixtures/chunking/generated-markdown.js';
import { decodeText, detectEncoding, StreamingTextDecoder } from '../parsing/decode.js';
import { parseDocument } from '../parsing/index.js';
import { type Chunk, ChunkingOptionsError, chunkDocument } from './chunker.js';
import { chunkTextStream, type StreamChunkingOptions } from './stream.js';
import { countTokens } from './tokens.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

async function* inParts(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.slice(at, at + size);
}

async function collect(parts: AsyncIterable<Uint8Array>, options: StreamChunkingOptions): Promise<Chunk[]> {
  const all: Chunk[] = [];
  for await (const chunks of chunkTextStream(parts, options)) {
    expect(chunks.length).toBeGreaterThan(0);
    all.push(...chunks);
  }
  return all;
}

const streamed = (
  bytes: Uint8Array,
  options: StreamChunkingOptions,
  partSize = 64 * 1024,
): Promise<Chunk[]> => collect(inParts(bytes, partSize), options);

/** The guarantees of every streamed chunking, checked against the whole decoded text. */
function assertInvariants(whole: string, chunks: Chunk[], maxTokens: number): void {
  let previousStart = -1;
  chunks.forEach((chunk, i) => {
    expect(chunk.ordinal).toBe(i);
    expect(chunk.text).toBe(whole.slice(chunk.charStart, chunk.charEnd));
    expect(chunk.text.trim()).toBe(chunk.text);
    expect(chunk.text.length).toBeGreaterThan(0);
    expect(chunk.tokenCount).toBe(countTokens(chunk.text));
    expect(chunk.tokenCount).toBeLessThanOrEqual(maxTokens);
    expect(chunk.charStart).toBeGreaterThan(previousStart);
    previousStart = chunk.charStart;
  });
}

/** The heading path a whole-document chunking gives a chunk starting at `offset` (overlap 0). */
function expectedPath(headings: GeneratedHeading[], offset: number): string[] {
  const stack: GeneratedHeading[] = [];
  for (const heading of headings) {
    if (heading.start > offset) break;
    while ((stack.at(-1)?.level ?? 0) >= heading.level) stack.pop();
    stack.push(heading);
  }
  return stack.map((h) => h.title);
}

const markdown = (chars: number, seed = 1): { text: string; headings: GeneratedHeading[] } => {
  const headings: GeneratedHeading[] = [];
  const text = [...generateMarkdown(chars, (h) => headings.push(h), seed)].join('');
  return { text, headings };
};

const utf16 = (text: string, order: 'le' | 'be'): Uint8Array => {
  const out = new Uint8Array(2 + text.length * 2);
  out.set(order === 'le' ? [0xff, 0xfe] : [0xfe, 0xff]);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out[2 + i * 2 + (order === 'le' ? 0 : 1)] = code & 0xff;
    out[2 + i * 2 + (order === 'le' ? 1 : 0)] = code >> 8;
  }
  return out;
};

const OPTS = { maxTokens: 200, overlapTokens: 30 } as const;

describe('StreamingTextDecoder', () => {
  const decodeInParts = (bytes: Uint8Array, size: number): string => {
    const decoder = new StreamingTextDecoder(detectEncoding(bytes));
    let text = '';
    for (let at = 0; at < bytes.length; at += size) text += decoder.write(bytes.subarray(at, at + size));
    return text + decoder.end();
  };
  const sample = 'A\r\nb\r\rc\n\rd é — 中文 😀 \r\n\r\nend\r';

  it.each([
    ['UTF-8', encode(sample)],
    ['UTF-8 with BOM', encode(`\uFEFF${sample}`)],
    ['UTF-16LE with BOM', utf16(sample, 'le')],
    ['UTF-16BE with BOM', utf16(sample, 'be')],
    ['UTF-16BE, odd length', new Uint8Array([...utf16('ab\r\n', 'be'), 0x41])],
    ['windows-1252', new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0d, 0x0a, 0x96, 0x80, 0x0d])],
  ])('decodes %s split anywhere exactly as decodeText does', (_, bytes) => {
    const expected = decodeText(bytes).text;
    for (const size of [1, 2, 3, 5, bytes.length]) expect(decodeInParts(bytes, size)).toBe(expected);
  });
});

describe('chunkTextStream', () => {
  it('validates options', async () => {
    const parts = inParts(encode('# A\n\ntext'), 4);
    await expect(collect(parts, { format: 'markdown', ...OPTS, windowChars: 0 })).rejects.toThrow(
      ChunkingOptionsError,
    );
    await expect(collect(parts, { format: 'text', maxTokens: 10, overlapTokens: 0 })).rejects.toThrow(
      ChunkingOptionsError,
    );
  });

  it('yields nothing for an empty or blank input', async () => {
    expect(await streamed(new Uint8Array(0), { format: 'markdown', ...OPTS })).toEqual([]);
    expect(await streamed(encode(' \r\n\n  '), { format: 'text', ...OPTS })).toEqual([]);
  });

  it('equals chunkDocument(parseDocument(...)) for a document within one window', async () => {
    // 120 K chars: more than a parse slice (the window is parsed in pieces) but less than a window.
    const { text } = markdown(120_000);
    // A loose list and indented code longer than a parse slice: blank lines that must not split them.
    const loose = Array.from({ length: 1500 }, (_, k) =>
      k % 50 === 49 ? `    indented code ${k}\n\n    still code` : `- item ${k} ${'word '.repeat(k % 9)}`,
    ).join('\n\n');
    const cases: [Uint8Array, StreamChunkingOptions, string][] = [
      [encode(text), { format: 'markdown', ...OPTS }, 'doc.md'],
      [
        encode(text.replaceAll('\n', '\r\n')),
        { format: 'markdown', maxTokens: 120, overlapTokens: 0 },
        'doc.md',
      ],
      [utf16(text.slice(0, 50_000), 'le'), { format: 'markdown', ...OPTS }, 'doc.md'],
      [
        encode(`# List\n\n${loose}\n\nAfter.`),
        { format: 'markdown', maxTokens: 1000, overlapTokens: 0 },
        'list.md',
      ],
      [encode(text.slice(0, 80_000)), { format: 'text', ...OPTS }, 'doc.txt'],
      [
        new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a, 0x0d, 0x0a, 0x80, 0x35]),
        { format: 'text', ...OPTS },
        'a.txt',
      ],
    ];
    for (const [bytes, options, filename] of cases) {
      const expected = chunkDocument(await parseDocument(bytes, { filename }), options);
      expect(expected.length).toBeGreaterThan(0);
      expect(await streamed(bytes, options, 4096)).toEqual(expected);
    }
  });

  it('keeps its guarantees across windows, however the input is split', { timeout: 120_000 }, async () => {
    const { text, headings } = markdown(40_000, 7);
    const bytes = encode(`\uFEFF${text.replaceAll('\n', '\r\n')}`);
    const whole = decodeText(bytes).text;
    expect(whole).toBe(text);
    for (const overlapTokens of [0, 30]) {
      const options: StreamChunkingOptions = {
        format: 'markdown',
        maxTokens: 100,
        overlapTokens,
        windowChars: 3000,
      };
      const reference = await streamed(bytes, options, bytes.length);
      assertInvariants(whole, reference, options.maxTokens);
      expect(reference.length).toBeGreaterThan(100);
      for (const size of [1, 7, 1000, 64 * 1024])
        expect(await streamed(bytes, options, size)).toEqual(reference);
      expect(await streamed(bytes, options, 333)).toEqual(reference);
      if (overlapTokens > 0) continue;
      // Headings of earlier windows are in later chunks' paths, exactly as in one whole chunking.
      for (const chunk of reference)
        expect(chunk.headingPath).toEqual(expectedPath(headings, chunk.charStart));
      const carried = reference.filter((chunk) => {
        const innermost = [...headings].reverse().find((h) => h.start <= chunk.charStart);
        return innermost !== undefined && chunk.charStart - innermost.start > options.windowChars!;
      });
      expect(carried.length).toBeGreaterThan(0);
    }
  });

  it('chunks plain text across windows', async () => {
    const text = Array.from(
      { length: 400 },
      (_, k) => `Paragraph ${k}. ${'Some words here. '.repeat(k % 13)}${k % 3 === 0 ? '\r\n \r\n' : '\n\n'}`,
    ).join('');
    const whole = decodeText(encode(text)).text;
    const options: StreamChunkingOptions = {
      format: 'text',
      maxTokens: 64,
      overlapTokens: 10,
      windowChars: 2000,
    };
    const chunks = await streamed(encode(text), options, 5);
    assertInvariants(whole, chunks, options.maxTokens);
    expect(chunks.at(-1)?.charEnd).toBe(whole.trimEnd().length);
  });

  it('does not cut a fenced code block that straddles the window size', async () => {
    const windowChars = 2000;
    const prose = Array.from({ length: 20 }, (_, k) => `Paragraph ${k} of prose words.`).join('\n\n');
    const code = ['```sh', '# not a heading', '', 'echo one', '', '## nor this', 'echo two', '```'].join(
      '\n',
    );
    const filler = `# Top\n\n${prose}\n\n`.padEnd(windowChars - 40, '.');
    const text = `${filler}\n\n${code}\n\n## After\n\n${prose}\n`;
    expect(text.indexOf(code)).toBeLessThan(windowChars);
    expect(text.indexOf(code) + code.length).toBeGreaterThan(windowChars);
    const chunks = await streamed(
      encode(text),
      { format: 'markdown', maxTokens: 400, overlapTokens: 0, windowChars },
      3,
    );
    assertInvariants(text, chunks, 400);
    expect(chunks.some((chunk) => chunk.text.includes(code))).toBe(true);
    expect(chunks.flatMap((chunk) => chunk.headingPath)).not.toContain('not a heading');
    expect(chunks.at(-1)?.headingPath).toEqual(['Top', 'After']);
  });

  it('reads a window that starts inside an over-long code block as code', async () => {
    const lines = Array.from({ length: 400 }, (_, k) =>
      k % 10 === 0 ? '' : k % 10 === 5 ? `# comment ${k}` : `x = ${k}`,
    );
    const text = `# Top\n\nIntro.\n\n~~~~python\n${lines.join('\n')}\n~~~~\n\n## After\n\nDone.\n`;
    const options: StreamChunkingOptions = {
      format: 'markdown',
      maxTokens: 64,
      overlapTokens: 0,
      windowChars: 500,
    };
    const chunks = await streamed(encode(text), options);
    assertInvariants(text, chunks, options.maxTokens);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.headingPath).toEqual(['Top']);
    expect(chunks.at(-1)?.headingPath).toEqual(['Top', 'After']);
  });

  it('cuts a line longer than two windows as a last resort', async () => {
    const text = `# Title\n\n${'word '.repeat(3000)}😀${'é'.repeat(999)}\n\nEnd.`;
    const options: StreamChunkingOptions = {
      format: 'markdown',
      maxTokens: 64,
      overlapTokens: 0,
      windowChars: 1000,
    };
    const chunks = await streamed(encode(text), options, 1);
    assertInvariants(text, chunks, options.maxTokens);
    expect(chunks.at(-1)?.text).toBe('End.');
  });

  it('decodes UTF-16 and multi-byte UTF-8 split across parts', async () => {
    const text = `# Über\n\n${Array.from({ length: 300 }, (_, k) => `Ünïcödé 中文 😀 line ${k}.`).join('\r\n\r\n')}\r\n`;
    const whole = decodeText(encode(text)).text;
    const options: StreamChunkingOptions = {
      format: 'markdown',
      maxTokens: 64,
      overlapTokens: 8,
      windowChars: 1500,
    };
    const reference = await streamed(encode(text), options, 1 << 20);
    assertInvariants(whole, reference, options.maxTokens);
    expect(reference.length).toBeGreaterThan(20);
    for (const bytes of [encode(text), utf16(text, 'le'), utf16(text, 'be')]) {
      expect(decodeText(bytes).text).toBe(whole);
      for (const size of [1, 3, 4096]) expect(await streamed(bytes, options, size)).toEqual(reference);
    }
  });

  // Kept to ~3 MB (a dozen windows) so CI stays fast; bench/ingest-memory-chunking.ts runs 200 MB.
  it('streams a ~3 MB Markdown upload window by window', { timeout: 300_000 }, async () => {
    const target = 3_000_000;
    const maxTokens = 400;
    const headings: GeneratedHeading[] = [];
    let length = 0;
    let content = 0;
    const nonSpace = (text: string): number => text.replace(/\s+/g, '').length;
    function* pieces(): Generator<string> {
      for (const piece of generateMarkdown(target, (h) => headings.push(h), 3)) {
        length += piece.length;
        content += nonSpace(piece);
        yield piece;
      }
    }

    let count = 0;
    let covered = 0;
    let previousEnd = 0;
    const sampled: Chunk[] = [];
    for await (const chunks of chunkTextStream(generatedParts(pieces()), {
      format: 'markdown',
      maxTokens,
      overlapTokens: 0,
      windowChars: 250_000,
    })) {
      for (const chunk of chunks) {
        expect(chunk.ordinal).toBe(count++);
        expect(chunk.charStart).toBeGreaterThanOrEqual(previousEnd);
        expect(chunk.tokenCount).toBeLessThanOrEqual(maxTokens);
        previousEnd = chunk.charEnd;
        covered += nonSpace(chunk.text);
        if (chunk.ordinal % 101 === 0) sampled.push(chunk);
      }
    }

    expect(length).toBeGreaterThanOrEqual(target);
    expect(previousEnd).toBeLessThanOrEqual(length);
    expect(count).toBeGreaterThan(2_000);
    // Chunks are disjoint without overlap, so equal totals mean every non-space character is in one.
    expect(covered).toBe(content);
    const whole = [...generateMarkdown(target, undefined, 3)].join('');
    expect(whole.length).toBe(length);
    for (const chunk of sampled) {
      expect(chunk.text).toBe(whole.slice(chunk.charStart, chunk.charEnd));
      expect(chunk.tokenCount).toBe(countTokens(chunk.text));
      expect(chunk.headingPath).toEqual(expectedPath(headings, chunk.charStart));
    }
  });
});
