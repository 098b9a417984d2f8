/**
 * Rate limits for every route: a global budget per principal (API key or user, once the request is
 * authenticated) or per client IP, plus `authRateLimit(…)`, a stricter per-IP budget for the routes
 * that check credentials (login, sign-up). Counters live in Redis when it is configured, so every
 * process shares them; in memory otherwise. Over budget, clients get a 429 `rate_limited`
 * problem+json with `Retry-After`. `/healthz` and `/readyz` are never limited.
 *
 * With Redis, budgets are claimed in blocks (`LeasedRedisStore`): a process takes `leaseSize(max)`
 * requests of a budget with one Redis call and spends them locally, so a busy principal costs one Redis
 * round trip per block instead of one per request. Never more than `max` requests pass in a window
 * across all processes; a process may hold up to `leaseSize(max) - 1` claimed but unspent requests,
 * which the others cannot use (so a principal spread over R processes may get up to
 * (R - 1) × (leaseSize - 1) fewer than `max`). Budgets of 100 or fewer are exact (blocks of one).
 *
 * Register it before the routes it limits: it attaches itself to routes as they are declared.
 * The principal is read in the `onRequest` phase: authentication that should count against the
 * principal's budget must run in an instance-level `onRequest` hook (earlier requests count per IP).
 */
import rateLimit, { type FastifyRateLimitStore, normalizeIP } from '@fastify/rate-limit';
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

/** Requests of a budget of `max` claimed per Redis call: 1 % of it, at least 1 (exact up to 100). */
export const leaseSize = (max: number): number => Math.max(1, Math.floor(max / 100));

/**
 * INCRBY the window's counter by a block and return the new total and the window's remaining time;
 * the first claim of a window starts its expiry (a counter somehow without one gets it too).
 */
const LEASE_SCRIPT = `
local current = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}`;

type StoreCallback = (error: Error | null, result?: { current: number; ttl: number }) => void;

interface Lease {
  /** Position (in the window's global count) of the next request this process may admit. */
  next: number;
  /** Last position claimed by this process. */
  last: number;
  expiresAt: number;
  /** Callbacks waiting for a claim in flight (one claim at a time per key). */
  waiting: { cb: StoreCallback; timeWindow: number; max: number }[] | null;
}

interface LeaseRedis extends Redis {
  larderRateLimitLease(key: string, timeWindowMs: number, block: number): Promise<[number, number]>;
}

/** Leases beyond which expired ones are swept (unauthenticated clients each have a key). */
const SWEEP_ABOVE = 10_000;

/**
 * A @fastify/rate-limit store on Redis that claims budget in blocks (see the module comment). Keys are
 * those of the plugin's own Redis store (`<namespace><key>`, per-route `<namespace><METHOD><url>-<key>`),
 * so processes with either store share budgets while a deployment rolls over.
 */
export class LeasedRedisStore implements FastifyRateLimitStore {
  readonly #leases = new Map<string, Lease>();

  constructor(
    private readonly redis: LeaseRedis,
    private readonly prefix: string,
  ) {
    if (!(redis as Partial<LeaseRedis>).larderRateLimitLease)
      redis.defineCommand('larderRateLimitLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
  }

  incr(key: string, cb: StoreCallback, timeWindow: number, max: number): void {
    const now = Date.now();
    let lease = this.#leases.get(key);
    if (lease && lease.expiresAt > now) {
      if (lease.waiting) {
        lease.waiting.push({ cb, timeWindow, max });
        return;
      }
      if (lease.next <= lease.last) {
        cb(null, { current: lease.next++, ttl: lease.expiresAt - now });
        return;
      }
      // Spent, and the window's count is already past the budget: it only grows until the window ends.
      if (lease.last >= max) {
        cb(null, { current: lease.last + 1, ttl: lease.expiresAt - now });
        return;
      }
    }
    if (!lease || lease.expiresAt <= now) {
      if (this.#leases.size >= SWEEP_ABOVE) this.#sweep(now);
      lease = { next: 1, last: 0, expiresAt: Number.POSITIVE_INFINITY, waiting: null };
      this.#leases.set(key, lease);
    }
    this.#claim(key, lease, [{ cb, timeWindow, max }]);
  }

  #claim(key: string, lease: Lease, waiting: NonNullable<Lease['waiting']>): void {
    const first = waiting[0];
    if (!first) return;
    const block = leaseSize(first.max);
    lease.waiting = waiting;
    this.redis.larderRateLimitLease(this.prefix + key, first.timeWindow, block).then(
      ([total, ttl]) => {
        const queued = lease.waiting ?? [];
        lease.waiting = null;
        lease.next = total - block + 1;
        lease.last = total;
        lease.expiresAt = Date.now() + ttl;
        for (const [i, w] of queued.entries()) {
          if (lease.next <= lease.last) w.cb(null, { current: lease.next++, ttl });
          else if (lease.last >= w.max) w.cb(null, { current: lease.last + 1, ttl });
          else {
            this.#claim(key, lease, queued.slice(i)); // more waiters than the block: claim another
            return;
          }
        }
      },
      (error: unknown) => {
        const queued = lease.waiting ?? [];
        this.#leases.delete(key);
        for (const w of queued) w.cb(error as Error);
      },
    );
  }

  #sweep(now: number): void {
    for (const [key, lease] of this.#leases)
      if (lease.expiresAt <= now && !lease.waiting) this.#leases.delete(key);
  }

  /** The store of a route with its own limit (`config.rateLimit`): separate counters. */
  child(routeOptions: unknown): LeasedRedisStore {
    // At run time the plugin passes the route's merged limit options, with the route as `routeInfo`.
    const { method, url } = (routeOptions as { routeInfo: { method: string | string[]; url: string } })
      .routeInfo;
    return new LeasedRedisStore(this.redis, `${this.prefix}${String(method)}${url}-`);
  }
}

export const rateLimitPlugin = fp<RateLimitOptions>(
  async (app, opts) => {
    const nameSpace = opts.nameSpace ?? RATE_LIMIT_NAMESPACE;
    const redis = opts.redis as LeaseRedis | undefined;
    const leased = (client: LeaseRedis) =>
      class extends LeasedRedisStore {
        constructor() {
          super(client, nameSpace);
        }
      };
    const store = redis ? leased(redis) : undefined;
    await app.register(rateLimit, {
      global: true,
      max: opts.max,
      timeWindow: opts.timeWindowMs,
      // The plugin constructs the store itself (`new Store(params)`): bind ours to the client first.
      ...(store ? { store } : {}),
      nameSpace,
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
