/**
 * The data model's guarantees, on both drivers: the constraints, indexes and triggers in migrations/
 * that the product relies on. Every assertion here fails if a migration loses (or weakens) one of them:
 *  - catalog: the tables exist, every tenant table carries workspace_id (NOT NULL, cascading, indexed),
 *    every foreign key is indexed, the HNSW and full-text indexes are there;
 *  - behaviour: a realistic user → workspace → collection → document → chunk → embedding graph, then
 *    k-NN and lexical search, cascades, CHECK / UNIQUE / composite-FK rejections (by SQLSTATE and
 *    constraint name), the append-only audit log, ownership guards and UUIDv7 ids.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/platform/db/database.js';
import {
  type DocumentStatus,
  INDEXED_EMBEDDING_DIMENSIONS,
  type MembershipRole,
} from '../src/platform/db/schema.js';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/database.js';
import {
  axisVector,
  countWhere,
  createChunk,
  createCollection,
  createDocument,
  createTenant,
  DIMS,
  embedChunk,
  MODEL,
  sha256,
  sqlError,
  sqlState,
  type ChunkRef,
  UUID_V7,
  uuidV7Millis,
  vectorText,
} from './helpers/factories.js';

// ---------------------------------------------------------------------------------------------------
// The data model, as the migrations define it

/** workspace_id NOT NULL → workspaces ON DELETE CASCADE (0002–0004). */
const TENANT_TABLES = [
  'memberships',
  'invitations',
  'api_keys',
  'collections',
  'documents',
  'document_blobs',
  'chunks',
  'chunk_embeddings',
  'embedding_cache',
  'collection_stats',
  'conversations',
  'messages',
  'feedback',
  'review_items',
  'usage_events',
  'curated_answers',
  'lexical_ranges',
] as const;
/**
 * workspace_id NOT NULL, but no foreign key: rows leave with their collection through a trigger
 * (0012: an ingest writes ~1,000 rows per document, and the key checks were half their cost).
 */
const TRIGGER_CLEANED_TENANT_TABLES = ['lexical_postings'] as const;
/** workspace_id is nullable by design (instance-level events), but still cascades and is indexed. */
const NULLABLE_TENANT_TABLES = ['audit_log'] as const;
/** No workspace_id by design: global accounts, the tenant itself, user sessions, SSO links. */
const GLOBAL_TABLES = ['users', 'workspaces', 'refresh_tokens', 'oidc_identities'] as const;
/** The migrator's own bookkeeping (not part of the data model). */
const BOOKKEEPING_TABLES = ['larder_migration', 'larder_migration_lock'] as const;

const HNSW_DIMENSIONS = [384, 512, 768, 1024, 1536] as const;

// ---------------------------------------------------------------------------------------------------
// Helpers

// ---------------------------------------------------------------------------------------------------

