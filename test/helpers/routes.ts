/**
 * Route enumeration and request builders for the shared security suite (test/security-suite.test.ts):
 * turns `app.routeTable` into the routes to probe, fills their paths, builds bodies (valid-shaped and
 * malformed), forges tokens, and asserts the problem+json contract on every error response.
 */
import { randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { App, RouteEntry } from '../../src/app.js';
import { KeyRing, generateJwk } from '../../src/modules/auth/keys.js';
import { PERMISSIONS, type Permission } from '../../src/platform/auth/permissions.js';

export type Access = 'public' | 'user' | { permission: Permission };

/** A route of the table with its access parsed, and a stable name for test titles. */
export interface RouteUnderTest extends Omit<RouteEntry, 'access'> {
  name: string;
  access: Access;
}

export const routeName = (route: Pick<RouteEntry, 'method' | 'url'>): string =>
  `${route.method} ${route.url}`;

/** Routes of the API reference UI (@fastify/swagger-ui): registered by a plugin we do not write. */
export const isDocsRoute = (route: Pick<RouteEntry, 'url'>): boolean =>
  route.url === '/docs' || route.url.startsWith('/docs/');

/** A declared access value, or null when it is missing or not one the access plugin understands. */
export function parseAccess(value: unknown): Access | null {
  if (value === 'public' || value === 'user') return value;
  if (typeof value === 'object' && value !== null && 'permission' in value) {
    const { permission } = value;
    if ((PERMISSIONS as readonly unknown[]).includes(permission))
      return { permission: permission as Permission };
  }
  return null;
}

/**
 * The routes to probe: every entry except `/docs*` and the automatic HEAD twin of a GET route.
 * Throws on an entry without a valid access declaration (the route-table test reports those).
 */
export function routesUnderTest(table: readonly RouteEntry[]): {
  routes: RouteUnderTest[];
  docs: RouteEntry[];
} {
  const gets = new Set(table.filter((r) => r.method === 'GET').map((r) => r.url));
  const routes: RouteUnderTest[] = [];
  const docs: RouteEntry[] = [];
  for (const entry of table) {
    if (isDocsRoute(entry)) {
      docs.push(entry);
      continue;
    }
    if (entry.method === 'HEAD' && gets.has(entry.url)) continue;
    const access = parseAccess(entry.access);
    if (!access)
      throw new Error(`${routeName(entry)} declares no valid access: ${JSON.stringify(entry.access)}`);
    routes.push({ ...entry, name: routeName(entry), access });
  }
  return { routes, docs };
}

/** The `:name` parameters of a route pattern, in order. */
export const pathParams = (url: string): string[] => [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);

/** Parameters that name a resource by id (`id`, `userId`, `apiKeyId`, …): uuids in this API. */
export const isIdParam = (name: string): boolean => /^id$|Id$/.test(name);

/** The route's URL with every `:param` (and a trailing `*` wildcard) filled by `fill`. */
export function routePath(url: string, fill: (param: string) => string): string {
  return url
    .replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => encodeURIComponent(fill(name)))
    .replace(/\*$/, 'anything');
}

/** Ids are fresh random uuids (so nothing exists behind them); other parameters get a placeholder. */
export const samplePath = (route: Pick<RouteEntry, 'url'>): string =>
  routePath(route.url, (p) => (isIdParam(p) ? randomUUID() : 'sample'));

/** As `samplePath`, but every id parameter is not a uuid. */
export const malformedIdPath = (route: Pick<RouteEntry, 'url'>): string =>
  routePath(route.url, (p) => (isIdParam(p) ? 'not-a-uuid' : 'sample'));

/** What to send as the request body. */
export type BodySpec =
  { kind: 'none' } | { kind: 'json'; value: object } | { kind: 'raw'; payload: string; contentType: string };

/** `{}` for routes with a body schema (the least a client can send), nothing otherwise. */
export const emptyBody = (route: Pick<RouteEntry, 'hasBody'>): BodySpec =>
  route.hasBody ? { kind: 'json', value: {} } : { kind: 'none' };

