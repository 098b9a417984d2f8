import { Readability } from '@mozilla/readability';
import { parseHTML } from 'linkedom';

import { TextBuilder } from './builder.js';
import type { ParsedDocument } from './types.js';

export const HTML_MIME = 'text/html';

/**
 * The slice of the DOM the walker needs. The project compiles without the DOM lib, so linkedom's
 * nodes are viewed through this shape rather than the global `Node`/`Element` types.
 */
interface DomNode {
  readonly nodeType: number;
  readonly nodeName: string;
  readonly textContent: string | null;
  readonly childNodes: Iterable<DomNode>;
}
interface DomElement extends DomNode {
  readonly localName: string;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
  remove(): void;
}
interface DomDocument {
  readonly title: string;
  readonly body: DomElement | null;
  readonly documentElement: DomElement;
  querySelector(selector: string): DomElement | null;
}

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

/** Page furniture that is never the content, whatever Readability decides. */
const BOILERPLATE =
  'script, style, noscript, template, nav, footer, aside, form, button, svg, iframe, object, canvas, select, [hidden], [aria-hidden="true"], [role="navigation"], [role="contentinfo"]';

const BLOCK_TAGS = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'body',
  'center',
  'dd',
  'details',
  'dialog',
  'div',
  'dl',
  'dt',
  'fieldset',
  'figcaption',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hgroup',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'summary',
  'table',
  'tbody',
  'td',
  'tfoot',
  'th',
  'thead',
  'tr',
  'ul',
  'caption',
]);

export interface HtmlOptions {
  /** Extract the main content with Readability when the page looks like an article (web pages). */
  readability: boolean;
  mime?: string;
  title?: string;
}

/**
 * Parses HTML into blocks: headings, paragraphs, lists (`- item` / `1. item` lines), code, tables
 * (cells joined with ` | `) and quotes, separated by blank lines in `text`.
 *
 * @example
 *   parseHtml('<h1>Hi</h1><p>Body</p>', { readability: false }).blocks.map((b) => b.kind); // ['heading', 'paragraph']
 */
export function parseHtml(html: string, options: HtmlOptions): ParsedDocument {
  const document = loadDocument(html);
  const title = options.title ?? (oneLine(document.title) || headingTitle(document));
  const root =
    (options.readability ? articleRoot(html) : undefined) ?? document.body ?? document.documentElement;

  for (const element of root.querySelectorAll(BOILERPLATE)) element.remove();
  const builder = new TextBuilder();
  walkContainer(root, builder);

  return { text: builder.text, blocks: builder.blocks, title, mime: options.mime ?? HTML_MIME, metadata: {} };
}

function loadDocument(html: string): DomDocument {
  // A fragment (mammoth output) needs a document around it or linkedom leaves `body` null.
  const source = /<html[\s>]/i.test(html)
    ? html
    : `<!doctype html><html><head></head><body>${html}</body></html>`;
  const window: unknown = parseHTML(source);
  return (window as { document: DomDocument }).document;
}

/** Readability mutates the document it reads, so it gets its own copy; `undefined` means "use the body". */
function articleRoot(html: string): DomElement | undefined {
  try {
    const article = new Readability(loadDocument(html)).parse();
    const content = article?.content;
    if (typeof content !== 'string' || (article?.textContent ?? '').trim() === '') return undefined;
    return loadDocument(content).body ?? undefined;
  } catch {
    return undefined;
  }
}

function headingTitle(document: DomDocument): string | undefined {
  const h1 = document.querySelector('h1');
  return (h1 === null ? '' : oneLine(h1.textContent ?? '')) || undefined;
}

/** Emits a container's block children, gathering runs of loose inline content into paragraphs. */
function walkContainer(container: DomNode, builder: TextBuilder): void {
  let inline = '';
  const flush = (): void => {
    builder.add('paragraph', tidyInline(inline));
    inline = '';
  };
  for (const child of container.childNodes) {
    if (child.nodeType === TEXT_NODE) inline += collapse(child.textContent);
    else if (child.nodeType !== ELEMENT_NODE) continue;
    else if (isBlock(child as DomElement)) {
      flush();
      walkBlock(child as DomElement, builder);
    } else inline += inlineText(child);
  }
  flush();
}

