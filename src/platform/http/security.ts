/**
 * Response security headers (helmet) and CORS for the whole app.
 *
 *  - Helmet with API-strict defaults: a CSP that allows nothing (`default-src 'none'`), no framing,
 *    `nosniff`, no `X-Powered-By`, HSTS when enabled. The headers do not depend on the request, so
 *    they are computed once at start-up by helmet itself (`helmetHeaders`) and copied onto every reply
 *    in one `onRequest` hook: @fastify/helmet would rebuild helmet's middleware on every request (about
 *    5 % of a small GET). The Swagger UI under `/docs` keeps working: @fastify/swagger-ui
 *    (`staticCSP: true`) replaces the CSP on its own routes in `onSend`, which wins over ours.
 *  - CORS from an allow-list: `[]` sends no CORS headers at all (same-origin browsers only);
 *    exact origins are echoed back with credentials allowed; `['*']` (only when given alone) allows
 *    any origin without credentials.
 *
 * Register it before the routes it protects (hooks and `onRoute` handlers only reach routes of
 * contexts created after it).
 */
import cors from '@fastify/cors';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import Fastify from 'fastify';
import fp from 'fastify-plugin';
import { StartupError } from '../errors.js';

export interface SecurityOptions {
  /** Browser origins allowed to call the API (`https://app.example.com`); `['*']` = any, `[]` = none. */
  corsOrigins: string[];
  /** Send `Strict-Transport-Security` (only when clients reach the API over HTTPS). */
  hsts: boolean;
}

/** Request headers a cross-origin browser client may send. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'X-Request-Id',
  'X-Workspace-Id',
  'X-CSRF-Token',
] as const;

/** Response headers a cross-origin browser client may read (beyond the CORS-safelisted ones). */
export const CORS_EXPOSED_HEADERS = [
  'X-Request-Id',
  'Retry-After',
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
] as const;

const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** How long browsers may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_S = 600;

const ONE_YEAR_S = 31_536_000;

type CorsPolicy = { kind: 'none' } | { kind: 'any' } | { kind: 'list'; origins: ReadonlySet<string> };

/** Splits a comma-separated origin list (as found in the environment) into trimmed entries. */
export function parseCorsOrigins(value: string): string[] {
  return value
    .split(',')
    .map((origin) => origin.trim())
    .filter((origin) => origin !== '');
}

/**
 * Validates the allow-list. Origins are compared as exact strings by browsers, so anything that is not
 * a bare `scheme://host[:port]` (a trailing slash, a path) would silently never match: reject it.
 * @throws StartupError naming every invalid entry.
 */
export function corsPolicy(origins: readonly string[]): CorsPolicy {
  if (origins.length === 0) return { kind: 'none' };
  if (origins.includes('*')) {
    if (origins.length > 1) {
      throw new StartupError(`CORS origins: '*' must be the only entry (got ${origins.join(', ')})`);
    }
    return { kind: 'any' };
  }
  const invalid = origins.filter((origin) => {
    try {
      const url = new URL(origin);
      return !/^https?:$/.test(url.protocol) || url.origin !== origin;
    } catch {
      return true;
    }
  });
  if (invalid.length > 0) {
    throw new StartupError(
      `CORS origins must look like https://host[:port] with no path or trailing slash (got ${invalid.join(', ')})`,
    );
  }
  return { kind: 'list', origins: new Set(origins) };
}

/** Helmet's configuration for the API. */
export function helmetOptions(hsts: boolean): FastifyHelmetOptions {
  return {
    global: true,
    // An API serves JSON, never documents: nothing may load, frame it or submit to it.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'none'"],
        frameAncestors: ["'none'"],
      },
    },
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity: hsts ? { maxAge: ONE_YEAR_S, includeSubDomains: true } : false,
  };
}

/** Response headers every reply has whatever helmet does (not security headers). */
const NOT_FROM_HELMET = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive']);

/**
 * The headers helmet sets with `options`, computed by helmet itself: a throwaway Fastify instance with
 * @fastify/helmet answers one request, and its headers are kept. No hand-kept copy to drift.
 */
export async function helmetHeaders(options: FastifyHelmetOptions): Promise<Record<string, string>> {
  const probe = Fastify();
  try {
    await probe.register(helmet, options);
    probe.get('/', () => 'ok');
    const res = await probe.inject({ method: 'GET', url: '/' });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(res.headers)) {
      if (!NOT_FROM_HELMET.has(name) && value !== undefined) headers[name] = String(value);
    }
    return headers;
  } finally {
    await probe.close();
  }
}

export const securityPlugin = fp<SecurityOptions>(
  async (app, opts) => {
    const policy = corsPolicy(opts.corsOrigins);

    const headers = await helmetHeaders(helmetOptions(opts.hsts));
    app.addHook('onRequest', (_request, reply, done) => {
      void reply.headers(headers);
      done();
    });

    if (policy.kind === 'none') return;

    const common = {
      methods: CORS_METHODS,
      allowedHeaders: [...CORS_ALLOWED_HEADERS],
      exposedHeaders: [...CORS_EXPOSED_HEADERS],
      maxAge: PREFLIGHT_MAX_AGE_S,
    };
    if (policy.kind === 'any') {
      // Any origin, never with credentials (browsers refuse `*` with credentials anyway).
      await app.register(cors, { ...common, origin: '*', credentials: false });
      return;
    }
    // A function, not the array: an origin outside the list then gets no CORS header at all
    // (and its preflight a 404) instead of credentials/expose headers without an allow-origin.
    const allowed = policy.origins;
    await app.register(cors, {
      ...common,
      credentials: true,
      origin: (origin, callback) => {
        callback(null, origin !== undefined && allowed.has(origin) ? origin : false);
      },
    });
  },
  { name: 'larder-security', fastify: '5.x' },
);
