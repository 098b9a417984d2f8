/**
 * The one place errors become responses: RFC 9457 `application/problem+json` with
 * `type`, `title`, `status`, `detail`, `code` and `requestId`. Unknown errors become a generic 500:
 * their message, stack and any SQL stay in the log.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { AppError, type ErrorCode, errorCatalogue, problemType } from '../errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'URN identifying the problem type: `urn:larder:problem:<code>`' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    code: Type.String({
      description: 'Stable, machine-readable error code',
      examples: ['validation_failed'],
    }),
    requestId: Type.String({ description: 'Echo of the `X-Request-Id` header; quote it in bug reports' }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          in: Type.String({ description: 'body, querystring, params or headers' }),
          path: Type.String({ description: 'JSON pointer to the failing field' }),
          message: Type.String(),
        }),
        { description: 'Every failing field (validation_failed only)' },
      ),
    ),
  },
  { $id: 'Problem', additionalProperties: true, description: 'RFC 9457 problem details' },
);

/** `response` entries for route schemas: `{ 400: ProblemRef, 404: ProblemRef }`. */
export const problemRef = { $ref: 'Problem#' } as const;
export function problemResponses(...statuses: number[]): Record<number, typeof problemRef> {
  return Object.fromEntries(statuses.map((s) => [s, problemRef]));
}

interface ValidationIssue {
  in: string;
  path: string;
  message: string;
}

function validationIssues(error: FastifyError): ValidationIssue[] {
  const where = error.validationContext ?? 'body';
  return (error.validation ?? []).map((v) => {
    const params = v.params;
    const missing = typeof params.missingProperty === 'string' ? `/${params.missingProperty}` : '';
    const extra = typeof params.additionalProperty === 'string' ? `/${params.additionalProperty}` : '';
    const message =
      v.keyword === 'additionalProperties'
        ? 'is not allowed'
        : v.keyword === 'required'
          ? 'is required'
          : (v.message ?? 'is invalid');
    return { in: where, path: `${v.instancePath}${missing}${extra}` || '/', message };
  });
}

/** Maps Fastify's own errors (parsing, limits) onto the catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_body',
  FST_ERR_BAD_URL: 'bad_request',
};

export interface Problem {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

export function toProblem(error: unknown, requestId: string): Problem {
  const body = (code: ErrorCode, detail?: string, extra?: Record<string, unknown>) => {
    const entry = errorCatalogue[code];
    return {
      type: problemType(code),
      title: entry.title,
      status: entry.status,
      ...(detail === undefined ? {} : { detail }),
      code,
      requestId,
      ...extra,
    };
  };

  if (error instanceof AppError) {
    return {
      status: error.status,
      body: body(error.code, error.detail, error.extensions),
      ...(error.headers ? { headers: error.headers } : {}),
    };
  }
  const fe = error as Partial<FastifyError>;
  if (fe.validation) {
    const errors = validationIssues(fe as FastifyError);
    return {
      status: 400,
      body: body(
        'validation_failed',
        `${errors.length} field${errors.length === 1 ? '' : 's'} failed validation`,
        {
          errors,
        },
      ),
    };
  }
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return { status: errorCatalogue[mapped].status, body: body(mapped, fe.message) };
  // Other 4xx raised by Fastify or its plugins (their messages are written for clients).
  if (
    typeof fe.statusCode === 'number' &&
    fe.statusCode >= 400 &&
    fe.statusCode < 500 &&
    fe.code?.startsWith('FST_')
  ) {
    return { status: fe.statusCode, body: { ...body('bad_request', fe.message), status: fe.statusCode } };
  }
  return {
    status: 500,
    body: body('internal_error', 'An unexpected error occurred. Quote the requestId when reporting it.'),
  };
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  if (problem.headers) void reply.headers(problem.headers);
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem.body);
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (malformed HTTP, header overflow,
 * request timeout). Same problem+json shape; the connection is then closed, as Node does.
 */
export function clientErrorHandler(
  this: { log: FastifyBaseLogger },
  error: NodeJS.ErrnoException,
  socket: Duplex,
): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? 'headers_too_large'
        : 'bad_request';
  const { status, body } = toProblem(new AppError(code), randomUUID());
  this.log.debug({ err: error, code }, 'client error');
  if (socket.writable) {
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
    );
  }
  socket.destroy(error);
}

/** Installs the error and not-found handlers on the root instance. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.addSchema(ProblemSchema);

  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toProblem(error, request.id);
    if (problem.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: problem.body.code, status: problem.status }, 'request rejected');
    return sendProblem(reply, problem);
  });

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
    sendProblem(reply, {
      status: 404,
      body: toProblem(
        new AppError('route_not_found', {
          detail: `${request.method} ${request.url.split('?')[0] ?? ''} is not a route of this API`,
        }),
        request.id,
      ).body,
    }),
  );
}
