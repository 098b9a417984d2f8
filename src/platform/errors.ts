/**
 * The error catalogue: every error a client can see has a stable `code`, an HTTP status and a title.
 * Errors are mapped once (see `http/problem.ts`) to RFC 9457 `application/problem+json`.
 *
 * @example
 *   throw new AppError('not_found', { detail: `collection ${id} does not exist` });
 */
export const errorCatalogue = {
  bad_request: { status: 400, title: 'Bad request' },
  validation_failed: { status: 400, title: 'The request is invalid' },
  malformed_body: { status: 400, title: 'The request body could not be parsed' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  invalid_credentials: { status: 401, title: 'Email or password is wrong' },
  invalid_token: { status: 401, title: 'The token is invalid, expired or revoked' },
  forbidden: { status: 403, title: 'Not allowed' },
  signup_disabled: { status: 403, title: 'Sign-up is disabled on this server' },
  not_found: { status: 404, title: 'Not found' },
  route_not_found: { status: 404, title: 'No such route' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'The request took too long to arrive' },
  conflict: { status: 409, title: 'Conflict with the current state' },
  email_taken: { status: 409, title: 'An account with this email exists' },
  weak_password: { status: 400, title: 'The password does not meet the policy' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported content type' },
  unprocessable_document: { status: 422, title: 'The document has no content that can be indexed' },
  url_not_allowed: { status: 400, title: 'The URL may not be fetched' },
  url_fetch_failed: { status: 422, title: 'The URL could not be fetched' },
  embedding_provider_failed: { status: 422, title: 'The embedding provider could not be used' },
  rate_limited: { status: 429, title: 'Too many requests' },
  budget_exceeded: { status: 429, title: 'The workspace has used its model budget for this period' },
  internal_error: { status: 500, title: 'Internal server error' },
  service_unavailable: { status: 503, title: 'Service unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** Where clients can read about a problem type (a URN: stable, not tied to a host). */
export const problemType = (code: ErrorCode): string => `urn:larder:problem:${code}`;

export interface AppErrorOptions {
  detail?: string;
  /** Extension members added to the problem document (e.g. `errors` for validation). */
  extensions?: Record<string, unknown>;
  /** Response headers (e.g. `Retry-After`). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** An error meant for the client: its code, detail and extensions reach the response body. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly extensions: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, options: AppErrorOptions = {}) {
    const entry = errorCatalogue[code];
    super(options.detail ?? entry.title, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = entry.status;
    this.title = entry.title;
    this.detail = options.detail;
    this.extensions = options.extensions;
    this.headers = options.headers;
  }
}

/** An error that stops start-up with a message for the operator (printed without a stack trace). */
export class StartupError extends Error {
  override name = 'StartupError';
}
