/** Graceful shutdown as `larder serve` does it: in-flight requests finish, new ones are refused. */
import { describe, expect, it } from 'vitest';
import { createTestApp } from './helpers/app.js';

describe('graceful shutdown', () => {
  it('drains in-flight requests before closing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const t = await createTestApp('embedded', {
      routes: (app) =>
        app.get('/test/slow', async () => {
          entered();
          await gate;
          return { finished: true };
        }),
    });
    const url = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const inFlight = fetch(`${url}/test/slow`);
    await inside;
    const closing = t.app.close();
    // Closed for new connections while the slow request is still running.
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ finished: true });
    await closing;
    await t.db.close();
  });
});
