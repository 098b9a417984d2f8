/** The windowed chunker in a worker thread: same chunks as in-process, errors and memory caps mapped. */
import { describe, expect, it } from 'vitest';
import { generatedParts, generateMarkdown } from '../../../test/fixtures/chunking/generated-markdown.js';
import { ParseError } from '../parsing/types.js';
import { type Chunk, ChunkingOptionsError } from './chunker.js';
import { chunkTextStream, type StreamChunkingOptions } from './stream.js';
import { chunkTextStreamInThread } from './thread.js';

async function all(source: AsyncIterable<Chunk[]>): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for await (const chunks of source) out.push(...chunks);
  return out;
}

describe('chunkTextStreamInThread', () => {
  it('yields exactly the chunks of the in-process stream, pulling parts on demand', async () => {
    const options: StreamChunkingOptions = {
      format: 'markdown',
      maxTokens: 200,
      overlapTokens: 30,
      windowChars: 60_000,
    };
    const reference = await all(chunkTextStream(generatedParts(generateMarkdown(300_000)), options));
    let pulled = 0;
    async function* counted() {
      for await (const part of generatedParts(generateMarkdown(300_000))) {
        pulled += 1;
        yield part;
      }
    }
    const threaded = await all(chunkTextStreamInThread(counted(), options));
    expect(threaded).toEqual(reference);
    expect(reference.length).toBeGreaterThan(100);
    expect(pulled).toBeGreaterThan(1);
  });

  it('rebuilds errors of the thread as the same classes', async () => {
    const parts = generatedParts(generateMarkdown(1000));
    await expect(
      all(chunkTextStreamInThread(parts, { format: 'text', maxTokens: 10, overlapTokens: 0 })),
    ).rejects.toBeInstanceOf(ChunkingOptionsError);
  });

  it('turns running out of its heap into a ParseError(too_large), and the caller survives', async () => {
    // One 3 MB paragraph without a break: parsed in one go, far beyond an 8 MiB heap.
    const huge = new TextEncoder().encode(`# Wall\n\n${'word '.repeat(600_000)}\n`);
    async function* once() {
      yield huge;
    }
    const error = await all(
      chunkTextStreamInThread(
        once(),
        { format: 'markdown', maxTokens: 200, overlapTokens: 0 },
        { maxHeapMb: 8 },
      ),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ParseError);
    expect((error as ParseError).reason).toBe('too_large');
  });
});
