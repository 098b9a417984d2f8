/** Parser → chunker on real documents (this repository's own Markdown): exact spans, limits, paths. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { chunkDocument } from './chunking/chunker.js';
import { parseDocument } from './parsing/index.js';

const root = new URL('../../', import.meta.url);

describe.each(['README.md', 'docs/architecture.md', 'docs/errors.md'])('parse and chunk %s', (file) => {
  it('yields chunks that are exact slices of the extracted text, within budget, with heading paths', async () => {
    const bytes = await readFile(new URL(file, root));
    const doc = await parseDocument(new Uint8Array(bytes), { filename: file });
    expect(doc.mime).toBe('text/markdown');
    const chunks = chunkDocument(doc, { maxTokens: 200, overlapTokens: 30 });
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(chunk.text).toBe(doc.text.slice(chunk.charStart, chunk.charEnd));
      expect(chunk.tokenCount).toBeLessThanOrEqual(200);
    }
    expect(chunks.some((c) => c.headingPath.length > 0)).toBe(true);
    // Deterministic.
    expect(chunkDocument(doc, { maxTokens: 200, overlapTokens: 30 })).toEqual(chunks);
  });
});
