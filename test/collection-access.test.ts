/**
 * Collection-level access over HTTP, on both drivers: `minRole` hides a collection (and everything in
 * it) from lower roles exactly as if it did not exist; API keys see their allowlist, or without one
 * only viewer/editor collections; the SQL predicate and the in-memory rule agree.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import {
  canSeeCollection,
  COLLECTION_ROLES,
  inVisibleCollection,
  visibleCollection,
} from '../src/platform/auth/collection-access.js';
import { ROLE_PERMISSIONS, scopePermissions } from '../src/platform/auth/permissions.js';
import type { MembershipRole } from '../src/platform/db/schema.js';
import { withTenant } from '../src/platform/db/tenant.js';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';
import { createChunk, createDocument } from './helpers/factories.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
interface Problem {
  code: string;
  detail?: string;
  errors?: { path: string }[];
}

describe.each(drivers())('collection access (%s)', (driver) => {
  let t: TestApp;
  let owner: SignedUp;
  const members = {} as Record<'admin' | 'editor' | 'viewer', SignedUp>;
  /** One collection per min_role, created by the owner, each with one document. */
  const byRole = {} as Record<MembershipRole, { id: string; documentId: string }>;

  const headersOf = (as: SignedUp | string) =>
    typeof as === 'string'
      ? { authorization: `Bearer ${as}` }
      : { authorization: `Bearer ${as.token}`, 'x-workspace-id': owner.workspaceId };
  const call = (as: SignedUp | string, method: Method, url: string, payload?: object) =>
    t.app.inject({ method, url, headers: headersOf(as), ...(payload ? { payload } : {}) });

  const createCollection = async (as: SignedUp | string, name: string, minRole?: MembershipRole) => {
    const res = await call(as, 'POST', '/v1/collections', {
      name,
      embedding: null,
      ...(minRole ? { minRole } : {}),
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string; minRole: string }>();
  };
  const createKey = async (scopes: string[], collections?: string[] | null, as: SignedUp | string = owner) =>
    call(as, 'POST', '/v1/api-keys', {
      name: `key ${randomUUID()}`,
      scopes,
      ...(collections === undefined ? {} : { collections }),
    });
  const keyOf = async (scopes: string[], collections?: string[] | null) => {
    const res = await createKey(scopes, collections);
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ key: string; collections: string[] | null }>();
  };
  const listed = async (as: SignedUp | string) => {
    const res = await call(as, 'GET', '/v1/collections?limit=200');
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ data: { id: string }[] }>().data.map((c) => c.id);
  };

  /** Every route that names a collection or a document, with a body each would accept. */
  const routesFor = (collectionId: string, documentId: string): [Method, string, object?][] => [
    ['GET', `/v1/collections/${collectionId}`],
    ['PATCH', `/v1/collections/${collectionId}`, { description: 'probed' }],
    ['GET', `/v1/collections/${collectionId}/documents`],
    ['POST', `/v1/collections/${collectionId}/documents`, { text: 'A probe that must not be stored.' }],
    ['GET', `/v1/documents/${documentId}`],
    ['GET', `/v1/documents/${documentId}/content`],
    ['GET', `/v1/documents/${documentId}/chunks`],
    ['PATCH', `/v1/documents/${documentId}`, { title: 'probed' }],
    ['POST', `/v1/documents/${documentId}/reprocess`],
    ['DELETE', `/v1/documents/${documentId}`],
    ['DELETE', `/v1/collections/${collectionId}`],
  ];

  /**
   * Every route answers exactly as it does for a collection and document that do not exist: 404
   * `not_found` with the same detail (403 on write routes for a caller without `documents:write`,
   * for both alike); and the collection is not listed.
   */
  const expectHidden = async (
    as: SignedUp | string,
    target: { id: string; documentId: string },
    { canWrite = true } = {},
  ) => {
    const hidden = routesFor(target.id, target.documentId);
    const missing = routesFor(randomUUID(), randomUUID());
    for (const [i, [method, url, body]] of hidden.entries()) {
      const res = await call(as, method, url, body);
      const [, missingUrl, missingBody] = missing[i]!;
      const absent = await call(as, method, missingUrl, missingBody);
      const shown = `${method} ${url} ${res.body}`;
      expect(res.statusCode, shown).toBe(canWrite || method === 'GET' ? 404 : 403);
      expect(res.statusCode, shown).toBe(absent.statusCode);
      expect(res.json<Problem>().code, shown).toBe(absent.json<Problem>().code);
      expect(res.json<Problem>().detail, shown).toBe(absent.json<Problem>().detail);
    }
    expect(await listed(as)).not.toContain(target.id);
  };

  beforeAll(async () => {
    t = await createTestApp(driver, { configure: fastAuth });
    owner = await signUp(t.app, `access-owner-${driver}@example.com`);
    for (const role of ['admin', 'editor', 'viewer'] as const) {
      const user = await signUp(t.app, `access-${role}-${driver}@example.com`);
      await t.db.database.db
        .insertInto('memberships')
        .values({ workspace_id: owner.workspaceId, user_id: user.userId, role })
        .execute();
      members[role] = user;
    }
    for (const role of COLLECTION_ROLES) {
      const created = await createCollection(owner, `Only ${role}s`, role);
      expect(created.minRole).toBe(role);
      const doc = await createDocument(t.db.database.db, owner, created.id, `${role} doc`);
      byRole[role] = { id: created.id, documentId: doc.id };
    }
  });
  afterAll(() => t.close());

  it('defaults minRole to viewer and returns it', async () => {
    const created = await createCollection(owner, 'Open');
    expect(created.minRole).toBe('viewer');
    const fetched = await call(members.viewer, 'GET', `/v1/collections/${created.id}`);
    expect(fetched.json()).toMatchObject({ id: created.id, minRole: 'viewer' });
  });

  it('a viewer cannot see an admin-only collection: 404 on every route, absent from the list', async () => {
    await expectHidden(members.viewer, byRole.admin, { canWrite: false });
    expect(await listed(members.viewer)).toEqual(expect.arrayContaining([byRole.viewer.id]));
    expect(await listed(members.viewer)).not.toContain(byRole.editor.id);
  });

  it('an editor gets 404 on every route of an admin-only collection and its documents, changing nothing', async () => {
    await expectHidden(members.editor, byRole.admin);
    await expectHidden(members.editor, byRole.owner);
    const db = t.db.database.db;
    const doc = await db
      .selectFrom('documents')
      .select(['title', 'version'])
      .where('id', '=', byRole.admin.documentId)
      .executeTakeFirstOrThrow();
    expect(doc).toEqual({ title: 'admin doc', version: 1 });
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from documents where collection_id = ${byRole.admin.id}`.execute(db);
    expect(rows[0]?.n).toBe(1);
  });

  it('an admin sees admin-only collections and their documents, but not owner-only ones', async () => {
    const ids = await listed(members.admin);
    expect(ids).toEqual(expect.arrayContaining([byRole.viewer.id, byRole.editor.id, byRole.admin.id]));
    expect(ids).not.toContain(byRole.owner.id);
    const { id, documentId } = byRole.admin;
    expect((await call(members.admin, 'GET', `/v1/collections/${id}`)).statusCode).toBe(200);
    const docs = await call(members.admin, 'GET', `/v1/collections/${id}/documents`);
    expect(docs.json<{ data: { id: string }[] }>().data.map((d) => d.id)).toEqual([documentId]);
    expect((await call(members.admin, 'GET', `/v1/documents/${documentId}`)).statusCode).toBe(200);
    const content = await call(members.admin, 'GET', `/v1/documents/${documentId}/content`);
    expect(content.body).toContain('admin doc');
    expect((await call(members.admin, 'GET', `/v1/documents/${documentId}/chunks`)).statusCode).toBe(200);
    const renamed = await call(members.admin, 'PATCH', `/v1/documents/${documentId}`, { title: 'renamed' });
    expect(renamed.statusCode).toBe(200);
    const added = await call(members.admin, 'POST', `/v1/collections/${id}/documents`, {
      text: 'Admins only.',
    });
    expect(added.statusCode, added.body).toBe(201);
    await expectHidden(members.admin, byRole.owner);
    expect((await listed(owner)).length).toBeGreaterThanOrEqual(4);
  });

  it('setting minRole above one’s own role is 403, on create and on update', async () => {
    const asAdmin = await call(members.admin, 'POST', '/v1/collections', { name: 'Mine', minRole: 'owner' });
    expect(asAdmin.statusCode).toBe(403);
    expect(asAdmin.json()).toMatchObject({ code: 'forbidden' });
    const asEditor = await call(members.editor, 'POST', '/v1/collections', {
      name: 'Mine',
      minRole: 'admin',
    });
    expect(asEditor.statusCode).toBe(403);

    const editorOwn = await createCollection(members.editor, 'Editors’ own', 'editor');
    const raise = await call(members.editor, 'PATCH', `/v1/collections/${editorOwn.id}`, {
      minRole: 'admin',
    });
    expect(raise.statusCode).toBe(403);
    const adminRaise = await call(members.admin, 'PATCH', `/v1/collections/${editorOwn.id}`, {
      minRole: 'owner',
    });
    expect(adminRaise.statusCode).toBe(403);
    // Viewers lack documents:write altogether: the route's permission refuses them first.
    const viewer = await call(members.viewer, 'PATCH', `/v1/collections/${editorOwn.id}`, {
      minRole: 'viewer',
    });
    expect(viewer.statusCode).toBe(403);

    const up = await call(members.admin, 'PATCH', `/v1/collections/${editorOwn.id}`, { minRole: 'admin' });
    expect(up.json()).toMatchObject({ minRole: 'admin' });
    expect((await call(members.editor, 'GET', `/v1/collections/${editorOwn.id}`)).statusCode).toBe(404);
    const down = await call(members.admin, 'PATCH', `/v1/collections/${editorOwn.id}`, { minRole: 'viewer' });
    expect(down.json()).toMatchObject({ minRole: 'viewer' });
    expect((await call(members.viewer, 'GET', `/v1/collections/${editorOwn.id}`)).statusCode).toBe(200);
    const audit = await t.db.database.db
      .selectFrom('audit_log')
      .select('data')
      .where('action', '=', 'collection.updated')
      .where('target_id', '=', editorOwn.id)
      .execute();
    expect(audit.map((a) => a.data)).toContainEqual(
      expect.objectContaining({ minRole: { from: 'editor', to: 'admin' } }),
    );
  });

  it('a key without an allowlist sees viewer and editor collections, never admin- or owner-only ones', async () => {
    const { key, collections } = await keyOf(['documents:read', 'documents:write']);
    expect(collections).toBeNull();
    const ids = await listed(key);
    expect(ids).toEqual(expect.arrayContaining([byRole.viewer.id, byRole.editor.id]));
    expect((await call(key, 'GET', `/v1/documents/${byRole.editor.documentId}`)).statusCode).toBe(200);
    await expectHidden(key, byRole.admin);
    await expectHidden(key, byRole.owner);
    // Nor can it make a collection invisible to itself: a key counts as an editor for minRole.
    const raise = await call(key, 'PATCH', `/v1/collections/${byRole.editor.id}`, { minRole: 'admin' });
    expect(raise.statusCode).toBe(403);
    const { key: admin } = await keyOf(['admin']);
    await expectHidden(admin, byRole.admin);
  });

  it('a key with an allowlist sees only those collections, whatever their minRole', async () => {
    const res = await createKey(
      ['documents:read', 'documents:write'],
      [byRole.owner.id, byRole.admin.id, byRole.admin.id.toUpperCase()],
    );
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json<{ id: string; key: string; collections: string[] }>();
    expect(created.collections).toEqual([byRole.admin.id, byRole.owner.id].sort());
    const list = await call(owner, 'GET', '/v1/api-keys');
    expect(list.json<{ data: { id: string; collections: string[] | null }[] }>().data).toContainEqual(
      expect.objectContaining({ id: created.id, collections: created.collections }),
    );
    const { key } = created;
    expect((await listed(key)).sort()).toEqual([byRole.admin.id, byRole.owner.id].sort());
    const doc = await call(key, 'GET', `/v1/documents/${byRole.owner.documentId}`);
    expect(doc.statusCode).toBe(200);
    await expectHidden(key, byRole.viewer);
    await expectHidden(key, byRole.editor);

    const { key: none } = await keyOf(['documents:read'], []);
    expect(await listed(none)).toEqual([]);
    await expectHidden(none, byRole.viewer, { canWrite: false });
  });

  it('an allowlist naming a foreign, missing or invisible collection is a 400 validation problem', async () => {
    const other = await signUp(t.app, `access-other-${driver}@example.com`);
    const foreign = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/collections',
        headers: { authorization: `Bearer ${other.token}`, 'x-workspace-id': other.workspaceId },
        payload: { name: 'Theirs', embedding: null },
      })
    ).json<{ id: string }>();
    const cases: [string[], SignedUp][] = [
      [[byRole.viewer.id, foreign.id], owner],
      [[randomUUID()], owner],
      // An admin cannot grant a key what the admin cannot see; the answer is the same as for a missing id.
      [[byRole.owner.id], members.admin],
    ];
    for (const [collections, as] of cases) {
      const res = await createKey(['documents:read'], collections, as);
      expect(res.statusCode, res.body).toBe(400);
      const problem = res.json<Problem>();
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors?.map((e) => e.path)).toEqual([`/collections/${collections.length - 1}`]);
    }
    const tooMany = await createKey(
      ['documents:read'],
      Array.from({ length: 101 }, () => randomUUID()),
    );
    expect(tooMany.statusCode).toBe(400);
  });

  it('a key limited to some collections cannot create an unlimited key', async () => {
    const { key } = await keyOf(['admin'], [byRole.viewer.id]);
    const unlimited = await createKey(['documents:read'], null, key);
    expect(unlimited.statusCode).toBe(403);
    const wider = await createKey(['documents:read'], [byRole.editor.id], key);
    expect(wider.statusCode).toBe(400);
    const narrower = await createKey(['documents:read'], [byRole.viewer.id], key);
    expect(narrower.statusCode, narrower.body).toBe(201);
  });

  it('the SQL predicates and the in-memory rule agree for every caller and collection', async () => {
    const rows = await t.db.database.db
      .selectFrom('collections')
      .select(['id', 'min_role'])
      .where('workspace_id', '=', owner.workspaceId)
      .where(
        'id',
        'in',
        Object.values(byRole).map((c) => c.id),
      )
      .execute();
    const contexts: WorkspaceContext[] = [
      ...COLLECTION_ROLES.map((role) => ({
        id: owner.workspaceId,
        role,
        permissions: ROLE_PERMISSIONS[role],
        collections: null,
      })),
      { id: owner.workspaceId, role: null, permissions: scopePermissions(['admin']), collections: null },
      { id: owner.workspaceId, role: null, permissions: scopePermissions(['admin']) },
      { id: owner.workspaceId, role: null, permissions: new Set(), collections: [byRole.owner.id] },
      { id: owner.workspaceId, role: null, permissions: new Set(), collections: [] },
    ];
    for (const ws of contexts) {
      const expected = rows
        .filter((c) => canSeeCollection(ws, c))
        .map((c) => c.id)
        .sort();
      const [direct, viaDocuments] = await withTenant(t.db.database.db, ws.id, async (trx) => [
        await trx
          .selectFrom('collections as col')
          .select('col.id')
          .where('col.workspace_id', '=', ws.id)
          .where(visibleCollection(ws, 'col'))
          .execute(),
        await trx
          .selectFrom('documents as d')
          .select('d.collection_id as id')
          .where('d.workspace_id', '=', ws.id)
          .where(inVisibleCollection(ws, 'd.collection_id'))
          .execute(),
      ]);
      const known = new Set(rows.map((c) => c.id));
      const ids = (list: { id: string }[]) =>
        [...new Set(list.map((c) => c.id).filter((id) => known.has(id)))].sort();
      expect(ids(direct), JSON.stringify(ws)).toEqual(expected);
      expect(ids(viaDocuments), JSON.stringify(ws)).toEqual(expected);
    }
  });

  it('search never returns chunks of a collection the caller cannot see', async () => {
    const db = t.db.database.db;
    const chunkOf = new Map<string, MembershipRole>();
    for (const role of COLLECTION_ROLES) {
      const doc = await createDocument(db, owner, byRole[role].id, `searchable ${role}`);
      // As ingestion does: chunks are written while parsing; becoming ready indexes them.
      await db.updateTable('documents').set({ status: 'parsing' }).where('id', '=', doc.id).execute();
      const chunk = await createChunk(db, doc, 0, `Zanzibar spice notes for the ${role} team.`);
      chunkOf.set(chunk.id, role);
      await db.updateTable('documents').set({ status: 'ready' }).where('id', '=', doc.id).execute();
    }
    const found = async (as: SignedUp | string, body: object = {}) => {
      const res = await call(as, 'POST', '/v1/search', { query: 'zanzibar spice', mode: 'lexical', ...body });
      expect(res.statusCode, res.body).toBe(200);
      return res
        .json<{ data: { chunkId: string }[] }>()
        .data.map((h) => chunkOf.get(h.chunkId))
        .filter((r) => r !== undefined)
        .sort();
    };
    expect(await found(owner)).toEqual(['admin', 'editor', 'owner', 'viewer']);
    expect(await found(members.admin)).toEqual(['admin', 'editor', 'viewer']);
    expect(await found(members.editor)).toEqual(['editor', 'viewer']);
    expect(await found(members.viewer)).toEqual(['viewer']);
    const unrestricted = await keyOf(['search']);
    expect(await found(unrestricted.key)).toEqual(['editor', 'viewer']);
    const allowlisted = await keyOf(['search'], [byRole.owner.id]);
    expect(await found(allowlisted.key)).toEqual(['owner']);
    // Naming a hidden collection is the same 404 as naming a missing one.
    for (const collections of [[byRole.admin.id], [randomUUID()]]) {
      const res = await call(members.viewer, 'POST', '/v1/search', { query: 'zanzibar', collections });
      expect(res.statusCode).toBe(404);
      expect(res.json<Problem>().code).toBe('not_found');
    }
  });
});
