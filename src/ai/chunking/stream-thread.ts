/**
 * Worker-thread entry of `chunkTextStreamInThread` (thread.ts): runs `chunkTextStream` on parts the
 * main thread sends on request, and posts the chunks back window by window. See thread.ts for why.
 */
import { parentPort } from 'node:worker_threads';
import { Mailbox } from '../../platform/threads/mailbox.js';
import { chunkTextStream, type StreamChunkingOptions } from './stream.js';

export type ToThread =
  { type: 'start'; options: StreamChunkingOptions } | { type: 'part'; data: Uint8Array } | { type: 'end' };

if (!parentPort) throw new Error('stream-thread must run in a worker thread');
const port = parentPort;
const inbox = new Mailbox<ToThread>();
port.on('message', inbox.deliver);

async function* parts(): AsyncGenerator<Uint8Array> {
  for (;;) {
    port.postMessage({ type: 'need' });
    const message = await inbox.next();
    if (message.type !== 'part') return;
    yield message.data;
  }
}

const start = await inbox.next();
try {
  if (start.type !== 'start') throw new Error('expected start');
  for await (const chunks of chunkTextStream(parts(), start.options))
    port.postMessage({ type: 'chunks', chunks });
  port.postMessage({ type: 'done' });
} catch (error) {
  const e = error as Error & { reason?: string };
  port.postMessage({ type: 'error', name: e.name, message: e.message, reason: e.reason });
}
