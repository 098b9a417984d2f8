import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Database } from '../../platform/db/database.js';
import { pendingMigrations } from '../../platform/db/migrator.js';

export interface CheckResult {
  status: 'ok' | 'fail' | 'skipped';
  ms?: number;
  detail?: string;
}

const CHECK_TIMEOUT_MS = 2_000;

async function timed(fn: () => Promise<string | undefined>): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`));
      }, CHECK_TIMEOUT_MS);
    });
    const detail = await Promise.race([fn(), timeout]);
    return { status: 'ok', ms: Math.round(performance.now() - started), ...(detail ? { detail } : {}) };
  } catch (error) {
    // Only the error's message: connection errors name the host, never credentials.
    return { status: 'fail', ms: Math.round(performance.now() - started), detail: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export async function checkReadiness(deps: { database: Database; redis?: Redis | undefined }) {
  const { db } = deps.database;
  const [database, migrations, redis] = await Promise.all([
    timed(async () => {
      await sql`select 1`.execute(db);
      return undefined;
    }),
    timed(async () => {
      const pending = await pendingMigrations(db);
      if (pending.length > 0)
        throw new Error(`${pending.length} pending migration(s): ${pending.join(', ')}`);
      return undefined;
    }),
    deps.redis
      ? timed(async () => {
          await deps.redis?.ping();
          return undefined;
        })
      : Promise.resolve<CheckResult>({ status: 'skipped', detail: 'REDIS_URL not set' }),
  ]);
  const checks = { database, migrations, redis };
  return { ready: Object.values(checks).every((c) => c.status !== 'fail'), checks };
}
