/**
 * `larder ingest <path|url>`: adds a file, a folder (recursively) or a web page to a collection,
 * through the same DocumentService as the REST API. Also the shared machinery of `larder import`:
 * opening the runtime as an operator, resolving the workspace and collection, skipping unchanged
 * content, waiting for processing, and the summary.
 *
 * Re-running is cheap and is how an interrupted run resumes: each file's sha256 is computed locally
 * and compared with the stored document of the same `externalId` (its path relative to the folder)
 * before anything is sent; unchanged files are not uploaded again, changed ones replace the document.
 *
 * @example
 *   larder ingest ./handbook --collection Handbook --include '*.md' --exclude 'drafts/**'
 *   larder ingest ./report.pdf --collection Reports --workspace acme --json
 *   larder ingest https://example.com/faq --collection Web
 *
 * Exit status: 0 all stored (and, when waited for, processed), 2 some items failed, 1 a fatal error
 * (unknown workspace, database unreachable), 78 invalid configuration, 130 interrupted.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import picomatch from 'picomatch';
import { pino } from 'pino';
import type { Config } from '../config.js';
import { CollectionService } from '../modules/collections/service.js';
import type { AuditContext } from '../modules/audit/service.js';
import { type AddResult, DocumentService } from '../modules/documents/service.js';
import { tooLarge } from '../modules/documents/spool.js';
import type { WorkspaceContext } from '../platform/auth/access.js';
import { ROLE_PERMISSIONS } from '../platform/auth/permissions.js';
import type { DocumentStatus } from '../platform/db/schema.js';
import { AppError, StartupError } from '../platform/errors.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { openRuntime, type Runtime } from '../runtime.js';
import {
  type Failure,
  OUTCOMES,
  Reporter,
  type ReporterOptions,
  Tally,
  waitForDocuments,
} from './progress.js';

export const EXIT_PARTIAL = 2;
export const EXIT_FATAL = 1;
export const EXIT_INTERRUPTED = 130;

/** Options every ingestion command takes. */
export interface CommonOptions {
  collection: string;
  workspace?: string;
  json?: boolean;
  wait?: boolean;
  concurrency: number;
}

export interface IngestOptions extends CommonOptions {
  include: string[];
  exclude: string[];
  defaultExcludes: boolean;
}

/** A fatal problem the operator can fix (printed without a stack trace, exit 1). */
export class CliError extends Error {
  override name = 'CliError';
}

/** Something to store: a file or a JSONL record, already hashed. */
export interface Item {
  externalId: string;
  /** Where a failure is reported: `{ path }` or `{ line }`. */
  at: Pick<Failure, 'path' | 'line'>;
  sha256: string;
  bytes: number;
  title?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
  upload(): Promise<AddResult>;
}

/** What a command's body gets to work with. */
export interface Run {
  config: Config;
  documents: DocumentService;
  ws: WorkspaceContext;
  collectionId: string;
  audit: AuditContext;
  tally: Tally;
  reporter: Reporter;
  signal: AbortSignal;
  concurrency: number;
  /** Stores an item unless the collection already holds it, and records the outcome. */
  store(item: Item): Promise<void>;
}

const TERMINAL: ReadonlySet<DocumentStatus> = new Set(['ready', 'failed']);

/** AppError codes that are not about one item but about the whole run. */
const FATAL_CODES = new Set(['not_found', 'forbidden', 'service_unavailable', 'unauthenticated']);

/**
 * The code and message of a failure that concerns one item (a refused upload, an unreadable file),
 * or null when the error should stop the run (database down, collection gone).
 */
export function itemFailure(error: unknown): { code: string; message: string } | null {
  if (error instanceof AppError)
    return FATAL_CODES.has(error.code) ? null : { code: error.code, message: error.detail ?? error.title };
  const fsError = error as NodeJS.ErrnoException;
  if (fsError instanceof Error && typeof fsError.syscall === 'string' && typeof fsError.path === 'string')
    return { code: fsError.code ?? 'read_failed', message: fsError.message };
  return null;
}

/**
 * Runs `items` through `fn`, `concurrency` at a time, pulling lazily (a JSONL file is read only as
 * fast as it is stored). The first error thrown by `fn` stops the others and is rethrown.
 */
