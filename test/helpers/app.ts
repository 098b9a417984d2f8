/** An app on a fresh test database, plus a log capture, for `app.inject()` tests. */
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { type App, buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { generateJwk, KeyRing } from '../../src/modules/auth/keys.js';
import { createLogger } from '../../src/platform/logger.js';
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
  const app = await buildApp({ config, logger, database: db.database, redis, keys });
  options.routes?.(app);
  await app.ready();
  return {
    app,
    db,
    logs,
    redis,
    async close() {
      await app.close();
      redis?.disconnect();
      await db.close();
    },
  };
}
