/**
 * How far V8 lets the old generation grow past what the last full collection kept, in percent, in a
 * process that runs jobs. V8's own factor (up to 4× when allocation is fast) let a worker ingesting a
 * 200 MB upload swing between ~300 and ~450 MiB of RSS while less than 60 MiB of its heap was live;
 * at 30 % it stays below ~300 MiB, in the same time. The limit is computed at each full collection,
 * so `larder worker` sets the flag before its modules load (cli/main.ts); other processes that run
 * jobs (embedded mode) set it when their job queue starts. A process-wide V8 flag; `node
 * --heap-growing-percent=N` on the command line takes precedence.
 */
import { setFlagsFromString } from 'node:v8';

const JOB_HEAP_GROWING_PERCENT = 30;

export function limitHeapGrowth(): void {
  if (process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) return;
  setFlagsFromString(`--heap-growing-percent=${JOB_HEAP_GROWING_PERCENT}`);
}
