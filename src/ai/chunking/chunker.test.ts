import { describe, expect, it } from 'vitest';
import type { Block, BlockKind, PageSpan, ParsedDocument } from '../parsing/types.js';
import { type Chunk, type ChunkingOptions, ChunkingOptionsError, chunkDocument } from './chunker.js';
import { countTokens } from './tokens.js';

interface Spec {
  kind: BlockKind;
  text: string;
  level?: number;
}

/** Joins block texts with blank lines, recording each block's offsets. */
function makeDoc(specs: Spec[], pages?: PageSpan[]): ParsedDocument {
  let text = '';
  const blocks: Block[] = [];
  for (const spec of specs) {
    if (text.length > 0) text += '\n\n';
    const start = text.length;
    text += spec.text;
    blocks.push({
      kind: spec.kind,
      start,
      end: text.length,
      ...(spec.level === undefined ? {} : { level: spec.level }),
    });
  }
  return { text, blocks, mime: 'text/markdown', metadata: {}, ...(pages ? { pages } : {}) };
}

const h = (level: number, title: string): Spec => ({
  kind: 'heading',
  level,
  text: `${'#'.repeat(level)} ${title}`,
});
const p = (text: string): Spec => ({ kind: 'paragraph', text });

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function assertInvariants(doc: ParsedDocument, chunks: Chunk[], opts: ChunkingOptions): void {
  let prevStart = -1;
  chunks.forEach((c, i) => {
    expect(c.ordinal).toBe(i);
    expect(c.text).toBe(doc.text.slice(c.charStart, c.charEnd));
    expect(c.text.length).toBeGreaterThan(0);
    expect(c.text.trim()).toBe(c.text);
    expect(c.tokenCount).toBe(countTokens(c.text));
    expect(c.tokenCount).toBeLessThanOrEqual(opts.maxTokens);
    expect(c.charStart).toBeGreaterThan(prevStart);
    // A span edge never splits a surrogate pair.
    expect(isLowSurrogate(doc.text.charCodeAt(c.charStart))).toBe(false);
    expect(c.charEnd === doc.text.length || !isLowSurrogate(doc.text.charCodeAt(c.charEnd))).toBe(true);
    prevStart = c.charStart;
  });
  // Every non-whitespace character of every block is covered by some chunk.
  const covered = new Uint8Array(doc.text.length);
  for (const c of chunks) covered.fill(1, c.charStart, c.charEnd);
  for (const b of doc.blocks) {
    for (let k = b.start; k < b.end; k++) {
      if (covered[k] === 0 && doc.text[k]?.trim() !== '') throw new Error(`offset ${k} not covered`);
    }
  }
}

function run(doc: ParsedDocument, opts: ChunkingOptions): Chunk[] {
  const chunks = chunkDocument(doc, opts);
  assertInvariants(doc, chunks, opts);
  return chunks;
}

function words(n: number, seed = 0): string {
  const vocab = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  const out: string[] = [];
  for (let k = 0; k < n; k++) out.push(vocab[(k * 7 + seed) % vocab.length] ?? 'x');
  return out.join(' ');
}

function sentences(n: number, wordsEach = 12): string {
  return Array.from({ length: n }, (_, k) => `${words(wordsEach, k)}.`).join(' ');
}

const SMALL: ChunkingOptions = { maxTokens: 64, overlapTokens: 0 };

