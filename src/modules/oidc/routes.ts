/**
 * Single sign-on (OpenID Connect) for browsers:
 *
 *   GET /v1/auth/oidc/start     → 302 to the identity provider; sets the encrypted sign-in state cookie
 *   GET /v1/auth/oidc/callback  ← the provider's redirect → the token pair as JSON, or a 302 to the
 *                                 allow-listed `returnTo` with the tokens in the URL fragment
 *
 * Registered only when an issuer is configured. The state cookie is scoped to this path, HttpOnly,
 * SameSite=Lax (it must come back on the provider's top-level redirect) and Secure unless plain HTTP
 * was explicitly allowed; it is cleared by the callback whatever the outcome.
 *
 * @example
 *   await app.register(oidcRoutes, { keys, issuerUrl, clientId, clientSecret, redirectUri, stateSecret,
 *     provisioning: { workspaceId, role: 'viewer' } });
 */
import cookie, { type CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { auditContext } from '../audit/context.js';
import { recordAudit } from '../audit/service.js';
import { problemResponses } from '../../platform/http/problem.js';
import { authRateLimit } from '../../platform/http/rate-limit.js';
import type { KeyRing } from '../auth/keys.js';
import { AuthService, type ClientInfo, type TokenPair } from '../auth/service.js';
import { CallbackQuery, Redirect, StartQuery, Tokens } from './schema.js';
import { OidcService, type OidcServiceOptions } from './service.js';
import { STATE_TTL_SECONDS } from './state.js';

export interface OidcRoutesOptions extends OidcServiceOptions {
  keys: KeyRing;
}

export const STATE_COOKIE = 'larder_oidc_state';
const COOKIE_PATH = '/v1/auth/oidc';

const clientInfo = (request: FastifyRequest): ClientInfo => ({
  ip: request.ip,
  userAgent: request.headers['user-agent'] ?? null,
});

/** `#accessToken=…&tokenType=Bearer&expiresIn=…&refreshToken=…`: fragments never reach a server or a log. */
const tokenFragment = (tokens: TokenPair) =>
  new URLSearchParams({
    accessToken: tokens.accessToken,
    tokenType: tokens.tokenType,
    expiresIn: String(tokens.expiresIn),
    refreshToken: tokens.refreshToken,
  }).toString();

export const oidcRoutes: FastifyPluginAsyncTypebox<OidcRoutesOptions> = async (app, options) => {
  const { keys, ...oidcOptions } = options;
  const { config } = app.deps;
  const auth = new AuthService(app.deps.database.db, config, keys);
  const oidc = new OidcService(app.deps.database.db, auth, oidcOptions);
  // Encapsulated (only these routes parse cookies), unless an enclosing scope already registered it:
  // registering it twice throws at start-up.
  if (!app.hasRequestDecorator('cookies')) await app.register(cookie);

  const cookieOptions: CookieSerializeOptions = {
    httpOnly: true,
    secure: !oidc.insecureHttp,
    sameSite: 'lax',
    path: COOKIE_PATH,
  };

  app.get(
    '/v1/auth/oidc/start',
    {
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        summary: 'Sign in with the identity provider (browser redirect)',
        description:
          'Redirects to the identity provider (authorization code flow with PKCE) and sets a short-lived, encrypted state cookie that `/v1/auth/oidc/callback` needs. Open it in the browser (a top-level navigation), not with XHR.',
        security: [],
        querystring: StartQuery,
        response: { 302: Redirect, ...problemResponses(400, 503) },
      },
    },
    async (request, reply) => {
      const { authorizationUrl, sealedState } = await oidc.start({ returnTo: request.query.returnTo });
      void reply
        .setCookie(STATE_COOKIE, sealedState, { ...cookieOptions, maxAge: STATE_TTL_SECONDS })
        .header('cache-control', 'no-store');
      return reply.redirect(authorizationUrl, 302);
    },
  );

  app.get(
    '/v1/auth/oidc/callback',
    {
      config: {
        access: 'public',
        ...authRateLimit({
          authMax: config.authRateLimitMax,
          authTimeWindowMs: config.authRateLimitWindowMs,
        }).config,
      },
      schema: {
        tags: ['auth'],
        summary: 'Finish signing in with the identity provider',
        description:
          'The identity provider redirects here. Answers the token pair, or redirects to the `returnTo` given to `/start` with the tokens in the URL fragment. `400` when the state cookie is missing, expired or does not match; `401` when the provider refused or its response failed validation; `403` when the identity may not sign in (unverified email, no account and no provisioning, disabled account).',
        security: [],
        querystring: CallbackQuery,
        response: { 200: Tokens, 302: Redirect, ...problemResponses(400, 401, 403, 429, 503) },
      },
    },
    async (request, reply) => {
      const sealed = request.cookies[STATE_COOKIE];
      // Single use, whatever happens next.
      void reply.clearCookie(STATE_COOKIE, cookieOptions).header('cache-control', 'no-store');
      const login = await oidc.callback(oidc.callbackUrl(request.url), sealed, clientInfo(request));
      request.log.info({ userId: login.userId, outcome: login.outcome }, 'signed in with SSO');
      // Instance-level event (no workspace), like password logins; provisioning memberships are in the data.
      await recordAudit(app.deps.database.db, {
        ...auditContext(request),
        actor: { type: 'user', userId: login.userId },
        workspaceId: null,
        action: `auth.sso.${login.outcome}`,
        target: { type: 'user', id: login.userId },
        data: { issuer: options.issuerUrl },
      });
      if (login.returnTo) return reply.redirect(`${login.returnTo}#${tokenFragment(login.tokens)}`, 302);
      return login.tokens;
    },
  );
};