/** Bodies no body schema of this API accepts; each must be refused with a 4xx problem, never a 5xx. */
export const MALFORMED_BODIES: readonly { name: string; body: BodySpec; status: number[] }[] = [
  { name: 'a JSON array', body: { kind: 'json', value: [] }, status: [400] },
  { name: 'a JSON array of objects', body: { kind: 'json', value: [{}] }, status: [400] },
  {
    name: 'a JSON string',
    body: { kind: 'raw', payload: '"text"', contentType: 'application/json' },
    status: [400],
  },
  {
    name: 'JSON null',
    body: { kind: 'raw', payload: 'null', contentType: 'application/json' },
    status: [400],
  },
  {
    name: 'a JSON number',
    body: { kind: 'raw', payload: '42', contentType: 'application/json' },
    status: [400],
  },
  {
    name: 'invalid JSON',
    body: { kind: 'raw', payload: '{"a":', contentType: 'application/json' },
    status: [400],
  },
  { name: 'no body at all', body: { kind: 'none' }, status: [400, 415] },
  {
    name: 'a text/plain body',
    body: { kind: 'raw', payload: 'hello', contentType: 'text/plain' },
    status: [400, 415],
  },
];

export type Headers = Record<string, string>;
export const bearer = (token: string): Headers => ({ authorization: `Bearer ${token}` });
export const inWorkspace = (token: string, workspaceId: string): Headers => ({
  ...bearer(token),
  'x-workspace-id': workspaceId,
});

export function buildRequest(
  route: Pick<RouteEntry, 'method'>,
  path: string,
  headers: Headers,
  body: BodySpec,
): InjectOptions {
  const options: InjectOptions = { method: route.method as InjectOptions['method'], url: path, headers };
  if (body.kind === 'json') options.payload = body.value;
  if (body.kind === 'raw') {
    options.payload = body.payload;
    options.headers = { ...headers, 'content-type': body.contentType };
  }
  return options;
}

export type Response = LightMyRequestResponse;

/** One line describing a response, for assertion messages (failures then show what came back). */
export const show = (res: Response): string =>
  `→ ${res.statusCode} ${String(res.headers['content-type'])} ${res.body.slice(0, 500)}`;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  requestId: string;
  detail?: string;
  errors?: { in: string; path: string; message: string }[];
}

/** The contract for every error: `application/problem+json` with a `code` and the request id. */
export function expectProblemShape(res: Response): ProblemBody {
  expect(res.headers['content-type'], show(res)).toMatch(/^application\/problem\+json/);
  const body = res.json<ProblemBody>();
  expect(body.code, show(res)).toEqual(expect.any(String));
  expect(body.status, show(res)).toBe(res.statusCode);
  expect(body.requestId, show(res)).toEqual(expect.any(String));
  expect(body.requestId, show(res)).toBe(res.headers['x-request-id']);
  return body;
}

/** Asserts an error response with one of `statuses` (and `code` when given). */
export function expectProblem(
  res: Response,
  statuses: number | readonly number[],
  code?: string,
): ProblemBody {
  expect([statuses].flat(), show(res)).toContain(res.statusCode);
  const body = expectProblemShape(res);
  if (code !== undefined) expect(body.code, show(res)).toBe(code);
  return body;
}

/**
 * Sends a request and checks what holds for every response of the suite: never a 5xx, and every
 * error (4xx) is a problem document. Callers assert the status they expect on top.
 */
export async function send(app: App, options: InjectOptions): Promise<Response> {
  const res = await app.inject(options);
  const target = typeof options.url === 'string' ? options.url : JSON.stringify(options.url);
  expect(res.statusCode, `${String(options.method)} ${target} ${show(res)}`).toBeLessThan(500);
  if (res.statusCode >= 400) expectProblemShape(res);
  return res;
}

/** Access tokens the server must refuse: signed by a key it does not know, expired, unsigned. */
export async function hostileTokens(claims: { sub: string; sid: string }): Promise<{
  forged: string;
  expired: string;
  unsigned: string;
}> {
  const jwk = await generateJwk();
  const foreign = await KeyRing.fromJwks([jwk], { issuer: 'larder', ttlSeconds: 900 });
  const stale = await KeyRing.fromJwks([jwk], { issuer: 'larder', ttlSeconds: -3600 });
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64({
    ...claims,
    iss: 'larder',
    iat: now,
    exp: now + 900,
  })}.`;
  return { forged: await foreign.sign(claims), expired: await stale.sign(claims), unsigned };
}
