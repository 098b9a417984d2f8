/** First-user bootstrap: the admin CLI, the container bootstrap and the first-run hint. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootstrapFirstUser, countUsers } from '../src/modules/admin/service.js';
import { runCli, startServer } from './helpers/cli.js';
import { silentLogger } from './helpers/config.js';
import { createTestDatabase, drivers } from './helpers/database.js';

const CHEAP = { LARDER_ARGON2_MEMORY_KIB: '1024', LARDER_ARGON2_TIME_COST: '1', LOG_LEVEL: 'warn' };

describe('larder admin create-user', () => {
  it('creates an owner with a generated password shown once, and refuses duplicates and weak passwords', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-admin-'));
    const env = { ...CHEAP, LARDER_DATA_DIR: dataDir };
    const created = await runCli(
      ['admin', 'create-user', '--email', 'Root@Example.com', '--owner', '--workspace', 'Ops', '--json'],
      env,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const out = JSON.parse(created.stdout) as { email: string; workspaceId: string; password: string };
    expect(out).toMatchObject({ email: 'root@example.com', workspaceId: expect.any(String) as unknown });
    expect(out.password.length).toBeGreaterThanOrEqual(20);

    const again = await runCli(['admin', 'create-user', '--email', 'root@example.com'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('An account with this email exists');

    // The generated password works against the real server.
    const server = await startServer({ ...env, LOG_LEVEL: 'info' });
    try {
      const login = await fetch(`${server.ready}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'root@example.com', password: out.password }),
      });
      expect(login.status).toBe(200);
      expect(server.output()).not.toContain('No users yet');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('reads the password from stdin and applies the password policy', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-admin-'));
    const { spawn } = await import('node:child_process');
    const { BIN, cleanEnv } = await import('./helpers/cli.js');
    const child = spawn(
      process.execPath,
      [BIN, 'admin', 'create-user', '--email', 'weak@example.com', '--password-stdin'],
      {
        env: cleanEnv({ ...CHEAP, LARDER_DATA_DIR: dataDir }),
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end('password\n');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(2);
    expect(stderr).toContain('must be at least 12 characters');
  });

  it('prints how to create the first user when embedded serve starts on an empty database', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-admin-'));
    const server = await startServer({ LARDER_DATA_DIR: dataDir });
    try {
      // stderr (the hint) and stdout (the log line) are separate pipes: allow them to arrive in any order.
      for (let i = 0; i < 50 && !server.output().includes('No users yet'); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(server.output()).toContain('No users yet');
      expect(server.output()).toContain('larder admin create-user');
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});

describe.each(drivers())('container bootstrap (%s)', (driver) => {
  it('creates the first user once, even when replicas start together', async () => {
    const t = await createTestDatabase(driver);
    try {
      const config = {
        ...t.config,
        argon2MemoryKib: 1024,
        argon2TimeCost: 1,
        bootstrapEmail: 'ops@example.com',
        bootstrapPassword: 'the very first passphrase',
      };
      const results = await Promise.all(
        [1, 2, 3].map(() => bootstrapFirstUser(t.database.db, config, silentLogger)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await countUsers(t.database.db)).toBe(1);
      const membership = await t.database.db
        .selectFrom('memberships as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
        .select(['u.email', 'm.role', 'w.name'])
        .executeTakeFirstOrThrow();
      expect(membership).toEqual({ email: 'ops@example.com', role: 'owner', name: 'Default' });
      expect(await bootstrapFirstUser(t.database.db, config, silentLogger)).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('refuses a weak bootstrap password with a start-up error', async () => {
    const t = await createTestDatabase(driver);
    try {
      const config = { ...t.config, bootstrapEmail: 'weak@example.com', bootstrapPassword: 'short' };
      await expect(bootstrapFirstUser(t.database.db, config, silentLogger)).rejects.toThrow(
        /LARDER_BOOTSTRAP_\*: The password must be at least/,
      );
      expect(await countUsers(t.database.db)).toBe(0);
    } finally {
      await t.close();
    }
  });
});
