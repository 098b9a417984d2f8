/**
 * HTTP contract every route inherits: problem+json errors with stable codes, request ids, limits.
 * Test-only routes are added to a real app to exercise validation and failure paths.
 */
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';

const Body = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    count: Type.Integer({ minimum: 0 }),
    email: Type.String({ format: 'email' }),
  },
  { additionalProperties: false },
);

describe.each(drivers())('HTTP contract (%s)', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(driver, {
      configure: (c) => ({ ...c, bodyLimitBytes: 2048 }),
      routes: (app) => {
        app.post('/test/items', { config: { access: 'public' }, schema: { body: Body } }, (req) => ({
          ok: true,
          name: req.body.name,
        }));
        app.get('/test/boom', { config: { access: 'public' } }, () => {
          throw new Error('syntax error at or near "DROP" in select password_hash from users');
        });
        app.get('/test/missing', { config: { access: 'public' } }, () => {
          throw new AppError('not_found', { detail: 'collection c1 does not exist' });
        });
      },
    });
  });
  afterAll(() => t.close());

  it('answers unknown routes with a 404 problem+json', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/no/such/route?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({
      type: 'urn:larder:problem:route_not_found',
      status: 404,
      code: 'route_not_found',
      detail: 'GET /no/such/route is not a route of this API',
      requestId: res.headers['x-request-id'],
    });
  });

  it('lists every failing field of an invalid body', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/items',
      payload: { name: '', count: -1, email: 'not-an-email', extra: true },
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json<{ code: string; errors: { in: string; path: string }[] }>();
    expect(body.code).toBe('validation_failed');
    const paths = body.errors.map((e) => e.path).sort();
    expect(paths).toEqual(['/count', '/email', '/extra', '/name']);
    expect(body.errors.every((e) => e.in === 'body')).toBe(true);
  });

  it('reports missing required fields by name', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/test/items', payload: {} });
    const body = res.json<{ errors: { path: string; message: string }[] }>();
    expect(body.errors).toEqual(
      expect.arrayContaining([
        { in: 'body', path: '/name', message: 'is required' },
        { in: 'body', path: '/count', message: 'is required' },
        { in: 'body', path: '/email', message: 'is required' },
      ]),
    );
  });

  it('rejects malformed JSON with 400 malformed_body', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/items',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'malformed_body' });
  });

  it('rejects bodies over the limit with 413', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/items',
      payload: { name: 'x'.repeat(4096), count: 1, email: 'a@b.co' },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'payload_too_large' });
  });

  it('rejects unsupported content types with 415', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/test/items',
      headers: { 'content-type': 'application/x-yaml' },
      payload: 'name: x',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'unsupported_media_type' });
  });

  it('turns unexpected errors into a 500 that leaks no message, SQL or stack', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/test/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'internal_error', status: 500 });
    expect(res.body).not.toMatch(/DROP|password_hash|users|at .*\.ts/);
    // …but the log has it, with the request id, for the operator.
    const logged = t.logs.records().find((r) => r.requestId === res.headers['x-request-id'] && r.err);
    expect(JSON.stringify(logged)).toContain('password_hash');
  });

  it('maps typed application errors', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/test/missing' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'not_found', detail: 'collection c1 does not exist' });
  });

  it('echoes a well-formed X-Request-Id and mints one otherwise', async () => {
    const given = await t.app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'abc-123.def' },
    });
    expect(given.headers['x-request-id']).toBe('abc-123.def');
    const minted = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(minted.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const hostile = await t.app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'a b\u0001<script>' },
    });
    expect(hostile.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs one line per request with request id, method, route, status and latency', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'log-line-1' },
    });
    expect(res.statusCode).toBe(200);
    const line = t.logs.records().find((r) => r.requestId === 'log-line-1' && r.msg === 'request completed');
    expect(line).toMatchObject({ method: 'GET', route: '/healthz', status: 200, url: '/healthz' });
    expect(typeof line?.ms).toBe('number');
  });
});
