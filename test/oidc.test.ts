/**
 * Single sign-on over real HTTP, on both drivers: a real OpenID provider (`oidc-provider`) runs
 * in-process on 127.0.0.1, Larder listens on a real port, and a small "browser" (fetch with manual
 * redirects and a cookie jar) walks Larder /start → provider /auth → login and consent interactions →
 * provider → Larder /callback. Nothing leaves 127.0.0.1: the browser refuses any other host.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
// @ts-expect-error -- oidc-provider ships no type declarations; the part used here is typed below
import ProviderExport from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthService } from '../src/modules/auth/service.js';
import { oidcRoutes, STATE_COOKIE } from '../src/modules/oidc/routes.js';
import { OidcService, type OidcServiceOptions } from '../src/modules/oidc/service.js';
import { createTestApp, type TestApp, fastAuth } from './helpers/app.js';
import { createTestDatabase, drivers } from './helpers/database.js';
import { createTenant, type Tenant } from './helpers/factories.js';

// ---------------------------------------------------------------------------------------------------
// The identity provider

interface Interaction {
  prompt: { name: string };
  params: Record<string, unknown>;
  session?: { accountId?: string };
}
interface Grant {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}
interface Provider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  Grant: new (init: { accountId: string; clientId: string }) => Grant;
}
const ProviderClass = ProviderExport as new (issuer: string, configuration: object) => Provider;

interface Account {
  email: string;
  email_verified: boolean;
  name: string;
}

/** What the user does at the provider's login page: sign in as an account, or cancel. */
type Plan = { accountId: string } | { error: string };

const CLIENT_ID = 'larder';
const CLIENT_SECRET = 'a client secret for the oidc tests';

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port that was free a moment ago (Larder's redirect URI must be known before it listens). */
async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

class TestIdentityProvider {
  readonly accounts = new Map<string, Account>();
  plan: Plan = { error: 'login_required' };
  issuer = '';
  #server = createServer();

  async start(redirectUri: string): Promise<void> {
    const port = await listen(this.#server);
    this.issuer = `http://127.0.0.1:${port}`;
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const provider = new ProviderClass(this.issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      pkce: { required: () => true },
      features: { devInteractions: { enabled: false } },
      interactions: {
        url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
      },
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      // Scope claims stay out of the ID token (the default, conformIdTokenClaims): Larder must read
      // them from userinfo, as with conformant providers.
      findAccount: (_ctx: unknown, sub: string) => {
        const account = this.accounts.get(sub);
        return account && { accountId: sub, claims: async () => ({ sub, ...account }) };
      },
      cookies: { keys: [randomBytes(32).toString('hex')] },
      ttl: {
        AccessToken: 600,
        AuthorizationCode: 60,
        Grant: 600,
        IdToken: 600,
        Interaction: 600,
        Session: 600,
      },
      jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'test', alg: 'RS256', use: 'sig' }] },
    });
    const handle = provider.callback();
    this.#server.on('request', (req, res) => {
      if (req.url?.startsWith('/interaction/')) {
        this.#interact(provider, req, res).catch((error: unknown) => {
          res.statusCode = 500;
          res.end(String(error));
        });
      } else {
        handle(req, res);
      }
    });
  }

  /** The login and consent pages, answered programmatically from `plan`. */
  async #interact(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const plan = this.plan;
    if ('error' in plan) {
      await provider.interactionFinished(
        req,
        res,
        { error: plan.error, error_description: 'The user cancelled the sign-in' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: plan.accountId } });
      return;
    }
    const grant = new provider.Grant({
      accountId: details.session?.accountId ?? plan.accountId,
      clientId: String(details.params.client_id),
    });
    grant.addOIDCScope(String(details.params.scope));
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

// ---------------------------------------------------------------------------------------------------
// The browser

interface StoredCookie {
  host: string;
  path: string;
  name: string;
  value: string;
}

/** fetch with manual redirects and a cookie jar (per host, like browsers; ports do not separate). */
class Browser {
  readonly cookies: StoredCookie[] = [];

  cookie(name: string): StoredCookie | undefined {
    return this.cookies.find((c) => c.name === name);
  }

