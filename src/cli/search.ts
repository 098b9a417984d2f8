/**
 * `larder search "QUERY"`: the SearchService in-process, as the instance's operator (like `larder
 * ingest`): no server, no API key. Also home of the operator plumbing `larder eval` shares (opening
 * the runtime, resolving the workspace, turning errors into a message and exit status 1).
 *
 * @example
 *   larder search "parental leave" --collection Handbook
 *   larder search "mother-to-child transmission" --mode lexical --k 5 --json | jq '.[0].externalId'
 *
 * Human output (stdout): one block per hit — rank, score, title (external id), heading path, page,
 * then the snippet with the matched terms bold on a terminal (`**term**` otherwise or with NO_COLOR).
 * `--json`: the hits as the HTTP API returns them in `data` (`explain` with --explain).
 * Exit status: 0 (also with no hits), 1 unknown workspace or collection / fatal error, 78 invalid
 * configuration.
 */
import { pino } from 'pino';
import type { Config } from '../config.js';
import { CollectionService } from '../modules/collections/service.js';
import { type SearchHit, type SearchMode, SearchService } from '../modules/search/service.js';
import type { WorkspaceContext } from '../platform/auth/access.js';
import { AppError, StartupError } from '../platform/errors.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { openRuntime, type Runtime, type RuntimeOptions } from '../runtime.js';
import { CliError, EXIT_FATAL, operatorContext } from './ingest.js';

