/**
 * Upload spooling: a request body is streamed to a temporary file while it is hashed and counted, so
 * a slow client never holds a database transaction open and a large file is never held in memory.
 * The database write happens afterwards, from local disk, in one short transaction.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { AppError } from '../../platform/errors.js';

/** Bytes kept in memory from the start of the file, for content sniffing. */
export const HEAD_BYTES = 64 * 1024;
/** Size of one `document_blobs` part. */
export const PART_BYTES = 1024 * 1024;

export interface SpooledFile {
  bytes: number;
  sha256: string;
  /** The first `HEAD_BYTES` bytes (all of a smaller file). */
  head: Uint8Array;
  /** The file again, in parts of `PART_BYTES` (the last may be shorter). */
  parts(): AsyncIterable<Buffer>;
  dispose(): Promise<void>;
}

export function tooLarge(limit: number): AppError {
  return new AppError('payload_too_large', {
    detail: `The document is larger than the limit of ${limit} bytes (LARDER_UPLOAD_LIMIT_BYTES)`,
    extensions: { limit },
  });
}

/** Streams `source` to a temporary file; throws `payload_too_large` as soon as `limit` is passed. */
export async function spool(source: AsyncIterable<Uint8Array>, limit: number): Promise<SpooledFile> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-upload-'));
  const path = join(dir, 'body');
  const dispose = () => rm(dir, { recursive: true, force: true });
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  const head: Buffer[] = [];
  let headLength = 0;
  let bytes = 0;
  try {
    const failed = once(out, 'error').then(([error]) => {
      throw error as Error;
    });
    failed.catch(() => undefined);
    for await (const chunk of source) {
      bytes += chunk.length;
      if (bytes > limit) throw tooLarge(limit);
      hash.update(chunk);
      if (headLength < HEAD_BYTES) {
        const take = chunk.subarray(0, HEAD_BYTES - headLength);
        head.push(Buffer.from(take));
        headLength += take.length;
      }
      if (!out.write(chunk)) await Promise.race([once(out, 'drain'), failed]);
    }
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } catch (error) {
    out.destroy();
    await dispose();
    throw error;
  }
  return {
    bytes,
    sha256: hash.digest('hex'),
    head: Buffer.concat(head),
    parts: () => readParts(path),
    dispose,
  };
}

/**
 * The same for content already in memory (a JSON body, `larder import`, a fetched page): hashed and
 * counted, its parts are views of the buffer. Writing it to disk and reading it back would only cost
 * time (two system calls per file and a temporary directory, per document).
 */
export function inMemory(content: Uint8Array, limit: number): SpooledFile {
  if (content.length > limit) throw tooLarge(limit);
  const bytes = Buffer.from(content.buffer, content.byteOffset, content.length);
  return {
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    head: bytes.subarray(0, HEAD_BYTES),
    parts: async function* () {
      for (let at = 0; at < bytes.length; at += PART_BYTES) yield bytes.subarray(at, at + PART_BYTES);
    },
    dispose: () => Promise.resolve(),
  };
}

async function* readParts(path: string): AsyncIterable<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: PART_BYTES })) {
    pending.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    while (length >= PART_BYTES) {
      const all = Buffer.concat(pending);
      yield all.subarray(0, PART_BYTES);
      const rest = all.subarray(PART_BYTES);
      pending = rest.length > 0 ? [rest] : [];
      length = rest.length;
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}
