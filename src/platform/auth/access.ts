/**
 * Who may call a route. Every route declares it in `config.access`; a route without a declaration
 * fails at start-up, so nothing ships unauthenticated by accident.
 *
 * @example
 *   app.get('/v1/me', { config: { access: 'user' } }, handler)
 */
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { KeyRing } from '../../modules/auth/keys.js';
import { AppError } from '../errors.js';

/** `public`: anyone; `user`: a signed-in user (Bearer access token). */
export type RouteAccess = 'public' | 'user';

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  /** The login session (refresh-token family) the access token belongs to. */
  sessionId: string;
  /** Stable key for per-caller limits and logs. */
  principalId: string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    auth: UserPrincipal | null;
  }
}

/** Routes registered by plugins we do not write (the API reference UI) are public. */
const PUBLIC_PREFIXES = ['/docs'];

function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

/** The signed-in user of a `user` route (the access hook has already checked it). */
export function requireUser(request: FastifyRequest): UserPrincipal {
  if (!request.auth) throw new AppError('unauthenticated');
  return request.auth;
}

export const accessPlugin = fp<{ keys: KeyRing }>(
  async (app, { keys }) => {
    app.decorateRequest('auth', null);

    app.addHook('onRoute', (route) => {
      const config = (route.config ?? {}) as { access?: RouteAccess };
      if (config.access) return;
      if (PUBLIC_PREFIXES.some((p) => route.url.startsWith(p))) {
        route.config = { ...route.config, access: 'public' };
        return;
      }
      throw new Error(`route ${String(route.method)} ${route.url} does not declare config.access`);
    });

    app.addHook('onRequest', async (request) => {
      const access = request.routeOptions.config.access;
      if (access === undefined || access === 'public') return; // undefined: 404 handler
      const token = bearerToken(request.headers.authorization);
      if (!token)
        throw new AppError('unauthenticated', {
          detail: 'Send an access token: Authorization: Bearer <token>',
        });
      const claims = await keys.verify(token);
      if (!claims) throw new AppError('invalid_token');
      request.auth = {
        kind: 'user',
        userId: claims.sub,
        sessionId: claims.sid,
        principalId: `user:${claims.sub}`,
      };
    });
  },
  { name: 'larder-access' },
);
