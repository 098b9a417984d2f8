/**
 * API keys of the workspace named by `X-Workspace-Id` (or the calling key's own workspace).
 *
 *   POST   /v1/api-keys        create; the response is the only time the key is shown
 *   GET    /v1/api-keys        list (never the secret)
 *   DELETE /v1/api-keys/{id}   revoke
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { requireWorkspace, actingUserId } from '../../platform/auth/access.js';
import { API_KEY_SCOPES } from '../../platform/auth/permissions.js';
import { problemResponses } from '../../platform/http/problem.js';
import { auditContext } from '../audit/context.js';
import { type ApiKeyService, MAX_KEY_COLLECTIONS } from './service.js';

const ApiKey = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  prefix: Type.String({
    description: 'The visible start of the key, to recognise it',
    examples: ['lk_live_1a2b3c4d'],
  }),
  scopes: Type.Array(Type.String()),
  collections: Type.Union([Type.Array(Type.String({ format: 'uuid' })), Type.Null()], {
    description: 'Collections the key is limited to; null: no allowlist',
  }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'Updated at most about once a minute',
  }),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

interface Row {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  collections: string[] | null;
  expires_at: Date | null;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}
const present = (r: Row) => ({
  id: r.id,
  name: r.name,
  prefix: r.prefix,
  scopes: r.scopes,
  collections: r.collections,
  expiresAt: r.expires_at?.toISOString() ?? null,
  createdAt: r.created_at.toISOString(),
  lastUsedAt: r.last_used_at?.toISOString() ?? null,
  revokedAt: r.revoked_at?.toISOString() ?? null,
});

const access = { access: { permission: 'api_keys:manage' as const } };

export const apiKeyRoutes: FastifyPluginAsyncTypebox<{ apiKeys: ApiKeyService }> = async (
  app,
  { apiKeys },
) => {
  app.post(
    '/v1/api-keys',
    {
      config: access,
      schema: {
        tags: ['api-keys'],
        summary: 'Create an API key',
        description:
          'Returns the key once, in `key`: store it now. Send it as `Authorization: Bearer lk_live_…`; it acts in this workspace only, with its scopes.',
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200 }),
            scopes: Type.Array(Type.Enum([...API_KEY_SCOPES]), {
              minItems: 1,
              maxItems: API_KEY_SCOPES.length,
              uniqueItems: true,
            }),
            collections: Type.Optional(
              Type.Union(
                [
                  Type.Array(Type.String({ format: 'uuid' }), {
                    maxItems: MAX_KEY_COLLECTIONS,
                    uniqueItems: true,
                  }),
                  Type.Null(),
                ],
                {
                  description:
                    'Limit the key to these collections of the workspace (which it then sees whatever their `minRole`). Omitted or null: every collection its scopes allow whose `minRole` is `viewer` or `editor`; admin- and owner-only collections need an entry here.',
                },
              ),
            ),
            expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Intersect([
            ApiKey,
            Type.Object({ key: Type.String({ description: 'The secret; shown only now' }) }),
          ]),
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const { row, key } = await apiKeys.create(
        requireWorkspace(request),
        {
          name: request.body.name,
          scopes: request.body.scopes,
          collections: request.body.collections,
          expiresAt: request.body.expiresAt ? new Date(request.body.expiresAt) : undefined,
          createdBy: actingUserId(request),
        },
        auditContext(request),
      );
      return reply.code(201).send({ ...present(row), key });
    },
  );

  app.get(
    '/v1/api-keys',
    {
      config: access,
      schema: {
        tags: ['api-keys'],
        summary: 'List API keys (without secrets)',
        response: { 200: Type.Object({ data: Type.Array(ApiKey) }), ...problemResponses(401, 403, 404) },
      },
    },
    async (request) => ({ data: (await apiKeys.list(requireWorkspace(request).id)).map(present) }),
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      config: access,
      schema: {
        tags: ['api-keys'],
        summary: 'Revoke an API key',
        description: 'Takes effect at once on this replica and within the key cache TTL on others.',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await apiKeys.revoke(requireWorkspace(request).id, request.params.id, auditContext(request));
      return reply.code(204).send(null);
    },
  );
};
