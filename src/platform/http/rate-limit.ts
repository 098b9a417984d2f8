/**
 * Rate limits for every route: a global budget per principal (API key or user, once the request is
 * authenticated) or per client IP, plus `authRateLimit(…)`, a stricter per-IP budget for the routes
 * that check credentials (login, sign-up). Counters live in Redis when it is configured, so every
 * process shares them; in memory otherwise. Over budget, clients get a 429 `rate_limited`
 * problem+json with `Retry-After`. `/healthz` and `/readyz` are never limited.
 *
 * Register it before the routes it limits: it attaches itself to routes as they are declared.
 * The principal is read in the `onRequest` phase: authentication that should count against the
 * principal's budget must run in an instance-level `onRequest` hook (earlier requests count per IP).
 */
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';

export interface RateLimitOptions {
  /** Requests allowed per window for one principal (or IP when unauthenticated). */
  max: number;
  timeWindowMs: number;
  /** Requests allowed per window and IP on credential-checking routes (see `authRateLimit`). */
  authMax: number;
  authTimeWindowMs: number;
  /** Shared counters across processes; in-memory (per process) when absent. */
  redis?: Redis | undefined;
  /** Prefix of the Redis keys. */
  nameSpace?: string | undefined;
}

export const RATE_LIMIT_NAMESPACE = 'larder:rl:';

/** Routes (as declared) that are never limited: probes from load balancers and orchestrators. */
export const RATE_LIMIT_EXEMPT: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** The client IP (IPv6 grouped by /64, as one host usually owns the whole prefix). */
const ipKey = (request: FastifyRequest): string => `ip:${normalizeIP(request.ip)}`;

/** Whose budget a request spends: its authenticated principal, else its IP. */
export function rateLimitKey(request: FastifyRequest): string {
  const principalId = (request as { auth?: { principalId?: string } }).auth?.principalId;
  return principalId ? `principal:${principalId}` : ipKey(request);
}

function rateLimited(ttlMs: number): AppError {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
  return new AppError('rate_limited', {
    detail: `Rate limit exceeded: retry in ${seconds} s`,
    headers: { 'retry-after': String(seconds) },
  });
}

export const rateLimitPlugin = fp<RateLimitOptions>(
  async (app, opts) => {
    await app.register(rateLimit, {
      global: true,
      max: opts.max,
      timeWindow: opts.timeWindowMs,
      ...(opts.redis ? { redis: opts.redis } : {}),
      nameSpace: opts.nameSpace ?? RATE_LIMIT_NAMESPACE,
      keyGenerator: rateLimitKey,
      allowList: (request) => RATE_LIMIT_EXEMPT.has(request.routeOptions.url ?? ''),
      // A Redis outage must not take the API down with it: requests pass unlimited meanwhile
      // (and /readyz reports Redis as failing).
      skipOnError: true,
      // Thrown from the hook: the app's error handler turns it into the problem+json response.
      errorResponseBuilder: (_request, context) => rateLimited(context.ttl),
    });
  },
  { name: 'larder-rate-limit', fastify: '5.x' },
);

/**
 * Route options for credential-checking routes: a stricter budget per client IP (brute force),
 * counted separately from the global one. Spread into the route options:
 * `app.post('/login', { ...authRateLimit(config), schema }, handler)`.
 */
export const authRateLimit = (opts: Pick<RateLimitOptions, 'authMax' | 'authTimeWindowMs'>) => ({
  config: {
    rateLimit: { max: opts.authMax, timeWindow: opts.authTimeWindowMs, keyGenerator: ipKey },
  },
});
