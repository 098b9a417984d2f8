/** Connection-level behaviour: graceful shutdown (in-flight requests finish, new ones are refused) and raw client errors. */
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
        app.get('/test/slow', { config: { access: 'public' } }, async () => {
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

describe('errors raised before routing', () => {
  it('answers malformed HTTP with a 400 problem+json and closes the connection', async () => {
    const { connect } = await import('node:net');
    const t = await createTestApp('embedded');
    try {
      const url = new URL(await t.app.listen({ port: 0, host: '127.0.0.1' }));
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () =>
          socket.write('GARBAGE / NOT-HTTP\r\n\r\n'),
        );
        let data = '';
        socket.on('data', (d: Buffer) => (data += d.toString()));
        socket.on('close', () => {
          resolve(data);
        });
        socket.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(raw).toContain('Content-Type: application/problem+json');
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(body).toMatchObject({
        status: 400,
        code: 'bad_request',
        type: 'urn:larder:problem:bad_request',
      });
    } finally {
      await t.close();
    }
  });
});
