/**
 * Server mode prepares parameterised statements once per connection (src/platform/db/prepared.ts).
 * Against real PostgreSQL: what is prepared and what is not, reuse, the per-connection bound with
 * deallocation, a column added by a migration under a prepared statement, and the pool wiring.
 */
import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/platform/db/database.js';
import { preparable, prepareStatements } from '../src/platform/db/prepared.js';
import { silentLogger, testConfig } from './helpers/config.js';
import { createTestDatabase, serverAvailable, type TestDatabase } from './helpers/database.js';

describe.runIf(serverAvailable())('prepared statements (server)', () => {
  let t: TestDatabase;
  let client: pg.Client;
  let names: () => string[];
  /** The statements this session has prepared, as the server sees them. */
  const onServer = async () =>
    (
      await client.query<{ name: string; statement: string }>(
        'select name, statement from pg_prepared_statements order by name',
      )
    ).rows;

  beforeAll(async () => {
    t = await createTestDatabase('server');
    client = new pg.Client({ connectionString: t.url ?? '' });
    await client.connect();
    names = prepareStatements(client, 3);
    await client.query('create table prepared_probe (id int primary key, label text)');
    await client.query("insert into prepared_probe values (1, 'one'), (2, 'two'), (3, 'three')");
  });
  afterAll(async () => {
    await client.end();
    await t.close();
  });

  it('prepares a statement with parameters once and reuses it; others run unnamed', async () => {
    const text = 'select label from prepared_probe where id = $1';
    expect((await client.query(text, [1])).rows).toEqual([{ label: 'one' }]);
    expect((await client.query(text, [2])).rows).toEqual([{ label: 'two' }]);
    expect(await onServer()).toEqual([{ name: names()[0], statement: text }]);
    // Without parameters, with `*`, or with several commands: never named.
    await client.query('select count(*) from prepared_probe');
    await client.query('select * from prepared_probe where id = $1', [3]);
    await client.query('select 1; select 2');
    expect((await onServer()).map((s) => s.statement)).toEqual([text]);
    expect(preparable('select * from t where id = $1')).toBe(false);
    expect(preparable('update t set a = $1; select 1')).toBe(false);
    expect(preparable('select a from t where id = $1')).toBe(true);
    // pg-boss's partitioned job table: generic plans there cost more than planning.
    expect(preparable('update larder_jobs.job set state = $1 where id = $2')).toBe(false);
  });

  it('keeps a statement working after a migration adds a column to its table', async () => {
    const text = 'select id, label from prepared_probe where id = $1';
    expect((await client.query(text, [1])).rows).toEqual([{ id: 1, label: 'one' }]);
    const other = new pg.Client({ connectionString: t.url ?? '' });
    await other.connect();
    try {
      await other.query("alter table prepared_probe add column extra text default 'x'");
    } finally {
      await other.end();
    }
    expect((await client.query(text, [1])).rows).toEqual([{ id: 1, label: 'one' }]);
  });

  it('holds at most its limit per connection, deallocating the least recently used', async () => {
    const texts = [1, 2, 3, 4, 5].map((n) => `select label, ${n} as n from prepared_probe where id = $1`);
    for (const text of texts) await client.query(text, [1]);
    // An evicted statement comes back under a new name, and answers as before.
    expect((await client.query(texts[0]!, [2])).rows).toEqual([{ label: 'two', n: 1 }]);
    const held = await onServer();
    expect(held.length).toBeLessThanOrEqual(3);
    expect(held.map((s) => s.name).sort()).toEqual([...names()].sort());
    expect(held.map((s) => s.statement)).toContain(texts[0]);
  });

  it('is what the server pool does, unless DATABASE_PREPARED_STATEMENTS=false', async () => {
    const prepared = async (database: TestDatabase['database']) => {
      await database.db.transaction().execute(async (trx) => {
        await sql`select ${'probe'}::text as probe`.execute(trx);
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from pg_prepared_statements where statement like 'select $1::text as probe'`.execute(
          trx,
        );
        expect(rows[0]?.n).toBe(database === t.database ? 1 : 0);
      });
    };
    await prepared(t.database);
    const off = await openDatabase(
      testConfig({ DATABASE_URL: t.url ?? '', DATABASE_PREPARED_STATEMENTS: 'false' }),
      silentLogger,
    );
    try {
      await prepared(off);
    } finally {
      await off.close();
    }
  });
});
