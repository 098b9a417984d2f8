/** The access hook fails closed for routes that escaped the start-up declaration check. */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { generateJwk, KeyRing } from '../src/modules/auth/keys.js';
import { accessPlugin } from '../src/platform/auth/access.js';
import { registerProblemHandlers } from '../src/platform/http/problem.js';
import { createTestDatabase } from './helpers/database.js';

describe('access plugin', () => {
  it('refuses a route registered without a declaration (before the plugin), and still 404s unknown routes', async () => {
    const t = await createTestDatabase('embedded');
    const app = Fastify();
    registerProblemHandlers(app);
    app.get('/early', () => ({ leaked: true })); // registered before the plugin: the onRoute check never saw it
    await app.register(accessPlugin, {
      keys: await KeyRing.fromJwks([await generateJwk()], { issuer: 'larder', ttlSeconds: 60 }),
      apiKeys: { authenticate: () => Promise.resolve(null) },
      db: t.database.db,
    });
    expect(() => app.get('/late', () => 'x')).toThrow(/does not declare config.access/);
    try {
      const early = await app.inject({ method: 'GET', url: '/early' });
      expect(early.statusCode).toBe(403);
      expect(early.body).not.toContain('leaked');
      expect((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode).toBe(404);
    } finally {
      await app.close();
      await t.close();
    }
  });
});
