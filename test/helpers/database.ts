/**
 * A fresh database per test file, on either driver:
 *  - embedded: a private in-memory PGlite loaded from the migrated template dump;
 *  - server: a new PostgreSQL database cloned from the migrated template (`CREATE DATABASE … TEMPLATE`).
 * Use `drivers()` with `describe.each` so the same suite runs on both.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import pg from 'pg';
import { inject } from 'vitest';
import type { Config } from '../../src/config.js';
import { type Database, embeddedDatabase } from '../../src/platform/db/database.js';

import { openServerDatabase, testConfig, withDatabase } from './config.js';

export type Driver = 'embedded' | 'server';

/** The drivers this run covers: always embedded; server when DATABASE_URL is set (always in CI). */
export function drivers(): Driver[] {
  return inject('serverTemplate') ? ['embedded', 'server'] : ['embedded'];
}

export const serverAvailable = (): boolean => inject('serverTemplate') !== null;

export interface TestDatabase {
  driver: Driver;
  database: Database;
  /** Config pointing at this database (server: its DATABASE_URL). */
  config: Config;
  /** Server only: the connection string of this database. */
  url: string | null;
  close(): Promise<void>;
}

async function adminQuery(text: string): Promise<void> {
  const admin = new pg.Client({ connectionString: inject('serverUrl') ?? '' });
  await admin.connect();
  try {
    await admin.query(text);
  } finally {
    await admin.end();
  }
}

/** Drops a test database (terminating its connections). Only for databases this run created. */
export async function dropDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  if (!name.startsWith(`larder_t_${inject('runId')}_`)) throw new Error(`refusing to drop ${name}`);
  await adminQuery(`drop database if exists ${name} with (force)`);
}

/** Creates an empty (`migrated: false`) or migrated database. Server databases are dropped on close. */
export async function createTestDatabase(driver: Driver, { migrated = true } = {}): Promise<TestDatabase> {
  if (driver === 'embedded') {
    const options = migrated
      ? { extensions: { vector }, loadDataDir: new Blob([await readFile(inject('pgliteTemplate'))]) }
      : { extensions: { vector } };
    const database = embeddedDatabase(await PGlite.create(options));
    return { driver, database, config: testConfig(), url: null, close: () => database.close() };
  }
  const template = inject('serverTemplate');
  const base = inject('serverUrl');
  if (!template || !base) throw new Error('server driver requested but DATABASE_URL is not set');
  const name = `larder_t_${inject('runId')}_${randomBytes(4).toString('hex')}`;
  await adminQuery(migrated ? `create database ${name} template ${template}` : `create database ${name}`);
  const url = withDatabase(base, name);
  const database = await openServerDatabase(url);
  return {
    driver,
    database,
    config: testConfig({ DATABASE_URL: url }),
    url,
    async close() {
      await database.close();
      await dropDatabase(url);
    },
  };
}