export async function pool<T>(
  items: AsyncIterable<T> | Iterable<T>,
  concurrency: number,
  signal: AbortSignal,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const iterator = Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && !signal.aborted) {
      try {
        const next = await iterator.next();
        if (next.done) return;
        await fn(next.value);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  } finally {
    await iterator.return?.();
  }
  if (failed) throw failed.error;
}

// ---------------------------------------------------------------------------------------------------
// Workspace and collection

interface WorkspaceRow {
  id: string;
  name: string;
  slug: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The workspace named by `--workspace` (slug or id), or the only one. Operators act on any workspace,
 * so this reads the instance's list as the connecting role (no tenant yet).
 */
export async function resolveWorkspace(runtime: Runtime, wanted: string | undefined): Promise<WorkspaceRow> {
  const rows = await runtime.database.db
    .selectFrom('workspaces')
    .select(['id', 'name', 'slug'])
    .where('deleted_at', 'is', null)
    .orderBy('created_at')
    .execute();
  const choices = () =>
    rows
      .slice(0, 20)
      .map((w) => `  ${w.slug}  (${w.name}, ${w.id})`)
      .join('\n') + (rows.length > 20 ? `\n  … and ${rows.length - 20} more` : '');
  if (wanted !== undefined) {
    const key = wanted.trim().toLowerCase();
    const found = rows.find((w) => (UUID.test(key) ? w.id === key : w.slug === key));
    if (found) return found;
    throw new CliError(
      rows.length === 0
        ? `No workspace "${wanted}": there are no workspaces yet (create one with \`larder admin create-user --email … --owner\`)`
        : `No workspace "${wanted}". Name one by slug or id with --workspace:\n${choices()}`,
    );
  }
  const [only] = rows;
  if (rows.length === 1 && only) return only;
  if (rows.length === 0)
    throw new CliError(
      'There are no workspaces yet: create a user and their workspace with `larder admin create-user --email … --owner`',
    );
  throw new CliError(
    `There are ${rows.length} workspaces; choose one with --workspace <slug|id>:\n${choices()}`,
  );
}

/**
 * The CLI runs with database access, as the instance's operator: it acts with an owner's permissions
 * in the chosen workspace, and its changes are audited as the `system` actor (no user signed in).
 */
export function operatorContext(workspaceId: string): WorkspaceContext {
  return { id: workspaceId, role: 'owner', permissions: ROLE_PERMISSIONS.owner };
}

// ---------------------------------------------------------------------------------------------------
// The shared run

export interface CommandSpec {
  command: 'ingest' | 'import';
  /** What is ingested (a path, a URL, a file), for the summary. */
  source: string;
  reporter: Omit<ReporterOptions, 'stream'>;
  /** Checks done before the database is opened (e.g. the path exists). */
  precheck?: () => Promise<void>;
  body(run: Run): Promise<void>;
}

/** Logs go to stderr (stdout is for summaries and results), at `warn` unless LOG_LEVEL says otherwise. */
export function stderrLogger(config: Config): Logger {
  const level = process.env.LOG_LEVEL === undefined && config.logLevel === 'info' ? 'warn' : config.logLevel;
  return createLogger({ logLevel: level, logPretty: false }, pino.destination({ dest: 2, sync: true }));
}

/** What to print for an error that ends a CLI command (no stack traces). */
export function fatalMessage(error: unknown, config: Config, command: string): string {
  if (error instanceof StartupError && !config.databaseUrl && error.message.includes('in use by process'))
    return (
      `${error.message}\n` +
      `\`larder ${command}\` opens the embedded database itself, so it cannot run next to \`larder serve\` ` +
      'on the same LARDER_DATA_DIR. Stop the server first' +
      (command === 'ingest' || command === 'import'
        ? ', or upload through its API while it runs (POST /v1/collections/{id}/documents).'
        : '.')
    );
  if (error instanceof CliError || error instanceof StartupError) return error.message;
  if (error instanceof AppError) return error.detail ?? error.title;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT'
      ? `Cannot reach the database or Redis: ${error.message}`
      : error.message;
  }
  return String(error);
}

