import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { registerProblemHandlers } from './problem.js';
import { streamEvents } from './sse.js';

describe('streamEvents', () => {
  const app = Fastify();
  registerProblemHandlers(app);
  app.get('/ok', (request, reply) =>
    streamEvents(request, reply, async (send) => {
      send('one', { n: 1 });
      await new Promise((resolve) => setTimeout(resolve, 5));
      send('two', { text: 'line\nbreak' });
    }),
  );
  app.get('/early', (request, reply) =>
    streamEvents(request, reply, async () => {
      await Promise.resolve();
      throw new AppError('not_found', { detail: 'No such thing' });
    }),
  );
  app.get('/late', (request, reply) =>
    streamEvents(request, reply, async (send) => {
      send('one', { n: 1 });
      await Promise.resolve();
      throw new AppError('budget_exceeded', { detail: 'spent' });
    }),
  );
  app.get('/bug', (request, reply) =>
    streamEvents(request, reply, async (send) => {
      send('one', { n: 1 });
      await Promise.resolve();
      throw new Error('secret internals');
    }),
  );
  app.get('/openai', (request, reply) =>
    streamEvents(
      request,
      reply,
      async (send) => {
        send('ignored-name', { delta: 'hi' });
        await Promise.resolve();
      },
      { frame: (_event, data) => `data: ${JSON.stringify(data)}\n\n`, end: 'data: [DONE]\n\n' },
    ),
  );
  afterAll(() => app.close());

  it('streams events as SSE frames, one JSON line each', async () => {
    const res = await app.inject({ method: 'GET', url: '/ok' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache, no-transform');
    expect(res.body).toBe('event: one\ndata: {"n":1}\n\nevent: two\ndata: {"text":"line\\nbreak"}\n\n');
  });

  it('answers an error before the first event as problem+json with its status', async () => {
    const res = await app.inject({ method: 'GET', url: '/early' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: 'not_found', detail: 'No such thing' });
  });

  it('ends a started stream with an error event carrying the problem', async () => {
    const res = await app.inject({ method: 'GET', url: '/late' });
    expect(res.statusCode).toBe(200);
    const frames = res.body.split('\n\n').filter(Boolean);
    expect(frames[0]).toBe('event: one\ndata: {"n":1}');
    expect(frames[1]).toMatch(/^event: error\ndata: /);
    expect(JSON.parse(frames[1]!.split('data: ')[1]!)).toMatchObject({
      code: 'budget_exceeded',
      status: 429,
      detail: 'spent',
    });
  });

  it('never discloses an unexpected error in the stream', async () => {
    const res = await app.inject({ method: 'GET', url: '/bug' });
    expect(res.body).toContain('"code":"internal_error"');
    expect(res.body).not.toContain('secret internals');
  });

  it('writes custom frames and a closing line (the OpenAI chunk format)', async () => {
    const res = await app.inject({ method: 'GET', url: '/openai' });
    expect(res.body).toBe('data: {"delta":"hi"}\n\ndata: [DONE]\n\n');
  });
});