  async get(url: URL): Promise<Response> {
    if (url.hostname !== '127.0.0.1')
      throw new Error(`the test browser only visits 127.0.0.1, not ${url.href}`);
    const header = this.cookies
      .filter((c) => c.host === url.hostname && pathMatches(url.pathname, c.path))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: header ? { cookie: header } : {} });
    for (const line of res.headers.getSetCookie()) this.#store(url, line);
    return res;
  }

  /**
   * Follows redirects from `url`. Stops before fetching a URL `stop` accepts or one off 127.0.0.1
   * (then `response` is undefined and `url` is where the browser was sent).
   */
  async navigate(
    url: URL | string,
    stop?: (url: URL) => boolean,
  ): Promise<{ url: URL; response?: Response }> {
    let current = new URL(url);
    for (let hops = 0; hops < 20; hops++) {
      if (current.hostname !== '127.0.0.1' || stop?.(current)) return { url: current };
      const response = await this.get(current);
      const location = response.headers.get('location');
      if (response.status < 300 || response.status >= 400 || !location) return { url: current, response };
      await response.body?.cancel();
      current = new URL(location, current);
    }
    throw new Error('too many redirects');
  }

  #store(url: URL, line: string): void {
    const [pair = '', ...attributes] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const attribute of attributes) {
      const [key = '', val = ''] = attribute.split('=');
      if (key.toLowerCase() === 'path') path = val;
      if (key.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      if (key.toLowerCase() === 'expires' && Date.parse(val) <= Date.now()) expired = true;
    }
    const index = this.cookies.findIndex(
      (c) => c.host === url.hostname && c.path === path && c.name === name,
    );
    if (index !== -1) this.cookies.splice(index, 1);
    if (!expired) this.cookies.push({ host: url.hostname, path, name, value });
  }
}

