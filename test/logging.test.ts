/** Secrets sent by clients must never reach a log line, whatever the request does. */
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeConfig, loadConfig } from '../src/config.js';
import { createLogger, redactUrl } from '../src/platform/logger.js';
import { createTestApp, LogCapture, type TestApp } from './helpers/app.js';

const SECRETS = {
  bearer: 'eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LWJlYXJlcg.sig',
  cookie: 'larder_session=c00kie-v4lue',
  apiKey: 'lk_live_0123456789abcdef0123456789',
  password: 'correct horse battery staple',
  refresh: 'refresh-t0ken-value',
  queryToken: 'qu3ry-t0ken',
};

describe('log redaction', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp('embedded', {
      routes: (app) => {
        app.post(
          '/test/login',
          {
            config: { access: 'public' },
            schema: {
              body: Type.Object({
                email: Type.String(),
                password: Type.String(),
                refreshToken: Type.String(),
              }),
            },
          },
          (req) => {
            // A handler that (wrongly) logs what it received: redaction must still hold.
            req.log.info({ body: req.body, headers: req.headers }, 'login attempt');
            req.log.info(
              { password: req.body.password, apiKey: SECRETS.apiKey, user: { token: SECRETS.refresh } },
              'flat',
            );
            throw new Error('login failed');
          },
        );
      },
    });
  });
  afterAll(() => t.close());

  it('keeps authorization, cookies, API keys, passwords and tokens out of every log line', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: `/test/login?token=${SECRETS.queryToken}&page=2`,
      headers: {
        authorization: `Bearer ${SECRETS.bearer}`,
        cookie: SECRETS.cookie,
        'x-api-key': SECRETS.apiKey,
      },
      payload: { email: 'a@example.com', password: SECRETS.password, refreshToken: SECRETS.refresh },
    });
    expect(res.statusCode).toBe(500);
    const text = t.logs.text;
    expect(text).toContain('login attempt'); // the handler's lines were written…
    expect(text).toContain('page=2');
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret); // …without secrets
    expect(text).toContain('[REDACTED]');
  });

  it('masks sensitive query parameters in URLs', () => {
    expect(redactUrl('/cb?code=abc&state=xyz&next=%2Fhome')).toBe(
      '/cb?code=[REDACTED]&state=[REDACTED]&next=%2Fhome',
    );
    expect(redactUrl('/plain')).toBe('/plain');
    expect(redactUrl('/x?API_KEY=1')).toBe('/x?API_KEY=[REDACTED]');
  });

  it('logs configuration without credentials', () => {
    const logs = new LogCapture();
    const logger = createLogger({ logLevel: 'info', logPretty: false }, logs);
    const config = loadConfig({
      DATABASE_URL: 'postgres://larder:db-pa55@db/larder',
      REDIS_URL: 'redis://:redis-pa55@r:6379',
    });
    logger.info({ config: describeConfig(config) }, 'starting');
    expect(logs.text).toContain('postgres://larder:***@db/larder');
    expect(logs.text).not.toMatch(/db-pa55|redis-pa55/);
  });
});
