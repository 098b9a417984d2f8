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
import type { Config } from '../config.js';
import { CollectionService } from '../modules/collections/service.js';
import { type SearchHit, type SearchMode, SearchService } from '../modules/search/service.js';
import type { WorkspaceContext } from '../platform/auth/access.js';
import type { Logger } from '../platform/logger.js';
import { openRuntime, type Runtime, type RuntimeOptions } from '../runtime.js';
import {
  CliError,
  EXIT_FATAL,
  fatalMessage,
  operatorContext,
  resolveWorkspace,
  stderrLogger,
} from './ingest.js';

export interface SearchOptions {
  collection: string[];
  workspace?: string;
  k: number;
  mode: SearchMode;
  json?: boolean;
  explain?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// Operator plumbing (shared with ingest and import)

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
    const search = new SearchService(runtime.database.db, runtime.embeddings, {
      exactBelow: runtime.config.searchExactBelow,
    });
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
