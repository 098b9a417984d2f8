/**
 * Defence in depth: row-level security keeps tenants apart even when a query forgets its
 * `where workspace_id = …`. Runs on both drivers (PGlite runs as a superuser, so this also proves the
 * role switch works there).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/platform/db/database.js';
import { APP_ROLE, tenantRead, withTenant } from '../src/platform/db/tenant.js';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/database.js';
import {
  axisVector,
  createChunk,
  createCollection,
  createDocument,
  createTenant,
  embedChunk,
  sqlState,
  type Tenant,
} from './helpers/factories.js';

describe.each(drivers())('tenant isolation (%s)', (driver) => {
  let t: TestDatabase;
  let db: Db;
  let a: Tenant;
  let b: Tenant;

  beforeAll(async () => {
    t = await createTestDatabase(driver);
    db = t.database.db;
    a = await createTenant(db, `${driver}-tenant-a`);
    b = await createTenant(db, `${driver}-tenant-b`);
    for (const tenant of [a, b]) {
      const collection = await createCollection(db, tenant, 'Handbook');
      const doc = await createDocument(db, tenant, collection, `doc of ${tenant.workspaceId}`);
      const chunk = await createChunk(db, doc, 0, 'holiday policy');
      await embedChunk(db, chunk, axisVector(1));
      await db
        .insertInto('audit_log')
        .values({ workspace_id: tenant.workspaceId, actor_type: 'system', action: 'test.seeded' })
        .execute();
    }
  });
  afterAll(() => t.close());

  it('runs tenant work as the unprivileged role, and only inside the transaction', async () => {
    const inside = await withTenant(db, a.workspaceId, async (trx) => {
      const { rows } = await sql<{ role: string; ws: string }>`
        select current_user as role, larder_current_workspace()::text as ws`.execute(trx);
      return rows[0];
    });
    expect(inside).toEqual({ role: APP_ROLE, ws: a.workspaceId });
    const { rows } = await sql<{ role: string }>`select current_user as role`.execute(db);
    expect(rows[0]?.role).not.toBe(APP_ROLE);
  });

  it('returns no foreign rows from queries that forget the workspace filter', async () => {
    const seen = await withTenant(db, a.workspaceId, async (trx) => ({
      workspaces: await trx.selectFrom('workspaces').select('id').execute(),
      memberships: await trx.selectFrom('memberships').select('workspace_id').execute(),
      collections: await trx.selectFrom('collections').select('workspace_id').execute(),
      documents: await trx.selectFrom('documents').select('workspace_id').execute(),
      blobs: await trx.selectFrom('document_blobs').select('workspace_id').execute(),
      chunks: await trx.selectFrom('chunks').select('workspace_id').execute(),
      embeddings: await trx.selectFrom('chunk_embeddings').select('workspace_id').execute(),
      audit: await trx.selectFrom('audit_log').select('workspace_id').execute(),
    }));
    expect(seen.workspaces).toEqual([{ id: a.workspaceId }]);
    for (const [table, rows] of Object.entries(seen).filter(([k]) => k !== 'workspaces')) {
      expect(rows.length, table).toBeGreaterThan(0);
      expect(
        rows.every((r) => (r as { workspace_id: string }).workspace_id === a.workspaceId),
        table,
      ).toBe(true);
    }
  });

  it('cannot write rows into, update or delete rows of another workspace', async () => {
    const intoB = withTenant(db, a.workspaceId, (trx) =>
      trx.insertInto('collections').values({ workspace_id: b.workspaceId, name: 'Planted' }).execute(),
    );
    expect(await sqlState(intoB)).toBe('42501'); // new row violates row-level security policy

    const touched = await withTenant(db, a.workspaceId, async (trx) => {
      const updated = await trx
        .updateTable('documents')
        .set({ title: 'pwned' })
        .where('workspace_id', '=', b.workspaceId)
        .executeTakeFirst();
      const deleted = await trx
        .deleteFrom('chunks')
        .where('workspace_id', '=', b.workspaceId)
        .executeTakeFirst();
      return { updated: Number(updated.numUpdatedRows), deleted: Number(deleted.numDeletedRows) };
    });
    expect(touched).toEqual({ updated: 0, deleted: 0 });
    const bDocs = await db
      .selectFrom('documents')
      .select('title')
      .where('workspace_id', '=', b.workspaceId)
      .execute();
    expect(bDocs.map((d) => d.title)).not.toContain('pwned');
  });

  it('fails closed: the application role without a workspace sees no tenant rows', async () => {
    const counts = await db.transaction().execute(async (trx) => {
      await sql`select set_config('role', ${APP_ROLE}, true)`.execute(trx);
      const docs = await trx.selectFrom('documents').select('id').execute();
      const ws = await trx.selectFrom('workspaces').select('id').execute();
      return { docs: docs.length, ws: ws.length };
    });
    expect(counts).toEqual({ docs: 0, ws: 0 });
  });

  it('lets the application append to the audit log but never change or remove it', async () => {
    await withTenant(db, a.workspaceId, (trx) =>
      trx
        .insertInto('audit_log')
        .values({ workspace_id: a.workspaceId, actor_type: 'system', action: 'test.appended' })
        .execute(),
    );
    const update = withTenant(db, a.workspaceId, (trx) =>
      trx.updateTable('audit_log').set({ action: 'x' }).execute(),
    );
    expect(await sqlState(update)).toBe('42501'); // permission denied
    const remove = withTenant(db, a.workspaceId, (trx) => trx.deleteFrom('audit_log').execute());
    expect(await sqlState(remove)).toBe('42501');
  });

  it('covers every table with a workspace_id column by a row-level security policy', async () => {
    const { rows } = await sql<{ table: string; rls: boolean; policies: number }>`
      select c.relname as table, c.relrowsecurity as rls,
             (select count(*)::int from pg_policy p where p.polrelid = c.oid) as policies
      from pg_class c
      where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
        and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'workspace_id' and not a.attisdropped)`.execute(
      db,
    );
    expect(rows.length).toBeGreaterThanOrEqual(14);
    for (const row of rows)
      expect({ table: row.table, rls: row.rls, policies: row.policies > 0 }).toEqual({
        table: row.table,
        rls: true,
        policies: true,
      });
  });

  it('leaves no transaction or tenant setting behind after an error or a failed statement', async () => {
    const leftover = async () => {
      // Several times: with a pool, a leaked connection would show up on one of them.
      for (let i = 0; i < 6; i++) {
        const { rows } = await sql<{ role: string; ws: string | null; open: boolean }>`
          select current_user as role, nullif(current_setting('larder.workspace_id', true), '') as ws,
                 txid_current_if_assigned() is not null as open`.execute(db);
        expect(rows[0]?.role).not.toBe(APP_ROLE);
        expect(rows[0]).toMatchObject({ ws: null, open: false });
      }
    };
    await expect(
      withTenant(db, a.workspaceId, async () => {
        await Promise.resolve();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await leftover();
    await expect(
      withTenant(db, a.workspaceId, (trx) => sql`select * from no_such_table`.execute(trx)),
    ).rejects.toThrow(/no_such_table/);
    await leftover();
    // a write inside a failed tenant transaction is rolled back
    await expect(
      withTenant(db, a.workspaceId, async (trx) => {
        await trx
          .insertInto('audit_log')
          .values({ workspace_id: a.workspaceId, actor_type: 'system', action: 'test.rolled-back' })
          .execute();
        throw new Error('after the write');
      }),
    ).rejects.toThrow('after the write');
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from audit_log where action = 'test.rolled-back'`.execute(db);
    expect(rows[0]!.n).toBe(0);
    // snapshot transactions are read-only
    await expect(
      withTenant(
        db,
        a.workspaceId,
        (trx) =>
          trx
            .insertInto('audit_log')
            .values({ workspace_id: a.workspaceId, actor_type: 'system', action: 'test.ro' })
            .execute(),
        { snapshot: true },
      ),
    ).rejects.toThrow(/read-only/);
    await leftover();
  });

  it('rejects a malformed workspace id before touching the database', async () => {
    await expect(withTenant(db, "x' or true --", () => Promise.resolve(1))).rejects.toThrow(
      /not a workspace id/,
    );
  });

  describe('tenantRead (one round trip in server mode)', () => {
    /**
     * Runs the probe on many connections at once, so that on a pool every connection (not only the
     * most recently used one) is checked for a leftover role, workspace, read-only flag or transaction.
     */
    const noLeftovers = async () => {
      const probes = await Promise.all(
        Array.from({ length: 24 }, () =>
          sql<{ role: string; ws: string | null; ro: string; open: boolean }>`
            select current_user as role, nullif(current_setting('larder.workspace_id', true), '') as ws,
                   current_setting('transaction_read_only') as ro,
                   txid_current_if_assigned() is not null as open, pg_sleep(0.005)`
            .execute(db)
            .then((r) => r.rows[0]),
        ),
      );
      for (const probe of probes) {
        expect(probe?.role).not.toBe(APP_ROLE);
        expect(probe).toMatchObject({ ws: null, ro: 'off', open: false });
      }
    };

    it('runs as the application role with the workspace set and read-only, and only for its statements', async () => {
      const [[inside]] = await tenantRead(db, a.workspaceId, (q) => [
        q.selectNoFrom([
          sql<string>`current_user`.as('role'),
          sql<string>`larder_current_workspace()::text`.as('ws'),
          sql<string>`current_setting('transaction_read_only')`.as('ro'),
        ]),
      ]);
      expect(inside).toEqual({ role: APP_ROLE, ws: a.workspaceId, ro: 'on' });
      await noLeftovers();
    });

    it('returns only the workspace’s rows, also for queries without a workspace filter, and batches statements', async () => {
      for (const tenant of [a, b, a]) {
        const [workspaces, documents, chunks] = await tenantRead(db, tenant.workspaceId, (q) => [
          q.selectFrom('workspaces').select('id'),
          q.selectFrom('documents').select(['workspace_id', 'title']),
          q.selectFrom('chunks').select('workspace_id'),
        ]);
        expect(workspaces).toEqual([{ id: tenant.workspaceId }]);
        expect(documents).toEqual([
          { workspace_id: tenant.workspaceId, title: `doc of ${tenant.workspaceId}` },
        ]);
        expect(chunks.length).toBeGreaterThan(0);
        expect(chunks.every((c) => c.workspace_id === tenant.workspaceId)).toBe(true);
      }
    });

    it('keeps tenants apart under concurrency (the same prepared statements on shared connections)', async () => {
      const reads = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b));
      const results = await Promise.all(
        reads.map((tenant) =>
          tenantRead(db, tenant.workspaceId, (q) => [
            q.selectFrom('documents').select('workspace_id').where('title', 'like', 'doc of %'),
          ]).then(([rows]) => ({ tenant, rows })),
        ),
      );
      for (const { tenant, rows } of results) expect(rows).toEqual([{ workspace_id: tenant.workspaceId }]);
      await noLeftovers();
    });

    it('refuses writes, even hidden in a data-modifying CTE, and rolls them back', async () => {
      const write = tenantRead(db, a.workspaceId, (q) => [
        q
          .with('gone', (w) =>
            w.deleteFrom('audit_log').where('workspace_id', '=', a.workspaceId).returning('id'),
          )
          .selectFrom('gone')
          .select('id'),
      ]);
      expect(await sqlState(write)).toBe('25006'); // read-only transaction
      await expect(
        tenantRead(db, a.workspaceId, (q) => [q.deleteFrom('audit_log') as never]),
      ).rejects.toThrow(/not a read statement/);
      await noLeftovers();
    });

    it('leaves the connection clean after a failed statement and keeps working (prepared statements)', async () => {
      const failing = () =>
        tenantRead(db, a.workspaceId, (q) => [
          q.selectFrom('documents').select('id'),
          q.selectNoFrom(sql<number>`1 / (select count(*) from documents where title = 'none')::int`.as('x')),
        ]);
      expect(await sqlState(failing())).toBe('22012'); // division by zero
      expect(await sqlState(failing())).toBe('22012');
      await noLeftovers();
      const [docs] = await tenantRead(db, b.workspaceId, (q) => [
        q.selectFrom('documents').select('workspace_id'),
      ]);
      expect(docs).toEqual([{ workspace_id: b.workspaceId }]);
      // a statement that fails at Parse (unknown table), twice: its name is never taken as prepared
      const missing = () =>
        tenantRead(db, a.workspaceId, (q) => [
          q.selectFrom(sql<{ x: number }>`no_such_table`.as('t')).selectAll(),
        ]);
      expect(await sqlState(missing())).toBe('42P01');
      expect(await sqlState(missing())).toBe('42P01');
      await noLeftovers();
    });

    it('rejects a malformed workspace id before touching the database', async () => {
      await expect(
        tenantRead(db, "x' or true --", (q) => [q.selectFrom('documents').select('id')]),
      ).rejects.toThrow(/not a workspace id/);
    });
  });
});
