/**
 * The `larder` command line. Commands are thin: parse flags, load config, call the runtime.
 *
 * @example
 *   larder serve     # HTTP API (and, in embedded mode, the background worker)
 *   larder worker    # background job processor
 *   larder migrate   # apply pending database migrations
 *   larder ingest ./docs --collection Handbook   # add a folder's files
 *   larder import --jsonl corpus.jsonl --collection Corpus
 *   larder search "parental leave" --collection Handbook
 *   larder eval --dataset ./covidqa --mode all
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig, settings } from '../config.js';
import { StartupError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { type CreateUserOptions, createUserCommand } from './admin.js';
import { type AskOptions, askCommand } from './ask.js';
import { type EvalOptions, evalCommand } from './eval.js';
import { type ImportOptions, importCommand } from './import.js';
import { type IngestOptions, ingestCommand } from './ingest.js';
import { migrateCommand } from './migrate.js';
import { type SearchOptions, searchCommand } from './search.js';
import { serveCommand } from './serve.js';
import { workerCommand } from './worker.js';
import { MAX_K } from '../modules/search/routes.js';

export const EXIT_CONFIG = 78; // EX_CONFIG from sysexits.h
export const EXIT_STARTUP = 1;

const configHelp = `
Configuration comes from environment variables (or a JSON file named by LARDER_CONFIG).
The most common:
${Object.values(settings)
  .filter((s) =>
    ['PORT', 'HOST', 'LARDER_DATA_DIR', 'DATABASE_URL', 'REDIS_URL', 'LOG_LEVEL'].includes(s.env),
  )
  .map((s) => `  ${s.env.padEnd(16)} ${s.doc.replaceAll('`', '')}`)
  .join('\n')}
See README.md for every setting.`;

/** Loads config and a logger, runs `fn`, and turns start-up failures into a clear message + exit code. */
async function withConfig(
  fn: (ctx: {
    config: ReturnType<typeof loadConfig>;
    logger: ReturnType<typeof createLogger>;
  }) => Promise<void>,
) {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`larder: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  const logger = createLogger(config);
  try {
    await fn({ config, logger });
  } catch (error) {
    if (error instanceof StartupError) {
      logger.fatal(error.message);
      process.stderr.write(`larder: ${error.message}\n`);
    } else {
      logger.fatal({ err: error }, 'start-up failed');
    }
    process.exit(EXIT_STARTUP);
  }
}

export function buildCli(): Command {
  const program = new Command('larder')
    .description('Larder: a self-hosted knowledge backend (documents → PostgreSQL → cited answers).')
    .showHelpAfterError()
    .addHelpText('after', configHelp);

  program
    .command('serve')
    .description(
      'Serve the HTTP API. Applies pending migrations first (LARDER_MIGRATE_ON_START). In embedded mode ' +
        '(no DATABASE_URL) it also runs the background worker in-process (LARDER_INLINE_WORKER).',
    )
    .addOption(new Option('--port <port>', 'override PORT').argParser((v) => v))
    .addOption(new Option('--host <host>', 'override HOST'))
    .action(async (opts: { port?: string; host?: string }) => {
      if (opts.port) process.env.PORT = opts.port;
      if (opts.host) process.env.HOST = opts.host;
      await withConfig(serveCommand);
    });

  program
    .command('worker')
    .description(
      'Run background jobs (ingestion, maintenance, schedules) against DATABASE_URL. Scale by running more ' +
        'workers; each runs LARDER_JOB_CONCURRENCY jobs per queue at once. Stops gracefully on SIGTERM.',
    )
    .action(() => withConfig(workerCommand));

  program
    .command('migrate')
    .description(
      'Apply pending database migrations and exit. Safe to run from several processes at once (advisory ' +
        'lock); running it again is a no-op. Prints what was applied.',
    )
    .option('--json', 'print the outcome as JSON')
    .action((opts: { json?: boolean }) => withConfig((ctx) => migrateCommand(ctx, opts)));

  const collect = (value: string, previous: string[]) => [...previous, value];
  const concurrency = new Option('--concurrency <n>', 'items stored at once (1–64)')
    .default(4)
    .argParser((value) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 64)
        throw new InvalidArgumentError('must be an integer from 1 to 64');
      return n;
    });
  const ingestionHelp = `
Each item goes through the same pipeline as the HTTP API. Unchanged content is skipped (sha256 compared
with the stored document of the same external id), so running the command again resumes an interrupted
run. Server mode (DATABASE_URL): documents are queued for "larder worker"; --wait waits until they are
ready. Embedded mode: the command processes the documents itself and returns when they are indexed
(stop "larder serve" first: one process per data directory).
Progress is shown on stderr; stdout has the summary (one JSON object with --json).
Exit status: 0 all done, 2 some items failed (listed), 1 fatal error, 78 invalid configuration.`;

  program
    .command('ingest')
    .description(
      'Add a file, a folder (recursively) or an http(s) URL to a collection (created if missing). A file’s ' +
        'external id is its path relative to the folder.',
    )
    .argument('<path|url>', 'file, folder or http(s) URL')
    .requiredOption(
      '--collection <name>',
      'collection name (case-insensitive); created with the default settings if missing',
    )
    .option('--workspace <slug|id>', 'workspace (default: the only one)')
    .option('--include <glob>', 'only files matching (repeatable; `*.md` matches at any depth)', collect, [])
    .option('--exclude <glob>', 'skip files and folders matching (repeatable)', collect, [])
    .option('--no-default-excludes', 'also read dot-files, dot-folders and node_modules')
    .option('--json', 'print the summary as one JSON object')
    .option('--wait', 'server mode: wait until every document is processed')
    .addOption(concurrency)
    .addHelpText('after', ingestionHelp)
    .action((source: string, opts: IngestOptions) => withConfig((ctx) => ingestCommand(ctx, source, opts)));

  program
    .command('import')
    .description(
      'Import a JSONL file, one document per line: {"_id", "title"?, "text", "metadata"?, "mime"?}; other ' +
        'fields go into the metadata (BEIR corpora import as they are).',
    )
    .requiredOption('--jsonl <file>', 'the JSONL file (streamed, any size)')
    .requiredOption(
      '--collection <name>',
      'collection name (case-insensitive); created with the default settings if missing',
    )
    .option('--workspace <slug|id>', 'workspace (default: the only one)')
    .option('--json', 'print the summary as one JSON object')
    .option('--wait', 'server mode: wait until every document is processed')
    .addOption(concurrency)
    .addHelpText('after', ingestionHelp)
    .action((opts: ImportOptions) => withConfig((ctx) => importCommand(ctx, opts)));

  const searchK = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > MAX_K)
      throw new InvalidArgumentError(`must be an integer from 1 to ${MAX_K}`);
    return n;
  };

  program
    .command('search')
    .description(
      'Search as the operator, in-process (no server needed): the same SearchService as POST /v1/search. ' +
        'Prints rank, score, document, heading path, page and the snippet (matches in bold).',
    )
    .argument('<query>', 'what to look for')
    .option(
      '--collection <name>',
      'search this collection (repeatable; default: every collection)',
      collect,
      [],
    )
    .option('--workspace <slug|id>', 'workspace (default: the only one)')
    .addOption(new Option('--k <n>', 'results to return (1–100)').default(10).argParser(searchK))
    .addOption(
      new Option('--mode <mode>', 'ranking').choices(['hybrid', 'lexical', 'vector']).default('hybrid'),
    )
    .option('--json', 'print the hits as a JSON array (the `data` of POST /v1/search)')
    .option('--explain', 'also show BM25 and cosine scores with their ranks')
    .addHelpText(
      'after',
      '\nExit status: 0 (also with no hits), 1 unknown workspace or collection, 78 invalid configuration.',
    )
    .action((query: string, opts: SearchOptions) => withConfig((ctx) => searchCommand(ctx, query, opts)));

  program
    .command('ask')
    .description(
      'Answer a question with citations as the operator, in-process (no server needed): the same ' +
        'AnswerService as POST /v1/answers. Streams the answer, then lists its citations ' +
        '([n] title (page): “quote”).',
    )
    .argument('<question>', 'what to ask')
    .option(
      '--collection <name|id>',
      'answer from this collection (repeatable; default: every collection)',
      collect,
      [],
    )
    .option('--workspace <slug|id>', 'workspace (default: the only one)')
    .option('--json', 'print the whole answer as JSON (as POST /v1/answers returns it) instead of streaming')
    .option(
      '--extractive',
      'never call the chat model (LARDER_CHAT_PROVIDER): answer by quoting the evidence',
    )
    .addHelpText(
      'after',
      '\nExit status: 0 answered (also when the documents hold no answer), 1 unknown workspace or ' +
        'collection / fatal error, 78 invalid configuration.',
    )
    .action((question: string, opts: AskOptions) => withConfig((ctx) => askCommand(ctx, question, opts)));

  program
    .command('eval')
    .description(
      'Measure retrieval on a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/<split>.tsv, answers.jsonl?): ' +
        'imports the corpus into a scratch collection through the real pipeline, waits until it is processed, ' +
        'runs every judged query and reports nDCG@10, Recall@k, MRR@10, answer-in-chunk rates and latency.',
    )
    .requiredOption('--dataset <dir>', 'the BEIR directory')
    .addOption(
      new Option('--mode <mode>', 'rankings to evaluate')
        .choices(['hybrid', 'lexical', 'vector', 'all'])
        .default('all'),
    )
    .addOption(
      new Option('--k <n>', 'cut-off of Recall@k and the answer rates (1–100)')
        .default(10)
        .argParser(searchK),
    )
    .addOption(
      new Option(
        '--embedding <provider>',
        'embedding provider of the scratch collection (default: LARDER_EMBEDDING_PROVIDER)',
      ).choices(['local', 'openai', 'none']),
    )
    .option('--workspace <slug|id>', 'workspace of the scratch collection (default: the only one)')
    .option('--split <name>', 'qrels file to read: qrels/<split>.tsv', 'test')
    .option('--json', 'print the report as one JSON object')
    .option('--keep', 'keep the scratch collection (deleted otherwise, also on failure or Ctrl-C)')
    .option(
      '--answers',
      'also answer every question with gold answers (extractive answerer) and report grounding and citation checks',
    )
    .addOption(concurrency)
    .addHelpText(
      'after',
      `
Server mode (DATABASE_URL): the documents are processed by \`larder worker\`, which must be running.
Embedded mode: the command processes them itself (stop "larder serve" first).
Exit status: 0 done, 2 some documents failed (scored without them), 1 fatal error, 130 interrupted.`,
    )
    .action((opts: EvalOptions) => withConfig((ctx) => evalCommand(ctx, opts)));

  const admin = program.command('admin').description('Operator tasks');
  admin
    .command('create-user')
    .description(
      'Create a user (e.g. the first one). With --owner, also a workspace they own. The password is read from ' +
        'stdin with --password-stdin, otherwise generated and printed once. In embedded mode, stop `larder serve` ' +
        'first (one process per data directory) — or use POST /v1/auth/signup while it runs.',
    )
    .requiredOption('--email <email>', 'the user’s email address')
    .option('--name <name>', 'display name (default: the email’s local part)')
    .option('--owner', 'create a workspace owned by this user')
    .option('--workspace <name>', 'name of that workspace', 'Default')
    .option('--password-stdin', 'read the password from stdin')
    .option('--json', 'print the outcome as JSON')
    .action((opts: CreateUserOptions) => withConfig((ctx) => createUserCommand(ctx, opts)));

  return program;
}
