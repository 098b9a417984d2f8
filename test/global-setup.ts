/**
 * Builds migrated templates once per run:
 *  - embedded: a migrated PGlite, dumped to a file; each test file loads its own copy (≈1 s instead of initdb + migrate);
 *  - server (when DATABASE_URL is set): a migrated template database; each test file clones it.
 * Databases created here are named `larder_t_<run>_*` and dropped at teardown (never anything else).
 */
import { jobDeps } from './helpers/jobs.js';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { embeddedDatabase, type Database } from '../src/platform/db/database.js';
import { migrateToLatest } from '../src/platform/db/migrator.js';
import { JobQueue } from '../src/platform/jobs/queue.js';
import { jobDefinitions } from '../src/platform/jobs/registry.js';
import { openServerDatabase, silentLogger, testConfig, withDatabase } from './helpers/config.js';

declare module 'vitest' {
  export interface ProvidedContext {
    runId: string;
    pgliteTemplate: string;
    serverUrl: string | null;
    serverTemplate: string | null;
    redisUrl: string | null;
  }
}

async function installSchema(database: Database, url?: string): Promise<void> {
  await migrateToLatest(database.db);
  // The job queue's own schema (pg-boss installs it on first start) belongs in the template too.
  const config = testConfig(url ? { DATABASE_URL: url } : {});
  const jobs = new JobQueue(jobDeps(config, database, silentLogger), jobDefinitions, {
    work: false,
    concurrency: 1,
  });
  await jobs.start();
  await jobs.stop(1000);
}

/** A set, non-empty environment variable, else null. */
function envVar(name: string): string | null {
  const value = process.env[name];
  return value === undefined || value === '' ? null : value;
}

export default async function setup(project: TestProject) {
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const ci = process.env.CI === 'true';
  const databaseUrl = envVar('DATABASE_URL');
  const redisUrl = envVar('REDIS_URL');

  const dir = await mkdtemp(path.join(tmpdir(), 'larder-test-'));
  const pglite = await PGlite.create({ extensions: { vector } });
  const embedded = embeddedDatabase(pglite);
  await installSchema(embedded);
  const dump = await pglite.dumpDataDir('none');
  const pgliteTemplate = path.join(dir, 'template.tar');
  await writeFile(pgliteTemplate, Buffer.from(await dump.arrayBuffer()));
  await embedded.close();

  let serverTemplate: string | null = null;
  if (databaseUrl) {
    serverTemplate = `larder_t_${runId}_template`;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`create database ${serverTemplate}`);
    await admin.end();
    const url = withDatabase(databaseUrl, serverTemplate);
    const server = await openServerDatabase(url);
    await installSchema(server, url);
    await server.close();
  }

  const missing = [!databaseUrl && 'DATABASE_URL', !redisUrl && 'REDIS_URL'].filter(Boolean);
  if (missing.length > 0) {
    const message = `server-mode suites need ${missing.join(' and ')}`;
    if (ci) throw new Error(`CI=true but ${message}: refusing to skip them`);
    process.stderr.write(
      `\n  ⚠  SKIPPED: ${message}; they will be skipped. Only embedded (PGlite) tests run.\n` +
        `     Set DATABASE_URL=postgres://… (with pgvector) and REDIS_URL=redis://… to run them.\n\n`,
    );
  }

  project.provide('runId', runId);
  project.provide('pgliteTemplate', pgliteTemplate);
  project.provide('serverUrl', databaseUrl);
  project.provide('serverTemplate', serverTemplate);
  project.provide('redisUrl', redisUrl);

  return async () => {
    await rm(dir, { recursive: true, force: true });
    if (!databaseUrl) return;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    const { rows } = await admin.query<{ datname: string }>(
      `select datname from pg_database where datname like $1`,
      [`larder_t_${runId}_%`],
    );
    for (const { datname } of rows) await admin.query(`drop database if exists "${datname}" with (force)`);
    await admin.end();
  };
}
