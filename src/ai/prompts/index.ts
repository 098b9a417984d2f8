/**
 * Versioned prompt templates: Mustache files under `<repo>/prompts/<version>/` (documented in each version's
 * README.md), rendered with escaping off. The code, not the template, makes every value safe to insert:
 * source text is fenced (`fenceSourceText`), titles are attribute-escaped, single-line fields are collapsed.
 *
 *   const templates = loadPromptTemplates(); // prompts/v1, read once
 *   const messages = buildAnswerMessages(templates, {
 *     question: 'How long is parental leave?',
 *     sources: [{ n: 1, title: 'Handbook', page: 3, text: chunk.text, flagged: false }],
 *     profile: { name: 'Ada', language: 'German' },
 *     noAnswerText: NO_ANSWER_TEXT,
 *   });
 *   // [{ role: 'system', … }, …history, { role: 'user', content: 'Sources:\n<source n="1" title="Handbook" page="3">…' }]
 *   // record templates.version ('v1+1a2b3c4d') with the answer: it changes whenever a template file does.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Mustache from 'mustache';
import type { ChatMessage } from '../chat/types.js';

export type PromptKind = 'system' | 'answer' | 'condense' | 'sources';

export const PROMPT_KINDS: readonly PromptKind[] = ['system', 'answer', 'condense', 'sources'];

/** What the model must reply, verbatim, when the sources do not answer the question. */
export { NO_ANSWER_TEXT } from '../answers/extractive.js';

export const DEFAULT_PROMPT_VERSION = 'v1';

/**
 * `<repo>/prompts`: this module runs as `src/ai/prompts/index.ts` (tsx) or `dist/ai/prompts/index.js` (built),
 * both three levels below the repository root.
 */
export const DEFAULT_PROMPTS_DIR = fileURLToPath(new URL('../../../prompts/', import.meta.url));

/** A retrieved chunk as the answer template shows it. */
export interface PromptSource {
  /** The 1-based citation number, written `[n]` by the model. */
  n: number;
  title: string;
  page: number | null;
  text: string;
  /** The injection screen found instruction-like text in it (`screenForInjection`). */
  flagged: boolean;
}

/** Personalisation; every field is optional and blank fields are left out. */
export interface PromptProfile {
  name?: string | null;
  role?: string | null;
  language?: string | null;
  /** May adjust tone and format; the template says they never override the rules. */
  customInstructions?: string | null;
}

export interface PromptHistoryMessage {
  role: 'user' | 'assistant';
  content: string;
}

export interface PromptTemplates {
  /** `<version>+<first 8 hex of a SHA-256 over the templates>`, e.g. 'v1+1a2b3c4d'. */
  readonly version: string;
  /** Renders one template with escaping off; `vars` must already be safe to insert. */
  render(kind: PromptKind, vars: object): string;
}

export interface LoadPromptTemplatesOptions {
  /** The directory holding one sub-directory per version; default `<repo>/prompts`. */
  dir?: string;
  /** Default 'v1'. */
  version?: string;
}

const VERSION_PATTERN = /^[A-Za-z0-9][\w.-]*$/;

const RENDER_OPTIONS: Mustache.RenderOptions = { escape: (value: unknown) => String(value) };

/**
 * Reads and parses the three templates of one version, synchronously and once.
 * Throws an Error naming the file when one is missing or does not parse.
 */
export function loadPromptTemplates(options: LoadPromptTemplatesOptions = {}): PromptTemplates {
  const version = options.version ?? DEFAULT_PROMPT_VERSION;
  if (!VERSION_PATTERN.test(version))
    throw new Error(`Invalid prompt template version: ${JSON.stringify(version)}`);
  const dir = join(options.dir ?? DEFAULT_PROMPTS_DIR, version);

  const hash = createHash('sha256');
  const templates = {} as Record<PromptKind, string>;
  for (const kind of PROMPT_KINDS) {
    const file = join(dir, `${kind}.mustache`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new Error(`Prompt template "${kind}" of version ${version} cannot be read: ${file}`, { cause });
    }
    try {
      Mustache.parse(text);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new Error(`Prompt template ${file} does not parse: ${reason}`, { cause });
    }
    templates[kind] = text;
    hash.update(`${kind}\n${text}\0`);
  }

  return {
    version: `${version}+${hash.digest('hex').slice(0, 8)}`,
    render(kind, vars) {
      // Every template is a partial of the others (`{{> sources}}` in answer).
      return Mustache.render(templates[kind], vars, templates, RENDER_OPTIONS);
    },
  };
}

