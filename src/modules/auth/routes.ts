/**
 * Accounts and sessions for API clients: tokens travel in JSON bodies and `Authorization: Bearer`.
 *
 *   POST /v1/auth/signup   create an account and its first workspace → tokens
 *   POST /v1/auth/login    email + password → tokens
 *   POST /v1/auth/refresh  refresh token → new tokens (the old refresh token is spent)
 *   POST /v1/auth/logout   end the session of a refresh token
 *   GET  /v1/me            the signed-in user and their workspaces
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { requireUser } from '../../platform/auth/access.js';
import { problemResponses } from '../../platform/http/problem.js';
import { authRateLimit } from '../../platform/http/rate-limit.js';
import type { KeyRing } from './keys.js';
import { AuthService, type ClientInfo } from './service.js';

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
    refreshToken: Type.String({ description: 'Single-use: exchange it at /v1/auth/refresh for a new pair' }),
  },
  { description: 'A token pair' },
);

const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  displayName: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

const Membership = Type.Object({
  workspaceId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  slug: Type.String(),
  role: Type.Enum(['owner', 'admin', 'editor', 'viewer']),
});

const RefreshBody = Type.Object(
  { refreshToken: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);

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
      const { user, workspace, tokens } = await auth.signup(request.body, client(request));
      return reply.code(201).send({ user: presentUser(user), workspace, tokens });
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
        body: Type.Object({ email: Email, password: Password }, { additionalProperties: false }),
        response: { 200: Tokens, ...problemResponses(400, 401, 429) },
      },
    },
    (request) => auth.login(request.body, client(request)),
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
    (request) => auth.refresh(request.body.refreshToken, client(request)),
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
      await auth.logout(request.body.refreshToken, client(request));
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
          200: Type.Object({ user: User, memberships: Type.Array(Membership) }),
          ...problemResponses(401),
        },
      },
    },
    async (request) => {
      const { user, memberships } = await auth.me(requireUser(request).userId);
      return { user: presentUser(user), memberships };
    },
  );
};
