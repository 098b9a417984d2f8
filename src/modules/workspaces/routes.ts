/**
 * The current workspace (named by `X-Workspace-Id`), its members and invitations.
 *
 *   POST   /v1/workspaces                          create another workspace (you own it)
 *   GET    /v1/workspace                           the current workspace and your role
 *   PATCH  /v1/workspace                           rename (admin)
 *   GET    /v1/workspace/members                   members
 *   PATCH  /v1/workspace/members/{userId}          change a role (admin; not to/from owner)
 *   DELETE /v1/workspace/members/{userId}          remove a member, or leave
 *   POST   /v1/workspace/transfer-ownership        make another member the owner (owner)
 *   POST   /v1/workspace/invitations               invite by email; the token is shown once (admin)
 *   GET    /v1/workspace/invitations               open invitations (admin)
 *   DELETE /v1/workspace/invitations/{id}          revoke (admin)
 *   POST   /v1/invitations/accept                  join with an invitation token (the invited user)
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { requireUser, requireWorkspace, actingUserId } from '../../platform/auth/access.js';
import { problemResponses } from '../../platform/http/problem.js';
import { auditContext } from '../audit/context.js';
import { WorkspaceService } from './service.js';

const Uuid = Type.String({ format: 'uuid' });
const Role = Type.Enum(['owner', 'admin', 'editor', 'viewer']);
const GrantableRole = Type.Enum(['admin', 'editor', 'viewer'], {
  description: 'Ownership is transferred, never granted',
});
const Workspace = Type.Object({
  id: Uuid,
  name: Type.String(),
  slug: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  role: Type.Union([Role, Type.Null()], { description: 'Your role here (null for API keys)' }),
});
const Member = Type.Object({
  userId: Uuid,
  email: Type.String(),
  displayName: Type.Union([Type.String(), Type.Null()]),
  role: Role,
  joinedAt: Type.String({ format: 'date-time' }),
});
const Invitation = Type.Object({
  id: Uuid,
  email: Type.String(),
  role: GrantableRole,
  expiresAt: Type.String({ format: 'date-time' }),
  createdAt: Type.String({ format: 'date-time' }),
});
const Name = Type.String({ minLength: 1, maxLength: 200 });
const UserIdParams = Type.Object({ userId: Uuid });

const presentInvitation = (r: {
  id: string;
  email: string;
  role: 'admin' | 'editor' | 'viewer';
  expires_at: Date;
  created_at: Date;
}) => ({
  id: r.id,
  email: r.email,
  role: r.role,
  expiresAt: r.expires_at.toISOString(),
  createdAt: r.created_at.toISOString(),
});

export const workspaceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const workspaces = new WorkspaceService(app.deps.database.db);
  const tags = ['workspaces'];

  app.post(
    '/v1/workspaces',
    {
      config: { access: 'user' },
      schema: {
        tags,
        summary: 'Create another workspace; you become its owner',
        body: Type.Object({ name: Name }, { additionalProperties: false }),
        response: { 201: Workspace, ...problemResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const row = await workspaces.create(
        requireUser(request).userId,
        request.body.name,
        auditContext(request),
      );
      return reply.code(201).send({
        id: row.id,
        name: row.name,
        slug: row.slug,
        createdAt: row.created_at.toISOString(),
        role: 'owner',
      });
    },
  );

  app.get(
    '/v1/workspace',
    {
      config: { access: { permission: 'workspace:read' } },
      schema: {
        tags,
        summary: 'The current workspace',
        response: { 200: Workspace, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const ws = requireWorkspace(request);
      const row = await workspaces.get(ws);
      return {
        id: row.id,
        name: row.name,
        slug: row.slug,
        createdAt: row.created_at.toISOString(),
        role: ws.role,
      };
    },
  );

  app.patch(
    '/v1/workspace',
    {
      config: { access: { permission: 'workspace:admin' } },
      schema: {
        tags,
        summary: 'Rename the current workspace',
        body: Type.Object({ name: Name }, { additionalProperties: false }),
        response: { 200: Workspace, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const ws = requireWorkspace(request);
      const row = await workspaces.rename(ws, request.body.name, auditContext(request));
      return {
        id: row.id,
        name: row.name,
        slug: row.slug,
        createdAt: row.created_at.toISOString(),
        role: ws.role,
      };
    },
  );

  app.get(
    '/v1/workspace/members',
    {
      config: { access: { permission: 'workspace:read' } },
      schema: {
        tags,
        summary: 'Members of the current workspace',
        response: { 200: Type.Object({ data: Type.Array(Member) }), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ({
      data: (await workspaces.members(requireWorkspace(request))).map((m) => ({
        ...m,
        joinedAt: m.joinedAt.toISOString(),
      })),
    }),
  );

  app.patch(
    '/v1/workspace/members/:userId',
    {
      config: { access: { permission: 'members:manage' } },
      schema: {
        tags,
        summary: 'Change a member’s role',
        description: 'Never to or from owner (transfer ownership instead), and never above your own role.',
        params: UserIdParams,
        body: Type.Object({ role: GrantableRole }, { additionalProperties: false }),
        response: {
          200: Type.Object({ userId: Uuid, role: GrantableRole }),
          ...problemResponses(400, 401, 403, 404, 409),
        },
      },
    },
    (request) =>
      workspaces.setRole(
        requireWorkspace(request),
        request.params.userId,
        request.body.role,
        auditContext(request),
      ),
  );

  app.delete(
    '/v1/workspace/members/:userId',
    {
      config: { access: { permission: 'workspace:read' } },
      schema: {
        tags,
        summary: 'Remove a member, or leave (your own user id)',
        description: 'Removing someone else needs the members:manage permission. The owner cannot leave.',
        params: UserIdParams,
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const actor = actingUserId(request);
      await workspaces.removeMember(
        requireWorkspace(request),
        actor,
        request.params.userId,
        auditContext(request),
      );
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/workspace/transfer-ownership',
    {
      config: { access: { permission: 'workspace:owner' } },
      schema: {
        tags,
        summary: 'Make another member the owner',
        description: 'You become an admin.',
        body: Type.Object({ userId: Uuid }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await workspaces.transferOwnership(
        requireWorkspace(request),
        requireUser(request).userId,
        request.body.userId,
        auditContext(request),
      );
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/workspace/invitations',
    {
      config: { access: { permission: 'members:manage' } },
      schema: {
        tags,
        summary: 'Invite someone by email',
        description:
          'Returns the invitation `token` once: send it to the invitee, who accepts it at /v1/invitations/accept after signing in with that email. Inviting the same email again replaces the open invitation.',
        body: Type.Object(
          {
            email: Type.String({ format: 'email', maxLength: 254 }),
            role: GrantableRole,
            expiresInHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720, default: 168 })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Intersect([Invitation, Type.Object({ token: Type.String() })]),
          ...problemResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const invitedBy = actingUserId(request);
      const { row, token } = await workspaces.invite(
        requireWorkspace(request),
        invitedBy,
        {
          email: request.body.email,
          role: request.body.role,
          expiresInHours: request.body.expiresInHours ?? 168,
        },
        auditContext(request),
      );
      return reply.code(201).send({ ...presentInvitation(row), token });
    },
  );

  app.get(
    '/v1/workspace/invitations',
    {
      config: { access: { permission: 'members:manage' } },
      schema: {
        tags,
        summary: 'Open invitations',
        response: {
          200: Type.Object({ data: Type.Array(Invitation) }),
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => ({
      data: (await workspaces.invitations(requireWorkspace(request))).map(presentInvitation),
    }),
  );

  app.delete(
    '/v1/workspace/invitations/:id',
    {
      config: { access: { permission: 'members:manage' } },
      schema: {
        tags,
        summary: 'Revoke an open invitation',
        params: Type.Object({ id: Uuid }),
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await workspaces.revokeInvitation(requireWorkspace(request), request.params.id, auditContext(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/invitations/accept',
    {
      config: { access: 'user' },
      schema: {
        tags,
        summary: 'Join a workspace with an invitation token',
        description: 'You must be signed in with the email address the invitation was sent to.',
        body: Type.Object(
          { token: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ workspaceId: Uuid, role: GrantableRole }),
          ...problemResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const user = await app.deps.database.db
        .selectFrom('users')
        .select(['id', 'email'])
        .where('id', '=', requireUser(request).userId)
        .executeTakeFirstOrThrow();
      return workspaces.accept(user, request.body.token, auditContext(request));
    },
  );
};
