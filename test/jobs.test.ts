/** The job loop end to end, on both drivers: enqueue → worker → handler → state, with retries. */
import { jobDeps } from './helpers/jobs.js';
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpiredJob } from '../src/modules/maintenance/jobs.js';
import { defineJob } from '../src/platform/jobs/define.js';
import { JobQueue } from '../src/platform/jobs/queue.js';
import { openServerDatabase, silentLogger } from './helpers/config.js';
import { migrateToLatest } from '../src/platform/db/migrator.js';
import { jobDefinitions } from '../src/platform/jobs/registry.js';
import {
  axisVector,
  createChunk,
  createCollection,
  createDocument,
  createTenant,
  DIMS,
  embedChunk,
  MODEL,
  vectorText,
} from './helpers/factories.js';
import { createTestDatabase, drivers, serverAvailable, type TestDatabase } from './helpers/database.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function waitFor<T>(
  fn: () => Promise<T | null | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(drivers())('job queue (%s)', (driver) => {
  let t: TestDatabase;
  let jobs: JobQueue;
  const attempts = new Map<string, number>();

  const flaky = defineJob({
    name: 'test.flaky',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 2, delaySeconds: 0, backoff: false },
    async handler({ key }) {
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      if (n < 2) throw new Error(`attempt ${n} fails`);
      return { attempts: n };
    },
  });

  const doomedAttempts: number[] = [];
  const doomedLast: boolean[] = [];
  const buried: string[] = [];
  const dead = defineJob({
    name: 'test.dead',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 0, delaySeconds: 0, backoff: false },
    async handler({ key }) {
      buried.push(key);
      return { buried: key };
    },
  });
  const doomed = defineJob({
    name: 'test.doomed',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 1, delaySeconds: 0, backoff: false },
    deadLetter: 'test.dead',
    async handler(_payload, ctx) {
      doomedAttempts.push(ctx.retryCount);
      doomedLast.push(ctx.lastAttempt);
      throw new Error('always fails');
    },
  });

  const batches: string[][] = [];
  const batchOne = (key: string) =>
    key.endsWith('-bad') ? Promise.reject(new Error(`${key} fails`)) : Promise.resolve({ key });
  const batched = defineJob({
    name: 'test.batched',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 0, delaySeconds: 0, backoff: false },
    deadLetter: 'test.dead',
    handler: ({ key }) => batchOne(key),
    batch: {
      size: 8,
      handler: (items) => {
        batches.push(items.map((i) => i.payload.key).sort());
        return Promise.allSettled(items.map((i) => batchOne(i.payload.key)));
      },
    },
  });

  beforeAll(async () => {
    t = await createTestDatabase(driver);
    jobs = new JobQueue(
      jobDeps(t.config, t.database, silentLogger),
      [purgeExpiredJob, flaky, dead, doomed, batched],
      {
        work: true,
        concurrency: 1,
        pollingIntervalSeconds: 0.5,
      },
    );
    await jobs.start();
  });
  afterAll(async () => {
    await jobs.stop(2000);
    await t.close();
  });

  it('runs the built-in maintenance job: expired credentials are purged, live ones kept', async () => {
    const { db } = t.database;
    const user = await db
      .insertInto('users')
      .values({ email: `u-${driver}@example.com`, display_name: 'U' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const token = (hash: string, expires: string) => ({
      user_id: user.id,
      family_id: sql<string>`gen_random_uuid()`,
      token_hash: sha256(hash),
      expires_at: sql<Date>`now() + ${expires}::interval`,
    });
    await db
      .insertInto('refresh_tokens')
      .values([
        token('expired-long-ago', '-30 days'),
        token('expired-yesterday', '-1 day'),
        token('live', '7 days'),
      ])
      .execute();

    // Embedding cache: an old unused vector goes; an old one still used and a recent unused one stay.
    const tenant = await createTenant(db, `maint-${driver}`);
    const collectionId = await createCollection(db, tenant, 'c');
    const doc = await createDocument(db, tenant, collectionId, 'd');
    const chunk = await createChunk(db, doc, 0, 'cached text');
    await embedChunk(db, chunk, axisVector(1));
    const cacheRow = (hash: string, age: string) => ({
      workspace_id: tenant.workspaceId,
      model: MODEL,
      content_hash: hash,
      dimensions: DIMS,
      embedding: vectorText(axisVector(2)),
      created_at: sql<Date>`now() - ${age}::interval`,
    });
    await db
      .insertInto('embedding_cache')
      .values([
        cacheRow(sha256('old and unused'), '40 days'),
        cacheRow(sha256(chunk.id), '40 days'),
        cacheRow(sha256('recent and unused'), '1 day'),
      ])
      .execute();

    const id = await jobs.send(purgeExpiredJob, {});
    expect(id).toEqual(expect.any(String));
    const done = await waitFor(async () => {
      const s = await jobs.state(purgeExpiredJob, id!);
      return s?.state === 'completed' ? s : null;
    }, 'purge job to complete');
    expect(done.output).toMatchObject({ refreshTokens: 1, embeddingCache: 1 });
    const cached = await db.selectFrom('embedding_cache').select('content_hash').execute();
    expect(cached.map((r) => r.content_hash).sort()).toEqual(
      [sha256(chunk.id), sha256('recent and unused')].sort(),
    );

    const left = await db.selectFrom('refresh_tokens').select('token_hash').execute();
    expect(left.map((r) => r.token_hash).sort()).toEqual(
      [sha256('expired-yesterday'), sha256('live')].sort(),
    );
  });

  it('retries a failing job per its policy until it succeeds', async () => {
    const id = await jobs.send(flaky, { key: `k-${driver}` });
    const done = await waitFor(async () => {
      const s = await jobs.state(flaky, id!);
      return s?.state === 'completed' ? s : null;
    }, 'flaky job to complete');
    expect(done.output).toEqual({ attempts: 2 });
    expect(attempts.get(`k-${driver}`)).toBe(2);
  });

  it('tells handlers their attempt, and hands a job that fails for good to its dead-letter queue', async () => {
    const key = `doomed-${driver}`;
    await jobs.send(doomed, { key });
    await waitFor(async () => (buried.includes(key) ? true : null), 'dead letter to run');
    expect(doomedAttempts).toEqual([0, 1]);
    expect(doomedLast).toEqual([false, true]);
  });

  it('runs waiting jobs in one batch; a job that fails in it fails alone, to its dead letter', async () => {
    const keys = ['a', 'b-bad', 'c', 'd'].map((k) => `${driver}-${k}`);
    const ids = await t.database.db
      .transaction()
      .execute(async (trx) => Promise.all(keys.map((key) => jobs.send(batched, { key }, { trx }))));
    await waitFor(async () => (buried.includes(`${driver}-b-bad`) ? true : null), 'dead letter to run');
    expect(batches, JSON.stringify(batches)).toContainEqual([...keys].sort());
    const states = await Promise.all(ids.map((id) => jobs.state(batched, id ?? '')));
    expect(states.map((s) => s?.state)).toEqual(['completed', 'failed', 'completed', 'completed']);
  });

  it('enqueues inside a transaction: a rollback leaves no job behind', async () => {
    let jobId: string | null = null;
    await expect(
      t.database.db.transaction().execute(async (trx) => {
        jobId = await jobs.send(flaky, { key: `rolled-back-${driver}` }, { trx });
        throw new Error('abort the transaction');
      }),
    ).rejects.toThrow('abort the transaction');
    expect(jobId).toEqual(expect.any(String));
    expect(await jobs.state(flaky, jobId!)).toBeNull();
    expect(attempts.has(`rolled-back-${driver}`)).toBe(false);
  });

  it('refuses a payload that does not match the job schema', async () => {
    await expect(jobs.send(flaky, { key: 42 } as unknown as { key: string })).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });
});

