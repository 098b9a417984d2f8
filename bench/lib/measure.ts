/** Runs a list of queries through SearchService at a given concurrency and summarises the latencies. */
import type { WorkspaceContext } from '../../src/platform/auth/access.js';
import { percentile } from '../../src/modules/search/eval/run.js';
import type { SearchMode, SearchService } from '../../src/modules/search/service.js';
import type { Query } from './corpus.js';

export interface RunOptions {
  mode: SearchMode;
  collectionId: string;
  k: number;
  concurrency: number;
  /** Stop starting new queries after this long (the ones in flight finish); undefined: no limit. */
  maxSeconds?: number | undefined;
  signal: AbortSignal;
}

export interface RunResult {
  mode: SearchMode;
  concurrency: number;
  queries: number;
  errors: number;
  firstError: string | null;
  latencyMs: { p50: number; p95: number; p99: number; mean: number; min: number; max: number };
  qps: number;
  wallSeconds: number;
  meanHits: number;
  /** True when the time limit or an interrupt stopped the run before every query was sent. */
  truncated: boolean;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export async function runQueries(
  search: SearchService,
  ws: WorkspaceContext,
  queries: readonly Query[],
  options: RunOptions,
): Promise<RunResult> {
  const times: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let hits = 0;
  let next = 0;
  const started = performance.now();
  const deadline = options.maxSeconds === undefined ? Infinity : started + options.maxSeconds * 1000;
  const worker = async () => {
    for (;;) {
      if (options.signal.aborted || performance.now() >= deadline) return;
      const query = queries[next++];
      if (!query) return;
      const t0 = performance.now();
      try {
        const result = await search.search(ws, {
          query: query.text,
          collections: [options.collectionId],
          k: options.k,
          mode: options.mode,
        });
        times.push(performance.now() - t0);
        hits += result.hits.length;
      } catch (error) {
        errors += 1;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const wall = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const mean = times.length > 0 ? times.reduce((s, t) => s + t, 0) / times.length : 0;
  return {
    mode: options.mode,
    concurrency: options.concurrency,
    queries: times.length,
    errors,
    firstError,
    latencyMs: {
      p50: round(percentile(times, 0.5), 1),
      p95: round(percentile(times, 0.95), 1),
      p99: round(percentile(times, 0.99), 1),
      mean: round(mean, 1),
      min: round(times[0] ?? 0, 1),
      max: round(times[times.length - 1] ?? 0, 1),
    },
    qps: wall > 0 ? round(times.length / wall, 2) : 0,
    wallSeconds: round(wall, 2),
    meanHits: times.length > 0 ? round(hits / times.length, 2) : 0,
    truncated: next < queries.length,
  };
}