/**
 * The messages of a grounded answer: the system prompt (rules and personalisation), the conversation so far,
 * then the user turn holding the fenced sources and the question.
 */
export function buildAnswerMessages(
  templates: PromptTemplates,
  input: {
    question: string;
    sources: PromptSource[];
    profile?: PromptProfile;
    history?: PromptHistoryMessage[];
    noAnswerText: string;
    assistantName?: string | null;
    workspaceName?: string | null;
  },
): ChatMessage[] {
  const profile = input.profile ?? {};
  const userName = singleLine(profile.name);
  const userRole = singleLine(profile.role);
  const language = singleLine(profile.language);
  const customInstructions = blankToNull(
    defangTags(profile.customInstructions ?? '', ['custom_instructions']),
  );
  const system = templates.render('system', {
    assistantName: singleLine(input.assistantName),
    workspaceName: singleLine(input.workspaceName),
    noAnswerText: input.noAnswerText,
    hasProfile: userName !== null || userRole !== null || language !== null || customInstructions !== null,
    userName,
    userRole,
    language,
    customInstructions,
  });
  const user = templates.render('answer', {
    sources: promptSources(input.sources),
    question: fenceSourceText(input.question),
  });
  return [
    { role: 'system', content: system.trim() },
    ...(input.history ?? []).map((message) => ({ role: message.role, content: message.content })),
    { role: 'user', content: user.trim() },
  ];
}

/**
 * The fenced sources alone (the `sources` template, which the answer template includes): what an
 * agentic `search` tool call returns to the model.
 */
export function renderSources(templates: PromptTemplates, sources: PromptSource[]): string {
  return templates.render('sources', { sources: promptSources(sources) }).trim();
}

function promptSources(sources: PromptSource[]) {
  return sources.map((source) => ({
    n: source.n,
    title: escapeAttribute(source.title),
    page: source.page === null ? null : String(source.page),
    text: fenceSourceText(source.text),
    flagged: source.flagged,
  }));
}

/** One user message asking the model to rewrite `question` as a standalone question, given `history`. */
export function buildCondenseMessages(
  templates: PromptTemplates,
  input: { history: PromptHistoryMessage[]; question: string },
): ChatMessage[] {
  const content = templates.render('condense', {
    history: input.history.map((message) => ({
      role: message.role,
      content: defangTags(message.content, CONDENSE_TAGS),
    })),
    question: defangTags(input.question, CONDENSE_TAGS),
  });
  return [{ role: 'user', content: content.trim() }];
}

const CONDENSE_TAGS = ['turn', 'conversation', 'follow_up'];

/**
 * Makes a document's text unable to close its `<source>` element or open a new one: the `<` of every
 * `<source` / `</source` (any case, whitespace allowed around the slash) becomes `‹`. Nothing else changes.
 */
export function fenceSourceText(text: string): string {
  return defangTags(text, ['source']);
}

function defangTags(text: string, tags: readonly string[]): string {
  const pattern = new RegExp(`<(?=\\s*/?\\s*(?:${tags.join('|')}))`, 'gi');
  return text.replace(pattern, '‹');
}

function escapeAttribute(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/"/g, '&quot;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\r\n\t\u2028\u2029]+/g, ' ');
}

function singleLine(value: string | null | undefined): string | null {
  return blankToNull((value ?? '').replace(/\s+/g, ' '));
}

function blankToNull(value: string): string | null {
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}
