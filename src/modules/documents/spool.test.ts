import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HEAD_BYTES, inMemory, PART_BYTES, spool, type SpooledFile } from './spool.js';

async function* pieces(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(file: SpooledFile): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for await (const part of file.parts()) parts.push(Buffer.from(part));
  return parts;
}

describe('spooling an upload', () => {
  it.each([1, 1000, HEAD_BYTES + 7, PART_BYTES, PART_BYTES + 1, 2.5 * PART_BYTES])(
    'gives the same size, hash, head and parts from a stream (temporary file) and from memory: %i bytes',
    async (size) => {
      const content = randomBytes(size);
      const streamed = await spool(pieces(content, 65_521), size);
      const held = inMemory(content, size);
      try {
        for (const file of [streamed, held]) {
          expect(file.bytes).toBe(size);
          expect(file.sha256).toBe(createHash('sha256').update(content).digest('hex'));
          expect(Buffer.from(file.head).equals(content.subarray(0, HEAD_BYTES))).toBe(true);
          const parts = await collect(file);
          expect(parts.map((p) => p.length)).toEqual(
            Array.from({ length: Math.ceil(size / PART_BYTES) }, (_, i) =>
              Math.min(PART_BYTES, size - i * PART_BYTES),
            ),
          );
          expect(Buffer.concat(parts).equals(content)).toBe(true);
        }
      } finally {
        await streamed.dispose();
        await held.dispose();
      }
    },
  );

  it('refuses content over the limit with payload_too_large, from a stream and from memory', async () => {
    const content = randomBytes(2048);
    await expect(spool(pieces(content, 100), 2047)).rejects.toMatchObject({ code: 'payload_too_large' });
    expect(() => inMemory(content, 2047)).toThrow(expect.objectContaining({ code: 'payload_too_large' }));
    // A view into a larger buffer counts its own bytes only.
    const view = content.subarray(100, 300);
    const held = inMemory(view, 200);
    expect(Buffer.concat(await collect(held)).equals(view)).toBe(true);
  });
});
