/** The audit log over HTTP on both drivers: what is recorded, who may read it, filters, pagination, secrets. */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordAudit } from '../src/modules/audit/service.js';
import { createTestApp, type TestApp, fastAuth } from './helpers/app.js';
import { drivers } from './helpers/database.js';

const PASSWORD = 'a sturdy passphrase for tests';
const WRONG_PASSWORD = 'not the passphrase at all';
const IP = '203.0.113.7';
const UA = 'audit-test/1.0';

interface Session {
  userId: string;
  email: string;
  token: string;
  workspaceId: string;
}
interface AuditEvent {
  id: string;
  workspaceId: string | null;
  action: string;
  actor: { type: string; userId: string | null; apiKeyId: string | null };
  target: { type: string; id: string | null } | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}
interface AuditPage {
  data: AuditEvent[];
  nextCursor: string | null;
}
interface Tokens {
  accessToken: string;
  refreshToken: string;
}
/** The session (refresh-token family) an access token belongs to: its `sid` claim. */
const sessionOf = (accessToken: string) =>
  (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid;
interface Key {
  id: string;
  key: string;
}

describe.each(drivers())('audit log (%s)', (driver) => {
  let t: TestApp;
  /** Every credential the suite sees; none may appear in an audit row. */
  const secrets: string[] = [PASSWORD, WRONG_PASSWORD];
  let owner: Session;
  let other: Session;
  let viewer: Session;
  let adminKey: Key;
  let searchKey: Key;
  let tempKey: Key;
  let botKey: Key;

  const client = (requestId: string) => ({ 'user-agent': UA, 'x-request-id': requestId });
  const asUser = (s: Session, workspaceId = s.workspaceId) => ({
    authorization: `Bearer ${s.token}`,
    'x-workspace-id': workspaceId,
  });

  const signup = async (label: string): Promise<Session> => {
    const email = `${label}-${driver}@example.com`;
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      headers: client(`req-signup-${label}`),
      remoteAddress: IP,
      payload: { email, password: PASSWORD, displayName: label },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json<{
      user: { id: string };
      workspace: { id: string };
      tokens: { accessToken: string; refreshToken: string };
    }>();
    secrets.push(body.tokens.accessToken, body.tokens.refreshToken);
    return { userId: body.user.id, email, token: body.tokens.accessToken, workspaceId: body.workspace.id };
  };
  const login = async (email: string, password: string, requestId: string) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: client(requestId),
      remoteAddress: IP,
      payload: { email, password },
    });
    if (res.statusCode === 200) {
      const tokens = res.json<{ accessToken: string; refreshToken: string }>();
      secrets.push(tokens.accessToken, tokens.refreshToken);
    }
    return res;
  };
  const createKey = async (
    headers: Record<string, string>,
    name: string,
    scopes: string[],
    requestId: string,
  ): Promise<Key> => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      headers: { ...headers, ...client(requestId) },
      remoteAddress: IP,
      payload: { name, scopes },
    });
    expect(res.statusCode).toBe(201);
    const key = res.json<Key>();
    secrets.push(key.key);
    return key;
  };
  const audit = (headers: Record<string, string>, query: Record<string, string | number> = {}) =>
    t.app.inject({
      method: 'GET',
      url: '/v1/audit',
      headers,
      query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])),
    });
  const auditPage = async (headers: Record<string, string>, query: Record<string, string | number> = {}) => {
    const res = await audit(headers, query);
    expect(res.statusCode, res.body).toBe(200);
    return res.json<AuditPage>();
  };
  /** Every page, following nextCursor. */
  const allPages = async (headers: Record<string, string>, query: Record<string, string | number>) => {
    const pages: AuditPage[] = [];
    let cursor: string | null = null;
    do {
      const page = await auditPage(headers, cursor === null ? query : { ...query, cursor });
      pages.push(page);
      cursor = page.nextCursor;
    } while (cursor !== null && pages.length < 50);
    return pages;
  };

  beforeAll(async () => {
    t = await createTestApp(driver, {
      configure: fastAuth,
    });
    owner = await signup('auditowner');
    expect((await login(owner.email, WRONG_PASSWORD, 'req-login-failed')).statusCode).toBe(401);
    expect((await login(owner.email, PASSWORD, 'req-login-ok')).statusCode).toBe(200);
    adminKey = await createKey(asUser(owner), 'admin bot', ['admin'], 'req-key-admin');
    searchKey = await createKey(asUser(owner), 'search bot', ['search'], 'req-key-search');
    tempKey = await createKey(asUser(owner), 'temporary', ['documents:read'], 'req-key-temp');
    const revoked = await t.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${tempKey.id}`,
      headers: { ...asUser(owner), ...client('req-key-revoke') },
      remoteAddress: IP,
    });
    expect(revoked.statusCode).toBe(204);
    // A key made by a key: the actor is the API key, not a user.
    botKey = await createKey(
      { authorization: `Bearer ${adminKey.key}` },
      'made by bot',
      ['search'],
      'req-key-bot',
    );

    other = await signup('auditother');
    viewer = await signup('auditviewer');
    // No invitation API yet: make the viewer a member of the owner's workspace directly.
    await t.db.database.db
      .insertInto('memberships')
      .values({ workspace_id: owner.workspaceId, user_id: viewer.userId, role: 'viewer' })
      .execute();
  });
  afterAll(() => t.close());

  const EXPECTED_ACTIONS = [
    'api_key.created', // made by bot
    'api_key.revoked', // temporary
    'api_key.created', // temporary
    'api_key.created', // search bot
    'api_key.created', // admin bot
    'auth.signup',
  ];

  it("lists the workspace's events newest first, with actor, target, ip, user agent and request id", async () => {
    const page = await auditPage(asUser(owner));
    expect(page.nextCursor).toBeNull();
    expect(page.data.map((e) => e.action)).toEqual(EXPECTED_ACTIONS);
    const times = page.data.map((e) => Date.parse(e.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(page.data.every((e) => e.workspaceId === owner.workspaceId)).toBe(true);

    const [byBot, revoked, temp, , , signedUp] = page.data;
    expect(signedUp).toEqual({
      id: expect.any(String) as unknown,
      workspaceId: owner.workspaceId,
      action: 'auth.signup',
      actor: { type: 'user', userId: owner.userId, apiKeyId: null },
      target: { type: 'user', id: owner.userId },
      ip: IP,
      userAgent: UA,
      requestId: 'req-signup-auditowner',
      data: { email: owner.email },
      createdAt: expect.any(String) as unknown,
    });
    expect(temp).toMatchObject({
      actor: { type: 'user', userId: owner.userId, apiKeyId: null },
      target: { type: 'api_key', id: tempKey.id },
      requestId: 'req-key-temp',
      data: { name: 'temporary', scopes: ['documents:read'], expiresAt: null },
    });
    expect(revoked).toMatchObject({
      action: 'api_key.revoked',
      actor: { type: 'user', userId: owner.userId },
      target: { type: 'api_key', id: tempKey.id },
      ip: IP,
      userAgent: UA,
      requestId: 'req-key-revoke',
      data: { name: 'temporary' },
    });
    expect(byBot).toMatchObject({
      actor: { type: 'api_key', userId: null, apiKeyId: adminKey.id },
      target: { type: 'api_key', id: botKey.id },
      requestId: 'req-key-bot',
    });
  });

  it('records instance-level events (logins, logout, token reuse) outside any workspace', async () => {
    const instance = (action: string) =>
      t.db.database.db
        .selectFrom('audit_log')
        .selectAll()
        .where('workspace_id', 'is', null)
        .where('action', '=', action)
        .where((eb) => eb.or([eb('actor_user_id', '=', owner.userId), eb('target_id', '=', owner.userId)]))
        .orderBy('created_at')
        .execute();

    const [failed] = await instance('auth.login.failed');
    expect(failed).toMatchObject({
      actor_type: 'anonymous',
      actor_user_id: null,
      target_type: 'user',
      target_id: owner.userId,
      ip: IP,
      user_agent: UA,
      request_id: 'req-login-failed',
      data: { email: owner.email, reason: 'wrong_password' },
    });
    const [succeeded] = await instance('auth.login.succeeded');
    expect(succeeded).toMatchObject({
      actor_type: 'user',
      actor_user_id: owner.userId,
      request_id: 'req-login-ok',
      data: {},
    });
    const unknown = await t.db.database.db
      .selectFrom('audit_log')
      .select(['actor_type', 'target_id', 'data'])
      .where('action', '=', 'auth.login.failed')
      .where(sql<boolean>`data->>'email' = ${`nobody-${driver}@example.com`}`)
      .execute();
    expect(unknown).toHaveLength(0);
    await login(`nobody-${driver}@example.com`, PASSWORD, 'req-login-unknown');
    expect(
      await t.db.database.db
        .selectFrom('audit_log')
        .select(['actor_type', 'target_id', 'data'])
        .where('action', '=', 'auth.login.failed')
        .where(sql<boolean>`data->>'email' = ${`nobody-${driver}@example.com`}`)
        .execute(),
    ).toEqual([
      {
        actor_type: 'anonymous',
        target_id: null,
        data: { email: `nobody-${driver}@example.com`, reason: 'unknown_email' },
      },
    ]);

    // Reuse of a spent refresh token, then a logout of another session.
    const first = (await login(owner.email, PASSWORD, 'req-login-2')).json<Tokens>();
    const rotated = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/refresh',
      payload: { refreshToken: first.refreshToken },
    });
    const pair = rotated.json<{ accessToken: string; refreshToken: string }>();
    secrets.push(pair.accessToken, pair.refreshToken);
    const reused = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/refresh',
      headers: client('req-reuse'),
      remoteAddress: IP,
      payload: { refreshToken: first.refreshToken },
    });
    expect(reused.statusCode).toBe(401);
    const [reuse] = await instance('auth.refresh.reuse_detected');
    expect(reuse).toMatchObject({
      actor_type: 'user',
      actor_user_id: owner.userId,
      request_id: 'req-reuse',
      data: { familyId: sessionOf(first.accessToken) },
    });

    const second = (await login(owner.email, PASSWORD, 'req-login-3')).json<Tokens>();
    const logout = () =>
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/logout',
        headers: client('req-logout'),
        remoteAddress: IP,
        payload: { refreshToken: second.refreshToken },
      });
    expect((await logout()).statusCode).toBe(204);
    expect((await logout()).statusCode).toBe(204); // a repeat changes nothing and is not audited
    const logouts = await instance('auth.logout');
    expect(logouts).toHaveLength(1);
    expect(logouts[0]).toMatchObject({
      actor_type: 'user',
      actor_user_id: owner.userId,
      request_id: 'req-logout',
      data: { familyId: sessionOf(second.accessToken) },
    });

    // None of these belong to a workspace, so no workspace's audit lists them.
    const page = await auditPage(asUser(owner), { action: 'auth.*' });
    expect(page.data.map((e) => e.action)).toEqual(['auth.signup']);
  });

  it('filters by action (exact or prefix), actor, target and time', async () => {
    const actions = async (query: Record<string, string>) =>
      (await auditPage(asUser(owner), query)).data.map((e) => e.action);
    expect(await actions({ action: 'api_key.*' })).toEqual(EXPECTED_ACTIONS.slice(0, 5));
    expect(await actions({ action: 'api_key.revoked' })).toEqual(['api_key.revoked']);
    expect(await actions({ action: 'auth.signup' })).toEqual(['auth.signup']);
    expect(await actions({ action: 'api_key' })).toEqual([]); // exact unless it ends in *
    expect(await actions({ action: 'api*' })).toEqual(EXPECTED_ACTIONS.slice(0, 5));
    expect(await actions({ actorUserId: owner.userId })).toEqual(EXPECTED_ACTIONS.slice(1));
    expect(await actions({ actorUserId: other.userId })).toEqual([]);
    expect(await actions({ targetType: 'api_key', targetId: tempKey.id })).toEqual([
      'api_key.revoked',
      'api_key.created',
    ]);
    const all = (await auditPage(asUser(owner))).data;
    const signupAt = all.at(-1)!.createdAt;
    expect(await actions({ to: signupAt })).toEqual([]);
    expect(await actions({ from: signupAt, action: 'auth.*' })).toEqual(['auth.signup']);
    expect(await actions({ from: new Date(Date.now() + 60_000).toISOString() })).toEqual([]);
  });

  it('rejects malformed queries and cursors with a validation problem', async () => {
    const forged = Buffer.from(`2024-02-31T00:00:00.000000|${owner.userId}`).toString('base64url');
    const queries: Record<string, string | number>[] = [
      { limit: 0 },
      { limit: 201 },
      { action: 'Not An Action' },
      { actorUserId: 'nope' },
      { from: 'yesterday' },
      { unknown: 'x' },
      { cursor: '!!!' },
      { cursor: 'bm90IGEgY3Vyc29y' },
      { cursor: forged },
    ];
    for (const query of queries) {
      const res = await audit(asUser(owner), query);
      expect(res.statusCode, JSON.stringify(query)).toBe(400);
      expect(res.json()).toMatchObject({ code: 'validation_failed' });
    }
    expect((await audit(asUser(owner), { cursor: 'bm90IGEgY3Vyc29y' })).json()).toMatchObject({
      errors: [{ in: 'querystring', path: '/cursor' }],
    });
  });

  it('paginates newest first, returning every event exactly once across pages', async () => {
    const everything = (await auditPage(asUser(owner))).data.map((e) => e.id);
    const pages = await allPages(asUser(owner), { limit: 2 });
    expect(pages.map((p) => p.data.length)).toEqual([2, 2, 2]);
    expect(pages.flatMap((p) => p.data.map((e) => e.id))).toEqual(everything);
    expect(pages.at(-1)!.nextCursor).toBeNull();

    const filtered = await allPages(asUser(owner), { limit: 2, action: 'api_key.*' });
    expect(filtered.flatMap((p) => p.data.map((e) => e.action))).toEqual(EXPECTED_ACTIONS.slice(0, 5));

    // Events of one transaction share created_at: the id breaks the tie, nothing is skipped or repeated.
    const pager = await signup('auditpager');
    await t.db.database.db.transaction().execute(async (trx) => {
      for (let i = 0; i < 7; i++) {
        await recordAudit(trx, {
          workspaceId: pager.workspaceId,
          actor: { type: 'system' },
          action: 'test.batch',
          data: { i },
        });
      }
    });
    const batch = await allPages(asUser(pager), { limit: 3, action: 'test.*' });
    expect(batch.map((p) => p.data.length)).toEqual([3, 3, 1]);
    const seen = batch.flatMap((p) => p.data.map((e) => e.data.i));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(new Set(batch.flatMap((p) => p.data.map((e) => e.createdAt))).size).toBe(1);
  });

  it('keeps workspaces apart: another owner sees none of these events and cannot name this workspace', async () => {
    const theirs = await auditPage(asUser(other));
    expect(theirs.data.map((e) => e.action)).toEqual(['auth.signup']);
    expect(theirs.data[0]!.actor.userId).toBe(other.userId);
    const ours = new Set((await auditPage(asUser(owner))).data.map((e) => e.id));
    expect(theirs.data.some((e) => ours.has(e.id))).toBe(false);

    const foreign = await audit(asUser(other, owner.workspaceId));
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json()).toMatchObject({ code: 'not_found' });
    const unauthenticated = await t.app.inject({ method: 'GET', url: '/v1/audit' });
    expect(unauthenticated.statusCode).toBe(401);
  });

  it('needs audit:read: viewers and narrow keys are refused, admin keys allowed in their own workspace', async () => {
    const asViewer = await audit(asUser(viewer, owner.workspaceId));
    expect(asViewer.statusCode).toBe(403);
    expect(asViewer.json()).toMatchObject({ code: 'forbidden' });

    const narrow = await audit({ authorization: `Bearer ${searchKey.key}` });
    expect(narrow.statusCode).toBe(403);

    const asAdminKey = await auditPage({ authorization: `Bearer ${adminKey.key}` });
    expect(asAdminKey.data.map((e) => e.action)).toEqual(EXPECTED_ACTIONS);
    const elsewhere = await audit({
      authorization: `Bearer ${adminKey.key}`,
      'x-workspace-id': other.workspaceId,
    });
    expect(elsewhere.statusCode).toBe(404);
  });

  it('audits a revocation once, and only the change', async () => {
    const again = await t.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${tempKey.id}`,
      headers: asUser(owner),
    });
    expect(again.statusCode).toBe(204);
    const page = await auditPage(asUser(owner), { action: 'api_key.revoked' });
    expect(page.data).toHaveLength(1);
  });

  it('never stores a password, token or API key', async () => {
    // Through the recorder: secret-named entries and credential-shaped values are dropped and listed.
    await recordAudit(t.db.database.db, {
      workspaceId: null,
      actor: { type: 'system' },
      action: 'test.sanitised',
      data: {
        password: PASSWORD,
        nested: { refreshToken: secrets[3], apiKeyId: adminKey.id },
        note: adminKey.key,
      },
    });
    const stored = await t.db.database.db
      .selectFrom('audit_log')
      .select('data')
      .where('action', '=', 'test.sanitised')
      .executeTakeFirstOrThrow();
    expect(stored.data).toEqual({
      nested: { apiKeyId: adminKey.id },
      redactedFields: ['password', 'nested.refreshToken', 'note'],
    });

    const { rows } = await sql<{ row: string }>`select a::text as row from audit_log a`.execute(
      t.db.database.db,
    );
    expect(rows.length).toBeGreaterThan(10);
    const everything = rows.map((r) => r.row).join('\n');
    // The secret half of `lk_live_<8 hex>_<base64url>`; base64url may itself contain `_`, so split at
    // the third underscore only (splitting at the last one could leave a 2-character fragment that
    // turns up by chance inside some uuid).
    const keySecrets = [adminKey, searchKey, tempKey, botKey].map((k) => k.key.split('_').slice(3).join('_'));
    for (const secret of [...secrets, ...keySecrets]) {
      expect(everything.includes(secret), `audit_log contains a secret (${secret.slice(0, 8)}…)`).toBe(false);
    }
  });

  it('records an upload and its replacement: request, target, size, hash and version', async () => {
    const headers = { authorization: `Bearer ${adminKey.key}` };
    const collection = await t.app.inject({
      method: 'POST',
      url: '/v1/collections',
      headers,
      payload: { name: 'Audited', embedding: null },
    });
    expect(collection.statusCode, collection.body).toBe(201);
    const collectionId = collection.json<{ id: string }>().id;
    const add = (text: string, requestId: string) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/collections/${collectionId}/documents`,
        headers: { ...headers, ...client(requestId) },
        remoteAddress: IP,
        payload: { text, externalId: 'audited' },
      });
    const texts = [
      'The first version of the audited text.',
      'The second, longer version of the audited text.',
    ];
    const created = await add(texts[0]!, 'req-doc-created');
    expect(created.statusCode, created.body).toBe(201);
    const documentId = created.json<{ document: { id: string } }>().document.id;
    const replaced = await add(texts[1]!, 'req-doc-replaced');
    expect(replaced.json<{ outcome: string }>().outcome).toBe('updated');

    const event = (text: string, action: string, requestId: string, version: number) => ({
      workspaceId: owner.workspaceId,
      action,
      actor: { type: 'api_key', userId: null, apiKeyId: adminKey.id },
      target: { type: 'document', id: documentId },
      ip: IP,
      userAgent: UA,
      requestId,
      data: {
        collectionId,
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
        version,
      },
    });
    const page = await auditPage(headers, { action: 'document.*' });
    expect(page.data).toMatchObject([
      event(texts[1]!, 'document.replaced', 'req-doc-replaced', 2),
      event(texts[0]!, 'document.created', 'req-doc-created', 1),
    ]);
  });

  it('refuses actions that are not dotted names', async () => {
    await expect(
      recordAudit(t.db.database.db, { workspaceId: null, actor: { type: 'system' }, action: 'Login' }),
    ).rejects.toThrow(/dotted action/);
  });
});
