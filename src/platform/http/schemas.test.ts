import Fastify from 'fastify';
import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import { NullableResult } from './schemas.js';

describe('NullableResult', () => {
  it('is a type array keeping the scalar’s keywords and the options, without TypeBox’s symbols', () => {
    const schema = NullableResult(Type.String({ format: 'date-time' }), { description: 'When' });
    expect(JSON.parse(JSON.stringify(schema))).toEqual({
      type: ['string', 'null'],
      format: 'date-time',
      description: 'When',
    });
    expect((NullableResult(Type.Integer()) as { type?: unknown }).type).toEqual(['integer', 'null']);
  });

  it('serializes values and nulls as the anyOf form does, and still drops undeclared fields', async () => {
    const app = Fastify();
    const body = { s: 'a "quoted" line\n', n: null, i: 3, f: 1.5, ts: null, extra: 'secret' };
    const props = (nullable: typeof NullableResult) => ({
      s: nullable(Type.String()),
      n: nullable(Type.String()),
      i: nullable(Type.Integer()),
      f: nullable(Type.Number()),
      ts: nullable(Type.String({ format: 'date-time' })),
    });
    const anyOf = ((schema: Parameters<typeof NullableResult>[0]) =>
      Type.Union([schema, Type.Null()])) as unknown as typeof NullableResult;
    for (const [url, nullable] of [
      ['/array', NullableResult],
      ['/anyof', anyOf],
    ] as const)
      app.get(url, { schema: { response: { 200: Type.Object(props(nullable)) } } }, () => body);
    const [array, reference] = await Promise.all(
      ['/array', '/anyof'].map((url) => app.inject({ method: 'GET', url })),
    );
    expect(array?.statusCode).toBe(200);
    expect(array?.body).toBe(reference?.body);
    expect(JSON.parse(array?.body ?? '')).toEqual({
      s: 'a "quoted" line\n',
      n: null,
      i: 3,
      f: 1.5,
      ts: null,
    });
    await app.close();
  });
});
