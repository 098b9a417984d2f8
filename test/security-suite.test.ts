/**
 * The shared security suite (STYLE habit 12): every route of the real app, enumerated from
 * `app.routeTable`, is probed unauthenticated, with hostile tokens, from another workspace, with too
 * small a role or key scope, and with malformed input. Routes added later are covered automatically;
 * a route that declares no valid access fails the route-table test.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { ROLE_PERMISSIONS, scopePermissions, type Permission } from '../src/platform/auth/permissions.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { drivers, type Driver } from './helpers/database.js';
import {
  bearer,
  buildRequest,
  emptyBody,
  expectProblem,
  type Headers,
  hostileTokens,
  inWorkspace,
  isIdParam,
  MALFORMED_BODIES,
  malformedIdPath,
  parseAccess,
  pathParams,
  type ProblemBody,
  type Response,
  type RouteUnderTest,
  routeName,
  routesUnderTest,
  samplePath,
  send,
  show,
} from './helpers/routes.js';

const configure = (c: Config): Config => ({
  ...c,
  argon2MemoryKib: 1024,
  argon2TimeCost: 1,
  authRateLimitMax: 100_000,
  rateLimitMax: 100_000,
});

// One real app per driver, built before collection: its route table decides which tests exist.
const apps = new Map<Driver, TestApp>();
for (const driver of drivers()) apps.set(driver, await createTestApp(driver, { configure }));

interface Actor {
  token: string;
  userId: string;
  workspaceId: string;
}

interface World {
  ownerA: Actor;
  ownerB: Actor;
  /** A viewer of workspace A (signed up, then given a viewer membership there). */
  viewer: Actor;
  /** Owner of a throwaway workspace: requests that get past access may change state, so never A's. */
  scratch: Actor;
  /** Keys of workspace A. */
  searchKey: string;
  adminKey: string;
  hostile: { forged: string; expired: string; unsigned: string };
}

/** What the access layer answers when it refuses a caller (as opposed to a service's own 403/404). */
const NO_SUCH_WORKSPACE = 'No such workspace';
const missingPermission = (permission: Permission) => `This needs the ${permission} permission`;

interface Check {
  name: string;
  run: () => Promise<void>;
}

