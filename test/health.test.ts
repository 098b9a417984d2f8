import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { dropDatabase, drivers, serverAvailable } from './helpers/database.js';

describe.each(drivers())('operations endpoints (%s)', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(driver);
  });
  afterAll(() => t.close());

  it('GET /healthz answers 200 without touching dependencies', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 when the database is reachable and migrated', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'ok',
      mode: driver,
      checks: { database: { status: 'ok' }, migrations: { status: 'ok' }, redis: { status: 'skipped' } },
    });
  });

  it('GET /readyz answers 503 problem+json once the database is gone', async () => {
    const gone = await createTestApp(driver);
    try {
      // embedded: the database is closed; server: the database is dropped under the open pool.
      if (driver === 'embedded') await gone.db.database.close();
      else await dropDatabase(gone.db.url!);
      const res = await gone.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toMatchObject({
        code: 'service_unavailable',
        checks: { database: { status: 'fail' } },
      });
    } finally {
      await gone.close();
    }
  });
});

describe.each(drivers())('readiness with pending migrations (%s)', (driver) => {
  it('answers 503 naming the pending migrations', async () => {
    const t = await createTestApp(driver, { migrated: false });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      const body = res.json<{ checks: { migrations: { status: string; detail: string } } }>();
      expect(body.checks.migrations.status).toBe('fail');
      expect(body.checks.migrations.detail).toMatch(/pending migration\(s\): 0001_/);
    } finally {
      await t.close();
    }
  });
});

describe.runIf(serverAvailable())('readiness with Redis (server)', () => {
  it('checks Redis when configured', async () => {
    const t = await createTestApp('server', { redisUrl: inject('redisUrl') });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ checks: { redis: { status: 'ok' } } });
    } finally {
      await t.close();
    }
  });

  it('answers 503 when Redis is unreachable', async () => {
    const t = await createTestApp('server', { redisUrl: 'redis://127.0.0.1:1' });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ checks: { redis: { status: 'fail' }, database: { status: 'ok' } } });
    } finally {
      await t.close();
    }
  });
});
