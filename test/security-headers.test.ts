/**
 * Security headers (helmet) and CORS: strict headers on API responses, an exact CORS allow-list,
 * and a Swagger UI under /docs that still loads with its own CSP.
 *
 * Helmet runs on the real app. The CORS-enabled variants run on a minimal app with the plugin
 * registered before the routes, the order buildApp must use: @fastify/cors declares an `OPTIONS *`
 * route, which the access plugin rejects (it has no `config.access`) when declared after it.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupError } from '../src/platform/errors.js';
import { registerProblemHandlers } from '../src/platform/http/problem.js';
import {
  CORS_ALLOWED_HEADERS,
  corsPolicy,
  parseCorsOrigins,
  type SecurityOptions,
  securityPlugin,
} from '../src/platform/http/security.js';
import { createTestApp, type TestApp } from './helpers/app.js';

const ALLOWED = 'https://app.example.com';
const ALSO_ALLOWED = 'http://localhost:5173';
const STRANGER = 'https://evil.example.net';

type Injectable = Pick<FastifyInstance, 'inject'>;

/** The security plugin, then the routes. */
async function securedApp(options: SecurityOptions): Promise<FastifyInstance> {
  const app = Fastify();
  registerProblemHandlers(app);
  await app.register(securityPlugin, options);
  app.get('/test/items', () => ({ ok: true }));
  app.post('/test/items', () => ({ ok: true }));
  await app.ready();
  return app;
}

/** Every `access-control-*` header of a response. */
const corsHeaders = (headers: Record<string, unknown>): string[] =>
  Object.keys(headers).filter((h) => h.startsWith('access-control-'));

const listed = (value: unknown): string[] =>
  String(value)
    .split(',')
    .map((v) => v.trim().toLowerCase());

function preflight(app: Injectable, origin: string, url = '/test/items') {
  return app.inject({
    method: 'OPTIONS',
    url,
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, x-workspace-id',
    },
  });
}

/** GET, following redirects the way a browser does. */
async function browse(app: Injectable, url: string) {
  let current = new URL(url, 'http://localhost');
  for (let hops = 0; hops < 5; hops++) {
    const res = await app.inject({ method: 'GET', url: current.pathname + current.search });
    const location = res.headers.location;
    if (res.statusCode < 300 || res.statusCode >= 400 || typeof location !== 'string') {
      return { res, url: current };
    }
    current = new URL(location, current);
  }
  throw new Error(`too many redirects from ${url}`);
}

describe('security headers on the app (HSTS on, no CORS origins)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp('embedded', {
      routes: (app) => {
        void app.register(securityPlugin, { corsOrigins: [], hsts: true });
      },
    });
  });
  afterAll(() => t.close());

  it('sends strict security headers on API responses', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('DENY');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('sends them on error responses too', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/no/such/route' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
  });

  it('sends no CORS headers at all with an empty allow-list', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz', headers: { origin: ALLOWED } });
    expect(res.statusCode).toBe(200);
    expect(corsHeaders(res.headers)).toEqual([]);
    const pre = await preflight(t.app, ALLOWED, '/healthz');
    expect(pre.statusCode).toBe(404);
    expect(corsHeaders(pre.headers)).toEqual([]);
  });

  it('keeps the Swagger UI working under its own CSP', async () => {
    const { res: page, url } = await browse(t.app, '/docs');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('id="swagger-ui"');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).not.toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).toMatch(/style-src 'self'/);
    // Helmet's other headers stay.
    expect(page.headers['x-content-type-options']).toBe('nosniff');

    // Everything the page loads is same-origin (allowed by 'self') and actually loads.
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    for (const asset of assets) {
      const target = new URL(asset, url);
      expect(target.origin, asset).toBe('http://localhost');
      const res = await t.app.inject({ method: 'GET', url: target.pathname });
      expect(res.statusCode, target.pathname).toBe(200);
    }
    // No inline scripts, which a 'self'-only script-src would block.
    expect(page.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);

    const initializer = await t.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(initializer.statusCode).toBe(200);
    expect(initializer.headers['content-type']).toMatch(/javascript/);
    expect(initializer.body).toContain('SwaggerUIBundle');

    const { res: viaIndex } = await browse(t.app, '/docs/static/index.html');
    expect(viaIndex.statusCode).toBe(200);
    expect(viaIndex.body).toContain('id="swagger-ui"');

    const spec = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(spec.statusCode).toBe(200);
    expect(spec.json()).toMatchObject({ openapi: '3.1.0' });
  });
});

