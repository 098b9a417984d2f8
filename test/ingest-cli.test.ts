/**
 * `larder ingest` and `larder import` as operators run them: the real binary in a child process, on
 * the embedded driver (a temporary data directory) and against PostgreSQL (with a `larder worker`).
 */
import { createServer, type Server } from 'node:http';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli, startServer } from './helpers/cli.js';
import { drivers } from './helpers/database.js';
import { createTenant } from './helpers/factories.js';
import { type CliTarget, cliTarget } from './helpers/cli-target.js';

const COVIDQA = fileURLToPath(new URL('../../shared/eval/covidqa/corpus.jsonl', import.meta.url));
const tempDir = (prefix: string) => mkdtemp(path.join(tmpdir(), prefix));

interface Summary {
  mode: string;
  total: number;
  counts: Record<'created' | 'updated' | 'unchanged' | 'duplicate' | 'requeued' | 'failed', number>;
  bytes: number;
  seconds: number;
  failures: { path?: string; line?: number; code: string; message: string }[];
  collection: { id: string; name: string; created: boolean };
  workspace: { id: string; slug: string };
  processing: { statuses: Record<string, number>; failures: unknown[] } | null;
  interrupted: boolean;
}

const counts = (partial: Partial<Summary['counts']>): Summary['counts'] => ({
  created: 0,
  updated: 0,
  unchanged: 0,
  duplicate: 0,
  requeued: 0,
  failed: 0,
  ...partial,
});

