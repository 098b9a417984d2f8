import { describe, expect, it } from 'vitest';

import { blockTexts, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { decodeText } from './decode.js';
import { parseDocument } from './index.js';
import { sniff } from './sniff.js';

const utf16le = (text: string, bom = true): Uint8Array => {
  const out = new Uint8Array((bom ? 2 : 0) + text.length * 2);
  if (bom) out.set([0xff, 0xfe]);
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    out[(bom ? 2 : 0) + i * 2] = code & 0xff;
    out[(bom ? 2 : 0) + i * 2 + 1] = code >> 8;
  }
  return out;
};

describe('decodeText', () => {
  it('honours UTF-8, UTF-16LE and UTF-16BE BOMs', () => {
    expect(decodeText(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69]))).toEqual({
      text: 'hi',
      encoding: 'utf-8',
    });
    expect(decodeText(utf16le('h\u00e9\r\n'))).toEqual({ text: 'h\u00e9\n', encoding: 'utf-16le' });
    expect(decodeText(new Uint8Array([0xfe, 0xff, 0x00, 0x68, 0x20, 0xac]))).toEqual({
      text: 'h\u20ac',
      encoding: 'utf-16be',
    });
  });

  it('falls back to windows-1252 when the bytes are not UTF-8', () => {
    // "café – 5€" in windows-1252: é = E9, en dash = 96, € = 80
    const bytes = new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x20, 0x96, 0x20, 0x35, 0x80]);
    expect(decodeText(bytes)).toEqual({ text: 'café – 5€', encoding: 'windows-1252' });
  });

  it('normalises CRLF and lone CR to LF', () => {
    expect(decodeText(new TextEncoder().encode('a\r\nb\rc\n')).text).toBe('a\nb\nc\n');
  });
});

describe('parseDocument: plain text', () => {
  it('reads a UTF-16LE file with a BOM and splits paragraphs on blank lines', async () => {
    const doc = await parseDocument(utf16le('Première ligne\r\nsuite\r\n\r\n\r\n  Deuxième  \r\n'), {
      filename: 'notes.txt',
    });

    expect(doc.mime).toBe('text/plain');
    expect(doc.metadata).toMatchObject({ encoding: 'utf-16le' });
    expectValidBlocks(doc);
    expect(blockTexts(doc)).toEqual(['Première ligne\nsuite', 'Deuxième']);
  });

  it('reads a BOM-less UTF-16LE file', async () => {
    const doc = await parseDocument(utf16le('plain words here\n\nmore words', false), {});
    expect(blockTexts(doc)).toEqual(['plain words here', 'more words']);
  });

  it('reads a latin1 file', async () => {
    const bytes = Uint8Array.from('Crème brûlée\n\nÀ bientôt', (char) => char.charCodeAt(0));
    const doc = await parseDocument(bytes, { filename: 'old.txt' });

    expect(doc.metadata).toMatchObject({ encoding: 'windows-1252' });
    expectValidBlocks(doc);
    expect(blockTexts(doc)).toEqual(['Crème brûlée', 'À bientôt']);
  });

  it('rejects an empty or whitespace-only file as empty', async () => {
    await expect(parseDocument(new Uint8Array(), { filename: 'a.txt' })).rejects.toMatchObject({
      reason: 'empty',
    });
    await expect(parseDocument(new TextEncoder().encode(' \n\r\n\t '), {})).rejects.toMatchObject({
      reason: 'empty',
    });
  });

  it('rejects random binary as unsupported', async () => {
    let seed = 42;
    const random = Uint8Array.from({ length: 4096 }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed >> 16;
    });
    await expect(parseDocument(random, { filename: 'data.txt' })).rejects.toMatchObject({
      reason: 'unsupported',
    });
    // short binary without a NUL byte is still caught by its control characters
    const noNul = random.filter((byte) => byte !== 0).subarray(0, 64);
    await expect(parseDocument(noNul, {})).rejects.toMatchObject({ reason: 'unsupported' });
  });
});

describe('sniff', () => {
  const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

  it('detects formats from content before the hint', async () => {
    expect((await sniff(encode('  <!DOCTYPE html><p>x'), { filename: 'a.txt' })).format).toBe('html');
    expect((await sniff(encode('\uFEFF<html><body>x'), {})).format).toBe('html');
    expect((await sniff(encode(' [{"a":1}]'), { filename: 'a.txt' })).format).toBe('json');
    expect((await sniff(encode('%PDF-1.7 …'), {})).format).toBe('pdf');
  });

  it('uses the filename or mime for formats content cannot reveal', async () => {
    expect((await sniff(encode('a,b\n1,2'), { filename: 'x.CSV' })).format).toBe('csv');
    expect((await sniff(encode('a,b\n1,2'), { mime: 'text/csv; charset=utf-8' })).format).toBe('csv');
    expect((await sniff(encode('# hi'), { filename: 'x.markdown' })).format).toBe('markdown');
    expect((await sniff(encode('# hi'), { mime: 'text/markdown' })).format).toBe('markdown');
    expect((await sniff(encode('[link](x)'), { filename: 'x.md' })).format).toBe('markdown');
    expect((await sniff(encode('{ not json'), {})).format).toBe('text');
    expect((await sniff(encode('a text about %PDF-1.4 headers'), {})).format).toBe('text');
  });
});
