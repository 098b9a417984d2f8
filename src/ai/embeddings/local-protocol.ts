/** Messages between the local embedding pool (main thread) and its workers (`local-worker.ts`). */

/** Pool → worker: embed these texts. A worker handles one request at a time. */
export interface EmbedRequest {
  type: 'embed';
  id: number;
  texts: string[];
}

/** Worker → pool. `vectors` is row-major, `count × dimensions`, raw model output, transferred (not copied). */
export type WorkerMessage =
  | { type: 'ready'; dimensions: number; loadMs: number }
  | { type: 'result'; id: number; vectors: Float32Array }
  | { type: 'error'; id: number; message: string };