function summaryOf(res: CliResult): Summary {
  try {
    return JSON.parse(res.stdout) as Summary;
  } catch {
    throw new Error(`stdout is not one JSON summary (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  }
}

/** A folder with every kind of file the command must tell apart. */
async function mixedFolder(): Promise<string> {
  const root = await tempDir('larder-ingest-src-');
  await mkdir(path.join(root, 'guides', 'deep'), { recursive: true });
  await mkdir(path.join(root, '.git'), { recursive: true });
  await mkdir(path.join(root, 'node_modules', 'pkg'), { recursive: true });
  await writeFile(path.join(root, 'readme.md'), '# Larder\n\nA pantry of documents, indexed for search.\n');
  await writeFile(
    path.join(root, 'page.html'),
    '<!doctype html><html><head><title>Shelf page</title></head><body><h1>Shelves</h1><p>Jars of jam and pickles.</p></body></html>',
  );
  await writeFile(path.join(root, 'guides', 'notes.txt'), 'Plain notes about the cellar.\n');
  await writeFile(path.join(root, 'guides', 'deep', 'recipe.md'), '## Bread\n\nFlour, water, salt, time.\n');
  await writeFile(
    path.join(root, 'photo.bin'),
    Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x00, 0x10, 0x80]),
  );
  await writeFile(path.join(root, 'build.log'), 'excluded by --exclude\n');
  await writeFile(path.join(root, '.env'), 'SECRET=dotfiles are skipped by default\n');
  await writeFile(path.join(root, '.git', 'config'), '[core]\n');
  await writeFile(path.join(root, 'node_modules', 'pkg', 'index.md'), '# not mine\n');
  return root;
}

const INGESTED = ['guides/deep/recipe.md', 'guides/notes.txt', 'page.html', 'readme.md'];

describe('larder ingest / import: command line', () => {
  it('lists both commands in --help and exits 78 on invalid configuration', async () => {
    const help = await runCli(['--help'], {});
    expect(help.stdout).toMatch(/^\s+ingest\b/m);
    expect(help.stdout).toMatch(/^\s+import\b/m);
    const ingestHelp = await runCli(['ingest', '--help'], {});
    expect(ingestHelp.stdout).toContain('--exclude <glob>');
    const bad = await runCli(['ingest', '.', '--collection', 'x'], { LOG_LEVEL: 'chatty' });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain('LOG_LEVEL');
  });
});

/** Registers a driver-specific test only where it applies (CI reports no skipped tests). */
const onlyIf = (applies: boolean): typeof it => (applies ? it : ((() => undefined) as unknown as typeof it));

describe.each(drivers())('larder ingest / import (%s)', (driver) => {
  let target: CliTarget;
  let source: string;
  const cli = (args: string[], env: Record<string, string> = {}, timeoutMs = 90_000) =>
    runCli(args, { ...target.env, ...env }, timeoutMs);
  const wait = driver === 'server' ? ['--wait'] : [];

  beforeAll(async () => {
    target = await cliTarget(driver, { workerConcurrency: 12 });
    source = await mixedFolder();
  });
  afterAll(async () => {
    await target.close();
  });

  it('ingests a folder: creates the collection, skips excluded files, reports unsupported ones (exit 2)', async () => {
    const res = await cli([
      'ingest',
      source,
      '--collection',
      'Pantry Docs',
      '--exclude',
      '*.log',
      '--json',
      ...wait,
    ]);
    expect(res.code, res.stderr).toBe(2);
    const summary = summaryOf(res);
    expect(summary.mode).toBe(driver);
    expect(summary.collection).toMatchObject({ name: 'Pantry Docs', created: true });
    expect(summary.counts).toEqual(counts({ created: 4, failed: 1 }));
    expect(summary.failures).toEqual([
      {
        path: 'photo.bin',
        code: 'unsupported_media_type',
        message: expect.stringContaining('binary') as string,
      },
    ]);
    expect(summary.processing?.statuses).toEqual({ ready: 4 });
    expect(res.stderr).toContain('Created collection "Pantry Docs"');

    const docs = await target.withDb((db) =>
      db
        .selectFrom('documents')
        .select(['external_id', 'status', 'filename', 'mime', 'chunk_count'])
        .where('collection_id', '=', summary.collection.id)
        .orderBy('external_id')
        .execute(),
    );
    expect(docs.map((d) => d.external_id)).toEqual(INGESTED);
    expect(docs.every((d) => d.status === 'ready' && d.chunk_count > 0)).toBe(true);
    expect(docs.find((d) => d.external_id === 'guides/deep/recipe.md')).toMatchObject({
      filename: 'recipe.md',
      mime: 'text/markdown',
    });
    expect(docs.find((d) => d.external_id === 'page.html')?.mime).toBe('text/html');
  });

  it('skips everything on a re-run and replaces exactly the one changed file', async () => {
    // The collection name matches case-insensitively.
    const again = await cli([
      'ingest',
      source,
      '--collection',
      'pantry docs',
      '--exclude',
      '*.log',
      '--json',
      ...wait,
    ]);
    expect(again.code).toBe(2);
    const unchanged = summaryOf(again);
    expect(unchanged.collection.created).toBe(false);
    expect(unchanged.counts).toEqual(counts({ unchanged: 4, failed: 1 }));

    await writeFile(
      path.join(source, 'guides', 'notes.txt'),
      'Plain notes about the cellar, now with cheese.\n',
    );
    const changed = await cli([
      'ingest',
      source,
      '--collection',
      'Pantry Docs',
      '--exclude',
      '*.log',
      '--exclude',
      '*.bin',
      ...wait,
    ]);
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toMatch(/0 created, 1 updated, 3 unchanged, 0 duplicate, 0 requeued, 0 failed/);
    expect(changed.stdout).toMatch(/Processing: 4 ready, 0 failed/);
    const notes = await target.withDb((db) =>
      db
        .selectFrom('documents as d')
        .innerJoin('chunks as c', 'c.document_id', 'd.id')
        .select(['d.version', 'd.status', 'c.text'])
        .where('d.external_id', '=', 'guides/notes.txt')
        .execute(),
    );
    expect(notes).toEqual([
      { version: 2, status: 'ready', text: expect.stringContaining('cheese') as string },
    ]);
  });

  it('ingests a single file and only the files matching --include', async () => {
    const single = await cli([
      'ingest',
      path.join(source, 'readme.md'),
      '--collection',
      'Single',
      '--json',
      ...wait,
    ]);
    expect(single.code, single.stderr).toBe(0);
    expect(summaryOf(single).counts).toEqual(counts({ created: 1 }));
    const included = await cli([
      'ingest',
      source,
      '--collection',
      'Markdown',
      '--include',
      '*.md',
      '--json',
      ...wait,
    ]);
    expect(included.code, included.stderr).toBe(0);
    const summary = summaryOf(included);
    expect(summary.counts).toEqual(counts({ created: 2 }));
    const ids = await target.withDb((db) =>
      db
        .selectFrom('documents')
        .select('external_id')
        .where('collection_id', 'in', [summaryOf(single).collection.id, summary.collection.id])
        .orderBy('external_id')
        .execute(),
    );
    expect(ids.map((r) => r.external_id)).toEqual(['guides/deep/recipe.md', 'readme.md', 'readme.md']);
  });

  it('imports JSONL: reports bad lines by number, keeps extra fields as metadata, skips unchanged lines', async () => {
    const dir = await tempDir('larder-import-');
    const file = path.join(dir, 'corpus.jsonl');
    const lines = [
      JSON.stringify({
        _id: 'a1',
        title: 'Apples',
        text: 'Apples keep for months in a cool cellar.',
        source: 'orchard',
      }),
      JSON.stringify({ _id: 2, title: '', text: 'Pears ripen off the tree.', metadata: { lang: 'en' } }),
      '{"_id": "broken", "text": ',
      JSON.stringify({ _id: 'no-text', title: 'Nothing' }),
      '',
      JSON.stringify({
        external_id: 'md',
        text: '# Plums\n\nDried plums are prunes.',
        mime: 'text/markdown',
      }),
    ];
    await writeFile(file, `${lines.join('\n')}\n`);
    const res = await cli(['import', '--jsonl', file, '--collection', 'Fruit', '--json', ...wait]);
    expect(res.code, res.stderr).toBe(2);
    const summary = summaryOf(res);
    expect(summary.counts).toEqual(counts({ created: 3, failed: 2 }));
    expect(summary.failures).toEqual([
      { line: 3, code: 'invalid_line', message: expect.stringContaining('invalid JSON') as string },
      { line: 4, code: 'invalid_line', message: expect.stringContaining('missing text') as string },
    ]);
    expect(summary.processing?.statuses).toEqual({ ready: 3 });
    const docs = await target.withDb((db) =>
      db
        .selectFrom('documents')
        .select(['external_id', 'title', 'metadata', 'mime'])
        .where('collection_id', '=', summary.collection.id)
        .orderBy('external_id')
        .execute(),
    );
    expect(docs).toEqual([
      { external_id: '2', title: 'Untitled', metadata: { lang: 'en' }, mime: 'text/plain' },
      { external_id: 'a1', title: 'Apples', metadata: { source: 'orchard' }, mime: 'text/plain' },
      { external_id: 'md', title: 'Plums', metadata: {}, mime: 'text/markdown' },
    ]);

    // Same content, new title: not sent again, but the title follows the file.
    lines[0] = JSON.stringify({
      _id: 'a1',
      title: 'Apples!',
      text: 'Apples keep for months in a cool cellar.',
      source: 'orchard',
    });
    await writeFile(file, `${lines.join('\n')}\n`);
    const again = await cli(['import', '--jsonl', file, '--collection', 'Fruit', '--json', ...wait]);
    expect(summaryOf(again).counts).toEqual(counts({ unchanged: 3, failed: 2 }));
    const title = await target.withDb((db) =>
      db.selectFrom('documents').select('title').where('external_id', '=', 'a1').executeTakeFirstOrThrow(),
    );
    expect(title.title).toBe('Apples!');
  });

  it('ingests a web page by URL (external id = the URL)', async () => {
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        '<!doctype html><html><head><title>Larder FAQ</title></head><body><p>Answers about jars.</p></body></html>',
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/faq`;
      const res = await cli(['ingest', url, '--collection', 'Web', '--json', ...wait], {
        LARDER_URL_ALLOW_PRIVATE: 'true',
      });
      expect(res.code, res.stderr).toBe(0);
      expect(summaryOf(res)).toMatchObject({
        counts: counts({ created: 1 }),
        processing: { statuses: { ready: 1 } },
      });
      const doc = await target.withDb((db) =>
        db
          .selectFrom('documents')
          .select(['external_id', 'title'])
          .where('external_id', '=', url)
          .executeTakeFirst(),
      );
      expect(doc).toEqual({ external_id: url, title: 'Larder FAQ' });
    } finally {
      server.close();
    }
  });

  it('fails clearly on an unknown workspace and a missing path (exit 1)', async () => {
    const ws = await cli(['ingest', source, '--collection', 'X', '--workspace', 'nope']);
    expect(ws.code).toBe(1);
    expect(ws.stderr).toMatch(/No workspace "nope"\. Name one by slug or id/);
    const missing = await cli(['ingest', path.join(source, 'absent'), '--collection', 'X']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such file or directory');
  });

  onlyIf(driver === 'embedded')('explains that `larder serve` holds the embedded database', async () => {
    const server = await startServer(target.env);
    try {
      const res = await cli(['ingest', source, '--collection', 'X']);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/in use by process \d+/);
      expect(res.stderr).toContain('cannot run next to `larder serve`');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  onlyIf(driver === 'server')('asks which workspace when there are several', async () => {
    await target.withDb((db) => createTenant(db, 'second'));
    const res = await cli(['ingest', source, '--collection', 'X']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/There are 2 workspaces; choose one with --workspace/);
    expect(res.stderr).toContain('pantry');
    expect(res.stderr).toContain('second');
    const chosen = await cli([
      'ingest',
      path.join(source, 'readme.md'),
      '--collection',
      'Second',
      '--workspace',
      'second',
      '--json',
      '--wait',
    ]);
    expect(chosen.code, chosen.stderr).toBe(0);
    expect(summaryOf(chosen).workspace.slug).toBe('second');
  });

  onlyIf(driver === 'server')(
    'imports the covidqa corpus: 98 documents ready, every chunk is its span of the text',
    async () => {
      const res = await cli(
        [
          'import',
          '--jsonl',
          COVIDQA,
          '--collection',
          'covidqa',
          '--workspace',
          'pantry',
          '--json',
          '--wait',
          '--concurrency',
          '8',
        ],
        {},
        180_000,
      );
      expect(res.code, res.stderr).toBe(0);
      const summary = summaryOf(res);
      expect(summary.counts).toEqual(counts({ created: 98 }));
      expect(summary.processing?.statuses).toEqual({ ready: 98 });

      const texts = new Map<string, string>();
      for await (const line of createInterface({ input: createReadStream(COVIDQA), crlfDelay: Infinity })) {
        const record = JSON.parse(line) as { _id: string; text: string };
        texts.set(record._id, record.text.replace(/\r\n?/g, '\n'));
      }
      const chunks = await target.withDb((db) =>
        db
          .selectFrom('chunks as c')
          .innerJoin('documents as d', 'd.id', 'c.document_id')
          .select(['d.external_id', 'd.status', 'c.ordinal', 'c.text', 'c.char_start', 'c.char_end'])
          .where('d.collection_id', '=', summary.collection.id)
          .orderBy('d.external_id')
          .orderBy('c.ordinal')
          .execute(),
      );
      expect(new Set(chunks.map((c) => c.external_id))).toEqual(new Set(texts.keys()));
      for (const chunk of chunks) {
        const text = texts.get(chunk.external_id!)!;
        expect(chunk.text, `${chunk.external_id} #${chunk.ordinal}`).toBe(
          text.slice(chunk.char_start, chunk.char_end),
        );
      }

      // Resuming is a no-op once everything is stored.
      const again = await cli(
        ['import', '--jsonl', COVIDQA, '--collection', 'covidqa', '--workspace', 'pantry', '--json'],
        {},
        120_000,
      );
      expect(summaryOf(again).counts).toEqual(counts({ unchanged: 98 }));
    },
    240_000,
  );
});