describe.runIf(serverAvailable())('job queue start-up (server)', () => {
  it('starts several processes at once on a fresh database (pg-boss queue creation deadlocks are retried)', async () => {
    const t = await createTestDatabase('server', { migrated: false });
    const pools = await Promise.all(Array.from({ length: 4 }, () => openServerDatabase(t.url ?? '')));
    try {
      await migrateToLatest(t.database.db);
      const queues = pools.map(
        (database) =>
          new JobQueue(jobDeps(t.config, database, silentLogger), jobDefinitions, {
            work: false,
            concurrency: 1,
          }),
      );
      await Promise.all(queues.map((q) => q.start()));
      await Promise.all(queues.map((q) => q.stop(1000)));
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from larder_jobs.queue`.execute(
        t.database.db,
      );
      expect(rows[0]?.n).toBe(jobDefinitions.length);
    } finally {
      await Promise.all(pools.map((p) => p.close()));
      await t.close();
    }
  });
});

describe.each(drivers())('job wake-up (%s)', (driver) => {
  // Workers that poll only once a minute: a job runs within seconds only because the notification
  // sent with it wakes them.
  let t: TestDatabase;
  let jobs: JobQueue;
  const ran: string[] = [];
  const echo = defineJob({
    name: 'test.wake',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 0, delaySeconds: 0, backoff: false },
    handler({ key }) {
      ran.push(key);
      return Promise.resolve({ key });
    },
  });
  // Its workers are woken WAKE_DELAY (below) after a notification, so that a burst of jobs runs as one batch.
  const batches: string[][] = [];
  const gathered = defineJob({
    name: 'test.wake-batched',
    payload: Type.Object({ key: Type.String() }),
    retry: { limit: 0, delaySeconds: 0, backoff: false },
    handler: ({ key }) => Promise.resolve({ key }),
    batch: {
      size: 16,
      handler: (items) => {
        const keys = items.map((i) => i.payload.key);
        batches.push([...keys].sort());
        ran.push(...keys);
        return Promise.resolve(keys.map((key) => ({ status: 'fulfilled' as const, value: { key } })));
      },
    },
  });
  const WAKE_DELAY = 2000;
  const ranSoon = (key: string) => waitFor(async () => ran.includes(key) || null, `job ${key}`, 15_000);
  // The worker's first fetch happens as it starts; after it, it sleeps for the polling interval.
  const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));

  beforeAll(async () => {
    t = await createTestDatabase(driver);
    jobs = new JobQueue(jobDeps(t.config, t.database, silentLogger), [echo, gathered], {
      work: true,
      concurrency: 1,
      pollingIntervalSeconds: 60,
      wakeDelayMs: WAKE_DELAY,
    });
    await jobs.start();
    await settle();
  });
  afterAll(async () => {
    await jobs.stop(2000);
    await t.close();
  });

  it('runs a new job at once, not after the polling interval', async () => {
    await jobs.send(echo, { key: 'plain' });
    await ranSoon('plain');
  });

  it('wakes the workers when the transaction that sent the job commits, never before', async () => {
    await settle();
    await t.database.db.transaction().execute(async (trx) => {
      await jobs.send(echo, { key: 'in-transaction' }, { trx });
      await jobs.send(echo, { key: 'in-transaction-too' }, { trx });
      await settle();
      expect(ran).not.toContain('in-transaction');
    });
    // One notification for the transaction's two jobs: the worker runs both.
    await ranSoon('in-transaction');
    await ranSoon('in-transaction-too');
  });

  it('wakes a batched queue once after a burst of sends (one batch), any other queue at once', async () => {
    await settle();
    const keys = ['burst-1', 'burst-2', 'burst-3'];
    // Three transactions, three notifications: the batched queue's workers are woken once, for all.
    await Promise.all(keys.map((key) => jobs.send(gathered, { key })));
    await jobs.send(echo, { key: 'not-batched' });
    for (const key of keys) await ranSoon(key);
    expect(batches).toContainEqual(keys);
    // The unbatched job did not wait for the batched queue's delay.
    expect(ran.indexOf('not-batched')).toBeLessThan(ran.indexOf('burst-1'));
  });

  it.runIf(driver === 'server')('listens again after its connection is lost', async () => {
    await settle();
    const { rows } = await sql<{ n: number }>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where application_name = 'larder-listen' and datname = current_database()`.execute(t.database.db);
    expect(rows[0]?.n).toBe(1);
    // Reconnects after 2 s; a job sent before then is picked up by the next poll, so wait it out.
    await waitFor(
      async () => {
        const { rows: listening } = await sql<{ n: number }>`
          select count(*)::int as n from pg_stat_activity
          where application_name = 'larder-listen' and datname = current_database()`.execute(t.database.db);
        return (listening[0]?.n ?? 0) > 0 || null;
      },
      'the listener to reconnect',
      10_000,
    );
    await jobs.send(echo, { key: 'after-reconnect' });
    await ranSoon('after-reconnect');
  });
});
