/**
 * The audit log of the workspace named by `X-Workspace-Id` (or the calling key's workspace).
 *
 *   GET /v1/audit   events, newest first, filtered and paginated by cursor
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requireWorkspace } from '../../platform/auth/access.js';
import { problemResponses } from '../../platform/http/problem.js';
import { presentAuditEvent } from './presenter.js';
import { AuditPageSchema, AuditQuerySchema } from './schema.js';
import { AuditService } from './service.js';

const toDate = (value: string | undefined) => (value === undefined ? undefined : new Date(value));

export const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const audit = new AuditService(app.deps.database.db);

  app.get(
    '/v1/audit',
    {
      config: { access: { permission: 'audit:read' } },
      schema: {
        tags: ['audit'],
        summary: 'List audit events',
        description:
          'Security-relevant actions in this workspace (sign-up, API keys, …), newest first. Needs the `audit:read` permission (admins and owners; API keys with the `admin` scope). Instance-level events such as logins belong to no workspace and are not listed. Follow `nextCursor` until it is null to read every event exactly once.',
        querystring: AuditQuerySchema,
        response: { 200: AuditPageSchema, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { from, to, ...filters } = request.query;
      const page = await audit.list(requireWorkspace(request), {
        ...filters,
        from: toDate(from),
        to: toDate(to),
      });
      return { data: page.rows.map(presentAuditEvent), nextCursor: page.nextCursor };
    },
  );
};
