import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderConfigTable, renderOpenApi, withConfigTable } from '../src/platform/generated.js';
import { createTestApp, type TestApp } from './helpers/app.js';

const root = new URL('../', import.meta.url);

describe('API description', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp('embedded');
  });
  afterAll(() => t.close());

  it('serves OpenAPI 3.1 at /openapi.json describing the routes and the problem format', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    const spec = res.json<{
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    }>();
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz']));
    expect(spec.paths).not.toHaveProperty('/openapi.json');
    expect(spec.components.schemas).toHaveProperty('Problem');
  });

  it('serves an API reference UI at /docs', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs' });
    const page =
      res.statusCode === 302 ? await t.app.inject({ method: 'GET', url: res.headers.location ?? '' }) : res;
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toMatch(/swagger-ui/i);
  });

  it('matches the committed openapi.json (run `npm run generate` after changing routes)', async () => {
    const committed = await readFile(new URL('openapi.json', root), 'utf8');
    expect(committed).toBe(renderOpenApi(t.app));
  });
});

describe('README configuration table', () => {
  it('matches the config schema (run `npm run generate` after changing settings)', async () => {
    const readme = await readFile(new URL('README.md', root), 'utf8');
    expect(readme).toBe(withConfigTable(readme));
    expect(readme).toContain(renderConfigTable());
  });
});
