import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig, settings } from './config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies documented defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir).toBe('./data');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.logLevel).toBe('info');
    expect(config.migrateOnStart).toBe(true);
  });

  it('converts environment strings to typed values', () => {
    const config = loadConfig({
      PORT: '9000',
      LARDER_LOG_PRETTY: 'true',
      LOG_LEVEL: 'debug',
      DATABASE_URL: 'postgres://u:p@db:5432/larder',
      DATABASE_POOL_SIZE: '25',
    });
    expect(config).toMatchObject({ port: 9000, logPretty: true, logLevel: 'debug', databasePoolSize: 25 });
    expect(config.databaseUrl).toBe('postgres://u:p@db:5432/larder');
  });

  it('treats empty variables as unset', () => {
    const config = loadConfig({ DATABASE_URL: '', PORT: '' });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.port).toBe(8080);
  });

  it('lists every problem in one error, never just the first', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      DATABASE_URL: 'mysql://root:hunter2@db/x',
      DATABASE_POOL_SIZE: '0',
      LARDER_LOG_PRETTY: 'maybe',
    });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/^PORT: /m);
    expect(problems.join('\n')).toMatch(
      /^LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent/m,
    );
    expect(problems.join('\n')).toMatch(/^DATABASE_POOL_SIZE: /m);
    expect(problems.join('\n')).toMatch(/^LARDER_LOG_PRETTY: /m);
  });

  it('checks the chat price table and the PII redaction targets', () => {
    expect(
      problemsOf({ LARDER_CHAT_PRICES: '{"m": {"input": "cheap"}}', LARDER_PII_REDACTION: 'logs,email' }),
    ).toEqual([
      expect.stringMatching(/^LARDER_PII_REDACTION: /),
      expect.stringMatching(/^LARDER_CHAT_PRICES: "m" needs/),
    ]);
    const config = loadConfig({
      LARDER_CHAT_PRICES: '{"m": {"input": 1, "output": 2}}',
      LARDER_PII_REDACTION: 'logs, provider',
    });
    expect(config.piiRedaction).toBe('logs, provider');
  });

  it('never echoes a database password in an error', () => {
    const message = problemsOf({ DATABASE_URL: 'mysql://root:hunter2@db/x' }).join('\n');
    expect(message).toContain('DATABASE_URL');
    expect(message).not.toContain('hunter2');
  });

  it('reads a JSON config file named by LARDER_CONFIG; the environment wins', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'larder-config-'));
    const file = path.join(dir, 'larder.json');
    await writeFile(file, JSON.stringify({ PORT: 7000, HOST: '0.0.0.0', LOG_LEVEL: 'warn' }));
    const config = loadConfig({ LARDER_CONFIG: file, LOG_LEVEL: 'error' });
    expect(config).toMatchObject({ port: 7000, host: '0.0.0.0', logLevel: 'error' });
  });

  it('rejects unknown keys and unreadable config files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'larder-config-'));
    const file = path.join(dir, 'larder.json');
    await writeFile(file, JSON.stringify({ PORTT: 7000 }));
    expect(problemsOf({ LARDER_CONFIG: file })).toEqual([expect.stringMatching(/^PORTT: unknown setting/)]);
    expect(problemsOf({ LARDER_CONFIG: path.join(dir, 'missing.json') })[0]).toMatch(
      /^LARDER_CONFIG: cannot read/,
    );
    await writeFile(file, '[1,2]');
    expect(problemsOf({ LARDER_CONFIG: file })[0]).toMatch(/must contain a JSON object/);
  });

  it('masks credentials when describing the configuration for logs', () => {
    const described = describeConfig(
      loadConfig({
        DATABASE_URL: 'postgres://larder:s3cret@db/larder',
        REDIS_URL: 'redis://:r3dis@cache:6379',
      }),
    );
    expect(JSON.stringify(described)).not.toMatch(/s3cret|r3dis/);
    expect(described.databaseUrl).toBe('postgres://larder:***@db/larder');
  });

  it('documents every setting', () => {
    for (const setting of Object.values(settings)) {
      expect(setting.doc.length, setting.env).toBeGreaterThan(10);
      expect(setting.env).toMatch(/^[A-Z][A-Z0-9_]+$/);
    }
  });
});
