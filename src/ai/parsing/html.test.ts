import { describe, expect, it } from 'vitest';

import { blockTexts, expectValidBlocks } from '../../../test/fixtures/parsing/builders.js';
import { parseHtml } from './html.js';
import { parseDocument } from './index.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

const lorem =
  'Pantry inventory matters because food waste starts with forgotten jars at the back of the shelf, and a ' +
  'searchable record of what you own, when you bought it and where it lives turns guesswork into planning.';

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
  <title>Keeping a Larder | Example Blog</title>
  <style>body { color: red }</style>
  <script>window.tracking = "SECRET_TRACKER";</script>
</head>
<body>
  <nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li></ul></nav>
  <header><div class="site-name">Example Blog</div></header>
  <main>
    <article>
      <h1>Keeping a Larder</h1>
      <p>${lorem}</p>
      <h2>What to store</h2>
      <p>${lorem} Dry goods keep longest.</p>
      <ul>
        <li>Flour &amp; <em>grains</em></li>
        <li>Preserves
          <ul><li>jam</li><li>pickles</li></ul>
        </li>
      </ul>
      <table>
        <thead><tr><th>Item</th><th>Shelf life</th></tr></thead>
        <tbody><tr><td>Rice</td><td>2 years</td></tr><tr><td>Honey</td><td>forever</td></tr></tbody>
      </table>
      <blockquote><p>Waste not, want not.</p></blockquote>
      <pre><code># list jars
ls /larder</code></pre>
      <p>${lorem} Rotate stock by date.</p>
    </article>
  </main>
  <aside>Related: SIDEBAR_LINKS</aside>
  <footer>© 2024 Example Blog · FOOTER_TEXT</footer>
  <script>console.log("TAIL_SCRIPT")</script>
</body>
</html>`;

describe('parseDocument: HTML', () => {
  it('extracts the article and drops navigation, scripts and footers', async () => {
    const doc = await parseDocument(encode(PAGE), { filename: 'page.html' });

    expect(doc.mime).toBe('text/html');
    expect(doc.title).toBe('Keeping a Larder | Example Blog');
    expectValidBlocks(doc);
    for (const boilerplate of [
      'SECRET_TRACKER',
      'About us',
      'SIDEBAR_LINKS',
      'FOOTER_TEXT',
      'TAIL_SCRIPT',
      'color: red',
    ]) {
      expect(doc.text).not.toContain(boilerplate);
    }
    // the site header is outside the article Readability picks
    expect(doc.text).not.toContain('Example Blog');
    const texts = blockTexts(doc);
    const kinds = doc.blocks.map((b) => b.kind);
    expect(kinds).toContain('heading');
    expect(texts).toContain('What to store');
    expect(doc.blocks.find((b) => doc.text.slice(b.start, b.end) === 'What to store')?.level).toBe(2);
    expect(texts).toContain('- Flour & grains\n- Preserves\n  - jam\n  - pickles');
    expect(texts).toContain('Item | Shelf life\nRice | 2 years\nHoney | forever');
    expect(texts).toContain('Waste not, want not.');
    expect(texts).toContain('# list jars\nls /larder');
    expect(doc.blocks[texts.indexOf('Waste not, want not.')]?.kind).toBe('quote');
    expect(doc.blocks[texts.indexOf('# list jars\nls /larder')]?.kind).toBe('code');
    expect(doc.text).toContain('\n\n');
  });

  it('walks the body when the page is not an article', async () => {
    const html =
      '<!doctype html><html><head><title>T</title></head><body><nav>Menu</nav><h1>Short</h1>' +
      '<div>Loose text <b>bold</b><br>next line<p>A paragraph</p>tail</div><ol><li>one</li><li>two</li></ol></body></html>';
    const doc = await parseDocument(encode(html), {});

    expectValidBlocks(doc);
    expect(blockTexts(doc)).toEqual([
      'Short',
      'Loose text bold\nnext line',
      'A paragraph',
      'tail',
      '1. one\n2. two',
    ]);
    expect(doc.blocks.map((b) => b.kind)).toEqual(['heading', 'paragraph', 'paragraph', 'paragraph', 'list']);
  });

  it('takes the title from the first h1 when there is no <title>', () => {
    const doc = parseHtml('<h1> Fragment\n title </h1><p>x</p>', { readability: false });
    expect(doc.title).toBe('Fragment title');
    expectValidBlocks(doc);
  });
});
