/**
 * Accounts and sessions for API clients: tokens travel in JSON bodies and `Authorization: Bearer`.
 *
 *   POST /v1/auth/signup   create an account and its first workspace → tokens
 *   POST /v1/auth/login    email + password → tokens
 *   POST /v1/auth/refresh  refresh token → new tokens (the old refresh token is spent)
 *   POST /v1/auth/logout   end the session of a refresh token
 *   GET  /v1/me            the signed-in user and their workspaces
 */
import cookie from '@fastify/cookie';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { requireUser } from '../../platform/auth/access.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { Nullable } from '../../platform/http/schemas.js';
import { authRateLimit } from '../../platform/http/rate-limit.js';
import type { KeyRing } from './keys.js';
import { clearSessionCookies, refreshTokenFromCookie, setSessionCookies } from './cookies.js';
import { AuthService, type ClientInfo, type TokenPair } from './service.js';

const Email = Type.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] });
const Password = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: 'Checked against the password policy on sign-up',
});

const Tokens = Type.Object(
  {
    accessToken: Type.String({ description: 'JWT (ES256) for `Authorization: Bearer`; short-lived' }),
    tokenType: Type.Literal('Bearer'),
    expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
    refreshToken: Type.Optional(
      Type.String({
        description:
          'Single-use: exchange it at /v1/auth/refresh for a new pair. Absent with `session: "cookie"` (it is in the HttpOnly cookie instead).',
      }),
    ),
  },
  { description: 'A token pair' },
);

const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  displayName: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

const Profile = Type.Object(
  {
    language: Type.Optional(
      Nullable(Type.String({ pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$', maxLength: 35 }), {
        description: 'Preferred answer language (BCP 47, e.g. `de`, `pt-BR`)',
      }),
    ),
    customInstructions: Type.Optional(
      Nullable(Type.String({ maxLength: 2000 }), {
        description: 'Given to the answer model: tone and format, never overriding the grounding rules',
      }),
    ),
  },
  { additionalProperties: false },
);

const Membership = Type.Object({
  workspaceId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  slug: Type.String(),
  role: Type.Enum(['owner', 'admin', 'editor', 'viewer']),
});

const RefreshBody = Type.Object(
  {
    refreshToken: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description: 'Omit (send `{}`) to use the session cookie + X-CSRF-Token',
      }),
    ),
  },
  { additionalProperties: false },
);

const Session = Type.Optional(
  Type.Enum(['tokens', 'cookie'], {
    description:
      '`tokens` (default): both tokens in the body. `cookie` (browsers): the refresh token goes into an HttpOnly cookie, and a readable `larder_csrf` cookie must be echoed as `X-CSRF-Token` on refresh/logout.',
  }),
);

/** The pair without the refresh token, when it travels in the cookie. */
const withoutRefresh = ({ refreshToken: _r, ...rest }: TokenPair) => rest;

const client = (request: FastifyRequest): ClientInfo => ({
  ip: request.ip,
  userAgent: request.headers['user-agent'] ?? null,
  requestId: request.id,
});

const presentUser = (u: { id: string; email: string; display_name: string | null; created_at: Date }) => ({
  id: u.id,
  email: u.email,
  displayName: u.display_name,
  createdAt: u.created_at.toISOString(),
});