describe('chunkDocument', () => {
  it('validates options', () => {
    const doc = makeDoc([p('hello')]);
    expect(() => chunkDocument(doc, { maxTokens: 31 })).toThrow(ChunkingOptionsError);
    expect(() => chunkDocument(doc, { maxTokens: 8193 })).toThrow(ChunkingOptionsError);
    expect(() => chunkDocument(doc, { maxTokens: 100, overlapTokens: 50 })).toThrow(ChunkingOptionsError);
    expect(() => chunkDocument(doc, { overlapTokens: -1 })).toThrow(ChunkingOptionsError);
    expect(chunkDocument(doc)).toHaveLength(1);
  });

  it('returns nothing for an empty or whitespace-only document', () => {
    expect(chunkDocument(makeDoc([]))).toEqual([]);
    expect(chunkDocument(makeDoc([p('   \n  ')]))).toEqual([]);
  });

  it('tracks nested heading paths, including going back up a level', () => {
    const long = sentences(8);
    const doc = makeDoc([
      h(1, 'Guide'),
      p(long),
      h(2, 'Install'),
      p(long),
      h(3, 'Linux'),
      p(long),
      h(4, 'Debian'),
      p(long),
      h(3, 'macOS'),
      p(long),
      h(2, 'Usage'),
      p(long),
      h(1, 'Appendix'),
      p(long),
    ]);
    const opts = { maxTokens: 160, overlapTokens: 0 };
    const chunks = run(doc, opts);
    const pathOf = (needle: string): string[] | undefined =>
      chunks.find((c) => c.text.startsWith(needle))?.headingPath;
    expect(pathOf('# Guide')).toEqual(['Guide']);
    expect(pathOf('## Install')).toEqual(['Guide', 'Install']);
    expect(pathOf('### Linux')).toEqual(['Guide', 'Install', 'Linux']);
    expect(pathOf('#### Debian')).toEqual(['Guide', 'Install', 'Linux', 'Debian']);
    expect(pathOf('### macOS')).toEqual(['Guide', 'Install', 'macOS']);
    expect(pathOf('## Usage')).toEqual(['Guide', 'Usage']);
    expect(pathOf('# Appendix')).toEqual(['Appendix']);
    // H1/H2 start a new chunk; H3/H4 do not need to.
    for (const title of ['# Guide', '## Install', '## Usage', '# Appendix']) {
      expect(chunks.some((c) => c.text.startsWith(title))).toBe(true);
    }
  });

  it('merges consecutive tiny top-level sections but not larger ones', () => {
    const doc = makeDoc([h(2, 'A'), p('One.'), h(2, 'B'), p('Two.'), h(2, 'C'), p(sentences(10))]);
    const chunks = run(doc, { maxTokens: 400, overlapTokens: 0 });
    expect(chunks[0]?.text).toBe('## A\n\nOne.\n\n## B\n\nTwo.');
    expect(chunks[0]?.headingPath).toEqual(['A']);
    expect(chunks[1]?.text.startsWith('## C')).toBe(true);
  });

  it('splits a long table at row boundaries', () => {
    const rows = ['| id | name | notes |', '|----|------|-------|'];
    for (let k = 0; k < 80; k++) rows.push(`| ${k} | ${words(3, k)} | ${words(5, k + 1)} |`);
    const doc = makeDoc([h(1, 'Data'), p('Intro text.'), { kind: 'table', text: rows.join('\n') }]);
    const chunks = run(doc, SMALL);
    const tableStart = doc.blocks[2]?.start ?? 0;
    const tableChunks = chunks.filter((c) => c.charStart >= tableStart);
    expect(tableChunks.length).toBeGreaterThan(3);
    for (const c of tableChunks) {
      expect(doc.text[c.charStart - 1]).toBe('\n');
      expect(c.text.startsWith('|')).toBe(true);
      expect(c.text.endsWith('|')).toBe(true);
    }
    // Nothing repeated: table chunks tile the table exactly once (no overlap requested).
    expect(tableChunks.map((c) => c.text).join('\n')).toBe(rows.join('\n'));

    // With overlap, pieces still start at a row, never inside one (cells contain sentence ends).
    const withDots = makeDoc([
      { kind: 'table', text: rows.map((r) => r.replace(/ \|$/, '. Done. |')).join('\n') },
    ]);
    const overlapped = run(withDots, { maxTokens: 64, overlapTokens: 20 });
    expect(overlapped.length).toBeGreaterThan(3);
    for (const c of overlapped) {
      expect(c.charStart === 0 || withDots.text[c.charStart - 1] === '\n').toBe(true);
    }
    expect(overlapped.some((c, k) => k > 0 && c.charStart < (overlapped[k - 1]?.charEnd ?? 0))).toBe(true);
  });

  it('does not leave a heading alone at the end of a chunk', () => {
    const doc = makeDoc([h(1, 'Top'), p(sentences(4)), h(3, 'Sub'), p(sentences(4))]);
    const chunks = run(doc, { maxTokens: 80, overlapTokens: 0 });
    for (const c of chunks) expect(c.text.endsWith('### Sub')).toBe(false);
    expect(chunks.find((c) => c.text.startsWith('### Sub'))?.headingPath).toEqual(['Top', 'Sub']);
  });

  it('keeps a code block whole when it fits and splits at lines when it does not', () => {
    const small = '```ts\nconst a = 1;\nconst b = 2;\n```';
    const bigLines = ['```ts'];
    for (let k = 0; k < 60; k++) bigLines.push(`  const value${k} = compute(${k}, "${words(3, k)}");`);
    bigLines.push('```');
    const big = bigLines.join('\n');
    const doc = makeDoc([
      h(1, 'Code'),
      { kind: 'code', text: small },
      p('Between.'),
      { kind: 'code', text: big },
    ]);
    const chunks = run(doc, { maxTokens: 128, overlapTokens: 0 });
    expect(chunks.some((c) => c.text.includes(small))).toBe(true);
    const bigStart = doc.blocks[3]?.start ?? 0;
    const bigChunks = chunks.filter((c) => c.charStart >= bigStart);
    expect(bigChunks.length).toBeGreaterThan(1);
    for (const c of bigChunks) {
      // Starts at a line (after trimming the indentation) and ends at a line end.
      expect(doc.text.slice(0, c.charStart).split('\n').at(-1)?.trim()).toBe('');
      expect(['\n', undefined]).toContain(doc.text[c.charEnd]);
    }
  });

  it('splits a list at item boundaries', () => {
    const items = Array.from({ length: 40 }, (_, k) => `- item ${k}: ${words(8, k)}`);
    const doc = makeDoc([{ kind: 'list', text: items.join('\n') }]);
    const chunks = run(doc, SMALL);
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) expect(c.text.startsWith('- item')).toBe(true);
  });

  it('splits a long paragraph at sentence boundaries', () => {
    const doc = makeDoc([p(sentences(40))]);
    const chunks = run(doc, SMALL);
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) expect(c.text.endsWith('.')).toBe(true);
  });

  it('splits at token boundaries when there is no punctuation', () => {
    const doc = makeDoc([p(words(2000))]);
    const chunks = run(doc, SMALL);
    expect(chunks.length).toBeGreaterThan(20);
    // Most pieces use the whole budget.
    expect(chunks.slice(0, -1).every((c) => c.tokenCount >= SMALL.maxTokens - 2)).toBe(true);
  });

  it('never splits an emoji surrogate pair', () => {
    const emojiRun = '😀🎉👩‍👩‍👧‍👦🏳️‍🌈𝔘𝔫𝔦𝔠𝔬𝔡𝔢'.repeat(120);
    const doc = makeDoc([p(emojiRun), p(`x${emojiRun}`), p(`${words(30)} ${emojiRun}`)]);
    const chunks = run(doc, { maxTokens: 33, overlapTokens: 0 });
    expect(chunks.length).toBeGreaterThan(10);
  });

  it('splits CJK text at 。！？ and keeps the span invariant', () => {
    const sentence = '这是一个关于文件分块的测试句子，它包含了一些中文字符';
    const text = Array.from(
      { length: 60 },
      (_, k) => `${sentence}${String(k)}${['。', '！', '？'][k % 3] ?? '。'}`,
    ).join('');
    const doc = makeDoc([h(1, '中文'), p(text)]);
    const chunks = run(doc, SMALL);
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks.slice(1)) expect(/[。！？]$/.test(c.text)).toBe(true);
    const noPunct = makeDoc([p('汉字'.repeat(3000))]);
    run(noPunct, SMALL);
  });

  it('assigns pages, including a chunk spanning two pages', () => {
    const doc = makeDoc([
      p(sentences(3)),
      p(sentences(3)),
      p(sentences(3)),
      p(sentences(3)),
      p(sentences(3)),
    ]);
    const b = doc.blocks;
    const at = (k: number): Block => {
      const block = b[k];
      if (!block) throw new Error('missing block');
      return block;
    };
    const pages: PageSpan[] = [
      { page: 1, start: 0, end: at(1).end },
      { page: 2, start: at(1).end + 2, end: at(3).start + 20 },
      { page: 3, start: at(3).start + 20, end: doc.text.length },
    ];
    const paged = { ...doc, pages };
    const chunks = run(paged, { maxTokens: 100, overlapTokens: 0 });
    expect(chunks[0]?.page).toBe(1);
    expect(chunks.at(-1)?.pageEnd).toBe(3);
    const spanning = chunks.find((c) => c.page !== c.pageEnd);
    expect(spanning).toBeDefined();
    for (const c of chunks) {
      const startPage = pages.find((pg) => c.charStart >= pg.start && c.charStart < pg.end)?.page;
      const endPage = pages.find((pg) => c.charEnd - 1 >= pg.start && c.charEnd - 1 < pg.end)?.page;
      expect(c.page).toBe(startPage);
      expect(c.pageEnd).toBe(endPage);
    }
    expect(chunkDocument(doc).every((c) => c.page === null && c.pageEnd === null)).toBe(true);
  });

  it('overlaps consecutive chunks within a section but not across sections', () => {
    const opts = { maxTokens: 120, overlapTokens: 30 };
    const doc = makeDoc([h(1, 'One'), p(sentences(30, 8)), h(1, 'Two'), p(sentences(30, 8))]);
    const chunks = run(doc, opts);
    const twoStart = doc.blocks[2]?.start ?? 0;
    let overlapping = 0;
    for (let k = 1; k < chunks.length; k++) {
      const prev = chunks[k - 1];
      const cur = chunks[k];
      if (!prev || !cur) continue;
      const crossesSection = prev.charStart < twoStart && cur.charStart >= twoStart;
      if (crossesSection) {
        expect(cur.charStart).toBeGreaterThanOrEqual(prev.charEnd);
        expect(cur.text.startsWith('# Two')).toBe(true);
        continue;
      }
      if (cur.charStart < prev.charEnd) {
        overlapping++;
        const shared = doc.text.slice(cur.charStart, prev.charEnd);
        const sharedTokens = countTokens(shared);
        expect(sharedTokens).toBeLessThanOrEqual(opts.overlapTokens);
        expect(sharedTokens).toBeGreaterThanOrEqual(opts.overlapTokens / 3);
        expect(shared.includes('#')).toBe(false);
      }
    }
    expect(overlapping).toBeGreaterThanOrEqual(chunks.length - 3);
  });

  it('is deterministic', () => {
    const doc = makeDoc([
      h(1, 'A'),
      p(sentences(50)),
      { kind: 'code', text: 'x\n'.repeat(300) },
      h(2, 'B'),
      p(words(500)),
    ]);
    const opts = { maxTokens: 90, overlapTokens: 20 };
    expect(run(doc, opts)).toEqual(run(doc, opts));
  });

  it('treats special-token strings as plain text', () => {
    const doc = makeDoc([p('Text with <|endoftext|> and <|im_start|> inside.')]);
    expect(run(doc, SMALL)).toHaveLength(1);
  });

  it('chunks a ~2 MB Markdown-like document', { timeout: 60_000 }, () => {
    const specs: Spec[] = [];
    let size = 0;
    for (let k = 0; size < 2_000_000; k++) {
      const block: Spec =
        k % 40 === 0
          ? h(1 + (k % 3), `Section ${k}`)
          : k % 7 === 0
            ? { kind: 'code', text: Array.from({ length: 12 }, (_, l) => `let v${l} = ${k * l};`).join('\n') }
            : k % 11 === 0
              ? {
                  kind: 'table',
                  text: Array.from({ length: 30 }, (_, l) => `| ${l} | ${words(4, k + l)} |`).join('\n'),
                }
              : k % 5 === 0
                ? {
                    kind: 'list',
                    text: Array.from({ length: 6 }, (_, l) => `- ${words(6, k + l)}`).join('\n'),
                  }
                : p(sentences(6 + (k % 9), 10 + (k % 5)));
      specs.push(block);
      size += block.text.length + 2;
    }
    const doc = makeDoc(specs);
    const opts = { maxTokens: 400, overlapTokens: 50 };
    const started = performance.now();
    const chunks = chunkDocument(doc, opts);
    const elapsed = performance.now() - started;
    expect(chunks.length).toBeGreaterThan(1000);
    assertInvariants(doc, chunks, opts);
    console.info(`2 MB: ${chunks.length} chunks in ${elapsed.toFixed(0)} ms`);
  });
});
