import { describe, expect, it } from 'vitest';

import { blockTexts, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { parseDocument } from './index.js';
import { parseMarkdown } from './markdown.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

const SOURCE = [
  'Project Larder',
  '==============',
  '',
  'An intro paragraph with **bold** text.',
  '',
  '- fruit',
  '  - apple',
  '  - pear',
  '    1. conference',
  '- vegetables',
  '',
  '```sh',
  '# not a heading',
  '## nor this',
  'echo hi',
  '```',
  '',
  '| Name | Qty |',
  '| ---- | --: |',
  '| Salt | 2 |',
  '| Oil, olive | 1 |',
  '',
  '> A quote',
  '> over two lines.',
  '',
  'Details',
  '-------',
  '',
  '---',
  '',
  '    indented code',
  '',
].join('\n');

describe('parseDocument: Markdown', () => {
  it('keeps the source as text and makes blocks from top-level nodes', async () => {
    const doc = await parseDocument(encode(SOURCE), { filename: 'readme.md' });

    expect(doc.mime).toBe('text/markdown');
    expect(doc.text).toBe(SOURCE);
    expect(doc.title).toBe('Project Larder');
    expectValidBlocks(doc);
    expect(doc.blocks.map((b) => [b.kind, b.level])).toEqual([
      ['heading', 1],
      ['paragraph', undefined],
      ['list', undefined],
      ['code', undefined],
      ['table', undefined],
      ['quote', undefined],
      ['heading', 2],
      ['code', undefined],
    ]);
    const texts = blockTexts(doc);
    expect(texts[0]).toBe('Project Larder\n==============');
    expect(texts[2]).toBe('- fruit\n  - apple\n  - pear\n    1. conference\n- vegetables');
    expect(texts[3]).toContain('# not a heading');
    expect(texts[4]).toBe('| Name | Qty |\n| ---- | --: |\n| Salt | 2 |\n| Oil, olive | 1 |');
    expect(texts[5]).toBe('> A quote\n> over two lines.');
    expect(texts[7]).toBe('    indented code');
  });

  it('normalises CRLF and strips a UTF-8 BOM, so offsets index the LF text', async () => {
    const crlf = '\uFEFF# Título\r\n\r\nFirst para\r\nsame para.\r\n\r\n- a\r\n- b\r\n';
    const doc = await parseDocument(encode(crlf), { mime: 'text/markdown; charset=utf-8' });

    expect(doc.text).toBe('# Título\n\nFirst para\nsame para.\n\n- a\n- b\n');
    expect(doc.title).toBe('Título');
    expectValidBlocks(doc);
    expect(blockTexts(doc)).toEqual(['# Título', 'First para\nsame para.', '- a\n- b']);
  });

  it('keeps footnote definitions where they are written, takes the title without its markup, and finds tables without edge pipes', async () => {
    const source = [
      '# The *Larder* `v2` [guide](https://example.com)',
      '',
      'A claim.[^1]',
      '',
      '[^1]: The footnote, which goes on',
      '    over an indented line.',
      '',
      'name | qty',
      '---- | --:',
      'salt | 2',
      '',
      '[ref]: https://example.com',
      '',
      'Last words.',
    ].join('\n');
    const doc = await parseDocument(encode(source), { filename: 'notes.md' });

    expect(doc.title).toBe('The Larder v2 guide');
    expectValidBlocks(doc);
    expect(doc.blocks.map((b) => b.kind)).toEqual([
      'heading',
      'paragraph',
      'paragraph',
      'table',
      'paragraph',
    ]);
    expect(blockTexts(doc)).toEqual([
      '# The *Larder* `v2` [guide](https://example.com)',
      'A claim.[^1]',
      '[^1]: The footnote, which goes on\n    over an indented line.',
      'name | qty\n---- | --:\nsalt | 2',
      'Last words.',
    ]);
  });

  it('locates blocks in the original text whatever its line breaks (CRLF, CR)', () => {
    const source = '# One\r\n\r\nTwo\rlines\r\rThree\n';
    const doc = parseMarkdown(source);
    expect(doc.blocks.map((b) => source.slice(b.start, b.end))).toEqual(['# One', 'Two\rlines', 'Three']);
  });

  it('treats a document of only thematic breaks as empty', async () => {
    await expect(parseDocument(encode('---\n\n***\n'), { filename: 'x.md' })).rejects.toMatchObject({
      reason: 'empty',
    });
  });
});
