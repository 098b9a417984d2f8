/** Test configuration and logger; no vitest imports, so the global setup can use it too. */
import { type Config, loadConfig } from '../../src/config.js';
import { type Database, openDatabase } from '../../src/platform/db/database.js';
import { createLogger } from '../../src/platform/logger.js';

export const silentLogger = createLogger({ logLevel: 'silent', logPretty: false });

/**
 * A config as `loadConfig` would produce from this environment (nothing from process.env). New
 * collections default to lexical-only here; tests that embed choose `local` or `openai` explicitly.
 */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ LOG_LEVEL: 'silent', LARDER_EMBEDDING_PROVIDER: 'none', ...env });
}

export function openServerDatabase(url: string): Promise<Database> {
  return openDatabase(testConfig({ DATABASE_URL: url, DATABASE_POOL_SIZE: '5' }), silentLogger);
}

/** The same server URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
