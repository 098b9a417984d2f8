/** Accounts and sessions over HTTP, on both drivers: the full flows and their failure modes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateJwk, KeyRing } from '../src/modules/auth/keys.js';
import { hashToken } from '../src/modules/auth/service.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';

interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  tokenType: string;
}
const PASSWORD = 'a sturdy passphrase for tests';

describe.each(drivers())('accounts and sessions (%s)', (driver) => {
  let t: TestApp;
  const email = (label: string) => `${label}-${driver}@example.com`;

  const signup = (label: string, extra: Record<string, unknown> = {}) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email(label), password: PASSWORD, displayName: `User ${label}`, ...extra },
    });
  const login = (address: string, password = PASSWORD) =>
    t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: address, password } });
  const refresh = (refreshToken: string) =>
    t.app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } });
  const me = (accessToken?: string) =>
    t.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {},
    });

  beforeAll(async () => {
    // Cheap argon2 parameters keep the suite fast; the rehash test raises them.
    t = await createTestApp(driver, {
      configure: (c) => ({
        ...c,
        argon2MemoryKib: 1024,
        argon2TimeCost: 1,
        passwordMinLength: 12,
        authRateLimitMax: 1000,
      }),
    });
  });
  afterAll(() => t.close());

  it('signs up: creates the user, a workspace they own, and a session', async () => {
    const res = await signup('ada', { workspaceName: 'Analytical Engines' });
    expect(res.statusCode).toBe(201);
    const body = res.json<{
      user: { id: string; email: string };
      workspace: { id: string; slug: string };
      tokens: Tokens;
    }>();
    expect(body.user.email).toBe(email('ada'));
    expect(body.workspace.slug).toMatch(/^analytical-engines-[0-9a-f]{6}$/);
    expect(body.tokens.tokenType).toBe('Bearer');

    const profile = await me(body.tokens.accessToken);
    expect(profile.statusCode).toBe(200);
    expect(profile.json()).toMatchObject({
      user: { id: body.user.id, email: email('ada') },
      memberships: [{ workspaceId: body.workspace.id, role: 'owner', name: 'Analytical Engines' }],
    });
  });

  it('normalises emails and refuses a second account for the same address', async () => {
    expect((await signup('Case.Sensitive')).statusCode).toBe(201);
    const again = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email('case.sensitive').toUpperCase(), password: PASSWORD, displayName: 'Dup' },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'email_taken' });
  });

  it('enforces the password policy, listing every reason', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email('weak'), password: 'password', displayName: 'Weak' },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ code: string; errors: { message: string }[] }>();
    expect(body.code).toBe('weak_password');
    expect(body.errors.map((e) => e.message)).toEqual(['must be at least 12 characters', 'is too common']);
    const contains = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: 'grace.hopper@example.com', password: 'grace.hopper-2024!', displayName: 'G' },
    });
    expect(contains.json<{ detail: string }>().detail).toMatch(/must not contain your email address/);
  });

  it('logs in, and answers the same 401 for a wrong password and an unknown email', async () => {
    await signup('bob');
    const ok = await login(email('bob'));
    expect(ok.statusCode).toBe(200);
    expect((await me(ok.json<Tokens>().accessToken)).statusCode).toBe(200);

    const wrong = await login(email('bob'), 'not the passphrase at all');
    const unknown = await login(email('nobody'));
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    const strip = (b: Record<string, unknown>) => ({ ...b, requestId: undefined });
    expect(strip(wrong.json())).toEqual(strip(unknown.json()));
    expect(wrong.json()).toMatchObject({ code: 'invalid_credentials' });
  });

  it('rotates refresh tokens; reusing a spent one revokes the whole session', async () => {
    await signup('carol');
    const first = (await login(email('carol'))).json<Tokens>();
    const second = await refresh(first.refreshToken);
    expect(second.statusCode).toBe(200);
    const pair2 = second.json<Tokens>();
    expect(pair2.refreshToken).not.toBe(first.refreshToken);
    expect((await me(pair2.accessToken)).statusCode).toBe(200);

    // An attacker replays the spent token: refused, and the legitimate newer token dies with it.
    const replay = await refresh(first.refreshToken);
    expect(replay.statusCode).toBe(401);
    expect(replay.json()).toMatchObject({ code: 'invalid_token' });
    expect((await refresh(pair2.refreshToken)).statusCode).toBe(401);

    const family = await t.db.database.db
      .selectFrom('refresh_tokens')
      .select(['revoked_reason'])
      .where('token_hash', '=', hashToken(pair2.refreshToken))
      .executeTakeFirstOrThrow();
    expect(family.revoked_reason).toBe('reuse_detected');
  });

  it('logs out: the refresh token no longer works; logout is idempotent', async () => {
    await signup('dave');
    const pair = (await login(email('dave'))).json<Tokens>();
    const out = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      payload: { refreshToken: pair.refreshToken },
    });
    expect(out.statusCode).toBe(204);
    expect((await refresh(pair.refreshToken)).statusCode).toBe(401);
    const again = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      payload: { refreshToken: pair.refreshToken },
    });
    expect(again.statusCode).toBe(204);
  });

  it('supports browsers: refresh token in an HttpOnly cookie, CSRF-checked refresh and logout', async () => {
    await signup('frank');
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: email('frank'), password: PASSWORD, session: 'cookie' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('refreshToken');
    const cookie = (name: string, r = res) => r.cookies.find((c) => c.name === name);
    const refresh1 = cookie('larder_refresh')!;
    const csrf = cookie('larder_csrf')!;
    expect(refresh1).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/v1/auth' });
    expect(refresh1.value).toMatch(/^lr_/);
    expect(csrf.httpOnly).toBeFalsy();

    const jar = { larder_refresh: refresh1.value, larder_csrf: csrf.value };
    const noCsrf = await t.app.inject({ method: 'POST', url: '/v1/auth/refresh', cookies: jar, payload: {} });
    expect(noCsrf.statusCode).toBe(403);
    const wrongCsrf = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/refresh',
      cookies: jar,
      headers: { 'x-csrf-token': 'forged' },
      payload: {},
    });
    expect(wrongCsrf.statusCode).toBe(403);

    const rotated = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/refresh',
      cookies: jar,
      headers: { 'x-csrf-token': csrf.value },
      payload: {},
    });
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json()).not.toHaveProperty('refreshToken');
    expect((await me(rotated.json<Tokens>().accessToken)).statusCode).toBe(200);
    const refresh2 = cookie('larder_refresh', rotated)!;
    expect(refresh2.value).not.toBe(refresh1.value);

    const jar2 = { larder_refresh: refresh2.value, larder_csrf: cookie('larder_csrf', rotated)!.value };
    const out = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      cookies: jar2,
      headers: { 'x-csrf-token': jar2.larder_csrf },
      payload: {},
    });
    expect(out.statusCode).toBe(204);
    expect(cookie('larder_refresh', out)?.value).toBe('');
    expect((await refresh(refresh2.value)).statusCode).toBe(401);
  });

  it('requires a valid access token on user routes', async () => {
    const none = await me();
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ code: 'unauthenticated' });
    expect((await me('not.a.jwt')).json()).toMatchObject({ code: 'invalid_token' });
    // Signed by a key this server does not have.
    const stranger = await KeyRing.fromJwks([await generateJwk()], { issuer: 'larder', ttlSeconds: 60 });
    const forged = await stranger.sign({ sub: '018f0000-0000-7000-8000-000000000000', sid: 'x' });
    expect((await me(forged)).json()).toMatchObject({ code: 'invalid_token' });
  });

  it('stores no password, refresh token or access token in clear text', async () => {
    const res = await signup('erin');
    const { tokens, user } = res.json<{ tokens: Tokens; user: { id: string } }>();
    const db = t.db.database.db;
    const row = await db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
    expect(row.password_hash).not.toContain(PASSWORD);
    const stored = await db
      .selectFrom('refresh_tokens')
      .select('token_hash')
      .where('user_id', '=', user.id)
      .execute();
    expect(stored.map((r) => r.token_hash)).toEqual([hashToken(tokens.refreshToken)]);
    expect(JSON.stringify(stored)).not.toContain(tokens.refreshToken);
    expect(t.logs.text).not.toContain(tokens.refreshToken);
    expect(t.logs.text).not.toContain(tokens.accessToken);
    expect(t.logs.text).not.toContain(PASSWORD);
  });
});

describe.each(drivers())('password rehash and sign-up switch (%s)', (driver) => {
  it('rehashes a password at login when the argon2 parameters change', async () => {
    const t = await createTestApp(driver, {
      configure: (c) => ({ ...c, argon2MemoryKib: 1024, argon2TimeCost: 1 }),
    });
    const email = `rehash-${driver}@example.com`;
    await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email, password: PASSWORD, displayName: 'R' },
    });
    await t.app.close();
    const t2 = await createTestApp(driver, {
      reuse: t.db,
      configure: (c) => ({ ...c, argon2MemoryKib: 2048, argon2TimeCost: 2 }),
    });
    try {
      const res = await t2.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password: PASSWORD },
      });
      expect(res.statusCode).toBe(200);
      const row = await t2.db.database.db
        .selectFrom('users')
        .select('password_hash')
        .where('email', '=', email)
        .executeTakeFirstOrThrow();
      expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=2048,t=2,p=1\$/);
    } finally {
      await t2.close();
    }
  });

  it('slows brute force: login attempts beyond the per-IP budget answer 429 with Retry-After', async () => {
    const t = await createTestApp(driver, {
      configure: (c) => ({
        ...c,
        argon2MemoryKib: 1024,
        argon2TimeCost: 1,
        authRateLimitMax: 3,
        authRateLimitWindowMs: 60_000,
      }),
    });
    try {
      const attempt = () =>
        t.app.inject({
          method: 'POST',
          url: '/v1/auth/login',
          payload: { email: `bf-${driver}@example.com`, password: 'guess guess guess' },
        });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await attempt()).statusCode);
      expect(statuses).toEqual([401, 401, 401, 429]);
      const limited = await attempt();
      expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(limited.json()).toMatchObject({ code: 'rate_limited' });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Other routes keep their own, larger budget.
      expect((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('refuses sign-up when disabled', async () => {
    const t = await createTestApp(driver, { configure: (c) => ({ ...c, signupEnabled: false }) });
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/signup',
        payload: { email: `off-${driver}@example.com`, password: PASSWORD, displayName: 'Off' },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'signup_disabled' });
    } finally {
      await t.close();
    }
  });
});
