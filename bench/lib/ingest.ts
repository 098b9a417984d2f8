/**
 * Ingests a BEIR JSONL file the way `larder import --jsonl` does: each line through the CLI's own
 * `parseRecord`, skip-if-unchanged by external id, then `DocumentService.add` (several at once, the
 * CLI's `pool`), while the runtime's in-process job workers (`jobs: 'work'`, as in embedded mode) parse,
 * chunk, index and embed. Waits until every document is `ready` (or `failed`), printing progress.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { sql } from 'kysely';
import { parseRecord } from '../../src/cli/import.js';
import { pool } from '../../src/cli/ingest.js';
import type { AuditContext } from '../../src/modules/audit/service.js';
import { DocumentService } from '../../src/modules/documents/service.js';
import type { WorkspaceContext } from '../../src/platform/auth/access.js';
import type { Runtime } from '../../src/runtime.js';
import { duration, int } from './format.js';
import { statusCounts, type StatusCounts } from './pg.js';

export interface IngestProgress {
  seconds: number;
  added: number;
  counts: StatusCounts;
}

export interface IngestResult {
  documents: number;
  failedDocuments: number;
  failures: string[];
  /** Chunks of the ready documents (`chunk_count`). */
  chunks: number;
  /** Until every document was stored and queued through DocumentService. */
  addSeconds: number;
  /** Until every document was chunked and lexically indexed (`searchable` or `ready`). */
  searchableSeconds: number;
  /** Until every document was `ready` (embedded): the ingestion wall time. */
  readySeconds: number;
  chunksPerSecond: number;
  /** One sample per 10 s: documents added, and documents/chunks per status. */
  timeline: IngestProgress[];
}

const TERMINAL = ['ready', 'failed'] as const;
const STALL_MS = 10 * 60_000;
/** Status polls: short, so a run of a few seconds is timed to about 1% (each poll is one small query). */
const POLL_MS = 50;

export async function ingestJsonl(options: {
  runtime: Runtime;
  ws: WorkspaceContext;
  collectionId: string;
  file: string;
  totalDocuments: number;
  concurrency: number;
  signal: AbortSignal;
  log: (line: string) => void;
}): Promise<IngestResult> {
  const { runtime, ws, collectionId, signal, log } = options;
  const config = runtime.config;
  const db = runtime.database.db;
  const documents = new DocumentService(db, runtime.jobs, runtime.events, {
    uploadLimitBytes: config.uploadLimitBytes,
    urlFetchTimeoutMs: config.urlFetchTimeoutMs,
    allowPrivateUrls: config.urlAllowPrivate,
  });
  const audit: AuditContext = { actor: { type: 'system' }, userAgent: 'larder bench/search-latency' };
  const failures: string[] = [];
  let added = 0;
  // Set in the adder and the loop below: an object, so narrowing does not assume they stay undefined.
  const at: { addSeconds?: number; searchableSeconds?: number } = {};
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const timeline: IngestProgress[] = [];

  const adding = (async () => {
    const input = createReadStream(options.file);
    const lines = createInterface({ input, crlfDelay: Infinity });
    try {
      await pool(lines, options.concurrency, signal, async (line) => {
        if (line.trim() === '') return;
        const record = parseRecord(line);
        const content = Buffer.from(record.text, 'utf8');
        const sha256 = createHash('sha256').update(content).digest('hex');
        const existing = await documents.findByExternalId(ws, collectionId, record.externalId);
        if (existing?.sha256 !== sha256)
          await documents.add(
            ws,
            null,
            collectionId,
            {
              content,
              mime: record.mime,
              externalId: record.externalId,
              title: record.title,
              metadata: record.metadata,
            },
            audit,
          );
        added += 1;
      });
    } finally {
      lines.close();
      input.destroy();
    }
    at.addSeconds = elapsed();
  })();
  // Surfaces an add failure at once instead of after the wait below.
  const failed: { error?: Error } = {};
  adding.catch((error: unknown) => {
    failed.error = error instanceof Error ? error : new Error(String(error));
  });

  let counts: StatusCounts = { documents: {}, chunks: {} };
  let lastChange = performance.now();
  let lastKey = '';
  let lastReport = performance.now();
  let lastReady = 0;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (failed.error) throw failed.error;
    if (signal.aborted) throw new Error('interrupted');
    counts = await statusCounts(db, collectionId);
    const d = counts.documents;
    const total = Object.values(d).reduce((s, n) => s + n, 0);
    const done = TERMINAL.reduce((s, status) => s + (d[status] ?? 0), 0);
    const inFlight = (d.queued ?? 0) + (d.parsing ?? 0);
    if (at.addSeconds !== undefined && at.searchableSeconds === undefined && inFlight === 0)
      at.searchableSeconds = elapsed();
    const key = JSON.stringify(d);
    if (key !== lastKey) {
      lastKey = key;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > STALL_MS) {
      throw new Error(`ingestion stalled: no status change for ${STALL_MS / 60_000} minutes (${key})`);
    }
    if (performance.now() - lastReport >= 10_000) {
      const readyChunks = counts.chunks.ready ?? 0;
      const rate = (readyChunks - lastReady) / ((performance.now() - lastReport) / 1000);
      lastReport = performance.now();
      lastReady = readyChunks;
      timeline.push({ seconds: Math.round(elapsed()), added, counts });
      log(
        `[ingest ${duration(elapsed())}] added ${int(added)}/${int(options.totalDocuments)} documents; ` +
          `queued ${int(d.queued ?? 0)}, parsing ${int(d.parsing ?? 0)}, searchable ${int(d.searchable ?? 0)}, ` +
          `ready ${int(d.ready ?? 0)}, failed ${int(d.failed ?? 0)}; chunks indexed ` +
          `${int((counts.chunks.searchable ?? 0) + readyChunks)}, embedded ${int(readyChunks)} (${int(rate)}/s)`,
      );
    }
    if (at.addSeconds !== undefined && total >= added && done === total) break;
  }
  await adding;
  const readySeconds = elapsed();
  if ((counts.documents.failed ?? 0) > 0) {
    const { rows } = await sql<{ external_id: string; error: string | null }>`
      select external_id, error from documents
      where collection_id = ${collectionId}::uuid and status = 'failed' and deleted_at is null
      order by external_id limit 20
    `.execute(db);
    for (const r of rows) failures.push(`${r.external_id}: ${r.error ?? 'unknown error'}`);
  }
  const chunks = counts.chunks.ready ?? 0;
  return {
    documents: added,
    failedDocuments: counts.documents.failed ?? 0,
    failures,
    chunks,
    addSeconds: at.addSeconds ?? readySeconds,
    searchableSeconds: at.searchableSeconds ?? readySeconds,
    readySeconds,
    chunksPerSecond: readySeconds > 0 ? chunks / readySeconds : 0,
    timeline,
  };
}
