import { describe, expect, it } from 'vitest';

import { blockTexts, buildPdf, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { parseDocument } from './index.js';

describe('parseDocument: PDF', () => {
  const pdf = buildPdf([['Larder handbook', 'Chapter one (basics)'], ['Second page text']], 'The Handbook');

  it('extracts text per page with page spans and the metadata title', async () => {
    const doc = await parseDocument(pdf, { filename: 'handbook.pdf' });

    expect(doc.mime).toBe('application/pdf');
    expect(doc.title).toBe('The Handbook');
    expect(doc.metadata).toMatchObject({ pageCount: 2 });
    expectValidBlocks(doc);
    expect(doc.pages).toHaveLength(2);
    const [first, second] = doc.pages!;
    expect(first!.page).toBe(1);
    expect(second!.page).toBe(2);
    const page1 = doc.text.slice(first!.start, first!.end);
    const page2 = doc.text.slice(second!.start, second!.end);
    expect(page1).toContain('Larder handbook');
    expect(page1).toContain('Chapter one (basics)');
    expect(page1).not.toContain('Second page');
    expect(page2).toBe('Second page text');
    expect(doc.text).toBe(`${page1}\n\n${page2}`);
    expect(blockTexts(doc)).toEqual([page1, page2]);
  });

  it('sniffs a PDF whatever the filename says', async () => {
    const doc = await parseDocument(pdf, { filename: 'notes.txt', mime: 'text/plain' });
    expect(doc.mime).toBe('application/pdf');
  });

  it('rejects a truncated PDF as corrupt', async () => {
    await expect(parseDocument(pdf.subarray(0, Math.floor(pdf.length / 2)), {})).rejects.toMatchObject({
      name: 'ParseError',
      reason: 'corrupt',
    });
  });

  it('rejects a PDF with a valid trailer but garbage objects as corrupt', async () => {
    const garbage = new TextEncoder().encode('%PDF-1.7\n\u0001\u0002 this is not a pdf body\n%%EOF\n');
    await expect(parseDocument(garbage, {})).rejects.toMatchObject({ reason: 'corrupt' });
  });

  it('rejects a PDF with no text as empty', async () => {
    await expect(parseDocument(buildPdf([[]]), {})).rejects.toMatchObject({ reason: 'empty' });
  });
});
