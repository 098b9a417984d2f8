/**
 * Where a CLI test runs the real `larder` binary: the embedded driver (a temporary data directory with
 * an owner and workspace "Pantry") or PostgreSQL (a fresh test database with tenant "pantry" and a
 * running `larder worker` that processes what the CLI queues).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, inject } from 'vitest';
import { type Db, openDatabase } from '../../src/platform/db/database.js';
import { runCli, startProcess } from './cli.js';
import { silentLogger, testConfig } from './config.js';
import { createTestDatabase, type Driver } from './database.js';
import { createTenant } from './factories.js';

export interface CliTarget {
  /** The environment the CLI needs to reach this target. */
  env: Record<string, string>;
  /** Runs `fn` on the target's database (the embedded one is opened after the CLI has exited). */
  withDb<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function cliTarget(driver: Driver, options: { workerConcurrency: number }): Promise<CliTarget> {
  if (driver === 'embedded') {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-cli-data-'));
    const env = { LARDER_DATA_DIR: dataDir, LARDER_EMBEDDING_PROVIDER: 'none' };
    const user = await runCli(
      ['admin', 'create-user', '--email', 'ops@example.com', '--owner', '--workspace', 'Pantry', '--json'],
      { ...env, LOG_LEVEL: 'warn' },
    );
    expect(user.code, user.stderr).toBe(0);
    return {
      env,
      async withDb(fn) {
        const database = await openDatabase(testConfig({ LARDER_DATA_DIR: dataDir }), silentLogger);
        try {
          return await fn(database.db);
        } finally {
          await database.close();
        }
      },
      close: async () => undefined,
    };
  }
  const t = await createTestDatabase('server');
  await createTenant(t.database.db, 'pantry');
  const redisUrl = inject('redisUrl');
  const env = {
    DATABASE_URL: t.url ?? '',
    LARDER_EMBEDDING_PROVIDER: 'none',
    ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
  };
  const worker = await startProcess(
    ['worker'],
    { ...env, LARDER_JOB_CONCURRENCY: String(options.workerConcurrency) },
    /"msg":"worker started"/,
  );
  return {
    env,
    withDb: (fn) => fn(t.database.db),
    async close() {
      worker.child.kill('SIGTERM');
      await worker.exited;
      await t.close();
    },
  };
}
