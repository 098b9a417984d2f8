/**
 * Server-sent events from a route, through Fastify's normal reply path (so CORS, security headers and
 * the request log apply as to any response).
 *
 * `streamEvents(request, reply, run)` calls `run(send, signal)`. The response starts with the first
 * event: an error thrown before it becomes the usual problem+json response with its status; an error
 * after it becomes an `error` event (a problem document as data) and the stream ends. The signal fires
 * when the client goes away. A comment line every 15 s keeps idle proxies from closing the stream.
 *
 *   return streamEvents(request, reply, async (send, signal) => {
 *     await service.answer(ws, actor, body, (e) => send(e.type, e), signal);
 *   });
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';

const HEARTBEAT_MS = 15_000;

export type SendEvent = (event: string, data: unknown) => void;

/** One SSE frame. `data` is JSON on one line (JSON.stringify escapes newlines). */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Whether the client asked for an event stream. */
export function wantsEventStream(request: FastifyRequest): boolean {
  return /\btext\/event-stream\b/i.test(request.headers.accept ?? '');
}

export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  run: (send: SendEvent, signal: AbortSignal) => Promise<void>,
  options: { frame?: (event: string, data: unknown) => string; end?: string } = {},
): Promise<FastifyReply> {
  const frame = options.frame ?? sseFrame;
  const controller = new AbortController();
  const stream = new PassThrough();
  let started = false;
  let begin: (() => void) | undefined;
  const firstEvent = new Promise<void>((resolve) => {
    begin = resolve;
  });
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort();
  };
  reply.raw.on('close', onClose);

  const send: SendEvent = (event, data) => {
    if (stream.writableEnded) return;
    stream.write(frame(event, data));
    if (!started) {
      started = true;
      begin?.();
    }
  };
  const heartbeat = setInterval(() => {
    if (started && !stream.writableEnded) stream.write(': keep-alive\n\n');
  }, HEARTBEAT_MS);

  const work = run(send, controller.signal).then(
    () => {
      if (options.end) stream.write(options.end);
      stream.end();
    },
    (error: unknown) => {
      if (!started) throw error;
      const problem =
        error instanceof AppError
          ? {
              type: `urn:larder:problem:${error.code}`,
              title: error.title,
              status: error.status,
              code: error.code,
              detail: error.detail,
            }
          : {
              type: 'urn:larder:problem:internal_error',
              title: 'Internal server error',
              status: 500,
              code: 'internal_error',
            };
      if (!(error instanceof AppError)) request.log.error({ err: error }, 'event stream failed');
      stream.end(frame('error', { ...problem, requestId: request.id }));
    },
  );
  work
    .finally(() => {
      clearInterval(heartbeat);
      reply.raw.off('close', onClose);
    })
    .catch(() => undefined);

  // Whichever comes first: the first event (start streaming) or the end of the work (an error before
  // any event is thrown from here as a normal problem response; a run that sent nothing ends empty).
  await Promise.race([firstEvent, work]);
  void reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache, no-transform')
    .header('x-accel-buffering', 'no');
  return reply.send(stream);
}
