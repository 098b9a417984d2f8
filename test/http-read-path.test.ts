/**
 * The request path's performance machinery, against real services: compiled read templates (a shape
 * that misses a variation must fail, never run the wrong statement), rate-limit budgets claimed in
 * blocks from Redis (never more than the budget across processes), and security headers computed once
 * from helmet (the same headers @fastify/helmet would send).
 */
import { randomBytes } from 'node:crypto';
import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import {
  allowlist,
  templateWorkspace,
  visibilityShape,
  visibleCollectionQuery,
} from '../src/platform/auth/collection-access.js';
import { ROLE_PERMISSIONS, scopePermissions } from '../src/platform/auth/permissions.js';
import type { Db } from '../src/platform/db/database.js';
import { ReadTemplate, tenantRead } from '../src/platform/db/tenant.js';
import { LeasedRedisStore, leaseSize } from '../src/platform/http/rate-limit.js';
import { helmetHeaders, helmetOptions, securityPlugin } from '../src/platform/http/security.js';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/database.js';
import { createCollection, createTenant, type Tenant } from './helpers/factories.js';

describe.each(drivers())('read templates (%s)', (driver) => {
  let t: TestDatabase;
  let db: Db;
  let a: Tenant;
  let b: Tenant;
  const collections = new Map<string, string>();

  beforeAll(async () => {
    t = await createTestDatabase(driver);
    db = t.database.db;
    a = await createTenant(db, `${driver}-tpl-a`);
    b = await createTenant(db, `${driver}-tpl-b`);
    for (const tenant of [a, b])
      collections.set(tenant.workspaceId, await createCollection(db, tenant, 'Templated'));
  });
  afterAll(() => t.close());

  const member = (tenant: Tenant): WorkspaceContext => ({
    id: tenant.workspaceId,
    role: 'viewer',
    permissions: ROLE_PERMISSIONS.viewer,
    collections: null,
  });
  const key = (tenant: Tenant, ids: string[]): WorkspaceContext => ({
    id: tenant.workspaceId,
    role: null,
    permissions: scopePermissions(['documents:read']),
    collections: ids,
  });

  const VISIBLE = new ReadTemplate((q, [workspaceId = '', collectionId = '', ...ids], ws: WorkspaceContext) =>
    visibleCollectionQuery(q, templateWorkspace(ws, workspaceId, ids), collectionId),
  );
  const visible = (ws: WorkspaceContext, collectionId: string) =>
    tenantRead(db, ws.id, () => [
      VISIBLE.bind(visibilityShape(ws), [ws.id, collectionId, ...allowlist(ws)], ws),
    ]).then(([rows]) => rows.length > 0);

  it('re-binds one compiled statement to each caller’s values, and keeps workspaces apart', async () => {
    const ca = collections.get(a.workspaceId)!;
    const cb = collections.get(b.workspaceId)!;
    for (let i = 0; i < 20; i++) {
      expect(await visible(member(a), ca)).toBe(true);
      expect(await visible(member(b), cb)).toBe(true);
      // a's collection named while acting in b: not found (explicit filter and row-level security)
      expect(await visible(member(b), ca)).toBe(false);
    }
    // allowlists: the shape counts ids, the ids are values
    expect(await visible(key(a, [ca]), ca)).toBe(true);
    expect(await visible(key(a, [cb]), ca)).toBe(false);
    expect(await visible(key(a, []), ca)).toBe(false);
  });

  it('throws when the shape does not determine the statement, instead of running the cached one', async () => {
    // Bad on purpose: the workspace is taken from the context, not from the values.
    const BAD = new ReadTemplate((q, [collectionId = ''], ws: WorkspaceContext) =>
      q
        .selectFrom('collections')
        .select('id')
        .where('workspace_id', '=', ws.id)
        .where('id', '=', collectionId),
    );
    const read = (ws: WorkspaceContext) =>
      tenantRead(db, ws.id, () => [BAD.bind('same', [collections.get(ws.id)!], ws)]);
    expect((await read(member(a)))[0]).toHaveLength(1);
    await expect(read(member(b))).rejects.toThrow(/does not determine the statement/);
  });

  it('does not cache a build that transforms its values, and still answers correctly', async () => {
    const UPPER = new ReadTemplate((q, [workspaceId = '']) =>
      q.selectFrom('workspaces').select('id').where('id', '=', workspaceId.toUpperCase()),
    );
    for (const tenant of [a, b, a]) {
      const [rows] = await tenantRead(db, tenant.workspaceId, () => [
        UPPER.bind('upper', [tenant.workspaceId], undefined),
      ]);
      expect(rows).toEqual([{ id: tenant.workspaceId }]);
    }
  });
});