describe('HSTS off', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await securedApp({ corsOrigins: [], hsts: false });
  });
  afterAll(() => app.close());

  it('sends no Strict-Transport-Security', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/items' });
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});

describe('CORS allow-list', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await securedApp({ corsOrigins: [ALLOWED, ALSO_ALLOWED], hsts: false });
  });
  afterAll(() => app.close());

  it('echoes an allowed origin, with credentials, and exposes X-Request-Id', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const res = await app.inject({ method: 'GET', url: '/test/items', headers: { origin } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe(origin);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(listed(res.headers['access-control-expose-headers'])).toContain('x-request-id');
      expect(listed(res.headers.vary)).toContain('origin');
    }
  });

  it('answers a preflight from an allowed origin', async () => {
    const res = await preflight(app, ALLOWED);
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(listed(res.headers['access-control-allow-methods'])).toEqual(
      expect.arrayContaining(['get', 'post', 'put', 'patch', 'delete']),
    );
    expect(listed(res.headers['access-control-allow-headers'])).toEqual(
      expect.arrayContaining(CORS_ALLOWED_HEADERS.map((h) => h.toLowerCase())),
    );
    expect(res.headers['access-control-max-age']).toBe('600');
  });

  it('gives a disallowed origin no CORS headers at all', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/items', headers: { origin: STRANGER } });
    expect(res.statusCode).toBe(200);
    expect(corsHeaders(res.headers)).toEqual([]);
    // Origins match exactly: no suffix, scheme or port tricks.
    for (const origin of [`${ALLOWED}.evil.net`, 'http://app.example.com', `${ALLOWED}:8443`]) {
      const near = await app.inject({ method: 'GET', url: '/test/items', headers: { origin } });
      expect(corsHeaders(near.headers), origin).toEqual([]);
    }
    const pre = await preflight(app, STRANGER);
    expect(pre.statusCode).toBeGreaterThanOrEqual(400);
    expect(corsHeaders(pre.headers)).toEqual([]);
  });

  it('sends no CORS headers to same-origin or non-browser clients (no Origin)', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/items' });
    expect(corsHeaders(res.headers)).toEqual([]);
  });
});

describe("CORS with '*'", () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await securedApp({ corsOrigins: ['*'], hsts: false });
  });
  afterAll(() => app.close());

  it('allows any origin, never with credentials', async () => {
    const res = await app.inject({ method: 'GET', url: '/test/items', headers: { origin: STRANGER } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(listed(res.headers['access-control-expose-headers'])).toContain('x-request-id');
    const pre = await preflight(app, STRANGER);
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
  });
});

describe('CORS origin list', () => {
  it('parses a comma-separated setting', () => {
    expect(parseCorsOrigins('')).toEqual([]);
    expect(parseCorsOrigins(' https://a.example , http://localhost:5173,,')).toEqual([
      'https://a.example',
      'http://localhost:5173',
    ]);
  });

  it('rejects entries that could never match, and a wildcard mixed with origins', () => {
    expect(corsPolicy([])).toEqual({ kind: 'none' });
    expect(corsPolicy(['*'])).toEqual({ kind: 'any' });
    for (const bad of [
      ['https://a.example/'],
      ['https://a.example/app'],
      ['a.example'],
      ['ftp://a.example'],
      ['*', 'https://a.example'],
    ]) {
      expect(() => corsPolicy(bad), bad.join(',')).toThrow(StartupError);
    }
  });

  it('stops the app from starting with an invalid list', async () => {
    const app = Fastify();
    void app.register(securityPlugin, { corsOrigins: ['https://a.example/'], hsts: false });
    await expect(app.ready()).rejects.toThrow(/CORS origins must look like/);
    await app.close();
  });
});
