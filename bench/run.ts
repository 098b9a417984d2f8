/**
 * `npm run bench -- <suite|all> [--quick] [--rounds N] [--out DIR]`: the one entry point of the
 * benchmarks. Suites are the modules in bench/suites/ (each exports `suite: Suite`).
 *
 * Needs DATABASE_URL (real PostgreSQL with pgvector; never PGlite) and uses REDIS_URL when set. Each run
 * creates its own database `larder_bench_<random>` on that server and drops it at the end (only the
 * one it created). Results go to docs/benchmarks/ (JSON with every round, a Markdown summary, SVG
 * charts); with --quick (seconds, tiny data, as CI runs it) to a temporary directory unless --out.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type Suite, type SuiteContext, writeResults } from './lib/harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export async function loadSuites(): Promise<Suite[]> {
  const files = (await readdir(path.join(here, 'suites'))).filter(
    (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'),
  );
  const suites: Suite[] = [];
  for (const file of files.sort()) {
    const mod = (await import(path.join(here, 'suites', file))) as { suite?: Suite };
    if (mod.suite) suites.push(mod.suite);
  }
  return suites;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const suites = await loadSuites();
  const wanted = positionals[0];
  if (values.help || !wanted) {
    process.stdout.write(
      `usage: npm run bench -- <suite|all> [--quick] [--rounds N] [--out DIR]\nsuites:\n${suites
        .map((s) => `  ${s.name.padEnd(10)} ${s.description}`)
        .join('\n')}\n`,
    );
    return wanted ? 0 : 2;
  }
  const chosen = wanted === 'all' ? suites : suites.filter((s) => s.name === wanted);
  if (chosen.length === 0) {
    process.stderr.write(`bench: no suite ${wanted} (have: ${suites.map((s) => s.name).join(', ')})\n`);
    return 2;
  }
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    process.stderr.write(
      'bench: DATABASE_URL (PostgreSQL with pgvector) is required; suites never use PGlite\n',
    );
    return 2;
  }
  const rounds = values.rounds ? Number.parseInt(values.rounds, 10) : values.quick ? 1 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const tmpDir = await mkdtemp(path.join(tmpdir(), 'larder-bench-'));
  const outDir = values.out
    ? path.resolve(values.out)
    : values.quick
      ? path.join(tmpDir, 'results')
      : path.resolve(here, '../docs/benchmarks');
  const controller = new AbortController();
  process.once('SIGINT', () => {
    controller.abort();
  });

  const database = `larder_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${database}`);
  let failed = 0;
  try {
    for (const suite of chosen) {
      const ctx: SuiteContext = {
        quick: values.quick,
        rounds,
        databaseUrl: withDatabase(serverUrl, database),
        redisUrl: process.env.REDIS_URL === '' ? undefined : process.env.REDIS_URL,
        outDir,
        tmpDir,
        log: (message) => process.stderr.write(`[${suite.name}] ${message}\n`),
        signal: controller.signal,
      };
      const started = Date.now();
      try {
        const result = await suite.run(ctx);
        const files = await writeResults(result, ctx);
        ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${files.join(', ')}`);
      } catch (error) {
        failed++;
        ctx.log(`FAILED: ${(error as Error).stack ?? String(error)}`);
      }
    }
  } finally {
    await admin.query(`drop database if exists ${database} with (force)`);
    await admin.end();
    await rm(tmpDir, { recursive: true, force: true }).catch(() => undefined);
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main();