const redisUrl = inject('redisUrl');

describe.runIf(redisUrl !== null)('rate-limit budgets claimed in blocks (Redis)', () => {
  const prefix = `larder:rl:test:${inject('runId')}:${randomBytes(4).toString('hex')}:`;
  let one: Redis;
  let two: Redis;

  beforeAll(() => {
    one = new Redis(redisUrl ?? '');
    two = new Redis(redisUrl ?? '');
  });
  afterAll(async () => {
    const keys = await one.keys(`${prefix}*`);
    if (keys.length > 0) await one.del(...keys);
    one.disconnect();
    two.disconnect();
  });

  const incr = (store: LeasedRedisStore, key: string, max: number, windowMs = 60_000) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) => {
      store.incr(
        key,
        (error, result) => {
          if (error || !result) reject(error ?? new Error('no result'));
          else resolve(result);
        },
        windowMs,
        max,
      );
    });

  it('claims 1 % of the budget per Redis call, exactly one below 200', () => {
    expect([1, 10, 100, 199, 200, 600, 1_000_000_000].map(leaseSize)).toEqual([1, 1, 1, 1, 2, 6, 10_000_000]);
  });

  it('never admits more than the budget across processes, and at most a block less per other process', async () => {
    const max = 500; // blocks of 5
    const a = new LeasedRedisStore(one as never, prefix);
    const b = new LeasedRedisStore(two as never, prefix);
    let admitted = 0;
    for (let i = 0; i < 700; i++) {
      // concurrent requests on both "processes", as under load
      const results = await Promise.all([incr(a, 'k1', max), incr(b, 'k1', max), incr(a, 'k1', max)]);
      admitted += results.filter((r) => r.current <= max).length;
    }
    expect(admitted).toBeLessThanOrEqual(max);
    expect(admitted).toBeGreaterThanOrEqual(max - (leaseSize(max) - 1));
    // Redis counted whole blocks: everything claimed, including the refused ones
    expect(Number(await one.get(`${prefix}k1`))).toBeGreaterThan(max);
  });

  it('is exact for small budgets and starts a new window when the old one expires', async () => {
    const a = new LeasedRedisStore(one as never, prefix);
    const b = new LeasedRedisStore(two as never, prefix);
    const currents: number[] = [];
    for (let i = 0; i < 4; i++) currents.push((await incr(i % 2 ? b : a, 'k2', 3, 300)).current);
    expect(currents).toEqual([1, 2, 3, 4]);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect((await incr(a, 'k2', 3, 300)).current).toBe(1);
    expect((await incr(b, 'k2', 3, 300)).current).toBe(2);
  });

  it('answers locally once a window is spent, and fails (open) when Redis is unreachable', async () => {
    const a = new LeasedRedisStore(one as never, prefix);
    for (let i = 0; i < 3; i++) await incr(a, 'k3', 2);
    const before = Number(await one.get(`${prefix}k3`));
    expect((await incr(a, 'k3', 2)).current).toBeGreaterThan(2);
    expect(Number(await one.get(`${prefix}k3`))).toBe(before); // no Redis call for a spent window
    const dead = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    dead.on('error', () => undefined);
    const offline = new LeasedRedisStore(dead as never, prefix);
    await expect(incr(offline, 'k4', 10)).rejects.toBeTruthy();
    dead.disconnect();
  });
});

describe('security headers computed once from helmet', () => {
  it('are exactly the headers @fastify/helmet sends, with and without HSTS', async () => {
    for (const hsts of [false, true]) {
      const reference = Fastify();
      await reference.register(helmet, helmetOptions(hsts));
      reference.get('/x', () => ({ ok: true }));
      const ours = Fastify();
      await ours.register(securityPlugin, { corsOrigins: [], hsts });
      ours.get('/x', () => ({ ok: true }));
      const [want, got] = await Promise.all([
        reference.inject({ method: 'GET', url: '/x' }),
        ours.inject({ method: 'GET', url: '/x' }),
      ]);
      const strip = (h: Record<string, unknown>) => {
        const { date: _d, 'content-length': _l, connection: _c, 'keep-alive': _k, ...rest } = h;
        return rest;
      };
      expect(strip(got.headers)).toEqual(strip(want.headers));
      expect(Object.keys(await helmetHeaders(helmetOptions(hsts)))).toContain('content-security-policy');
      expect(Boolean(got.headers['strict-transport-security'])).toBe(hsts);
      await reference.close();
      await ours.close();
    }
  });
});
