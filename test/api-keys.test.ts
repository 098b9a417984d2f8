/** API keys over HTTP on both drivers: create once-shown keys, use them, scopes, revocation, caching. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../src/modules/api-keys/service.js';
import { createTestApp, type TestApp, fastAuth, signUp } from './helpers/app.js';
import { drivers } from './helpers/database.js';

interface Session {
  token: string;
  workspaceId: string;
}

describe.each(drivers())('API keys (%s)', (driver) => {
  let t: TestApp;
  let owner: Session;
  let other: Session;

  const signup = (label: string): Promise<Session> => signUp(t.app, `${label}-${driver}@example.com`, label);

  const asUser = (s: Session) => ({ authorization: `Bearer ${s.token}`, 'x-workspace-id': s.workspaceId });
  const createKey = (s: Session, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: '/v1/api-keys', headers: asUser(s), payload });

  beforeAll(async () => {
    t = await createTestApp(driver, {
      configure: (c) => ({
        ...c,
        argon2MemoryKib: 1024,
        argon2TimeCost: 1,
        authRateLimitMax: 1000,
        apiKeyCacheTtlMs: 60_000,
      }),
    });
    owner = await signup('keyowner');
    other = await signup('keyother');
  });
  afterAll(() => t.close());

  it('creates a key shown once, stored only as a hash, and lists it without the secret', async () => {
    const res = await createKey(owner, { name: 'CI', scopes: ['search', 'documents:read'] });
    expect(res.statusCode).toBe(201);
    const created = res.json<{ id: string; key: string; prefix: string; scopes: string[] }>();
    expect(created.key).toMatch(/^lk_live_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(created.key.startsWith(`${created.prefix}_`)).toBe(true);
    expect(created.scopes).toEqual(['documents:read', 'search']);

    const stored = await t.db.database.db
      .selectFrom('api_keys')
      .select(['key_hash'])
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toBe(hashApiKey(created.key));

    const list = await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: asUser(owner) });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(created.key);
    expect(list.json<{ data: { id: string }[] }>().data.map((k) => k.id)).toContain(created.id);
    expect(t.logs.text).not.toContain(created.key);
  });

  it('authenticates with the key in its own workspace, within its scopes', async () => {
    const { key } = (await createKey(owner, { name: 'admin bot', scopes: ['admin'] })).json<{
      key: string;
    }>();
    const asKey = { authorization: `Bearer ${key}` };
    const listed = await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: asKey });
    expect(listed.statusCode).toBe(200);
    // The key is bound to its workspace: naming another one is a 404, not a leak.
    const elsewhere = await t.app.inject({
      method: 'GET',
      url: '/v1/api-keys',
      headers: { ...asKey, 'x-workspace-id': other.workspaceId },
    });
    expect(elsewhere.statusCode).toBe(404);
    // Keys act for machines: user-only routes refuse them.
    expect((await t.app.inject({ method: 'GET', url: '/v1/me', headers: asKey })).statusCode).toBe(403);

    const { key: narrow } = (await createKey(owner, { name: 'search only', scopes: ['search'] })).json<{
      key: string;
    }>();
    const denied = await t.app.inject({
      method: 'GET',
      url: '/v1/api-keys',
      headers: { authorization: `Bearer ${narrow}` },
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ code: 'forbidden' });
  });

  it('revokes: the key stops working at once on this replica; other workspaces cannot revoke it', async () => {
    const { id, key } = (await createKey(owner, { name: 'temp', scopes: ['admin'] })).json<{
      id: string;
      key: string;
    }>();
    const asKey = { authorization: `Bearer ${key}` };
    expect((await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: asKey })).statusCode).toBe(200); // now cached

    const foreign = await t.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${id}`,
      headers: asUser(other),
    });
    expect(foreign.statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: asKey })).statusCode).toBe(200);

    const revoked = await t.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${id}`,
      headers: asUser(owner),
    });
    expect(revoked.statusCode).toBe(204);
    const after = await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: asKey });
    expect(after.statusCode).toBe(401);
    expect(after.json()).toMatchObject({ code: 'invalid_token' });
  });

  it('refuses expired keys and past expiry dates', async () => {
    const past = await createKey(owner, {
      name: 'old',
      scopes: ['search'],
      expiresAt: '2001-01-01T00:00:00Z',
    });
    expect(past.statusCode).toBe(400);
    const { id, key } = (
      await createKey(owner, {
        name: 'short',
        scopes: ['admin'],
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      })
    ).json<{ id: string; key: string }>();
    await t.db.database.db
      .updateTable('api_keys')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', id)
      .execute();
    // Not yet cached: the expired row is read and refused.
    expect(
      (
        await t.app.inject({
          method: 'GET',
          url: '/v1/api-keys',
          headers: { authorization: `Bearer ${key}` },
        })
      ).statusCode,
    ).toBe(401);
  });

  it('validates input: unknown scopes, empty scopes, malformed ids, garbage keys', async () => {
    const bad = await createKey(owner, { name: 'x', scopes: ['root'] });
    expect(bad.statusCode).toBe(400);
    expect((await createKey(owner, { name: 'x', scopes: [] })).statusCode).toBe(400);
    const malformed = await t.app.inject({
      method: 'DELETE',
      url: '/v1/api-keys/not-a-uuid',
      headers: asUser(owner),
    });
    expect(malformed.statusCode).toBe(400);
    const garbage = await t.app.inject({
      method: 'GET',
      url: '/v1/api-keys',
      headers: { authorization: 'Bearer lk_live_nope' },
    });
    expect(garbage.statusCode).toBe(401);
  });

  it('records last use in batches, not with a write per request', async () => {
    const { id, key } = (await createKey(owner, { name: 'usage', scopes: ['admin'] })).json<{
      id: string;
      key: string;
    }>();
    for (let i = 0; i < 3; i++)
      await t.app.inject({ method: 'GET', url: '/v1/api-keys', headers: { authorization: `Bearer ${key}` } });
    const lastUsed = () =>
      t.db.database.db
        .selectFrom('api_keys')
        .select('last_used_at')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
    expect((await lastUsed()).last_used_at).toBeNull();
    await t.app.close(); // flushes pending usage
    expect((await lastUsed()).last_used_at).toBeInstanceOf(Date);
    t = await createTestApp(driver, {
      reuse: t.db,
      configure: fastAuth,
    });
  });
});
