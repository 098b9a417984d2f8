/**
 * Operations endpoints. Public by design (no credentials, no tenant data): load balancers and
 * orchestrators call them.
 *  - GET /healthz: the process is alive (never touches dependencies, so a slow database does not
 *    get healthy pods killed);
 *  - GET /readyz: the database answers and is fully migrated, and Redis answers when configured.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { checkReadiness } from './service.js';

const Check = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('fail'), Type.Literal('skipped')]),
  ms: Type.Optional(Type.Number()),
  detail: Type.Optional(Type.String()),
});

const Readiness = Type.Object({
  status: Type.Literal('ok'),
  mode: Type.Union([Type.Literal('embedded'), Type.Literal('server')]),
  checks: Type.Object({ database: Check, migrations: Check, redis: Check }),
});

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process is up',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Readiness: database reachable and migrated; Redis reachable when configured',
        description: 'Answers 503 `service_unavailable` with the same `checks` object when any check fails.',
        security: [],
        response: { 200: Readiness, ...problemResponses(503) },
      },
    },
    async () => {
      const { database, redis } = app.deps;
      const result = await checkReadiness({ database, redis });
      if (!result.ready) {
        throw new AppError('service_unavailable', {
          detail:
            'not ready: ' +
            Object.entries(result.checks)
              .filter(([, c]) => c.status === 'fail')
              .map(([n]) => n)
              .join(', '),
          extensions: { checks: result.checks },
          headers: { 'retry-after': '5' },
        });
      }
      return { status: 'ok' as const, mode: database.mode, checks: result.checks };
    },
  );
};
