import JSZip from 'jszip';
import { describe, expect, it } from 'vitest';

import {
  blockTexts,
  buildDocx,
  docxParagraph,
  docxTable,
  expectValidBlocks,
} from '../../../test/fixtures/parsing/builders.js';
import { parseDocx } from './docx.js';
import { parseDocument } from './index.js';

describe('parseDocument: DOCX', () => {
  it('keeps headings, paragraphs and tables', async () => {
    const bytes = await buildDocx(
      docxParagraph('Larder policy', 'Heading1') +
        docxParagraph('Store dry goods off the floor.') +
        docxParagraph('Label every jar &amp; date it.') +
        docxTable([
          ['Item', 'Shelf'],
          ['Rice', 'A2'],
        ]),
    );
    const doc = await parseDocument(bytes, { filename: 'policy.docx' });

    expect(doc.mime).toBe('application/vnd.openxmlformats-officedocument.wordprocessingml.document');
    expect(doc.title).toBe('Larder policy');
    expectValidBlocks(doc);
    expect(doc.blocks.map((b) => [b.kind, b.level])).toEqual([
      ['heading', 1],
      ['paragraph', undefined],
      ['paragraph', undefined],
      ['table', undefined],
    ]);
    expect(blockTexts(doc)).toEqual([
      'Larder policy',
      'Store dry goods off the floor.',
      'Label every jar & date it.',
      'Item | Shelf\nRice | A2',
    ]);
  });

  it('prefers the dc:title from docProps/core.xml', async () => {
    const core =
      '<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Core &amp; Title</dc:title></cp:coreProperties>';
    const bytes = await buildDocx(docxParagraph('Body only'), { 'docProps/core.xml': core });
    expect((await parseDocument(bytes, {})).title).toBe('Core & Title');
  });

  it('refuses a zip bomb before inflating it', async () => {
    const bytes = await buildDocx(docxParagraph('tiny'), {
      'word/media/zeros.bin': new Uint8Array(60 * 1024 * 1024),
    });
    expect(bytes.length).toBeLessThan(1024 * 1024);
    await expect(parseDocument(bytes, {})).rejects.toMatchObject({ name: 'ParseError', reason: 'too_large' });
  });

  it('refuses an XML entity bomb ("billion laughs") without expanding it', async () => {
    const lol = ['<!ENTITY lol "lol">'];
    for (let i = 1; i < 10; i++) lol.push(`<!ENTITY lol${i} "${`&lol${i === 1 ? '' : i - 1};`.repeat(10)}">`);
    const bomb = `<?xml version="1.0"?><!DOCTYPE w:document [${lol.join('')}]><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>`;
    const bytes = await buildDocx(docxParagraph('placeholder'), { 'word/document.xml': bomb });
    await expect(parseDocument(bytes, {})).rejects.toMatchObject({
      name: 'ParseError',
      reason: 'unsupported',
    });
  });

  it('refuses an entry that inflates past the limit even when its declared size lies', async () => {
    const bytes = await buildDocx(docxParagraph('tiny'), { 'word/media/zeros.bin': new Uint8Array(200_000) });
    forgeUncompressedSize(bytes, 'word/media/zeros.bin', 10);
    const entry = (await JSZip.loadAsync(bytes)).file('word/media/zeros.bin') as unknown as {
      _data: { uncompressedSize: number };
    };
    expect(entry._data.uncompressedSize).toBe(10);

    await expect(parseDocx(bytes, { maxUncompressedBytes: 150_000 })).rejects.toMatchObject({
      reason: 'too_large',
    });
  });

  it('rejects a damaged DOCX as corrupt', async () => {
    const bytes = await buildDocx(docxParagraph('x'));
    const damaged = bytes.slice(0, bytes.length - 30);
    await expect(parseDocument(damaged, { filename: 'x.docx' })).rejects.toMatchObject({ reason: 'corrupt' });
  });

  it('rejects a ZIP that is not a DOCX as unsupported', async () => {
    const zip = new JSZip();
    zip.file('hello.txt', 'hi');
    const bytes = await zip.generateAsync({ type: 'uint8array' });
    await expect(parseDocument(bytes, { filename: 'a.zip' })).rejects.toMatchObject({
      reason: 'unsupported',
    });
  });
});

/** Overwrites an entry's uncompressed size in its local header and central directory record. */
function forgeUncompressedSize(zip: Uint8Array, name: string, size: number): void {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const needle = new TextEncoder().encode(name);
  const hits: number[] = [];
  for (let i = 0; i + needle.length <= zip.length; i += 1) {
    if (needle.every((byte, j) => zip[i + j] === byte)) hits.push(i);
  }
  const [local, central] = hits;
  view.setUint32(local! - 30 + 22, size, true);
  view.setUint32(central! - 46 + 24, size, true);
}
