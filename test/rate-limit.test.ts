/**
 * Rate limits: the global budget (per principal, else per IP), the stricter per-IP budget on
 * credential routes, the probe exemption, the problem+json 429, and, with Redis, one budget shared
 * by every process. Test routes are declared in a plugin registered after the rate-limit plugin, as
 * the domain modules will be.
 */
import { randomBytes } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { App } from '../src/app.js';
import { healthRoutes } from '../src/modules/health/routes.js';
import { registerProblemHandlers } from '../src/platform/http/problem.js';
import { authRateLimit, type RateLimitOptions, rateLimitPlugin } from '../src/platform/http/rate-limit.js';
import { createTestApp, type TestApp } from './helpers/app.js';

const WINDOW_MS = 60_000;
const LIMITS = { max: 3, timeWindowMs: WINDOW_MS, authMax: 2, authTimeWindowMs: WINDOW_MS };

/** The rate-limit plugin, then test routes in a later plugin (so the limits attach to them). */
function limitedRoutes(options: RateLimitOptions) {
  return (app: App) => {
    void app.register(rateLimitPlugin, options);
    void app.register(async (scope) => {
      // Stands in for the identity module: authenticates in an instance-level onRequest hook.
      scope.addHook('onRequest', async (request) => {
        const principal = request.headers['x-test-principal'];
        if (typeof principal === 'string') Object.assign(request, { auth: { principalId: principal } });
      });
      scope.get('/test/limited', { config: { access: 'public' } }, () => ({ ok: true }));
      scope.post('/test/login', { config: { access: 'public', ...authRateLimit(options).config } }, () => ({
        ok: true,
      }));
    });
  };
}

interface Hit {
  url?: string;
  method?: 'GET' | 'POST';
  ip?: string;
  principal?: string;
}

function hit(app: App, { url = '/test/limited', method = 'GET', ip = '203.0.113.7', principal }: Hit = {}) {
  return app.inject({
    method,
    url,
    remoteAddress: ip,
    headers: principal ? { 'x-test-principal': principal } : {},
  });
}

function expectRateLimited(res: Awaited<ReturnType<typeof hit>>): void {
  expect(res.statusCode).toBe(429);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const retryAfter = Number(res.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(WINDOW_MS / 1000);
  expect(res.json()).toMatchObject({
    type: 'urn:larder:problem:rate_limited',
    status: 429,
    code: 'rate_limited',
    detail: `Rate limit exceeded: retry in ${retryAfter} s`,
    requestId: res.headers['x-request-id'],
  });
}

describe('rate limits (in memory)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp('embedded', { routes: limitedRoutes(LIMITS) });
  });
  afterAll(() => t.close());

  it('answers the request over budget with a 429 problem+json and Retry-After', async () => {
    const ip = '203.0.113.1';
    const remaining: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await hit(t.app, { ip });
      expect(res.statusCode).toBe(200);
      remaining.push(res.headers['x-ratelimit-remaining']);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const over = await hit(t.app, { ip });
    expectRateLimited(over);
    expect(over.headers['x-ratelimit-limit']).toBe('3');
  });

  it('keeps one budget per client IP', async () => {
    for (let i = 0; i < 3; i++) await hit(t.app, { ip: '203.0.113.2' });
    expectRateLimited(await hit(t.app, { ip: '203.0.113.2' }));
    expect((await hit(t.app, { ip: '203.0.113.3' })).statusCode).toBe(200);
  });

  it('counts authenticated requests per principal, not per IP', async () => {
    const ip = '203.0.113.4';
    for (let i = 0; i < 3; i++) expect((await hit(t.app, { ip, principal: 'key_a' })).statusCode).toBe(200);
    expectRateLimited(await hit(t.app, { ip, principal: 'key_a' }));
    // Same IP, another principal, and the anonymous budget of that IP: untouched.
    expect((await hit(t.app, { ip, principal: 'key_b' })).statusCode).toBe(200);
    expect((await hit(t.app, { ip })).statusCode).toBe(200);
    // The principal's budget follows it to another IP.
    expectRateLimited(await hit(t.app, { ip: '203.0.113.5', principal: 'key_a' }));
  });

  it('applies the stricter per-IP limit to credential routes', async () => {
    const ip = '203.0.113.6';
    const login = { url: '/test/login', method: 'POST', ip } as const;
    const first = await hit(t.app, login);
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-ratelimit-limit']).toBe('2');
    expect((await hit(t.app, login)).statusCode).toBe(200);
    expectRateLimited(await hit(t.app, login));
    // Per IP even when the caller claims a principal: a brute-forcer cannot rotate identities.
    expectRateLimited(await hit(t.app, { ...login, principal: 'key_c' }));
    expect((await hit(t.app, { ...login, ip: '203.0.113.8' })).statusCode).toBe(200);
    // A separate budget from the global one: this IP can still use other routes.
    expect((await hit(t.app, { ip })).statusCode).toBe(200);
  });
});