/**
 * Opens the runtime, resolves workspace and collection, runs the command's body with progress on
 * stderr, waits for processing when asked (always in embedded mode), prints the summary and sets
 * the exit status. Never throws: fatal errors become a message and exit status 1.
 */
export async function runCommand(config: Config, opts: CommonOptions, spec: CommandSpec): Promise<void> {
  const logger = stderrLogger(config);
  const embedded = !config.databaseUrl;
  const controller = new AbortController();
  const tally = new Tally();
  const reporter = new Reporter(tally, spec.reporter);
  let interrupts = 0;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(EXIT_INTERRUPTED);
    reporter.note('Interrupted: finishing what is in progress (press Ctrl-C again to exit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let runtime: Runtime | undefined;
  try {
    await spec.precheck?.();
    runtime = await openRuntime(config, logger, {
      migrate: config.migrateOnStart,
      // Embedded: this process owns the database, so it also processes what it adds.
      jobs: embedded ? 'work' : 'produce',
      redis: true,
      ...(embedded ? { pollingIntervalSeconds: 0.5 } : {}),
    });
    const workspace = await resolveWorkspace(runtime, opts.workspace);
    const ws = operatorContext(workspace.id);
    const audit: AuditContext = { actor: { type: 'system' }, userAgent: `larder ${spec.command}` };
    const collections = new CollectionService(runtime.database.db, {
      embeddings: runtime.embeddings,
      jobs: runtime.jobs,
      defaultProvider: config.embeddingProvider,
    });
    const { collection, created } = await findOrCreateCollection(collections, ws, opts.collection, audit);
    if (created)
      process.stderr.write(
        `Created collection "${collection.name}" in workspace ${workspace.slug} (${
          collection.embedding_provider
            ? `embeddings: ${collection.embedding_provider} ${collection.embedding_model}`
            : 'lexical search only'
        })\n`,
      );
    const documents = new DocumentService(runtime.database.db, runtime.jobs, runtime.events, {
      uploadLimitBytes: config.uploadLimitBytes,
      urlFetchTimeoutMs: config.urlFetchTimeoutMs,
      allowPrivateUrls: config.urlAllowPrivate,
    });
    const run: Run = {
      config,
      documents,
      ws,
      collectionId: collection.id,
      audit,
      tally,
      reporter,
      signal: controller.signal,
      concurrency: opts.concurrency,
      store: (item) => store(run, item, embedded),
    };
    reporter.start();
    try {
      await spec.body(run);
      const wait = (opts.wait === true || embedded) && !controller.signal.aborted;
      if (wait) {
        reporter.processing();
        await waitForDocuments(tally, reporter, {
          statuses: (ids) => documents.statuses(ws, ids),
          signal: controller.signal,
          embedded,
        });
      }
      reporter.stop();
      const interrupted = controller.signal.aborted;
      const summary = {
        command: spec.command,
        source: spec.source,
        mode: embedded ? 'embedded' : 'server',
        workspace: { id: workspace.id, slug: workspace.slug },
        collection: { id: collection.id, name: collection.name, created },
        total: tally.done,
        counts: tally.counts,
        bytes: tally.bytes,
        seconds: Math.round(tally.seconds * 100) / 100,
        failures: tally.failures.sort(
          (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.path ?? '').localeCompare(b.path ?? ''),
        ),
        processing: wait ? { statuses: tally.statusCounts(), failures: tally.processingFailures() } : null,
        interrupted,
      };
      printSummary(summary, opts.json === true);
      process.exitCode = interrupted
        ? EXIT_INTERRUPTED
        : tally.failures.length > 0 || (summary.processing?.failures.length ?? 0) > 0
          ? EXIT_PARTIAL
          : 0;
    } finally {
      reporter.stop();
    }
  } catch (error) {
    logger.debug({ err: error }, `${spec.command} failed`);
    process.stderr.write(`larder: ${fatalMessage(error, config, spec.command)}\n`);
    process.exitCode = EXIT_FATAL;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await runtime?.close().catch((error: unknown) => {
      logger.warn({ err: error }, 'closing failed');
    });
  }
}

async function findOrCreateCollection(
  collections: CollectionService,
  ws: WorkspaceContext,
  name: string,
  audit: AuditContext,
) {
  const existing = await collections.findByName(ws, name);
  if (existing) return { collection: existing, created: false };
  try {
    return { collection: await collections.create(ws, null, { name }, audit), created: true };
  } catch (error) {
    // Another process created it meanwhile.
    if (error instanceof AppError && error.code === 'conflict') {
      const now = await collections.findByName(ws, name);
      if (now) return { collection: now, created: false };
    }
    throw error;
  }
}

const sameJson = (a: unknown, b: unknown): boolean => {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
};

/**
 * Skip-if-unchanged, then upload. Same bytes under the same `externalId`:
 *  - title/metadata that differ are updated in place;
 *  - a document whose processing failed is queued again (`requeued`): sending the bytes again would
 *    only answer `unchanged`;
 *  - embedded mode: a document still in flight was left by an interrupted run of this process (no one
 *    else processes this data directory), so its job may be orphaned: it is queued again too.
 */
async function store(run: Run, item: Item, embedded: boolean): Promise<void> {
  const { documents, ws, audit, tally } = run;
  try {
    const existing = await documents.findByExternalId(ws, run.collectionId, item.externalId);
    if (existing?.sha256 === item.sha256) {
      const details = {
        ...(item.title !== undefined && item.title !== existing.title ? { title: item.title } : {}),
        ...(item.metadata !== undefined && !sameJson(item.metadata, existing.metadata)
          ? { metadata: item.metadata }
          : {}),
      };
      if (Object.keys(details).length > 0) await documents.update(ws, existing.id, details, audit);
      if (existing.status === 'failed' || (embedded && !TERMINAL.has(existing.status))) {
        const requeued = await documents.reprocess(ws, existing.id, audit);
        tally.record('requeued', item.bytes, item.externalId, requeued);
      } else {
        tally.record('unchanged', item.bytes, item.externalId, { ...existing, error: null });
      }
      return;
    }
    const result = await item.upload();
    tally.record(result.outcome, item.bytes, item.externalId, result.document);
  } catch (error) {
    const failure = itemFailure(error);
    if (!failure) throw error;
    tally.fail({ ...item.at, ...failure }, item.bytes);
  }
}

interface Summary {
  command: string;
  source: string;
  mode: string;
  workspace: { id: string; slug: string };
  collection: { id: string; name: string; created: boolean };
  total: number;
  counts: Tally['counts'];
  bytes: number;
  seconds: number;
  failures: Failure[];
  processing: {
    statuses: Partial<Record<DocumentStatus, number>>;
    failures: { externalId: string; documentId: string; error: string }[];
  } | null;
  interrupted: boolean;
}

function printSummary(summary: Summary, json: boolean) {
  if (json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const out: string[] = [];
  const verb = summary.command === 'ingest' ? 'Ingested' : 'Imported';
  out.push(
    `${summary.interrupted ? 'Interrupted. ' : ''}${verb} ${summary.total} item(s) into collection "${
      summary.collection.name
    }" (workspace ${summary.workspace.slug}) in ${summary.seconds.toFixed(1)} s: ` +
      OUTCOMES.map((o) => `${summary.counts[o]} ${o}`).join(', '),
  );
  if (summary.failures.length > 0) {
    out.push('Failed:');
    for (const f of summary.failures) out.push(`  ${f.path ?? `line ${f.line}`}: ${f.code}: ${f.message}`);
  }
  if (summary.processing) {
    const s = summary.processing.statuses;
    out.push(
      `Processing: ${s.ready ?? 0} ready, ${s.failed ?? 0} failed` +
        Object.entries(s)
          .filter(([k]) => k !== 'ready' && k !== 'failed')
          .map(([k, n]) => `, ${n} ${k}`)
          .join(''),
    );
    for (const f of summary.processing.failures) out.push(`  ${f.externalId}: ${f.error}`);
  } else if (summary.mode === 'server' && !summary.interrupted) {
    out.push('Queued for the workers (`larder worker`); pass --wait to wait until the documents are ready.');
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------------
// ingest

const DEFAULT_EXCLUDED_DIRS = new Set(['node_modules']);

/** Matches a relative POSIX path against globs; a glob without `/` matches the base name anywhere. */
export function globMatcher(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  const bare = patterns.filter((p) => !p.includes('/'));
  const pathed = patterns.filter((p) => p.includes('/'));
  const byName = bare.length > 0 ? picomatch(bare, { dot: true, basename: true }) : () => false;
  const byPath = pathed.length > 0 ? picomatch(pathed, { dot: true }) : () => false;
  return (rel) => byName(rel) || byPath(rel);
}

interface FileEntry {
  abs: string;
  /** Relative to the ingested folder, POSIX separators: the document's `externalId`. */
  rel: string;
  size: number;
}

/**
 * Every file under `root` that passes the filters, in path order. Directories named by default
 * excludes (dot-directories, `node_modules`) or by `--exclude` are not entered; symbolic links to
 * files are followed, to directories not (no cycles).
 */
async function listFiles(root: string, opts: IngestOptions): Promise<FileEntry[]> {
  const include = globMatcher(opts.include);
  const exclude = globMatcher(opts.exclude);
  const hidden = (name: string) =>
    opts.defaultExcludes && (name.startsWith('.') || DEFAULT_EXCLUDED_DIRS.has(name));
  const files: FileEntry[] = [];
  const visit = async (dir: string, relDir: string): Promise<void> => {
    const entries = [];
    for await (const entry of await opendir(dir)) entries.push(entry);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (hidden(entry.name)) continue;
      const abs = path.join(dir, entry.name);
      const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!exclude(rel)) await visit(abs, rel);
        continue;
      }
      let size: number;
      if (entry.isFile()) size = (await stat(abs)).size;
      else if (entry.isSymbolicLink()) {
        const target = await stat(abs).catch(() => undefined);
        if (!target?.isFile()) continue;
        size = target.size;
      } else continue;
      if (exclude(rel)) continue;
      if (opts.include.length > 0 && !include(rel)) continue;
      files.push({ abs, rel, size });
    }
  };
  await visit(root, '');
  return files;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const isUrl = (source: string) => /^https?:\/\//i.test(source);

export async function ingestCommand({ config }: { config: Config }, source: string, opts: IngestOptions) {
  if (isUrl(source)) {
    await runCommand(config, opts, {
      command: 'ingest',
      source,
      reporter: { unit: 'files', total: () => 1 },
      async body(run) {
        try {
          const result = await run.documents.addFromUrl(
            run.ws,
            null,
            run.collectionId,
            { url: source, externalId: source },
            run.audit,
          );
          run.tally.record(result.outcome, Number(result.document.bytes ?? 0), source, result.document);
        } catch (error) {
          const failure = itemFailure(error);
          if (!failure) throw error;
          run.tally.fail({ path: source, ...failure });
        }
      },
    });
    return;
  }

  const root = path.resolve(source);
  let files: FileEntry[] = [];
  await runCommand(config, opts, {
    command: 'ingest',
    source,
    reporter: { unit: 'files', total: () => files.length },
    async precheck() {
      const info = await stat(root).catch(() => undefined);
      if (!info) throw new CliError(`${source}: no such file or directory`);
      if (info.isFile()) files = [{ abs: root, rel: path.basename(root), size: info.size }];
      else if (info.isDirectory()) files = await listFiles(root, opts);
      else throw new CliError(`${source}: not a file or directory`);
    },
    async body(run) {
      await pool(files, run.concurrency, run.signal, async (file) => {
        if (file.size > run.config.uploadLimitBytes) {
          const error = tooLarge(run.config.uploadLimitBytes);
          run.tally.fail({ path: file.rel, code: error.code, message: error.detail ?? error.title });
          return;
        }
        let sha256: string;
        try {
          sha256 = await hashFile(file.abs);
        } catch (error) {
          const failure = itemFailure(error);
          if (!failure) throw error;
          run.tally.fail({ path: file.rel, ...failure });
          return;
        }
        await run.store({
          externalId: file.rel,
          at: { path: file.rel },
          sha256,
          bytes: file.size,
          upload: () =>
            run.documents.add(
              run.ws,
              null,
              run.collectionId,
              {
                content: createReadStream(file.abs),
                filename: path.posix.basename(file.rel),
                externalId: file.rel,
                sourceUri: pathToFileURL(file.abs).href,
              },
              run.audit,
            ),
        });
      });
    },
  });
}