describe.each(drivers())('schema (%s)', (driver) => {
  let t: TestDatabase;
  let db: Db;
  /** Slugs (and so emails) unique per driver and per test. */
  const slug = (label: string) => `${driver}-${label}`;

  beforeAll(async () => {
    t = await createTestDatabase(driver);
    db = t.database.db;
  });
  afterAll(async () => {
    await t.close();
  });

  describe('catalog', () => {
    it('has exactly the tables of the data model, each classified as tenant or global', async () => {
      const { rows } = await sql<{ tablename: string }>`
        select tablename from pg_tables where schemaname = 'public' order by tablename`.execute(db);
      const tables = rows.map((r) => r.tablename);
      const expected = [
        ...TENANT_TABLES,
        ...TRIGGER_CLEANED_TENANT_TABLES,
        ...NULLABLE_TENANT_TABLES,
        ...GLOBAL_TABLES,
      ].sort();
      expect(expected.length).toBeGreaterThanOrEqual(16);
      // A new table must be added to one of the lists above (and so be checked for workspace_id).
      expect(tables.filter((name) => !name.startsWith('larder_migration'))).toEqual(expected);
      expect(tables.filter((name) => name.startsWith('larder_migration'))).toEqual([...BOOKKEEPING_TABLES]);
    });

    it('indexes the leading column of every foreign key', async () => {
      const { rows } = await sql<{ tbl: string; attname: string }>`
        select c.conrelid::regclass::text as tbl, a.attname
        from pg_constraint c
        join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
        where c.contype = 'f' and c.connamespace = 'public'::regnamespace
          and not exists (select 1 from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1])`.execute(
        db,
      );
      expect(rows).toEqual([]);
      // …and the query is not vacuous: the model has plenty of foreign keys.
      const { rows: fks } = await sql<{ n: number }>`
        select count(*)::int as n from pg_constraint
        where contype = 'f' and connamespace = 'public'::regnamespace`.execute(db);
      expect(fks[0]!.n).toBeGreaterThanOrEqual(30);
    });

    it('gives every tenant table a NOT NULL, cascading, indexed workspace_id (and global tables none; trigger-cleaned ones no key)', async () => {
      const { rows } = await sql<{ tbl: string; notNull: boolean; indexed: boolean; cascades: boolean }>`
        select c.relname as tbl,
               a.attnotnull as "notNull",
               exists (select 1 from pg_index i
                       where i.indrelid = c.oid and i.indkey[0] = a.attnum and i.indpred is null) as indexed,
               exists (select 1 from pg_constraint f
                       where f.conrelid = c.oid and f.contype = 'f' and f.conkey = array[a.attnum]
                         and f.confrelid = 'public.workspaces'::regclass and f.confdeltype = 'c') as cascades
        from pg_class c
        join pg_attribute a on a.attrelid = c.oid and a.attname = 'workspace_id' and not a.attisdropped
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
        order by c.relname`.execute(db);
      const actual = Object.fromEntries(rows.map(({ tbl, ...facts }) => [tbl, facts]));
      type Facts = Omit<(typeof rows)[number], 'tbl'>;
      const facts = (notNull: boolean): Facts => ({ notNull, indexed: true, cascades: true });
      const expected = Object.fromEntries<Facts>([
        ...TENANT_TABLES.map((tbl): [string, Facts] => [tbl, facts(true)]),
        ...NULLABLE_TENANT_TABLES.map((tbl): [string, Facts] => [tbl, facts(false)]),
        ...TRIGGER_CLEANED_TENANT_TABLES.map((tbl): [string, Facts] => [
          tbl,
          { notNull: true, indexed: false, cascades: false },
        ]),
      ]);
      expect(actual).toEqual(expected);
      for (const global of GLOBAL_TABLES) expect(actual).not.toHaveProperty(global);
    });

    it('has a cosine HNSW index per supported embedding dimension, partial on dimensions', async () => {
      expect([...INDEXED_EMBEDDING_DIMENSIONS]).toEqual([...HNSW_DIMENSIONS]);
      const { rows } = await sql<{ indexname: string; indexdef: string }>`
        select indexname, indexdef from pg_indexes
        where schemaname = 'public' and tablename = 'chunk_embeddings' and indexdef ilike '%using hnsw%'
        order by indexname`.execute(db);
      expect(rows).toHaveLength(HNSW_DIMENSIONS.length);
      for (const dim of HNSW_DIMENSIONS) {
        const index = rows.find((r) => r.indexdef.includes(`vector(${dim})`));
        expect(index, `HNSW index for vector(${dim})`).toBeDefined();
        expect(index!.indexdef).toContain('vector_cosine_ops');
        expect(index!.indexdef).toContain(`WHERE (dimensions = ${dim})`);
      }
    });
  });

  it('compresses chunk text, tsvectors and document bytes with lz4 where the server has it', async () => {
    const { rows } = await sql<{ column: string; compression: string }>`
      select c.relname || '.' || a.attname as column, a.attcompression::text as compression
      from pg_attribute a join pg_class c on c.oid = a.attrelid
      where (c.relname, a.attname) in (('chunks', 'text'), ('chunks', 'tsv'), ('document_blobs', 'data'))
      order by 1`.execute(db);
    // PGlite is built without lz4: the migration leaves its default (pglz, shown as '').
    const expected = driver === 'server' ? 'l' : '';
    expect(rows).toEqual(
      ['chunks.text', 'chunks.tsv', 'document_blobs.data'].map((column) => ({
        column,
        compression: expected,
      })),
    );
  });

  describe('behaviour', () => {
    it('stores a realistic graph with UUIDv7 ids and finds it by k-NN and full text', async () => {
      const tenant = await createTenant(db, slug('graph'));
      const collectionId = await createCollection(db, tenant, 'Kitchen handbook');
      const doc = await createDocument(db, tenant, collectionId, 'pantry');
      const texts = [
        'Dry goods live on the pantry shelves, labelled with the date they were opened.',
        'Knives are sharpened every Friday and stored on the magnetic strip.',
        'The walk-in fridge is kept between one and four degrees Celsius.',
      ];
      const chunks: ChunkRef[] = [];
      for (const [i, text] of texts.entries()) {
        const chunk = await createChunk(db, doc, i, text);
        await embedChunk(db, chunk, axisVector(i));
        chunks.push(chunk);
      }
      // Another model with another dimension coexists on the same chunk; `dimensions` keeps it apart.
      await embedChunk(db, chunks[0]!, axisVector(1, 384), 'test-embed-384');

      for (const id of [
        tenant.userId,
        tenant.workspaceId,
        collectionId,
        doc.id,
        ...chunks.map((c) => c.id),
      ]) {
        expect(id).toMatch(UUID_V7);
      }

      const query = vectorText(axisVector(1));
      const knn = sql<{ chunk_id: string; distance: number }>`
        select chunk_id, embedding::vector(512) <=> ${query}::vector(512) as distance
        from chunk_embeddings
        where dimensions = 512 and collection_id = ${collectionId} and model = ${MODEL}
        order by embedding::vector(512) <=> ${query}::vector(512)
        limit 3`;
      const { rows } = await knn.execute(db);
      expect(rows.map((r) => r.chunk_id)).toHaveLength(3);
      expect(rows[0]!.chunk_id).toBe(chunks[1]!.id);
      expect(rows[0]!.distance).toBeCloseTo(0, 5);
      expect(rows[1]!.distance).toBeGreaterThan(0.5);

      // The query shape matches the partial expression index (seq scan disabled: a tiny table would not
      // use it otherwise).
      const plan = await db.transaction().execute(async (trx) => {
        await sql`set local enable_seqscan = off`.execute(trx);
        const result = await sql<Record<string, string>>`
          explain select chunk_id from chunk_embeddings
          where dimensions = 512
          order by embedding::vector(512) <=> ${query}::vector(512)
          limit 3`.execute(trx);
        return result.rows.flatMap((r) => Object.values(r)).join('\n');
      });
      expect(plan).toContain('chunk_embeddings_hnsw_512');

      const lexical = await db
        .selectFrom('chunks')
        .select('id')
        .where('collection_id', '=', collectionId)
        .where(sql<boolean>`tsv @@ websearch_to_tsquery('english', ${'opened pantry shelves'})`)
        .execute();
      expect(lexical.map((r) => r.id)).toEqual([chunks[0]!.id]);
    });

    it('deleting a document removes its blobs, chunks and embeddings, and nothing else', async () => {
      const tenant = await createTenant(db, slug('doc-delete'));
      const collectionId = await createCollection(db, tenant, 'Recipes');
      const doomed = await createDocument(db, tenant, collectionId, 'soup');
      const kept = await createDocument(db, tenant, collectionId, 'bread');
      const doomedChunks = [
        await createChunk(db, doomed, 0, 'Simmer the stock for two hours.'),
        await createChunk(db, doomed, 1, 'Season at the end, not the start.'),
      ];
      const keptChunk = await createChunk(db, kept, 0, 'Knead the dough for ten minutes.');
      for (const [i, chunk] of [...doomedChunks, keptChunk].entries())
        await embedChunk(db, chunk, axisVector(i));

      await db.deleteFrom('documents').where('id', '=', doomed.id).execute();

      expect(await countWhere(db, 'document_blobs', 'document_id', doomed.id)).toBe(0);
      expect(await countWhere(db, 'chunks', 'document_id', doomed.id)).toBe(0);
      for (const chunk of doomedChunks) {
        expect(await countWhere(db, 'chunk_embeddings', 'chunk_id', chunk.id)).toBe(0);
      }
      // No orphans anywhere: every embedding has its chunk, every chunk its document.
      const { rows: orphans } = await sql<{ n: number }>`
        select (select count(*)::int from chunk_embeddings e
                where not exists (select 1 from chunks c where c.id = e.chunk_id))
             + (select count(*)::int from chunks c
                where not exists (select 1 from documents d where d.id = c.document_id)) as n`.execute(db);
      expect(orphans[0]!.n).toBe(0);
      // The sibling document is untouched.
      expect(await countWhere(db, 'document_blobs', 'document_id', kept.id)).toBe(1);
      expect(await countWhere(db, 'chunks', 'document_id', kept.id)).toBe(1);
      expect(await countWhere(db, 'chunk_embeddings', 'chunk_id', keptChunk.id)).toBe(1);
    });

    it('rejects rows that break CHECK constraints (23514)', async () => {
      const tenant = await createTenant(db, slug('checks'));
      const collectionId = await createCollection(db, tenant, 'Checks');
      const doc = await createDocument(db, tenant, collectionId, 'checked');
      const chunk = await createChunk(db, doc, 0, 'A perfectly fine chunk.');
      const newDocument = { workspace_id: tenant.workspaceId, collection_id: collectionId, title: 'bad' };
      const newChunk = {
        workspace_id: doc.workspaceId,
        collection_id: doc.collectionId,
        document_id: doc.id,
        text: 'bad',
        token_count: 1,
        content_hash: sha256('bad'),
        tsv: sql<string>`to_tsvector('english', 'bad')`,
        lexeme_count: 1,
      };

      // Thunks: each statement runs only when its turn comes (never several in flight, never unawaited).
      const cases: [string, () => Promise<unknown>][] = [
        [
          'documents_status_check',
          () =>
            db
              .insertInto('documents')
              .values({ ...newDocument, status: 'bogus' as DocumentStatus })
              .execute(),
        ],
        [
          'documents_error_when_failed',
          () =>
            db
              .insertInto('documents')
              .values({ ...newDocument, status: 'failed' })
              .execute(),
        ],
        [
          'documents_content_known_when_indexed',
          () =>
            db
              .insertInto('documents')
              .values({ ...newDocument, status: 'searchable' })
              .execute(),
        ],
        [
          'chunks_char_span',
          () =>
            db
              .insertInto('chunks')
              .values({ ...newChunk, ordinal: 1, char_start: 50, char_end: 10 })
              .execute(),
        ],
        [
          'chunk_embeddings_dimensions_match',
          () =>
            db
              .insertInto('chunk_embeddings')
              .values({
                chunk_id: chunk.id,
                workspace_id: chunk.workspaceId,
                collection_id: chunk.collectionId,
                model: MODEL,
                dimensions: DIMS,
                embedding: vectorText([0.1, 0.2, 0.3]),
                content_hash: sha256(chunk.id),
              })
              .execute(),
        ],
        [
          'collections_embedding_all_or_none',
          () =>
            db
              .insertInto('collections')
              .values({ workspace_id: tenant.workspaceId, name: 'half-configured', embedding_model: MODEL })
              .execute(),
        ],
        [
          'memberships_role_check',
          () =>
            db
              .insertInto('memberships')
              .values({
                workspace_id: tenant.workspaceId,
                user_id: tenant.userId,
                role: 'root' as MembershipRole,
              })
              .execute(),
        ],
        [
          'users_email_lowercase',
          () =>
            db
              .insertInto('users')
              .values({ email: `Mixed-${slug('checks')}@Example.com` })
              .execute(),
        ],
      ];
      for (const [constraint, statement] of cases) {
        expect(await sqlError(statement()), constraint).toMatchObject({ code: '23514', constraint });
      }
      // The same rows, made valid, are accepted (the rejections above are the constraints, not typos).
      await db
        .insertInto('documents')
        .values({ ...newDocument, status: 'failed', error: 'parser crashed' })
        .execute();
      await db
        .insertInto('chunks')
        .values({ ...newChunk, ordinal: 1, char_start: 10, char_end: 50 })
        .execute();
      await embedChunk(db, chunk, axisVector(0));
    });

    it('keeps collection names unique per workspace, case-insensitively, among live collections (23505)', async () => {
      const a = await createTenant(db, slug('unique-a'));
      const b = await createTenant(db, slug('unique-b'));
      const first = await createCollection(db, a, 'Recipes');

      expect(await sqlError(createCollection(db, a, 'recipes'))).toMatchObject({
        code: '23505',
        constraint: 'collections_workspace_name_key',
      });
      // The same name in another workspace is fine.
      await expect(createCollection(db, b, 'RECIPES')).resolves.toMatch(UUID_V7);
      // A soft-deleted collection frees its name.
      await db.updateTable('collections').set({ deleted_at: new Date() }).where('id', '=', first).execute();
      await expect(createCollection(db, a, 'recipes')).resolves.toMatch(UUID_V7);
    });

    it('rejects denormalised workspace / collection ids that disagree with the parent (23503)', async () => {
      const a = await createTenant(db, slug('tenancy-a'));
      const b = await createTenant(db, slug('tenancy-b'));
      const collectionA = await createCollection(db, a, 'A docs');
      const otherCollectionA = await createCollection(db, a, 'More A docs');
      const collectionB = await createCollection(db, b, 'B docs');
      const doc = await createDocument(db, a, collectionA, 'secret');
      const chunk = await createChunk(db, doc, 0, 'Only workspace A may see this.');

      // A document in workspace B filed under workspace A's collection.
      expect(
        await sqlError(
          db
            .insertInto('documents')
            .values({ workspace_id: b.workspaceId, collection_id: collectionA, title: 'stray' })
            .execute(),
        ),
      ).toMatchObject({ code: '23503', constraint: 'documents_collection_fk' });
      // A chunk of A's document claiming workspace B (a real workspace, with a real collection)…
      expect(
        await sqlError(
          createChunk(db, { id: doc.id, workspaceId: b.workspaceId, collectionId: collectionB }, 1, 'leak'),
        ),
      ).toMatchObject({ code: '23503', constraint: 'chunks_document_fk' });
      // …or another collection of the right workspace.
      expect(
        await sqlError(createChunk(db, { ...doc, collectionId: otherCollectionA }, 1, 'misfiled')),
      ).toMatchObject({ code: '23503', constraint: 'chunks_document_fk' });
      // An embedding of A's chunk claiming workspace B.
      expect(
        await sqlError(
          embedChunk(db, { ...chunk, workspaceId: b.workspaceId, collectionId: collectionB }, axisVector(0)),
        ),
      ).toMatchObject({ code: '23503', constraint: 'chunk_embeddings_chunk_fk' });
      // Moving a document that still has chunks to another collection would strand them.
      expect(
        await sqlState(
          db
            .updateTable('documents')
            .set({ collection_id: otherCollectionA })
            .where('id', '=', doc.id)
            .execute(),
        ),
      ).toBe('23503');
      expect(await countWhere(db, 'chunks', 'workspace_id', b.workspaceId)).toBe(0);
    });

    it('keeps the audit log append-only (42501), except for actors being deleted', async () => {
      const tenant = await createTenant(db, slug('audit'));
      const actor = await db
        .insertInto('users')
        .values({ email: `auditor-${slug('audit')}@example.com` })
        .returning('id')
        .executeTakeFirstOrThrow();
      const entry = await db
        .insertInto('audit_log')
        .values({
          workspace_id: tenant.workspaceId,
          actor_type: 'user',
          actor_user_id: actor.id,
          action: 'document.delete',
          target_type: 'document',
          target_id: 'doc-1',
          ip: '192.0.2.10',
          data: { reason: 'test' },
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const byId = db.selectFrom('audit_log').where('id', '=', entry.id);

      expect(
        await sqlState(
          db
            .updateTable('audit_log')
            .set({ action: 'document.restore' })
            .where('id', '=', entry.id)
            .execute(),
        ),
      ).toBe('42501');
      expect(
        await sqlState(
          db
            .updateTable('audit_log')
            .set({ data: { reason: 'rewritten' } })
            .where('id', '=', entry.id)
            .execute(),
        ),
      ).toBe('42501');
      expect(await sqlState(db.deleteFrom('audit_log').where('id', '=', entry.id).execute())).toBe('42501');
      expect(await byId.select(['action', 'data']).executeTakeFirstOrThrow()).toEqual({
        action: 'document.delete',
        data: { reason: 'test' },
      });

      // Deleting the actor is allowed: ON DELETE SET NULL is the one permitted update.
      await db.deleteFrom('users').where('id', '=', actor.id).execute();
      expect(await byId.select(['actor_user_id', 'action']).executeTakeFirstOrThrow()).toEqual({
        actor_user_id: null,
        action: 'document.delete',
      });
    });

    it('allows one owner per workspace (23505) and refuses to remove it while the workspace lives (23001)', async () => {
      const tenant = await createTenant(db, slug('owner'));
      const other = await db
        .insertInto('users')
        .values({ email: `member-${slug('owner')}@example.com` })
        .returning('id')
        .executeTakeFirstOrThrow();

      expect(
        await sqlError(
          db
            .insertInto('memberships')
            .values({ workspace_id: tenant.workspaceId, user_id: other.id, role: 'owner' })
            .execute(),
        ),
      ).toMatchObject({ code: '23505', constraint: 'memberships_one_owner_per_workspace' });
      expect(
        await sqlState(
          db
            .deleteFrom('memberships')
            .where('workspace_id', '=', tenant.workspaceId)
            .where('user_id', '=', tenant.userId)
            .execute(),
        ),
      ).toBe('23001');
      expect(await sqlState(db.deleteFrom('users').where('id', '=', tenant.userId).execute())).toBe('23001');
    });

    it('deleting a workspace cascades to everything in it, and only it', async () => {
      const doomed = await createTenant(db, slug('ws-delete'));
      const kept = await createTenant(db, slug('ws-keep'));
      for (const tenant of [doomed, kept]) {
        const collectionId = await createCollection(db, tenant, 'Handbook');
        const doc = await createDocument(db, tenant, collectionId, 'rules');
        // As ingestion does: chunks are written while parsing; becoming ready indexes them (postings
        // and the collection's statistics, by the lexical-index trigger).
        await db.updateTable('documents').set({ status: 'parsing' }).where('id', '=', doc.id).execute();
        const chunk = await createChunk(db, doc, 0, 'Wash your hands before service.');
        await embedChunk(db, chunk, axisVector(3));
        await db.updateTable('documents').set({ status: 'ready' }).where('id', '=', doc.id).execute();
        const conversation = await db
          .insertInto('conversations')
          .values({
            workspace_id: tenant.workspaceId,
            user_id: tenant.userId,
            collection_ids: [collectionId],
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        await db
          .insertInto('messages')
          .values({
            workspace_id: tenant.workspaceId,
            conversation_id: conversation.id,
            role: 'user',
            content: 'When do I wash my hands?',
          })
          .execute();
        await db
          .insertInto('audit_log')
          .values({
            workspace_id: tenant.workspaceId,
            actor_type: 'user',
            actor_user_id: tenant.userId,
            action: 'collection.create',
          })
          .execute();
      }

      await db.deleteFrom('workspaces').where('id', '=', doomed.workspaceId).execute();

      for (const table of [...TENANT_TABLES, ...TRIGGER_CLEANED_TENANT_TABLES, ...NULLABLE_TENANT_TABLES]) {
        expect(await countWhere(db, table, 'workspace_id', doomed.workspaceId), table).toBe(0);
      }
      // "wash", "hand", "servic": one postings list per distinct lexeme.
      expect(await countWhere(db, 'lexical_postings', 'workspace_id', kept.workspaceId)).toBe(3);
      for (const table of [
        'memberships',
        'collections',
        'documents',
        'document_blobs',
        'chunks',
        'chunk_embeddings',
        'collection_stats',
        'conversations',
        'messages',
        'audit_log',
      ]) {
        expect(await countWhere(db, table, 'workspace_id', kept.workspaceId), table).toBe(1);
      }
      // The former owner's account survives: users are global.
      expect(await countWhere(db, 'users', 'id', doomed.userId)).toBe(1);
    });

    it('generates UUIDv7 ids that sort in creation order', async () => {
      const now = Date.now();
      // 200 in one statement
      const { rows } = await sql<{ n: number; id: string }>`
        select g as n, larder_uuid_v7()::text as id from generate_series(1, 200) as g order by g`.execute(db);
      const inStatement = rows.map((r) => r.id);
      // 200 in one session, one statement after another
      const inSession = await db.connection().execute(async (conn) => {
        const ids: string[] = [];
        for (let i = 0; i < 200; i++) {
          const { rows: one } = await sql<{ id: string }>`select larder_uuid_v7()::text as id`.execute(conn);
          ids.push(one[0]!.id);
        }
        return ids;
      });

      for (const ids of [inStatement, inSession]) {
        expect(ids).toHaveLength(200);
        expect(new Set(ids).size).toBe(200);
        for (const id of ids) expect(id).toMatch(UUID_V7);
        expect([...ids].sort()).toEqual(ids);
        // The leading 48 bits are the Unix time in milliseconds (generous bound: clocks of two hosts).
        expect(Math.abs(uuidV7Millis(ids[0]!) - now)).toBeLessThan(10 * 60_000);
      }
    });
  });
});