describe('rate limits: probes are exempt', () => {
  let t: TestApp;
  let app: Awaited<ReturnType<typeof wired>>;

  /** Health routes declared after the plugin, as buildApp does, on the test app's dependencies. */
  async function wired(deps: App['deps']) {
    const wiredApp = Fastify().withTypeProvider<TypeBoxTypeProvider>();
    wiredApp.decorate('deps', deps);
    registerProblemHandlers(wiredApp);
    await wiredApp.register(rateLimitPlugin, { ...LIMITS, max: 1 });
    await wiredApp.register(healthRoutes);
    wiredApp.get('/test/limited', () => ({ ok: true }));
    await wiredApp.ready();
    return wiredApp;
  }

  beforeAll(async () => {
    t = await createTestApp('embedded');
    app = await wired(t.app.deps);
  });
  afterAll(async () => {
    await app.close();
    await t.close();
  });

  it('never limits /healthz and /readyz', async () => {
    for (let i = 0; i < 5; i++) {
      for (const url of ['/healthz', '/readyz']) {
        const res = await app.inject({ url });
        expect(res.statusCode, url).toBe(200);
        expect(res.headers['x-ratelimit-limit'], url).toBeUndefined();
      }
    }
    // …while the same client is limited elsewhere.
    expect((await app.inject({ url: '/test/limited' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/test/limited' })).statusCode).toBe(429);
  });
});

describe('rate limits: Redis unreachable', () => {
  let t: TestApp;
  let redis: Redis;
  beforeAll(async () => {
    // A real client to a port nothing listens on: every command fails.
    redis = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined);
    await redis.connect().catch(() => undefined);
    t = await createTestApp('embedded', { routes: limitedRoutes({ ...LIMITS, max: 1, redis }) });
  });
  afterAll(async () => {
    await t.close();
    redis.disconnect();
  });

  it('fails open rather than failing requests', async () => {
    for (let i = 0; i < 3; i++) expect((await hit(t.app)).statusCode).toBe(200);
  });
});

const redisUrl = inject('redisUrl');

describe.runIf(redisUrl !== null)('rate limits (Redis store)', () => {
  const nameSpace = `larder:rl:test:${inject('runId')}:${randomBytes(4).toString('hex')}:`;
  let a: TestApp;
  let b: TestApp;
  let admin: Redis;

  beforeAll(async () => {
    admin = new Redis(redisUrl ?? '');
    a = await createTestApp('embedded', {
      redisUrl,
      routes: (app) => {
        limitedRoutes({ ...LIMITS, redis: app.deps.redis, nameSpace })(app);
      },
    });
    b = await createTestApp('embedded', {
      redisUrl,
      routes: (app) => {
        limitedRoutes({ ...LIMITS, redis: app.deps.redis, nameSpace })(app);
      },
    });
  });

  async function ourKeys(): Promise<string[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${nameSpace}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  }

  afterAll(async () => {
    await a.close();
    await b.close();
    const keys = await ourKeys();
    if (keys.length > 0) await admin.del(...keys);
    admin.disconnect();
  });

  it('shares one budget between processes', async () => {
    const ip = '198.51.100.1';
    expect((await hit(a.app, { ip })).statusCode).toBe(200);
    expect((await hit(b.app, { ip })).statusCode).toBe(200);
    expect((await hit(a.app, { ip })).headers['x-ratelimit-remaining']).toBe('0');
    expectRateLimited(await hit(b.app, { ip }));
    expectRateLimited(await hit(a.app, { ip }));
    expect(await ourKeys()).toContain(`${nameSpace}ip:${ip}`);
    const ttl = await admin.pttl(`${nameSpace}ip:${ip}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(WINDOW_MS);
  });

  it('shares the credential-route budget too', async () => {
    const login = { url: '/test/login', method: 'POST', ip: '198.51.100.2' } as const;
    expect((await hit(a.app, login)).statusCode).toBe(200);
    expect((await hit(b.app, login)).statusCode).toBe(200);
    expectRateLimited(await hit(a.app, login));
    expect(await ourKeys()).toContain(`${nameSpace}POST/test/login-ip:198.51.100.2`);
  });
});