export const authRoutes: FastifyPluginAsyncTypebox<{ keys: KeyRing }> = async (app, { keys }) => {
  const { config } = app.deps;
  // Encapsulated: only these routes read and set cookies.
  await app.register(cookie);
  const cookieSettings = { secure: config.cookieSecure, refreshTtlSeconds: config.refreshTokenTtlSeconds };
  const auth = new AuthService(app.deps.database.db, config, keys);
  /** Public credential endpoints: a tight per-IP budget against brute force and credential stuffing. */
  const guarded = {
    access: 'public' as const,
    ...authRateLimit({ authMax: config.authRateLimitMax, authTimeWindowMs: config.authRateLimitWindowMs })
      .config,
  };

  app.post(
    '/v1/auth/signup',
    {
      config: guarded,
      schema: {
        tags: ['auth'],
        summary: 'Create an account and its first workspace',
        description:
          'Disabled when `LARDER_SIGNUP_ENABLED=false`. The caller becomes the owner of the new workspace.',
        security: [],
        body: Type.Object(
          {
            email: Email,
            password: Password,
            displayName: Type.String({ minLength: 1, maxLength: 200 }),
            workspaceName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            session: Session,
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            user: User,
            workspace: Type.Object({
              id: Type.String({ format: 'uuid' }),
              name: Type.String(),
              slug: Type.String(),
            }),
            tokens: Tokens,
          }),
          ...problemResponses(400, 403, 409, 429),
        },
      },
    },
    async (request, reply) => {
      const { session, ...input } = request.body;
      const { user, workspace, tokens } = await auth.signup(input, client(request));
      if (session === 'cookie') setSessionCookies(reply, tokens.refreshToken, cookieSettings);
      return reply.code(201).send({
        user: presentUser(user),
        workspace,
        tokens: session === 'cookie' ? withoutRefresh(tokens) : tokens,
      });
    },
  );

  app.post(
    '/v1/auth/login',
    {
      config: guarded,
      schema: {
        tags: ['auth'],
        summary: 'Log in with email and password',
        description:
          'Answers `401 invalid_credentials` alike for an unknown email, a wrong password or a disabled account.',
        security: [],
        body: Type.Object(
          { email: Email, password: Password, session: Session },
          { additionalProperties: false },
        ),
        response: { 200: Tokens, ...problemResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const { session, ...input } = request.body;
      const tokens = await auth.login(input, client(request));
      if (session !== 'cookie') return tokens;
      setSessionCookies(reply, tokens.refreshToken, cookieSettings);
      return withoutRefresh(tokens);
    },
  );

  app.post(
    '/v1/auth/refresh',
    {
      config: guarded,
      schema: {
        tags: ['auth'],
        summary: 'Exchange a refresh token for a new token pair',
        description:
          'The refresh token is single-use. Presenting a spent token again revokes the whole session (reuse detection).',
        security: [],
        body: RefreshBody,
        response: { 200: Tokens, ...problemResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const fromBody = request.body.refreshToken;
      const token = fromBody ?? refreshTokenFromCookie(request);
      if (!token) {
        throw new AppError('validation_failed', {
          detail: 'Send a refreshToken, or the session cookie with X-CSRF-Token',
          extensions: {
            errors: [{ in: 'body', path: '/refreshToken', message: 'is required without a session cookie' }],
          },
        });
      }
      const tokens = await auth.refresh(token, client(request));
      if (fromBody) return tokens;
      setSessionCookies(reply, tokens.refreshToken, cookieSettings);
      return withoutRefresh(tokens);
    },
  );

  app.post(
    '/v1/auth/logout',
    {
      config: { access: 'public' },
      schema: {
        tags: ['auth'],
        summary: 'End the session a refresh token belongs to',
        description:
          'Access tokens already issued stay valid until they expire (`LARDER_ACCESS_TOKEN_TTL_SECONDS`).',
        security: [],
        body: RefreshBody,
        response: { 204: Type.Null(), ...problemResponses(400) },
      },
    },
    async (request, reply) => {
      const fromBody = request.body.refreshToken;
      const token = fromBody ?? refreshTokenFromCookie(request);
      if (token) await auth.logout(token, client(request));
      if (!fromBody) clearSessionCookies(reply, cookieSettings);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/me',
    {
      config: { access: 'user' },
      schema: {
        tags: ['auth'],
        summary: 'The signed-in user and their workspaces',
        response: {
          200: Type.Object({ user: User, profile: Profile, memberships: Type.Array(Membership) }),
          ...problemResponses(401),
        },
      },
    },
    async (request) => {
      const { user, memberships } = await auth.me(requireUser(request).userId);
      return { user: presentUser(user), profile: presentProfile(user.profile), memberships };
    },
  );

  app.patch(
    '/v1/me',
    {
      config: { access: 'user' },
      schema: {
        tags: ['auth'],
        summary: 'Change your display name and answer profile (null clears a field)',
        body: Type.Object(
          {
            displayName: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 200 }))),
            profile: Type.Optional(Profile),
          },
          {
            additionalProperties: false,
            examples: [{ profile: { language: 'de', customInstructions: 'Answer in bullet points.' } }],
          },
        ),
        response: {
          200: Type.Object({ user: User, profile: Profile, memberships: Type.Array(Membership) }),
          ...problemResponses(400, 401),
        },
      },
    },
    async (request) => {
      const { user, memberships } = await auth.updateProfile(requireUser(request).userId, request.body);
      return { user: presentUser(user), profile: presentProfile(user.profile), memberships };
    },
  );
};

function presentProfile(profile: Record<string, unknown>) {
  return {
    language: typeof profile.language === 'string' ? profile.language : null,
    customInstructions: typeof profile.customInstructions === 'string' ? profile.customInstructions : null,
  };
}
