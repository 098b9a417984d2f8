import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrateToLatest, migrationFiles, pendingMigrations } from '../src/platform/db/migrator.js';
import { openServerDatabase } from './helpers/config.js';
import { createTestDatabase, drivers, serverAvailable } from './helpers/database.js';

describe.each(drivers())('migrations (%s)', (driver) => {
  it('apply every file in order on an empty database, then are idempotent', async () => {
    const t = await createTestDatabase(driver, { migrated: false });
    try {
      const files = await migrationFiles();
      expect(files.length).toBeGreaterThanOrEqual(4);
      expect(await pendingMigrations(t.database.db)).toEqual(files);
      const first = await migrateToLatest(t.database.db);
      expect(first.applied).toEqual(files);
      expect(await pendingMigrations(t.database.db)).toEqual([]);
      const second = await migrateToLatest(t.database.db);
      expect(second.applied).toEqual([]);
      const { rows } = await sql<{
        extversion: string;
      }>`select extversion from pg_extension where extname = 'vector'`.execute(t.database.db);
      expect(rows[0]?.extversion).toMatch(/^0\.[5-9]|^[1-9]/);
    } finally {
      await t.close();
    }
  });
});

describe.runIf(serverAvailable())('concurrent migrations (server)', () => {
  it('serialise through the advisory lock when several pools migrate at once', async () => {
    const t = await createTestDatabase('server', { migrated: false });
    const others = await Promise.all([1, 2, 3].map(() => openServerDatabase(t.url!)));
    try {
      const outcomes = await Promise.all([t.database, ...others].map((d) => migrateToLatest(d.db)));
      const applied = outcomes.flatMap((o) => o.applied).sort();
      expect(applied).toEqual(await migrationFiles());
    } finally {
      await Promise.all(others.map((d) => d.close()));
      await t.close();
    }
  });
});