function walkBlock(element: DomElement, builder: TextBuilder): void {
  const tag = element.localName;
  const heading = /^h([1-6])$/.exec(tag);
  if (heading?.[1] !== undefined) {
    builder.add('heading', tidyInline(inlineText(element)), Number(heading[1]));
    return;
  }
  switch (tag) {
    case 'p':
    case 'dt':
    case 'dd':
    case 'summary':
    case 'figcaption':
    case 'caption':
      if (hasBlockChild(element)) walkContainer(element, builder);
      else builder.add('paragraph', tidyInline(inlineText(element)));
      return;
    case 'ul':
    case 'ol':
      builder.add('list', listLines(element, 0).join('\n'));
      return;
    case 'pre':
      builder.add('code', (element.textContent ?? '').replace(/^\n+|\s+$/g, ''));
      return;
    case 'table':
      builder.add('table', tableLines(element).join('\n'));
      return;
    case 'blockquote': {
      const inner = new TextBuilder();
      walkContainer(element, inner);
      builder.add('quote', inner.text.replace(/\n\n+/g, '\n'));
      return;
    }
    case 'hr':
      return;
    default:
      walkContainer(element, builder);
  }
}

/** One line per item, nested lists indented under their item. */
function listLines(list: DomElement, depth: number): string[] {
  const ordered = list.localName === 'ol';
  const lines: string[] = [];
  let number = 0;
  for (const item of elementChildren(list)) {
    if (item.localName === 'ul' || item.localName === 'ol') {
      lines.push(...listLines(item, depth + 1));
      continue;
    }
    number += 1;
    const nested: DomElement[] = [];
    let text = '';
    for (const child of item.childNodes) {
      const element = child.nodeType === ELEMENT_NODE ? (child as DomElement) : undefined;
      if (element !== undefined && (element.localName === 'ul' || element.localName === 'ol'))
        nested.push(element);
      else text += element !== undefined && isBlock(element) ? ` ${inlineText(element)} ` : inlineText(child);
    }
    const marker = ordered ? `${number}.` : '-';
    const content = tidyInline(text).replace(/\n/g, ' ');
    if (content !== '') lines.push(`${'  '.repeat(depth)}${marker} ${content}`);
    for (const sublist of nested) lines.push(...listLines(sublist, depth + 1));
  }
  return lines;
}

function tableLines(table: DomElement): string[] {
  const lines: string[] = [];
  for (const row of table.querySelectorAll('tr')) {
    const cells = elementChildren(row)
      .filter((cell) => cell.localName === 'td' || cell.localName === 'th')
      .map((cell) => tidyInline(inlineText(cell)).replace(/\n/g, ' '));
    if (cells.some((cell) => cell !== '')) lines.push(cells.join(' | '));
  }
  return lines;
}

/** Text of inline content: whitespace collapsed as a browser renders it, `<br>` kept as a newline. */
function inlineText(node: DomNode): string {
  if (node.nodeType === TEXT_NODE) return collapse(node.textContent);
  if (node.nodeType !== ELEMENT_NODE) return '';
  const element = node as DomElement;
  if (element.localName === 'br') return '\n';
  if (element.localName === 'img') return '';
  let text = '';
  for (const child of element.childNodes) text += inlineText(child);
  return isBlock(element) ? ` ${text} ` : text;
}

/** Source newlines are formatting, not content: only `<br>` produces a line break. */
const collapse = (text: string | null): string => (text ?? '').replace(/\s+/g, ' ');

const tidyInline = (text: string): string =>
  text
    .split('\n')
    .map((line) => line.replace(/[ \t\f\r\u00a0]+/g, ' ').trim())
    .filter((line) => line !== '')
    .join('\n');

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

const isBlock = (element: DomElement): boolean => BLOCK_TAGS.has(element.localName);

const hasBlockChild = (element: DomElement): boolean => elementChildren(element).some(isBlock);

const elementChildren = (element: DomNode): DomElement[] =>
  [...element.childNodes].filter((child): child is DomElement => child.nodeType === ELEMENT_NODE);