export interface SearchOptions {
  collection: string[];
  workspace?: string;
  k: number;
  mode: SearchMode;
  json?: boolean;
  explain?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Operator plumbing (the same behaviour as `runCommand` in ingest.ts, whose helpers are private)

/** Logs go to stderr (stdout is for results), at `warn` unless LOG_LEVEL says otherwise. */
export function stderrLogger(config: Config): Logger {
  const level = process.env.LOG_LEVEL === undefined && config.logLevel === 'info' ? 'warn' : config.logLevel;
  return createLogger({ logLevel: level, logPretty: false }, pino.destination({ dest: 2, sync: true }));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The workspace named by `--workspace` (slug or id), or the only one; CliError otherwise. */
export async function resolveWorkspace(
  runtime: Runtime,
  wanted: string | undefined,
): Promise<{ id: string; slug: string; name: string }> {
  const rows = await runtime.database.db
    .selectFrom('workspaces')
    .select(['id', 'name', 'slug'])
    .where('deleted_at', 'is', null)
    .orderBy('created_at')
    .execute();
  const choices = rows
    .slice(0, 20)
    .map((w) => `  ${w.slug}  (${w.name}, ${w.id})`)
    .join('\n');
  if (rows.length === 0)
    throw new CliError(
      'There are no workspaces yet: create a user and their workspace with `larder admin create-user --email … --owner`',
    );
  if (wanted !== undefined) {
    const key = wanted.trim().toLowerCase();
    const found = rows.find((w) => (UUID.test(key) ? w.id === key : w.slug === key));
    if (found) return found;
    throw new CliError(`No workspace "${wanted}". Name one by slug or id with --workspace:\n${choices}`);
  }
  const [only] = rows;
  if (rows.length === 1 && only) return only;
  throw new CliError(
    `There are ${rows.length} workspaces; choose one with --workspace <slug|id>:\n${choices}`,
  );
}

export function fatalMessage(error: unknown, config: Config, command: string): string {
  if (error instanceof StartupError && !config.databaseUrl && error.message.includes('in use by process'))
    return (
      `${error.message}\n\`larder ${command}\` opens the embedded database itself, so it cannot run next to ` +
      '`larder serve` on the same LARDER_DATA_DIR. Stop the server first.'
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

export interface Operator {
  runtime: Runtime;
  workspace: { id: string; slug: string; name: string };
  ws: WorkspaceContext;
  collections: CollectionService;
}

/**
 * Opens the runtime as the operator of one workspace, runs `fn`, closes everything. Errors become a
 * message on stderr and exit status 1; never throws.
 */
export async function asOperator(
  config: Config,
  command: string,
  workspace: string | undefined,
  jobs: RuntimeOptions['jobs'],
  fn: (op: Operator, logger: Logger) => Promise<void>,
): Promise<void> {
  const logger = stderrLogger(config);
  const embedded = !config.databaseUrl;
  let runtime: Runtime | undefined;
  try {
    runtime = await openRuntime(config, logger, {
      migrate: config.migrateOnStart,
      jobs,
      redis: jobs !== 'none',
      ...(embedded && jobs === 'work' ? { pollingIntervalSeconds: 0.5 } : {}),
    });
    const found = await resolveWorkspace(runtime, workspace);
    const collections = new CollectionService(runtime.database.db, {
      embeddings: runtime.embeddings,
      jobs: runtime.jobs,
      defaultProvider: config.embeddingProvider,
    });
    await fn({ runtime, workspace: found, ws: operatorContext(found.id), collections }, logger);
  } catch (error) {
    logger.debug({ err: error }, `${command} failed`);
    process.stderr.write(`larder: ${fatalMessage(error, config, command)}\n`);
    process.exitCode = EXIT_FATAL;
  } finally {
    await runtime?.close().catch((error: unknown) => {
      logger.warn({ err: error }, 'closing failed');
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Output

/** The hit as `POST /v1/search` presents it. */
export function presentHit(hit: SearchHit, explain: boolean) {
  return {
    chunkId: hit.chunkId,
    documentId: hit.documentId,
    collectionId: hit.collectionId,
    documentTitle: hit.documentTitle,
    externalId: hit.externalId,
    text: hit.text,
    snippet: hit.snippet,
    headingPath: hit.headingPath,
    page: hit.page,
    pageEnd: hit.pageEnd,
    charStart: hit.charStart,
    charEnd: hit.charEnd,
    score: hit.scores.fused,
    ...(explain
      ? {
          explain: {
            lexical: hit.scores.lexical,
            vector: hit.scores.vector,
            lexicalRank: hit.ranks.lexical,
            vectorRank: hit.ranks.vector,
          },
        }
      : {}),
  };
}

/** `<mark>…</mark>` → bold (terminal) or `**…**`; whitespace runs (newlines) → one space. */
export function emphasise(snippet: string, tty: boolean): string {
  const [open, close] = tty ? ['\x1b[1m', '\x1b[22m'] : ['**', '**'];
  return snippet.replace(/\s+/g, ' ').trim().replaceAll('<mark>', open).replaceAll('</mark>', close);
}

const fixed = (n: number | null, digits: number) => (n === null ? '–' : n.toFixed(digits));

export function formatHits(hits: SearchHit[], options: { tty: boolean; explain: boolean }): string {
  if (hits.length === 0) return 'No results.\n';
  const width = String(hits.length).length;
  const blocks = hits.map((hit, i) => {
    const title =
      hit.externalId && hit.externalId !== hit.documentTitle
        ? `${hit.documentTitle} (${hit.externalId})`
        : hit.documentTitle;
    const where = [
      hit.headingPath.length > 0 ? hit.headingPath.join(' › ') : '',
      hit.page === null
        ? ''
        : `p. ${hit.page}${hit.pageEnd !== null && hit.pageEnd !== hit.page ? `–${hit.pageEnd}` : ''}`,
    ].filter(Boolean);
    const lines = [
      `${String(i + 1).padStart(width)}. ${hit.scores.fused.toFixed(4)}  ${title}` +
        (where.length > 0 ? `  · ${where.join(' · ')}` : ''),
    ];
    const indent = ' '.repeat(width + 2);
    if (options.explain)
      lines.push(
        `${indent}bm25 ${fixed(hit.scores.lexical, 3)} (rank ${hit.ranks.lexical ?? '–'}), ` +
          `cosine ${fixed(hit.scores.vector, 3)} (rank ${hit.ranks.vector ?? '–'})`,
      );
    lines.push(`${indent}${emphasise(hit.snippet, options.tty)}`);
    return lines.join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// search

export async function searchCommand({ config }: { config: Config }, query: string, opts: SearchOptions) {
  await asOperator(config, 'search', opts.workspace, 'none', async ({ runtime, ws, collections }) => {
    const ids: string[] = [];
    for (const name of opts.collection) {
      const found = await collections.findByName(ws, name);
      if (!found) throw new CliError(`No collection "${name}" in this workspace`);
      ids.push(found.id);
    }
    const search = new SearchService(runtime.database.db, runtime.embeddings);
    const { hits } = await search.search(ws, { query, collections: ids, k: opts.k, mode: opts.mode });
    const explain = opts.explain === true;
    const tty = (process.stdout as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR;
    process.stdout.write(
      opts.json
        ? `${JSON.stringify(hits.map((h) => presentHit(h, explain)))}\n`
        : formatHits(hits, { tty, explain }),
    );
  });
}
