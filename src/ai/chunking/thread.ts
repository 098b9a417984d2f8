/**
 * `chunkTextStream` in a worker thread with a capped heap.
 *
 * Parsing and chunking a big file produce a lot of short-lived garbage (with micromark's mdast, which
 * Markdown was parsed into until markdown-it replaced it, ~200 bytes per character of a slice). V8
 * grows a process's heap lazily and far beyond what is live, so in the worker process a 10 MB file
 * pushed RSS past 500 MB although less than 50 MB was ever in use. A thread with
 * `maxOldGenerationSizeMb` collects early instead, and the main thread (database, queue) stays small.
 * Parts are pulled on request, so at most one part and one window are in flight.
 */
import type { Worker } from 'node:worker_threads';
import { ParseError } from '../parsing/types.js';
import { Mailbox } from '../../platform/threads/mailbox.js';
import { startModuleWorker } from '../../platform/threads/module-worker.js';
import { ChunkingOptionsError, type Chunk } from './chunker.js';
import type { StreamChunkingOptions } from './stream.js';

type FromThread =
  | { type: 'need' }
  | { type: 'chunks'; chunks: Chunk[] }
  | { type: 'done' }
  | { type: 'error'; name: string; message: string; reason?: string }
  | { type: 'exit'; code: number; error?: Error };

export interface ThreadLimits {
  /** Old-generation heap of the thread, in MiB. */
  maxHeapMb: number;
  /**
   * Young generation of the thread, in MiB (V8's default is 48). Chunking's garbage dies young, so a
   * small one costs no time: a 200 MB upload took as long with 8, and peaked ~35 MiB lower.
   */
  maxYoungMb?: number;
}

export const DEFAULT_THREAD_LIMITS: ThreadLimits = { maxHeapMb: 128, maxYoungMb: 8 };

function rebuild(message: Extract<FromThread, { type: 'error' }>): Error {
  if (message.name === 'ParseError')
    return new ParseError((message.reason ?? 'corrupt') as ParseError['reason'], message.message);
  if (message.name === 'ChunkingOptionsError') return new ChunkingOptionsError(message.message);
  return new Error(message.message);
}

export async function* chunkTextStreamInThread(
  parts: AsyncIterable<Uint8Array>,
  options: StreamChunkingOptions,
  limits: ThreadLimits = DEFAULT_THREAD_LIMITS,
): AsyncGenerator<Chunk[]> {
  const worker: Worker = startModuleWorker(import.meta.url, 'stream-thread', {
    resourceLimits: {
      maxOldGenerationSizeMb: limits.maxHeapMb,
      ...(limits.maxYoungMb === undefined ? {} : { maxYoungGenerationSizeMb: limits.maxYoungMb }),
    },
  });
  const inbox = new Mailbox<FromThread>();
  let failure: Error | undefined;
  worker.on('message', inbox.deliver);
  worker.on('error', (error) => {
    failure = error;
  });
  worker.on('exit', (code) => {
    inbox.deliver({ type: 'exit', code, ...(failure ? { error: failure } : {}) });
  });
  const source = parts[Symbol.asyncIterator]();
  worker.postMessage({ type: 'start', options });
  try {
    for (;;) {
      const message = await inbox.next();
      switch (message.type) {
        case 'need': {
          const part = await source.next();
          worker.postMessage(part.done ? { type: 'end' } : { type: 'part', data: part.value });
          break;
        }
        case 'chunks':
          yield message.chunks;
          break;
        case 'done':
          return;
        case 'error':
          throw rebuild(message);
        case 'exit': {
          const oom = (message.error as { code?: string } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
          if (oom)
            throw new ParseError(
              'too_large',
              `parsing needs more than ${limits.maxHeapMb} MiB of memory (a very long block without paragraph breaks?)`,
            );
          throw message.error ?? new Error(`the chunking thread exited with code ${message.code}`);
        }
      }
    }
  } finally {
    worker.removeAllListeners('exit');
    await worker.terminate();
    await source.return?.();
  }
}
