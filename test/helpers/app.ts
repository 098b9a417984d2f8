/** An app on a fresh test database, plus a log capture, for `app.inject()` tests. */
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { type App, buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { generateJwk, KeyRing } from '../../src/modules/auth/keys.js';
import { createLogger } from '../../src/platform/logger.js';
import type { EventBus } from '../../src/platform/events/bus.js';
import { JobQueue } from '../../src/platform/jobs/queue.js';
import { jobDefinitions } from '../../src/platform/jobs/registry.js';
import { jobDeps } from './jobs.js';
import { createTestDatabase, type Driver, type TestDatabase } from './database.js';

export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestApp {
  app: App;
  db: TestDatabase;
  logs: LogCapture;
  redis: Redis | undefined;
  jobs: JobQueue;
  events: EventBus;
  close(): Promise<void>;
}

export interface TestAppOptions {
  migrated?: boolean;
  /** Build on an existing test database instead of a fresh one. */
  reuse?: TestDatabase;
  redisUrl?: string | null;
  configure?: (config: Config) => Config;
  /** Adds routes before the app is ready (test-only routes). */
  routes?: (app: App) => void;
  /** `produce` (default): routes can enqueue jobs; `work`: the app's process also runs them. */
  jobs?: 'produce' | 'work';
}

export async function createTestApp(driver: Driver, options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.reuse ?? (await createTestDatabase(driver, { migrated: options.migrated ?? true }));
  const logs = new LogCapture();
  const config = options.configure ? options.configure(db.config) : db.config;
  const logger = createLogger({ logLevel: 'info', logPretty: false }, logs);
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    : undefined;
  redis?.on('error', () => undefined);
  if (redis) await redis.connect().catch(() => undefined);
  const keys = await KeyRing.fromJwks([await generateJwk()], {
    issuer: 'larder',
    ttlSeconds: config.accessTokenTtlSeconds,
  });
  const deps = jobDeps(config, db.database, logger);
  const jobs = new JobQueue(deps, jobDefinitions, {
    work: options.jobs === 'work',
    concurrency: 2,
    pollingIntervalSeconds: 0.5,
  });
  await jobs.start();
  const app = await buildApp({
    config,
    logger,
    database: db.database,
    redis,
    keys,
    jobs,
    events: deps.events,
    embeddings: deps.embeddings,
  });
  options.routes?.(app);
  await app.ready();
  return {
    app,
    db,
    logs,
    redis,
    jobs,
    events: deps.events,
    async close() {
      await app.close();
      await jobs.stop(5000);
      await deps.embeddings.close();
      redis?.disconnect();
      await db.close();
    },
  };
}

/** Fast, permissive auth settings for HTTP tests (cheap argon2, no auth rate limit in the way). */
export const fastAuth = (c: Config): Config => ({
  ...c,
  argon2MemoryKib: 1024,
  argon2TimeCost: 1,
  authRateLimitMax: 1000,
});

export const TEST_PASSWORD = 'a sturdy passphrase for tests';

export interface SignedUp {
  token: string;
  userId: string;
  workspaceId: string;
  email: string;
}

/** Signs a user up through the real API; they own a new workspace. */
export async function signUp(
  app: App,
  email: string,
  displayName = email.split('@')[0] ?? email,
): Promise<SignedUp> {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/auth/signup',
    payload: { email, password: TEST_PASSWORD, displayName },
  });
  if (res.statusCode !== 201) throw new Error(`sign-up failed: ${res.statusCode} ${res.body}`);
  const body = res.json<{
    tokens: { accessToken: string };
    workspace: { id: string };
    user: { id: string; email: string };
  }>();
  return {
    token: body.tokens.accessToken,
    userId: body.user.id,
    workspaceId: body.workspace.id,
    email: body.user.email,
  };
}