describe.each(drivers())('security suite (%s)', (driver) => {
  const t = apps.get(driver)!;
  const table = t.app.routeTable;
  const { routes, docs } = routesUnderTest(table);
  let w: World;

  const call = (route: RouteUnderTest, headers: Headers, body = emptyBody(route), path = samplePath(route)) =>
    send(t.app, buildRequest(route, path, headers, body));

  const signup = async (label: string): Promise<Actor> => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/signup',
      payload: {
        email: `${label}-${driver}@example.com`,
        password: 'a sturdy passphrase for tests',
        displayName: label,
      },
    });
    expect(res.statusCode, show(res)).toBe(201);
    const body = res.json<{
      user: { id: string };
      workspace: { id: string };
      tokens: { accessToken: string };
    }>();
    return { token: body.tokens.accessToken, userId: body.user.id, workspaceId: body.workspace.id };
  };

  const createKey = async (
    owner: Actor,
    scopes: string[],
  ): Promise<{ id: string; key: string; prefix: string }> => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      headers: inWorkspace(owner.token, owner.workspaceId),
      payload: { name: `${scopes.join('+')} key`, scopes },
    });
    expect(res.statusCode, show(res)).toBe(201);
    return res.json<{ id: string; key: string; prefix: string }>();
  };

  beforeAll(async () => {
    const ownerA = await signup('sec-owner-a');
    const ownerB = await signup('sec-owner-b');
    const viewerSelf = await signup('sec-viewer-a');
    // No invitation flow is assumed here: the membership is written directly.
    await t.db.database.db
      .insertInto('memberships')
      .values({ workspace_id: ownerA.workspaceId, user_id: viewerSelf.userId, role: 'viewer' })
      .execute();
    w = {
      ownerA,
      ownerB,
      scratch: await signup('sec-scratch'),
      viewer: { ...viewerSelf, workspaceId: ownerA.workspaceId },
      searchKey: (await createKey(ownerA, ['search'])).key,
      adminKey: (await createKey(ownerA, ['admin'])).key,
      hostile: await hostileTokens({ sub: ownerA.userId, sid: randomUUID() }),
    };
  });
  afterAll(() => t.close());

  /** The caller passed the access layer: no 401, and no access-layer 403/404. */
  const expectPastAccess = (res: Response, route: RouteUnderTest, permission: Permission) => {
    expect(res.statusCode, show(res)).not.toBe(401);
    if (res.statusCode !== 403 && res.statusCode !== 404) return;
    // With no path ids, nothing the route names can be missing: a 403/404 is the access layer's.
    // With ids (random, so absent), the service may answer 404 or re-check a narrower permission
    // (e.g. removing another member): only the access layer's own refusals count as failures.
    expect(pathParams(route.url), `${route.name} refused a permitted caller ${show(res)}`).not.toHaveLength(
      0,
    );
    const { detail } = res.json<ProblemBody>();
    expect(detail, show(res)).not.toBe(NO_SUCH_WORKSPACE);
    expect(detail, show(res)).not.toBe(missingPermission(permission));
  };

  /** Headers of a caller allowed through the access layer (owner A; nothing for public routes). */
  const authorised = (route: RouteUnderTest): Headers => {
    if (route.access === 'public') return {};
    if (route.access === 'user') return bearer(w.ownerA.token);
    return inWorkspace(w.ownerA.token, w.ownerA.workspaceId);
  };

  const publicChecks = (route: RouteUnderTest): Check[] => [
    {
      name: 'answers without credentials (never 401/403, never 5xx)',
      run: async () => {
        const res = await call(route, {});
        expect([401, 403], show(res)).not.toContain(res.statusCode);
      },
    },
    {
      name: 'ignores a garbage Authorization header',
      run: async () => {
        const res = await call(route, bearer('garbage'));
        expect([401, 403], show(res)).not.toContain(res.statusCode);
      },
    },
  ];

  const authenticationChecks = (route: RouteUnderTest): Check[] => {
    const refuse = (name: string, headers: () => Headers, code: string): Check => ({
      name,
      run: async () => {
        expectProblem(await call(route, headers()), 401, code);
      },
    });
    // Hostile credentials name workspace A, so skipping verification would otherwise succeed.
    const asA = (token: string) => inWorkspace(token, w.ownerA.workspaceId);
    return [
      refuse('no credentials → 401 unauthenticated', () => ({}), 'unauthenticated'),
      refuse(
        'non-Bearer Authorization → 401 unauthenticated',
        () => ({ authorization: 'Basic dXNlcjpwYXNz' }),
        'unauthenticated',
      ),
      refuse('garbage bearer token → 401 invalid_token', () => asA('garbage'), 'invalid_token'),
      refuse(
        'token signed by an unknown key → 401 invalid_token',
        () => asA(w.hostile.forged),
        'invalid_token',
      ),
      refuse('expired token → 401 invalid_token', () => asA(w.hostile.expired), 'invalid_token'),
      refuse(
        'unsigned (alg: none) token → 401 invalid_token',
        () => asA(w.hostile.unsigned),
        'invalid_token',
      ),
      refuse('unknown API key → 401 invalid_token', () => asA('lk_live_00000000_nope'), 'invalid_token'),
    ];
  };

  const permissionChecks = (route: RouteUnderTest, permission: Permission): Check[] => {
    const viewerMay = ROLE_PERMISSIONS.viewer.has(permission);
    const searchMay = scopePermissions(['search']).has(permission);
    const adminMay = scopePermissions(['admin']).has(permission);
    return [
      {
        name: 'member of another workspace naming this one → 404 (existence does not leak)',
        run: async () => {
          expectProblem(
            await call(route, inWorkspace(w.ownerB.token, w.ownerA.workspaceId)),
            404,
            'not_found',
          );
        },
      },
      {
        name: 'unknown workspace id → 404',
        run: async () => {
          expectProblem(await call(route, inWorkspace(w.ownerA.token, randomUUID())), 404, 'not_found');
        },
      },
      {
        name: 'user without X-Workspace-Id → 400',
        run: async () => {
          const body = expectProblem(await call(route, bearer(w.ownerA.token)), 400, 'validation_failed');
          expect(body.errors?.map((e) => e.in)).toContain('headers');
        },
      },
      {
        name: 'malformed X-Workspace-Id → 400',
        run: async () => {
          const body = expectProblem(
            await call(route, inWorkspace(w.ownerA.token, 'workspace-a')),
            400,
            'validation_failed',
          );
          expect(body.errors?.map((e) => e.in)).toContain('headers');
        },
      },
      {
        name: viewerMay
          ? `viewer passes access (${permission} is a viewer permission)`
          : `viewer → 403 (lacks ${permission})`,
        run: async () => {
          const res = await call(route, inWorkspace(w.viewer.token, w.ownerA.workspaceId));
          if (viewerMay) expectPastAccess(res, route, permission);
          else expectProblem(res, 403, 'forbidden');
        },
      },
      {
        name: searchMay
          ? `search-scoped API key passes access (grants ${permission})`
          : `search-scoped API key → 403 (lacks ${permission})`,
        run: async () => {
          const res = await call(route, bearer(w.searchKey));
          if (searchMay) expectPastAccess(res, route, permission);
          else expectProblem(res, 403, 'forbidden');
        },
      },
      {
        name: adminMay
          ? `admin-scoped API key passes access (grants ${permission})`
          : `admin-scoped API key → 403 (lacks ${permission})`,
        run: async () => {
          const res = await call(route, bearer(w.adminKey));
          if (adminMay) expectPastAccess(res, route, permission);
          else expectProblem(res, 403, 'forbidden');
        },
      },
      {
        name: 'admin-scoped API key naming another workspace → 404',
        run: async () => {
          expectProblem(await call(route, inWorkspace(w.adminKey, w.ownerB.workspaceId)), 404, 'not_found');
        },
      },
    ];
  };

  const userChecks = (route: RouteUnderTest): Check[] =>
    (['search', 'admin'] as const).map((scope) => ({
      name: `${scope}-scoped API key → 403 (users only)`,
      run: async () => {
        expectProblem(
          await call(route, bearer(scope === 'search' ? w.searchKey : w.adminKey)),
          403,
          'forbidden',
        );
      },
    }));

  const inputChecks = (route: RouteUnderTest): Check[] => {
    const checks: Check[] = [];
    const { access } = route;
    if (access !== 'public') {
      checks.push({
        name: 'owner’s sample request (`{}` body, random ids) passes access and never 5xx',
        run: async () => {
          const { token, workspaceId } = w.scratch;
          if (access === 'user') {
            const res = await call(route, bearer(token));
            expect([401, 403], show(res)).not.toContain(res.statusCode);
          } else {
            expectPastAccess(await call(route, inWorkspace(token, workspaceId)), route, access.permission);
          }
        },
      });
    }
    if (pathParams(route.url).some(isIdParam)) {
      checks.push({
        name: 'non-uuid path id → 400 validation_failed',
        run: async () => {
          const res = await call(route, authorised(route), emptyBody(route), malformedIdPath(route));
          expectProblem(res, 400, 'validation_failed');
        },
      });
    }
    if (route.hasBody) {
      for (const bad of MALFORMED_BODIES) {
        checks.push({
          name: `body is ${bad.name} → ${bad.status.join('/')}`,
          run: async () => {
            expectProblem(await call(route, authorised(route), bad.body), bad.status);
          },
        });
      }
    }
    return checks;
  };

  const checksFor = (route: RouteUnderTest): Check[] => {
    const { access } = route;
    if (access === 'public') return [...publicChecks(route), ...inputChecks(route)];
    const byAccess = access === 'user' ? userChecks(route) : permissionChecks(route, access.permission);
    return [...authenticationChecks(route), ...byAccess, ...inputChecks(route)];
  };

  describe('route table', () => {
    it('is non-empty and includes the known routes', () => {
      const names = table.map(routeName);
      expect(names).toEqual(
        expect.arrayContaining(['GET /healthz', 'GET /v1/me', 'GET /v1/api-keys', 'POST /v1/api-keys']),
      );
      expect(routes.length).toBeGreaterThan(10);
    });

    it('every route declares a valid access (docs ones are marked public)', () => {
      const undeclared = table.filter((r) => parseAccess(r.access) === null).map(routeName);
      expect(undeclared, `without a valid access: ${undeclared.join(', ')}`).toEqual([]);
      expect(docs.filter((r) => r.access !== 'public').map(routeName)).toEqual([]);
    });

    it('every path parameter is declared in the route’s params schema (so it is validated)', () => {
      const undeclared = table.flatMap((r) =>
        pathParams(r.url)
          .filter((p) => !r.params.includes(p))
          .map((p) => `${routeName(r)} :${p}`),
      );
      expect(undeclared, `undeclared path parameters: ${undeclared.join(', ')}`).toEqual([]);
    });
  });

  // Plain loops, not `each` templates: those quote and truncate titles, and failures must name the route.
  for (const route of docs) {
    describe(`${routeName(route)} (API reference)`, () => {
      it('is public and answers without credentials', async () => {
        expect(route.access).toBe('public');
        const res = await send(t.app, { method: route.method as 'GET' | 'HEAD', url: samplePath(route) });
        expect([401, 403], show(res)).not.toContain(res.statusCode);
      });
    });
  }

  for (const route of routes) {
    describe(route.name, () => {
      for (const check of checksFor(route)) it(check.name, check.run);
    });
  }

  describe('collection access with real data', () => {
    /** Routes that name a collection or a document by id (new ones join by existing). */
    const contentRoutes = routes.filter((r) => /^\/v1\/(collections|documents)\/:id(\/|$)/.test(r.url));

    it('covers every collection and document route', () => {
      expect(contentRoutes.map((r) => r.name)).toEqual(
        expect.arrayContaining([
          'GET /v1/collections/:id',
          'DELETE /v1/collections/:id',
          'POST /v1/collections/:id/documents',
          'GET /v1/documents/:id/content',
          'POST /v1/documents/:id/reprocess',
        ]),
      );
    });

    it('an admin-only collection answers a viewer and an unrestricted admin key exactly like a missing one', async () => {
      const created = await send(t.app, {
        method: 'POST',
        url: '/v1/collections',
        headers: inWorkspace(w.ownerA.token, w.ownerA.workspaceId),
        payload: { name: `Admins only ${randomUUID()}`, embedding: null, minRole: 'admin' },
      });
      expect(created.statusCode, show(created)).toBe(201);
      const collectionId = created.json<{ id: string }>().id;
      const document = await send(t.app, {
        method: 'POST',
        url: `/v1/collections/${collectionId}/documents`,
        headers: inWorkspace(w.ownerA.token, w.ownerA.workspaceId),
        payload: { text: 'Salary bands, for admins only.' },
      });
      expect(document.statusCode, show(document)).toBe(201);
      const documentId = document.json<{ document: { id: string } }>().document.id;
      const pathFor = (route: RouteUnderTest, ids: { collection: string; document: string }) =>
        route.url
          .replace(/^\/v1\/collections\/:id/, `/v1/collections/${ids.collection}`)
          .replace(/^\/v1\/documents\/:id/, `/v1/documents/${ids.document}`);
      const callers: [string, Headers][] = [
        ['viewer', inWorkspace(w.viewer.token, w.ownerA.workspaceId)],
        ['admin-scoped key without an allowlist', bearer(w.adminKey)],
      ];
      for (const [who, headers] of callers) {
        for (const route of contentRoutes) {
          const hidden = await call(
            route,
            headers,
            emptyBody(route),
            pathFor(route, { collection: collectionId, document: documentId }),
          );
          const missing = await call(
            route,
            headers,
            emptyBody(route),
            pathFor(route, { collection: randomUUID(), document: randomUUID() }),
          );
          const what = `${who}: ${route.name} ${show(hidden)}`;
          expect(hidden.statusCode, what).toBe(missing.statusCode);
          expect(hidden.json<ProblemBody>().code, what).toBe(missing.json<ProblemBody>().code);
          expect(hidden.json<ProblemBody>().detail, what).toBe(missing.json<ProblemBody>().detail);
          if (route.method === 'GET') expect(hidden.statusCode, what).toBe(404);
        }
        const list = await call(
          routes.find((r) => r.name === 'GET /v1/collections')!,
          headers,
          { kind: 'none' },
          '/v1/collections?limit=200',
        );
        expect(list.statusCode, show(list)).toBe(200);
        expect(list.body, who).not.toContain(collectionId);
      }
    });
  });

  describe('cross-tenant reads with real data', () => {
    it('another workspace can neither list nor revoke a key, which keeps working', async () => {
      const key = await createKey(w.ownerA, ['admin']);
      const listed = await send(t.app, {
        method: 'GET',
        url: '/v1/api-keys',
        headers: inWorkspace(w.ownerB.token, w.ownerB.workspaceId),
      });
      expect(listed.statusCode, show(listed)).toBe(200);
      expect(listed.json<{ data: { id: string }[] }>().data.map((k) => k.id)).not.toContain(key.id);
      expect(listed.body).not.toContain(key.prefix);

      const revoke = await send(t.app, {
        method: 'DELETE',
        url: `/v1/api-keys/${key.id}`,
        headers: inWorkspace(w.ownerB.token, w.ownerB.workspaceId),
      });
      expectProblem(revoke, 404, 'not_found');
      const stillWorks = await send(t.app, { method: 'GET', url: '/v1/api-keys', headers: bearer(key.key) });
      expect(stillWorks.statusCode, show(stillWorks)).toBe(200);
      expect(stillWorks.json<{ data: { id: string; revokedAt: string | null }[] }>().data).toContainEqual(
        expect.objectContaining({ id: key.id, revokedAt: null }),
      );
    });

    it('another workspace can neither list nor revoke an invitation', async () => {
      const created = await send(t.app, {
        method: 'POST',
        url: '/v1/workspace/invitations',
        headers: inWorkspace(w.ownerA.token, w.ownerA.workspaceId),
        payload: { email: `invitee-${driver}@example.com`, role: 'editor' },
      });
      expect(created.statusCode, show(created)).toBe(201);
      const { id } = created.json<{ id: string }>();
      const asB = inWorkspace(w.ownerB.token, w.ownerB.workspaceId);

      const listed = await send(t.app, { method: 'GET', url: '/v1/workspace/invitations', headers: asB });
      expect(listed.statusCode, show(listed)).toBe(200);
      expect(listed.body).not.toContain(id);
      expectProblem(
        await send(t.app, { method: 'DELETE', url: `/v1/workspace/invitations/${id}`, headers: asB }),
        404,
        'not_found',
      );
      const stillOpen = await send(t.app, {
        method: 'GET',
        url: '/v1/workspace/invitations',
        headers: inWorkspace(w.ownerA.token, w.ownerA.workspaceId),
      });
      expect(stillOpen.json<{ data: { id: string }[] }>().data.map((i) => i.id)).toContain(id);
    });

    it('another workspace can neither change nor remove a member', async () => {
      const asB = inWorkspace(w.ownerB.token, w.ownerB.workspaceId);
      const url = `/v1/workspace/members/${w.viewer.userId}`;
      expectProblem(
        await send(t.app, { method: 'PATCH', url, headers: asB, payload: { role: 'admin' } }),
        404,
        'not_found',
      );
      expectProblem(await send(t.app, { method: 'DELETE', url, headers: asB }), 404, 'not_found');
      const members = await send(t.app, {
        method: 'GET',
        url: '/v1/workspace/members',
        headers: inWorkspace(w.ownerB.token, w.ownerB.workspaceId),
      });
      expect(members.body).not.toContain(w.viewer.userId);
      const self = await send(t.app, {
        method: 'GET',
        url: '/v1/workspace',
        headers: inWorkspace(w.viewer.token, w.ownerA.workspaceId),
      });
      expect(self.json<{ role: string }>().role).toBe('viewer');
    });
  });
});
