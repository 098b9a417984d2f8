import { describe, expect, it } from 'vitest';

import { blockTexts, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { parseCsvRows } from './csv.js';
import { parseDocument } from './index.js';

describe('parseCsvRows', () => {
  it('follows RFC 4180 quoting', () => {
    expect(parseCsvRows('a,"b,c","say ""hi""",\n"multi\nline",x\n')).toEqual([
      ['a', 'b,c', 'say "hi"', ''],
      ['multi\nline', 'x'],
    ]);
  });

  it('is lenient with stray and unterminated quotes', () => {
    expect(parseCsvRows('5" pipe,ok\n"open')).toEqual([['5" pipe', 'ok'], ['open']]);
  });
});

describe('parseDocument: CSV', () => {
  it('renders one record per line with quoted commas and embedded newlines', async () => {
    const csv =
      'name,address,notes\r\n"Smith, Jane","1 High St\r\nLondon",ok\r\nBob,,"said ""hi"""\r\n,,\r\nAda,Paris,x,extra\r\n';
    const doc = await parseDocument(new TextEncoder().encode(csv), { filename: 'people.csv' });

    expect(doc.mime).toBe('text/csv');
    expect(doc.metadata).toMatchObject({ columns: ['name', 'address', 'notes'], rowCount: 3 });
    expectValidBlocks(doc);
    expect(doc.blocks.every((b) => b.kind === 'record')).toBe(true);
    expect(blockTexts(doc)).toEqual([
      'name: Smith, Jane; address: 1 High St London; notes: ok',
      'name: Bob; notes: said "hi"',
      'name: Ada; address: Paris; notes: x; column 4: extra',
    ]);
    expect(doc.text.startsWith('name, address, notes\n\n')).toBe(true);
  });

  it('detects semicolon and tab delimiters', async () => {
    const doc = await parseDocument(new TextEncoder().encode('a;b\n"1;2";3\n'), { mime: 'text/csv' });
    expect(blockTexts(doc)).toEqual(['a: 1;2; b: 3']);
    const tsv = await parseDocument(new TextEncoder().encode('a\tb\n1\t2\n'), { mime: 'text/csv' });
    expect(blockTexts(tsv)).toEqual(['a: 1; b: 2']);
  });

  it('treats a header-only CSV as empty', async () => {
    await expect(
      parseDocument(new TextEncoder().encode('a,b\n'), { filename: 'x.csv' }),
    ).rejects.toMatchObject({
      reason: 'empty',
    });
  });
});
