/**
 * `buildApp(deps)`: the HTTP application without `listen`, so tests drive it with `app.inject()`
 * and the CLI decides where it listens. Domain modules are Fastify plugins registered with a prefix;
 * only shared infrastructure is decorated at the root.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Plugin } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { apiKeyRoutes } from './modules/api-keys/routes.js';
import { ApiKeyService } from './modules/api-keys/service.js';
import { auditRoutes } from './modules/audit/routes.js';
import { authRoutes } from './modules/auth/routes.js';
import { collectionRoutes } from './modules/collections/routes.js';
import { documentRoutes } from './modules/documents/routes.js';
import { createSearchService, searchRoutes } from './modules/search/routes.js';
import { answerRoutes } from './modules/answers/routes.js';
import { chatCompletionRoutes } from './modules/answers/openai-facade.js';
import { reviewRoutes } from './modules/answers/review.js';
import { createAnswerService } from './modules/answers/wiring.js';
import { oidcRoutes } from './modules/oidc/routes.js';
import type { KeyRing } from './modules/auth/keys.js';
import { healthRoutes } from './modules/health/routes.js';
import { workspaceRoutes } from './modules/workspaces/routes.js';
import { accessPlugin } from './platform/auth/access.js';
import type { Database } from './platform/db/database.js';
import { clientErrorHandler, registerProblemHandlers } from './platform/http/problem.js';
import { rateLimitPlugin } from './platform/http/rate-limit.js';
import { parseCorsOrigins, securityPlugin } from './platform/http/security.js';
import type { JobQueue } from './platform/jobs/queue.js';
import type { EventBus } from './platform/events/bus.js';
import type { EmbeddingProviders } from './ai/embeddings/index.js';
import { type Logger, redactUrl } from './platform/logger.js';

export interface AppDeps {
  config: Config;
  logger: Logger;
  database: Database;
  /** Present in server mode when `REDIS_URL` is set. */
  redis?: Redis | undefined;
  jobs?: JobQueue | undefined;
  /** Domain events (in-process, or Redis pub/sub); absent = events are not published. */
  events?: EventBus | undefined;
  /** Embedding models, shared by the process (collections discover dimensions; search embeds queries). */
  embeddings?: EmbeddingProviders | undefined;
  /** Access-token keys (sign and verify). */
  keys: KeyRing;
}

export type App = Awaited<ReturnType<typeof buildApp>>;

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
    /** Every route with its declared access, for the route-enumerating security tests and docs. */
    routeTable: RouteEntry[];
  }
}

export interface RouteEntry {
  method: string;
  url: string;
  access: unknown;
  hasBody: boolean;
  params: string[];
}

/** One line per request (nothing on arrival), with the fields operators filter on. */
class RequestLogs extends LogController {
  override incomingRequest(): void {
    // the completion line carries everything
  }
  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? null,
      url: redactUrl(request.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const API_VERSION = '0.1.0';

export async function buildApp(deps: AppDeps) {
  const { config } = deps;
  const app = Fastify<Server, IncomingMessage, ServerResponse>({
    loggerInstance: deps.logger,
    logController: new RequestLogs({ requestIdLogLabel: 'requestId' }),
    // Accept a caller's X-Request-Id when it is well-formed; otherwise mint one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
    clientErrorHandler,
    ajv: {
      customOptions: { allErrors: true, coerceTypes: 'array', useDefaults: true, removeAdditional: false },
      plugins: [ajvFormats.default as unknown as Plugin<unknown>],
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorate('deps', deps);
  // Callback-style hooks on the hot path: an async hook costs a promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });

  // During shutdown, in-flight responses close their connection: otherwise a keep-alive socket that
  // goes idle after close() began would hold the process open until the keep-alive timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  registerProblemHandlers(app);

  await app.register(swagger, {
    // Shared schemas keep their $id as their component name (e.g. #/components/schemas/Problem).
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Larder API',
        version: API_VERSION,
        description:
          'Self-hosted knowledge backend. Errors are RFC 9457 `application/problem+json` documents with a stable `code`.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      tags: [
        { name: 'operations', description: 'Health, readiness and API description' },
        { name: 'auth', description: 'Accounts and sessions' },
        { name: 'api-keys', description: 'Workspace API keys' },
        { name: 'workspaces', description: 'Workspaces, members, invitations' },
        { name: 'audit', description: 'Audit log of security-relevant actions' },
        { name: 'collections', description: 'Collections of documents' },
        { name: 'documents', description: 'Documents: upload, status, content, chunks' },
        { name: 'search', description: 'Hybrid, lexical and vector search' },
        {
          name: 'answers',
          description: 'Answers with citations, conversations, feedback, usage and budgets',
        },
        { name: 'review', description: 'The human review queue and curated answers' },
        { name: 'openai', description: 'OpenAI-compatible chat completions over the workspace’s documents' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'Access token from /v1/auth/login',
          },
        },
      },
      security: [{ bearerAuth: [] }],
    },
  });

  // Security headers and CORS first: preflights are answered before any access check.
  await app.register(securityPlugin, {
    corsOrigins: parseCorsOrigins(config.corsOrigins),
    hsts: config.hsts,
  });
  const apiKeys = new ApiKeyService(deps.database.db, {
    cacheTtlMs: config.apiKeyCacheTtlMs,
    flushIntervalMs: 60_000,
  });
  app.addHook('onClose', () => apiKeys.close());
  await app.register(accessPlugin, { keys: deps.keys, apiKeys, db: deps.database.db });
  // After access: limits key on the authenticated principal when there is one, else on the client IP.
  await app.register(rateLimitPlugin, {
    max: config.rateLimitMax,
    timeWindowMs: config.rateLimitWindowMs,
    authMax: config.authRateLimitMax,
    authTimeWindowMs: config.authRateLimitWindowMs,
    redis: deps.redis,
  });

  // Registered after the access plugin, so every route from here on is checked and recorded.
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const params = Object.keys(
      (route.schema?.params as { properties?: object } | undefined)?.properties ?? {},
    );
    for (const method of methods) {
      routeTable.push({
        method,
        url: route.url,
        access: (route.config as { access?: unknown } | undefined)?.access,
        hasBody: Boolean(route.schema?.body),
        params,
      });
    }
  });

  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { deepLinking: true } });

  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, () => app.swagger());

  await app.register(healthRoutes);
  await app.register(authRoutes, { keys: deps.keys });
  if (config.oidcIssuer) {
    await app.register(oidcRoutes, {
      keys: deps.keys,
      issuerUrl: config.oidcIssuer,
      clientId: config.oidcClientId ?? '',
      clientSecret: config.oidcClientSecret,
      redirectUri: config.oidcRedirectUri ?? '',
      scopes: config.oidcScopes,
      stateSecret: config.oidcStateSecret ?? '',
      provisioning:
        config.oidcProvisionRole === 'off'
          ? null
          : { workspaceId: config.oidcProvisionWorkspaceId, role: config.oidcProvisionRole },
      returnToAllowList: config.oidcReturnTo
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      allowInsecureHttp: config.oidcAllowInsecureHttp,
    });
  }
  await app.register(apiKeyRoutes, { apiKeys });
  await app.register(workspaceRoutes);
  await app.register(auditRoutes);
  await app.register(collectionRoutes);
  await app.register(documentRoutes);
  const search = createSearchService(deps);
  await app.register(searchRoutes(search));
  const { answers, usage } = createAnswerService(deps, search);
  await app.register(answerRoutes(answers, usage));
  await app.register(chatCompletionRoutes(answers));
  await app.register(reviewRoutes);

  return app;
}
