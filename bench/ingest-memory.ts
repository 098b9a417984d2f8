/**
 * Peak memory of a real `larder worker` ingesting one large Markdown document on PostgreSQL.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/ingest-memory.ts [megabytes=200] [--dist]
 *
 * Creates a scratch database (dropped at the end), generates the Markdown to a temporary file, adds it
 * through DocumentService (streamed, like an upload), then starts `node bin/larder.js worker` and
 * waits until the document is `ready`. Reports the worker's peak RSS (VmHWM from /proc, the kernel's
 * high-water mark, so no peak is missed between samples), time, chunks and chunks/s, as JSON.
 *
 * `measureIngestMemory` is the measurement itself on a given (migrated on open) database; the
 * `ingestion` bench suite calls it too.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { once } from 'node:events';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { DocumentService } from '../src/modules/documents/service.js';
import { openRuntime } from '../src/runtime.js';
import { createLogger } from '../src/platform/logger.js';
import { withTenant } from '../src/platform/db/tenant.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import { generateMarkdown } from '../test/fixtures/chunking/generated-markdown.js';

export interface IngestMemoryResult {
  megabytes: number;
  status: string;
  error: string | null;
  chunks: number;
  addSeconds: number;
  ingestSeconds: number;
  chunksPerSecond: number;
  workerPeakRssMiB: number;
  worker: string;
  node: string;
}

/**
 * Generates `megabytes` MB of Markdown, adds it to a new workspace's collection (no embeddings) of
 * `databaseUrl`, and has a fresh `larder worker` process (`entry`) ingest it; the worker's peak RSS.
 * The workspace is deleted at the end.
 */
export async function measureIngestMemory(options: {
  databaseUrl: string;
  megabytes: number;
  /** `bin/larder.js` (sources via tsx) or `dist/cli/main.js` (the build). */
  entry: string;
  /** Scratch directory for the generated file. */
  dir: string;
  signal?: AbortSignal;
}): Promise<IngestMemoryResult> {
  const { databaseUrl, megabytes, entry } = options;
  const file = join(options.dir, `big-${megabytes}mb-${Date.now().toString(36)}.md`);
  const out = createWriteStream(file);
  for (const piece of generateMarkdown(megabytes * 1_000_000)) {
    if (!out.write(piece)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  try {
    const bytes = (await stat(file)).size;

    const config = loadConfig({
      ...process.env,
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'warn',
      LARDER_EMBEDDING_PROVIDER: 'none',
    });
    const logger = createLogger(config);
    const runtime = await openRuntime(config, logger, { migrate: true, jobs: 'produce', redis: false });
    const db = runtime.database.db;
    let workspaceId: string;
    let documentId: string;
    let addSeconds: number;
    try {
      const workspace = await db
        .insertInto('workspaces')
        .values({ name: 'Bench', slug: `bench-${Date.now()}` })
        .returning('id')
        .executeTakeFirstOrThrow();
      workspaceId = workspace.id;
      const ws: WorkspaceContext = {
        id: workspace.id,
        role: 'owner',
        permissions: new Set<Permission>(['documents:read', 'documents:write']),
      };
      const collection = await withTenant(db, ws.id, (trx) =>
        trx
          .insertInto('collections')
          .values({
            workspace_id: ws.id,
            name: 'Big',
            chunking: JSON.stringify({ maxTokens: 400, overlapTokens: 50 }),
          })
          .returning('id')
          .executeTakeFirstOrThrow(),
      );
      const service = new DocumentService(db, runtime.jobs, runtime.events, {
        uploadLimitBytes: bytes + 1,
        urlFetchTimeoutMs: 1000,
      });
      const addStarted = performance.now();
      const added = await service.add(ws, null, collection.id, {
        content: createReadStream(file),
        filename: 'big.md',
      });
      documentId = added.document.id;
      addSeconds = (performance.now() - addStarted) / 1000;
    } finally {
      await runtime.close();
    }

    // BENCH_WORKER_ARGS: node flags for the worker (`--trace-gc`, `--heap-growing-percent=N`, …).
    const flags = (process.env.BENCH_WORKER_ARGS ?? '').split(' ').filter(Boolean);
    const worker = spawn(process.execPath, [...flags, entry, 'worker'], {
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', LARDER_JOB_CONCURRENCY: '1' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exited = once(worker, 'exit');
    const started = performance.now();
    const vmHwm = async () => {
      const status = await readFile(`/proc/${worker.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    };
    const check = new pg.Client({ connectionString: databaseUrl });
    await check.connect();
    let peak = 0;
    let document: { status: string; chunk_count: number; error: string | null } | undefined;
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000));
        if (options.signal?.aborted) throw new Error('interrupted');
        if (worker.exitCode !== null) throw new Error(`the worker exited with ${worker.exitCode}`);
        peak = Math.max(peak, await vmHwm());
        const result = await check.query<{ status: string; chunk_count: number; error: string | null }>(
          'select status, chunk_count, error from documents where id = $1',
          [documentId],
        );
        document = result.rows[0];
        if (document?.status === 'ready' || document?.status === 'failed') break;
      }
    } finally {
      if (worker.exitCode === null) {
        worker.kill('SIGTERM');
        await exited;
      }
      await check.query('delete from workspaces where id = $1', [workspaceId]).catch(() => undefined);
      await check.end();
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      megabytes: +(bytes / 2 ** 20).toFixed(1),
      status: document.status,
      error: document.error,
      chunks: document.chunk_count,
      addSeconds: +addSeconds.toFixed(1),
      ingestSeconds: +seconds.toFixed(1),
      chunksPerSecond: Math.round(document.chunk_count / seconds),
      workerPeakRssMiB: Math.round(peak / 2 ** 20),
      worker: entry,
      node: process.version,
    };
  } finally {
    await rm(file, { force: true });
  }
}

/**
 * Runs `fn` on a scratch database created on `base`'s server and dropped afterwards: the big
 * document's rows then vanish with the database instead of leaving a cascade delete and vacuum work
 * behind (which slowed the ingestion suite's next rounds).
 */
export async function withScratchDatabase<T>(base: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `larder_bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    const url = new URL(base);
    url.pathname = `/${name}`;
    return await fn(url.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

async function main() {
  const megabytes = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 200);
  const base = process.env.DATABASE_URL;
  if (!base)
    throw new Error('set DATABASE_URL to a PostgreSQL server with pgvector (a database to connect to)');
  const dir = await mkdtemp(join(tmpdir(), 'larder-bench-'));
  try {
    // `--dist`: the compiled build (`npm run build`), as in the container image; default: the sources via tsx.
    const entry = process.argv.includes('--dist') ? 'dist/cli/main.js' : 'bin/larder.js';
    const result = await withScratchDatabase(base, (databaseUrl) =>
      measureIngestMemory({ databaseUrl, megabytes, entry, dir }),
    );
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Run as a script only (the ingestion suite imports measureIngestMemory).
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
