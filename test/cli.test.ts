/** The `larder` binary as users run it: help, config errors, migrate, serve, graceful shutdown. */
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrationFiles } from '../src/platform/db/migrator.js';
import { runCli, startProcess, startServer } from './helpers/cli.js';
import { createTestDatabase, serverAvailable } from './helpers/database.js';

const tempDir = () => mkdtemp(path.join(tmpdir(), 'larder-cli-'));

describe('larder CLI', () => {
  it('documents every command in --help', async () => {
    const res = await runCli(['--help'], {});
    expect(res.code).toBe(0);
    for (const command of ['serve', 'worker', 'migrate'])
      expect(res.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    expect(res.stdout).toContain('DATABASE_URL');
    const serve = await runCli(['serve', '--help'], {});
    expect(serve.stdout).toMatch(/embedded mode/);
  });

  it('exits non-zero on invalid config, listing every problem in one message', async () => {
    const res = await runCli(['serve'], { PORT: 'http', LOG_LEVEL: 'chatty', DATABASE_URL: 'mysql://x' });
    expect(res.code).toBe(78);
    expect(res.stderr).toContain('Invalid configuration (3 problems)');
    expect(res.stderr).toMatch(/PORT: .*\n.*DATABASE_URL: .*\n.*LOG_LEVEL: /);
    expect(res.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
  });

  it('migrates the embedded database once; a second run is a no-op', async () => {
    const dataDir = await tempDir();
    const first = await runCli(['migrate'], { LARDER_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const files = await migrationFiles();
    expect(first.stdout).toContain(`Applied ${files.length} migration(s)`);
    const second = await runCli(['migrate', '--json'], { LARDER_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toEqual({ applied: [], total: files.length });
    expect(await readdir(dataDir)).toContain('pg');
  });

  it('serves in embedded mode, refuses a second process on the same data, and shuts down cleanly on SIGTERM', async () => {
    const dataDir = await tempDir();
    const server = await startServer({ LARDER_DATA_DIR: dataDir });
    try {
      const health = await fetch(`${server.ready}/healthz`);
      expect(health.status).toBe(200);
      const ready = await fetch(`${server.ready}/readyz`);
      expect(await ready.json()).toMatchObject({ status: 'ok', mode: 'embedded' });
      expect(server.output()).toContain('"msg":"worker started"'); // jobs run in-process in embedded mode

      const second = await runCli(['serve'], { LARDER_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn' });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/in use by process \d+/);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('shutdown complete');

    // Restart on the same data: nothing to migrate, data kept.
    const again = await runCli(['migrate', '--json'], { LARDER_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    expect(JSON.parse(again.stdout)).toMatchObject({ applied: [] });
  });

  it.runIf(serverAvailable())(
    'migrates PostgreSQL from two processes at once; both succeed, each migration applies once',
    async () => {
      const t = await createTestDatabase('server', { migrated: false });
      try {
        const env = { DATABASE_URL: t.url!, LOG_LEVEL: 'warn' };
        const [a, b] = await Promise.all([
          runCli(['migrate', '--json'], env),
          runCli(['migrate', '--json'], env),
        ]);
        expect([a.code, b.code, a.stderr, b.stderr]).toEqual([0, 0, '', '']);
        const files = await migrationFiles();
        const applied = [
          ...(JSON.parse(a.stdout) as { applied: string[] }).applied,
          ...(JSON.parse(b.stdout) as { applied: string[] }).applied,
        ];
        expect(applied.sort()).toEqual(files);
        const rows = await sql<{ name: string }>`select name from larder_migration order by name`.execute(
          t.database.db,
        );
        expect(rows.rows.map((r) => r.name)).toEqual(files);
        const again = await runCli(['migrate'], env);
        expect(again.stdout).toContain('Database is up to date');
      } finally {
        await t.close();
      }
    },
  );

  it.runIf(serverAvailable())(
    'serves against PostgreSQL (no inline worker) and stops on SIGINT',
    async () => {
      const t = await createTestDatabase('server');
      try {
        const server = await startServer({ DATABASE_URL: t.url! });
        const ready = await fetch(`${server.ready}/readyz`);
        expect(await ready.json()).toMatchObject({ status: 'ok', mode: 'server' });
        server.child.kill('SIGINT');
        expect(await server.exited).toBe(0);
        expect(server.output()).not.toContain('worker started');
      } finally {
        await t.close();
      }
    },
  );

  it.runIf(serverAvailable())('runs `larder worker` against PostgreSQL until SIGTERM', async () => {
    const t = await createTestDatabase('server');
    try {
      const worker = await startProcess(['worker'], { DATABASE_URL: t.url! }, /"msg":"worker started"/);
      expect(worker.output()).toContain('maintenance.purge-expired');
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      expect(worker.output()).toContain('shutdown complete');
    } finally {
      await t.close();
    }
  });
});
