/**
 * Bookkeeping shared by `larder ingest` and `larder import`: counting outcomes, drawing progress on
 * stderr, waiting for the touched documents to be processed, and the final summary.
 *
 * Progress goes to stderr only: a single redrawn line on a terminal, a plain line every few seconds
 * otherwise (CI logs, `2> file`). stdout carries only the summary (JSON with `--json`).
 */
import type { DocumentStatus } from '../platform/db/schema.js';

export type Outcome = 'created' | 'updated' | 'unchanged' | 'duplicate' | 'requeued' | 'failed';
export const OUTCOMES: readonly Outcome[] = [
  'created',
  'updated',
  'unchanged',
  'duplicate',
  'requeued',
  'failed',
];

/** An item that could not be stored: a file (`path`) or a JSONL line (`line`). */
export interface Failure {
  path?: string;
  line?: number;
  code: string;
  message: string;
}

/** A document this run touched, with its last known processing state. */
interface Touched {
  label: string;
  status: DocumentStatus;
  error: string | null;
}

const TERMINAL: ReadonlySet<DocumentStatus> = new Set(['ready', 'failed']);

/** Counts of one run; the reporter reads it, the commands write it. */
export class Tally {
  readonly counts: Record<Outcome, number> = {
    created: 0,
    updated: 0,
    unchanged: 0,
    duplicate: 0,
    requeued: 0,
    failed: 0,
  };
  readonly failures: Failure[] = [];
  readonly documents = new Map<string, Touched>();
  readonly startedAt = performance.now();
  bytes = 0;
  done = 0;

  record(
    outcome: Exclude<Outcome, 'failed'>,
    bytes: number,
    label: string,
    document: { id: string; status: DocumentStatus; error: string | null },
  ) {
    this.counts[outcome] += 1;
    this.bytes += bytes;
    this.done += 1;
    this.documents.set(document.id, { label, status: document.status, error: document.error });
  }

  fail(failure: Failure, bytes = 0) {
    this.counts.failed += 1;
    this.bytes += bytes;
    this.done += 1;
    this.failures.push(failure);
  }

  get seconds(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  /** Ids of touched documents not yet ready or failed. */
  pending(): string[] {
    return [...this.documents].filter(([, d]) => !TERMINAL.has(d.status)).map(([id]) => id);
  }

  statusCounts(): Partial<Record<DocumentStatus, number>> {
    const counts: Partial<Record<DocumentStatus, number>> = {};
    for (const d of this.documents.values()) counts[d.status] = (counts[d.status] ?? 0) + 1;
    return counts;
  }

  processingFailures(): { externalId: string; documentId: string; error: string }[] {
    return [...this.documents]
      .filter(([, d]) => d.status === 'failed')
      .map(([id, d]) => ({ externalId: d.label, documentId: id, error: d.error ?? 'failed' }));
  }
}

const rate = (n: number, seconds: number) => (seconds > 0 ? n / seconds : 0);
const mb = (bytes: number) => bytes / 1_000_000;

export interface ReporterOptions {
  /** `files` or `lines`. */
  unit: string;
  /** Known number of items (ingest), or a completed fraction (import: bytes of the file read). */
  total?: () => number | undefined;
  fraction?: () => number | undefined;
  stream?: NodeJS.WriteStream;
  /** Plain-line interval when stderr is not a terminal. */
  plainIntervalMs?: number;
}

/** Draws the tally on stderr while a run goes on. */
export class Reporter {
  readonly #stream: NodeJS.WriteStream;
  readonly #tty: boolean;
  #timer: NodeJS.Timeout | undefined;
  #phase: 'storing' | 'processing' = 'storing';
  #lastPlain = '';
  #drawn = false;

  constructor(
    private readonly tally: Tally,
    private readonly options: ReporterOptions,
  ) {
    this.#stream = options.stream ?? process.stderr;
    // Not a tty.WriteStream when redirected, whatever the type says.
    this.#tty = (this.#stream as { isTTY?: boolean }).isTTY === true;
  }

