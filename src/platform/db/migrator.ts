/**
 * Forward-only SQL migrations from `migrations/*.sql`, applied in filename order.
 *
 * Kysely's Migrator runs every pending migration inside one transaction that first takes a
 * transaction-scoped advisory lock, so replicas starting at once queue up and the later ones find
 * nothing to do. Plain SQL files keep migrations identical on PGlite and PostgreSQL and readable
 * by DBAs. There are no down migrations: fix forward with a new file.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  type MigrationResult,
  Migrator,
  sql,
} from 'kysely';
import type { Db } from './database.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));
const MIGRATION_TABLE = 'larder_migration';
const MIGRATION_LOCK_TABLE = 'larder_migration_lock';
const FILE_PATTERN = /^\d{4}_[a-z0-9_]+\.sql$/;

class SqlFileMigrationProvider implements MigrationProvider {
  constructor(private readonly dir: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    for (const file of await migrationFiles(this.dir)) {
      const text = await readFile(`${this.dir}/${file}.sql`, 'utf8');
      migrations[file] = {
        up: async (db: Kysely<unknown>) => {
          await sql.raw(text).execute(db);
        },
      };
    }
    return migrations;
  }
}

/** Migration names (file names without `.sql`), sorted. */
export async function migrationFiles(dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql'));
  const bad = files.filter((f) => !FILE_PATTERN.test(f));
  if (bad.length > 0) throw new Error(`migration files must be named NNNN_name.sql: ${bad.join(', ')}`);
  return files.map((f) => f.slice(0, -4)).sort();
}

function migrator(db: Db, dir: string): Migrator {
  return new Migrator({
    db,
    provider: new SqlFileMigrationProvider(dir),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
}

export interface MigrateOutcome {
  applied: string[];
  total: number;
}

/** Applies pending migrations. Safe to run concurrently from several processes; idempotent. */
export async function migrateToLatest(db: Db, dir = MIGRATIONS_DIR): Promise<MigrateOutcome> {
  const { error, results } = await migrator(db, dir).migrateToLatest();
  if (error) {
    const failed = results?.find((r: MigrationResult) => r.status === 'Error');
    const message = error instanceof Error ? error.message : JSON.stringify(error);
    throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${message}`, { cause: error });
  }
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  return { applied, total: (await migrationFiles(dir)).length };
}

/** Names of migrations present on disk but not yet applied (empty when up to date). */
export async function pendingMigrations(db: Db, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = await migrationFiles(dir);
  const exists = await sql<{
    present: boolean;
  }>`select to_regclass(${MIGRATION_TABLE}) is not null as present`.execute(db);
  if (!exists.rows[0]?.present) return files;
  const applied = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)}`.execute(db);
  const done = new Set(applied.rows.map((r) => r.name));
  return files.filter((f) => !done.has(f));
}