const pathMatches = (requestPath: string, cookiePath: string) =>
  requestPath === cookiePath ||
  (requestPath.startsWith(cookiePath) &&
    (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'));

const isCallback = (url: URL) => url.pathname === '/v1/auth/oidc/callback';

// ---------------------------------------------------------------------------------------------------

interface Tokens {
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  refreshToken: string;
}
interface Me {
  user: { id: string; email: string; displayName: string | null };
  memberships: { workspaceId: string; role: string }[];
}
interface Problem {
  type: string;
  status: number;
  code: string;
  detail?: string;
  providerError?: string;
}

const PASSWORD = 'a sturdy passphrase for tests';
const RETURN_TO = 'https://app.example.com/sso-complete';

describe.each(drivers())('single sign-on with OpenID Connect (%s)', (driver) => {
  let t: TestApp;
  let idp: TestIdentityProvider;
  let larder: string;
  let options: Omit<OidcServiceOptions, 'provisioning'>;
  let workspace: Tenant;
  const email = (label: string) => `${label}-${driver}@example.com`;

  /** Registers an account at the provider; its id is the OIDC subject. */
  const account = (id: string, claims: Partial<Account> = {}): string => {
    idp.accounts.set(id, { email: email(id), email_verified: true, name: `User ${id}`, ...claims });
    return id;
  };

  /** A whole sign-in in a fresh browser, stopping at the provider's redirect back to Larder. */
  const toCallback = async (plan: Plan, start = `${larder}/v1/auth/oidc/start`) => {
    idp.plan = plan;
    const browser = new Browser();
    const { url } = await browser.navigate(start, isCallback);
    expect(isCallback(url)).toBe(true);
    return { browser, callback: url };
  };

  /** A whole sign-in: Larder's answer from the callback. */
  const signIn = async (plan: Plan) => {
    const { browser, callback } = await toCallback(plan);
    const { response } = await browser.navigate(callback);
    if (!response) throw new Error('the callback redirected off 127.0.0.1');
    return { browser, callback, response };
  };

  const me = async (accessToken: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: { authorization: `Bearer ${accessToken}` },
    });
    expect(res.statusCode).toBe(200);
    return res.json<Me>();
  };

  const expectProblem = async (response: Response, status: number, code: string): Promise<Problem> => {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const body = (await response.json()) as Problem;
    expect(body).toMatchObject({ status, code, type: `urn:larder:problem:${code}` });
    return body;
  };

  const countUsers = async (address: string) =>
    (await t.db.database.db.selectFrom('users').select('id').where('email', '=', address).execute()).length;

  beforeAll(async () => {
    const port = await freePort();
    larder = `http://127.0.0.1:${port}`;
    const redirectUri = `${larder}/v1/auth/oidc/callback`;
    idp = new TestIdentityProvider();
    await idp.start(redirectUri);
    options = {
      issuerUrl: idp.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUri,
      stateSecret: randomBytes(32).toString('base64url'),
      returnToAllowList: [RETURN_TO],
      allowInsecureHttp: true,
    };
    // The provisioning workspace must exist before the plugin is registered with its id.
    const db = await createTestDatabase(driver);
    workspace = await createTenant(db.database.db, `sso-${driver}-${randomBytes(3).toString('hex')}`);
    t = await createTestApp(driver, {
      reuse: db,
      configure: fastAuth,
      routes: (app) =>
        void app.register(oidcRoutes, {
          ...options,
          keys: app.deps.keys,
          provisioning: { workspaceId: workspace.workspaceId, role: 'editor' },
        }),
    });
    await t.app.listen({ port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await t.close();
    await idp.close();
  });

  it('starts a login: a redirect to the provider with PKCE, state and nonce, and a scoped state cookie', async () => {
    const res = await new Browser().get(new URL(`${larder}/v1/auth/oidc/start`));
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = new URL(res.headers.get('location') ?? '');
    expect(location.origin).toBe(idp.issuer);
    expect(Object.fromEntries(location.searchParams)).toMatchObject({
      client_id: CLIENT_ID,
      response_type: 'code',
      redirect_uri: `${larder}/v1/auth/oidc/callback`,
      scope: 'openid email profile',
      code_challenge_method: 'S256',
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) as unknown,
      state: expect.any(String) as unknown,
      nonce: expect.any(String) as unknown,
    });
    const [setCookie = ''] = res.headers.getSetCookie();
    expect(setCookie).toMatch(new RegExp(`^${STATE_COOKIE}=`));
    expect(setCookie).toMatch(/; Max-Age=600/);
    expect(setCookie).toMatch(/; Path=\/v1\/auth\/oidc/);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Lax/);
    expect(setCookie).not.toMatch(/; Secure/); // allowInsecureHttp (tests on http://127.0.0.1) only
    // The state and the PKCE verifier are sealed, not readable, in the cookie.
    expect(setCookie).not.toContain(location.searchParams.get('state') ?? '-');
  });

  it('provisions a new user just in time, into the configured workspace with the configured role', async () => {
    const subject = account('jit', { name: 'Jit Person' });
    const { browser, callback, response } = await signIn({ accountId: subject });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const tokens = (await response.json()) as Tokens;
    expect(tokens.tokenType).toBe('Bearer');
    expect(browser.cookie(STATE_COOKIE)).toBeUndefined(); // cleared by the callback

    const profile = await me(tokens.accessToken);
    expect(profile.user).toMatchObject({ email: email('jit'), displayName: 'Jit Person' });
    expect(profile.memberships).toEqual([
      expect.objectContaining({ workspaceId: workspace.workspaceId, role: 'editor' }),
    ]);
    const db = t.db.database.db;
    const user = await db
      .selectFrom('users')
      .select(['password_hash', 'email_verified_at'])
      .where('id', '=', profile.user.id)
      .executeTakeFirstOrThrow();
    expect(user.password_hash).toBeNull();
    expect(user.email_verified_at).not.toBeNull();
    const loginLine = t.logs.records().find((r) => r.msg === 'signed in with SSO');
    expect(loginLine).toMatchObject({ userId: profile.user.id, outcome: 'provisioned' });
    const audited = await db
      .selectFrom('audit_log')
      .select(['action', 'actor_user_id'])
      .where('target_id', '=', profile.user.id)
      .execute();
    expect(audited).toContainEqual({ action: 'auth.sso.provisioned', actor_user_id: profile.user.id });
    expect(t.logs.text).not.toContain(tokens.refreshToken);
    expect(t.logs.text).not.toContain(callback.searchParams.get('code') ?? '-'); // redacted in URLs
    const identity = await db
      .selectFrom('oidc_identities')
      .selectAll()
      .where('user_id', '=', profile.user.id)
      .executeTakeFirstOrThrow();
    expect(identity).toMatchObject({
      issuer: idp.issuer,
      subject,
      email: email('jit'),
      email_verified: true,
      claims: { name: 'Jit Person' },
    });
    expect(identity.last_login_at).not.toBeNull();

    // The refresh token is a normal Larder session.
    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/refresh',
      payload: { refreshToken: tokens.refreshToken },
    });
    expect(refreshed.statusCode).toBe(200);
  });

  it('signs the same identity in again: same user, one link, even after the email changed at the provider', async () => {
    const subject = account('again');
    const first = (await (await signIn({ accountId: subject })).response.json()) as Tokens;
    const userId = (await me(first.accessToken)).user.id;

    const second = (await (await signIn({ accountId: subject })).response.json()) as Tokens;
    expect((await me(second.accessToken)).user.id).toBe(userId);

    account(subject, { email: email('again-renamed'), email_verified: false });
    const third = (await (await signIn({ accountId: subject })).response.json()) as Tokens;
    const profile = await me(third.accessToken);
    expect(profile.user).toMatchObject({ id: userId, email: email('again') });
    expect(profile.memberships).toHaveLength(1);

    const links = await t.db.database.db
      .selectFrom('oidc_identities')
      .select(['user_id', 'email', 'email_verified'])
      .where('issuer', '=', idp.issuer)
      .where('subject', '=', subject)
      .execute();
    expect(links).toEqual([{ user_id: userId, email: email('again-renamed'), email_verified: false }]);
    expect(await countUsers(email('again-renamed'))).toBe(0);
  });

  it('links to an existing password account by verified email, without creating a second account', async () => {
    const signup = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email('linda'), password: PASSWORD, displayName: 'Linda' },
    });
    expect(signup.statusCode).toBe(201);
    const { user, workspace: own } = signup.json<{ user: { id: string }; workspace: { id: string } }>();

    // The provider spells the address differently; it is the same mailbox.
    const subject = account('linda-at-idp', { email: email('linda').toUpperCase() });
    const { response } = await signIn({ accountId: subject });
    expect(response.status).toBe(200);
    const profile = await me(((await response.json()) as Tokens).accessToken);
    expect(profile.user.id).toBe(user.id);
    // Linking is not provisioning: no membership in the SSO workspace is added.
    expect(profile.memberships).toEqual([expect.objectContaining({ workspaceId: own.id, role: 'owner' })]);
    expect(await countUsers(email('linda'))).toBe(1);
    const link = await t.db.database.db
      .selectFrom('oidc_identities')
      .select('user_id')
      .where('subject', '=', subject)
      .executeTakeFirstOrThrow();
    expect(link.user_id).toBe(user.id);
    const linked = await t.db.database.db
      .selectFrom('users')
      .select(['email_verified_at', 'password_hash'])
      .where('id', '=', user.id)
      .executeTakeFirstOrThrow();
    expect(linked.email_verified_at).not.toBeNull(); // the provider vouched for the address
    expect(linked.password_hash).not.toBeNull();

    // The password still works.
    const login = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: email('linda'), password: PASSWORD },
    });
    expect(login.statusCode).toBe(200);
  });

  it('refuses an unverified email: no account is created and no existing account is linked', async () => {
    const stranger = account('unverified', { email_verified: false });
    const refused = await expectProblem((await signIn({ accountId: stranger })).response, 403, 'forbidden');
    expect(refused.detail).toMatch(/email_verified/);
    expect(await countUsers(email('unverified'))).toBe(0);

    // Someone at the provider claims an existing user's address without verifying it.
    await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email('victim'), password: PASSWORD, displayName: 'Victim' },
    });
    const squatter = account('squatter', { email: email('victim'), email_verified: false });
    await expectProblem((await signIn({ accountId: squatter })).response, 403, 'forbidden');
    const links = await t.db.database.db
      .selectFrom('oidc_identities')
      .select('id')
      .where('subject', 'in', [stranger, squatter])
      .execute();
    expect(links).toEqual([]);
  });

  it('refuses a disabled account', async () => {
    const subject = account('disabled');
    const tokens = (await (await signIn({ accountId: subject })).response.json()) as Tokens;
    const { user } = await me(tokens.accessToken);
    await t.db.database.db
      .updateTable('users')
      .set({ disabled_at: new Date() })
      .where('id', '=', user.id)
      .execute();
    const refused = await expectProblem((await signIn({ accountId: subject })).response, 403, 'forbidden');
    expect(refused.detail).toMatch(/disabled/);
  });

  it('without provisioning, refuses people who have no account', async () => {
    const service = new OidcService(
      t.db.database.db,
      new AuthService(t.db.database.db, t.app.deps.config, t.app.deps.keys),
      { ...options, provisioning: null },
    );
    const client = { ip: '127.0.0.1', userAgent: null };
    const signInWith = async (accountId: string) => {
      const { authorizationUrl, sealedState } = await service.start();
      idp.plan = { accountId };
      const { url } = await new Browser().navigate(authorizationUrl, isCallback);
      return service.callback(url, sealedState, client);
    };

    const nobody = account('nobody');
    await expect(signInWith(nobody)).rejects.toMatchObject({
      code: 'forbidden',
      detail: expect.stringMatching(/does not create accounts/) as unknown,
    });
    expect(await countUsers(email('nobody'))).toBe(0);

    // Existing accounts still sign in (and link).
    await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: { email: email('member'), password: PASSWORD, displayName: 'Member' },
    });
    const login = await signInWith(account('member'));
    expect(login.outcome).toBe('linked');
    expect((await me(login.tokens.accessToken)).user.email).toBe(email('member'));
  });

  it('refuses a callback without the state cookie, e.g. a callback URL opened in another browser', async () => {
    const { callback } = await toCallback({ accountId: account('no-cookie') });
    const problem = await expectProblem(await new Browser().get(callback), 400, 'bad_request');
    expect(problem.detail).toMatch(/state cookie is missing/);
    expect(await countUsers(email('no-cookie'))).toBe(0);
  });

  it('refuses a callback whose state does not match the cookie, or whose cookie was tampered with', async () => {
    const subject = account('tamper');
    const forged = await toCallback({ accountId: subject });
    forged.callback.searchParams.set('state', 'attacker-chosen-state');
    const mismatch = await expectProblem(await forged.browser.get(forged.callback), 400, 'bad_request');
    expect(mismatch.detail).toMatch(/state parameter does not match/);
    expect(forged.browser.cookie(STATE_COOKIE)).toBeUndefined(); // spent on failure too

    const tampered = await toCallback({ accountId: subject });
    const cookie = tampered.browser.cookie(STATE_COOKIE);
    if (!cookie) throw new Error('no state cookie');
    const last = cookie.value.at(-2) === 'A' ? 'B' : 'A';
    cookie.value = `${cookie.value.slice(0, -2)}${last}${cookie.value.slice(-1)}`;
    const invalid = await expectProblem(await tampered.browser.get(tampered.callback), 400, 'bad_request');
    expect(invalid.detail).toMatch(/invalid or expired/);
    expect(await countUsers(email('tamper'))).toBe(0);
  });

  it('refuses to replay a callback: the cookie is spent, and the provider refuses a used code', async () => {
    const { browser, callback } = await toCallback({ accountId: account('replay') });
    const sealed = browser.cookie(STATE_COOKIE)?.value ?? '';
    expect((await browser.get(callback)).status).toBe(200);
    await expectProblem(await browser.get(callback), 400, 'bad_request');

    // Even with the old cookie put back, the authorization code is single-use at the provider.
    browser.cookies.push({ host: '127.0.0.1', path: '/v1/auth/oidc', name: STATE_COOKIE, value: sealed });
    const reused = await expectProblem(await browser.get(callback), 401, 'unauthenticated');
    expect(reused.providerError).toBe('invalid_grant');
  });

  it('answers a provider error (the user cancelled) as problem+json', async () => {
    const { response } = await signIn({ error: 'access_denied' });
    const problem = await expectProblem(response, 401, 'unauthenticated');
    expect(problem.providerError).toBe('access_denied');
    expect(problem.detail).toMatch(/access_denied/);
  });

  it('answers 503 when the provider cannot be reached, and refuses invalid settings at start-up', async () => {
    const auth = new AuthService(t.db.database.db, t.app.deps.config, t.app.deps.keys);
    const unreachable = new OidcService(t.db.database.db, auth, {
      ...options,
      issuerUrl: `http://127.0.0.1:${await freePort()}`,
      provisioning: null,
      timeoutSeconds: 2,
    });
    await expect(unreachable.start()).rejects.toMatchObject({ code: 'service_unavailable', status: 503 });

    expect(
      () =>
        new OidcService(t.db.database.db, auth, {
          ...options,
          issuerUrl: 'https://idp.example.com',
          redirectUri: 'http://larder.example.com/v1/auth/oidc/callback#x',
          allowInsecureHttp: false,
          scopes: 'email profile',
          stateSecret: 'short',
          provisioning: { workspaceId: 'not-a-uuid', role: 'editor' },
        }),
    ).toThrow(/REDIRECT_URI[\s\S]*SCOPES[\s\S]*STATE_SECRET[\s\S]*WORKSPACE_ID/);
  });

  it('redirects to an allow-listed returnTo with the tokens in the fragment, and refuses other addresses', async () => {
    const refused = await new Browser().get(
      new URL(`${larder}/v1/auth/oidc/start?returnTo=${encodeURIComponent('https://evil.example.com/')}`),
    );
    expect((await expectProblem(refused, 400, 'bad_request')).detail).toMatch(/allow-list/);

    const start = `${larder}/v1/auth/oidc/start?returnTo=${encodeURIComponent(`${RETURN_TO}?tab=home`)}`;
    const { browser, callback } = await toCallback({ accountId: account('spa') }, start);
    const { url, response } = await browser.navigate(callback);
    expect(response).toBeUndefined(); // sent off 127.0.0.1: the browser stops there
    expect(`${url.origin}${url.pathname}${url.search}`).toBe(`${RETURN_TO}?tab=home`);
    const fragment = new URLSearchParams(url.hash.slice(1));
    expect(fragment.get('tokenType')).toBe('Bearer');
    expect(fragment.get('refreshToken')).toMatch(/^lr_/);
    expect((await me(fragment.get('accessToken') ?? '')).user.email).toBe(email('spa'));
  });
});
