/**
 * `larder ask "QUESTION"`: the AnswerService in-process, as the instance's operator (like `larder
 * search`): no server, no API key. The answer streams to stdout as it is written, then its citations.
 *
 * @example
 *   larder ask "How long is parental leave?" --collection Handbook
 *   larder ask "Who approves travel?" --extractive --json | jq '.citations[0].quote'
 *
 * Human output (stdout): the answer text, a blank line, then one line per citation:
 *   [1] Parental leave policy (p. 2): “Employees are entitled to 16 weeks of parental leave…”
 * `--json`: the whole answer as `POST /v1/answers` returns it (nothing is streamed).
 * Exit status: 0 answered (also "the documents do not contain an answer"), 1 unknown workspace or
 * collection / fatal error, 78 invalid configuration.
 * The operator has no user: the conversation it stores has no owner (no user lists it).
 */
import type { AppDeps } from '../app.js';
import type { Config } from '../config.js';
import type { Citation } from '../modules/answers/grounding.js';
import type { Actor, AnswerEvent, AnswerResult } from '../modules/answers/service.js';
import { createAnswerService } from '../modules/answers/wiring.js';
import { asOperator } from './search.js';
import { CliError } from './ingest.js';

export interface AskOptions {
  collection: string[];
  workspace?: string;
  json?: boolean;
  extractive?: boolean;
}

/** Quotes longer than this are cut (at a word boundary) in the human output. */
export const QUOTE_CHARS = 200;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const OPERATOR: Actor = { userId: null, apiKeyId: null, requestId: null };

/** `quote` on one line, cut to about `max` characters. */
export function trimQuote(quote: string, max = QUOTE_CHARS): string {
  const flat = quote.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/** `[n] Title (p. X): “quote”`, one line per citation. */
export function formatCitations(citations: Citation[]): string {
  return citations
    .map((c) => {
      const page = c.page === null ? '' : ` (p. ${c.page})`;
      return `[${c.n}] ${c.documentTitle}${page}: “${trimQuote(c.quote)}”\n`;
    })
    .join('');
}

/** Writes the answer as it streams; `done` is authoritative (a model that failed mid-answer). */
function streamer(write: (text: string) => void): (event: AnswerEvent) => void {
  let streamed = '';
  return (event) => {
    if (event.type === 'token') {
      streamed += event.text;
      write(event.text);
    } else if (event.type === 'done') {
      const { answer } = event;
      if (answer.answer.startsWith(streamed)) write(answer.answer.slice(streamed.length));
      else if (answer.fallback) write(`\n\n${answer.fallback.message}\n\n${answer.answer}`);
      write('\n');
      if (answer.citations.length > 0) write(`\n${formatCitations(answer.citations)}`);
    }
  };
}

export async function askCommand({ config }: { config: Config }, question: string, opts: AskOptions) {
  await asOperator(config, 'ask', opts.workspace, 'none', async ({ runtime, ws, collections }) => {
    const ids: string[] = [];
    for (const name of opts.collection) {
      const found =
        (await collections.findByName(ws, name)) ??
        (UUID.test(name) ? await collections.get(ws, name).catch(() => undefined) : undefined);
      if (!found) throw new CliError(`No collection "${name}" in this workspace`);
      ids.push(found.id);
    }
    const deps: Omit<AppDeps, 'keys'> = {
      config: runtime.config,
      logger: runtime.logger,
      database: runtime.database,
      redis: runtime.redis,
      embeddings: runtime.embeddings,
    };
    const { answers } = createAnswerService(deps);
    const write = (text: string) => {
      process.stdout.write(text);
    };
    const result: AnswerResult = await answers.answer(
      ws,
      OPERATOR,
      {
        question,
        collections: ids,
        options: opts.extractive ? { provider: 'extractive' } : undefined,
      },
      opts.json ? undefined : streamer(write),
    );
    if (opts.json) write(`${JSON.stringify(result)}\n`);
  });
}