  start(): void {
    const interval = this.#tty ? 250 : (this.options.plainIntervalMs ?? 5_000);
    this.#timer = setInterval(() => {
      this.draw();
    }, interval);
    this.#timer.unref();
  }

  /** Switches the line to the waiting-for-processing view. */
  processing(): void {
    if (!this.#tty) this.#plain(this.line()); // the storing phase's final count
    this.#phase = 'processing';
    this.draw();
  }

  /** A message of its own, printed above the progress line. */
  note(message: string): void {
    this.#clear();
    this.#stream.write(`${message}\n`);
    this.draw();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty) this.#clear();
    else this.#plain(this.line());
  }

  line(): string {
    const t = this.tally;
    if (this.#phase === 'processing') {
      const s = t.statusCounts();
      const pending = t.documents.size - (s.ready ?? 0) - (s.failed ?? 0);
      return `processing: ${s.ready ?? 0} ready, ${s.failed ?? 0} failed, ${pending} pending of ${t.documents.size} documents`;
    }
    const total = this.options.total?.();
    const fraction = this.options.fraction?.();
    const seconds = t.seconds;
    const of =
      total !== undefined
        ? `${t.done}/${total} ${this.options.unit}`
        : `${t.done} ${this.options.unit}${fraction === undefined ? '' : ` (${Math.floor(fraction * 100)}%)`}`;
    const counts = OUTCOMES.map((o) => `${t.counts[o]} ${o}`).join(', ');
    return (
      `${of}: ${counts} · ${rate(t.done, seconds).toFixed(1)} ${this.options.unit}/s, ` +
      `${rate(mb(t.bytes), seconds).toFixed(1)} MB/s`
    );
  }

  draw(): void {
    const line = this.line();
    if (!this.#tty) {
      this.#plain(line);
      return;
    }
    const width = this.#stream.columns > 1 ? this.#stream.columns - 1 : 120;
    this.#stream.write(`\r\x1b[2K${line.slice(0, width)}`);
    this.#drawn = true;
  }

  #plain(line: string) {
    if (line === this.#lastPlain) return;
    this.#lastPlain = line;
    this.#stream.write(`${line}\n`);
  }

  #clear() {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
  }
}

export interface WaitOptions {
  /** Returns the current state of these documents (deleted ones absent). */
  statuses(ids: string[]): Promise<{ id: string; status: DocumentStatus; error: string | null }[]>;
  pollMs: number;
  signal: AbortSignal;
  /** Called once when nothing changed for `stallMs` (e.g. to ask whether a worker runs). */
  onStall?: (pending: number) => void;
  stallMs?: number;
}

/**
 * The waiting every ingesting command does: fast polls in embedded mode (this process works the
 * queue), slower ones in server mode with a hint after a minute without progress that no worker may
 * be running.
 */
export function waitForDocuments(
  tally: Tally,
  reporter: Pick<Reporter, 'note'>,
  options: Pick<WaitOptions, 'statuses' | 'signal'> & { embedded: boolean },
): Promise<void> {
  return waitForProcessing(tally, {
    statuses: options.statuses,
    pollMs: options.embedded ? 250 : 1000,
    signal: options.signal,
    stallMs: 60_000,
    onStall: options.embedded
      ? undefined
      : (pending) => {
          reporter.note(
            `Still waiting for ${pending} document(s) with no progress for a minute: is a \`larder worker\` running against this database?`,
          );
        },
  });
}

const IDS_PER_QUERY = 1000;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * Polls until every touched document is ready or failed (or the signal aborts). Deleted documents
 * count as failed ("deleted while processing").
 */
export async function waitForProcessing(tally: Tally, options: WaitOptions): Promise<void> {
  let lastChange = performance.now();
  let hinted = false;
  for (;;) {
    const pending = tally.pending();
    if (pending.length === 0 || options.signal.aborted) return;
    let changed = false;
    for (let i = 0; i < pending.length; i += IDS_PER_QUERY) {
      const ids = pending.slice(i, i + IDS_PER_QUERY);
      const rows = await options.statuses(ids);
      const seen = new Set<string>();
      for (const row of rows) {
        seen.add(row.id);
        const doc = tally.documents.get(row.id);
        if (doc && doc.status !== row.status) {
          doc.status = row.status;
          doc.error = row.error;
          changed = true;
        }
      }
      for (const id of ids) {
        const doc = tally.documents.get(id);
        if (doc && !seen.has(id)) {
          doc.status = 'failed';
          doc.error = 'deleted while processing';
          changed = true;
        }
      }
    }
    if (changed) lastChange = performance.now();
    else if (!hinted && options.onStall && performance.now() - lastChange > (options.stallMs ?? 60_000)) {
      hinted = true;
      options.onStall(tally.pending().length);
    }
    if (tally.pending().length === 0) return;
    await sleep(options.pollMs, options.signal);
  }
}
