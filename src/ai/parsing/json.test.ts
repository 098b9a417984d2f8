import { describe, expect, it } from 'vitest';

import { blockTexts, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { parseDocument } from './index.js';

const encode = (value: string): Uint8Array => new TextEncoder().encode(value);

describe('parseDocument: JSON', () => {
  it('makes one record per array element', async () => {
    const json = JSON.stringify(
      [
        { id: 1, name: 'Rice', tags: ['dry', 'grain'], stock: { shelf: 'A2', qty: 3 } },
        { id: 2, name: 'Honey\nraw', tags: [], expires: null },
        'loose string',
        {},
      ],
      null,
      2,
    );
    const doc = await parseDocument(encode(json), { filename: 'items.json' });

    expect(doc.mime).toBe('application/json');
    expectValidBlocks(doc);
    expect(doc.blocks.every((b) => b.kind === 'record')).toBe(true);
    expect(blockTexts(doc)).toEqual([
      'id: 1\nname: Rice\ntags: dry, grain\nstock: {"shelf":"A2","qty":3}',
      'id: 2\nname: Honey raw\ntags: \nexpires: null',
      'loose string',
    ]);
  });

  it('makes one record per top-level key of an object', async () => {
    const doc = await parseDocument(
      encode('{"name":"Larder","owner":{"id":7,"email":"a@b.c"},"tags":["x"]}'),
      {},
    );

    expectValidBlocks(doc);
    expect(blockTexts(doc)).toEqual(['name: Larder', 'owner.id: 7\nowner.email: a@b.c', 'tags: x']);
  });

  it('treats an empty array as empty', async () => {
    await expect(parseDocument(encode('[]'), {})).rejects.toMatchObject({ reason: 'empty' });
  });
});
