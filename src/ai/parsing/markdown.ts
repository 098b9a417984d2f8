import type { Nodes, RootContent } from 'mdast';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';

import type { Block, BlockKind, ParsedDocument } from './types.js';

export const MARKDOWN_MIME = 'text/markdown';

/**
 * Parses Markdown (CommonMark + GFM). `text` is the source itself, so a citation highlights exactly
 * what the author wrote; blocks come from the top-level mdast nodes' source offsets.
 *
 * @example
 *   parseMarkdown('# Title\n\nBody').blocks; // [{ kind: 'heading', level: 1, … }, { kind: 'paragraph', … }]
 */
export function parseMarkdown(source: string): ParsedDocument {
  const tree = fromMarkdown(source, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] });
  const blocks: Block[] = [];
  let title: string | undefined;

  for (const node of tree.children) {
    const kind = blockKind(node);
    const start = node.position?.start.offset;
    const end = node.position?.end.offset;
    if (kind === undefined || start === undefined || end === undefined) continue;
    if (source.slice(start, end).trim() === '') continue;
    if (node.type === 'heading') {
      blocks.push({ kind, start, end, level: node.depth });
      if (title === undefined && node.depth === 1) title = plainText(node).trim() || undefined;
    } else {
      blocks.push({ kind, start, end });
    }
  }

  return { text: source, blocks, title, mime: MARKDOWN_MIME, metadata: {} };
}

/** Top-level node types that become blocks; thematic breaks, link definitions and front matter carry no citable content. */
const BLOCK_KINDS: Partial<Record<RootContent['type'], BlockKind>> = {
  heading: 'heading',
  paragraph: 'paragraph',
  html: 'paragraph',
  footnoteDefinition: 'paragraph',
  list: 'list',
  code: 'code',
  table: 'table',
  blockquote: 'quote',
};

const blockKind = (node: RootContent): BlockKind | undefined => BLOCK_KINDS[node.type];

function plainText(node: Nodes): string {
  if ('value' in node) return node.value;
  if ('children' in node) return node.children.map((child) => plainText(child)).join('');
  return '';
}
