/**
 * Who may call a route. Every route declares it in `config.access`; a route without a declaration
 * fails at start-up, so nothing ships unauthenticated by accident.
 *
 *  - `'public'`: anyone;
 *  - `'user'`: a signed-in user (Bearer access token), no workspace needed;
 *  - `{ permission }`: a user who is a member of the workspace named by `X-Workspace-Id` with a role
 *    granting the permission, or an API key (bound to its workspace) whose scopes grant it.
 *
 * Not a member (or another workspace's key) → 404, so a workspace's existence never leaks; a member
 * without the permission → 403.
 *
 * @example
 *   app.get('/v1/me', { config: { access: 'user' } }, handler)
 *   app.get('/v1/audit', { config: { access: { permission: 'audit:read' } } }, handler)
 */
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { KeyRing } from '../../modules/auth/keys.js';
import type { Db } from '../db/database.js';
import type { MembershipRole } from '../db/schema.js';
import { AppError } from '../errors.js';
import { type Permission, ROLE_PERMISSIONS, scopePermissions } from './permissions.js';

export type RouteAccess = 'public' | 'user' | { permission: Permission };

export interface UserPrincipal {
  kind: 'user';
  userId: string;
  /** The login session (refresh-token family) the access token belongs to. */
  sessionId: string;
  /** Stable key for per-caller limits and logs. */
  principalId: string;
}

export interface ApiKeyPrincipal {
  kind: 'api_key';
  apiKeyId: string;
  workspaceId: string;
  scopes: string[];
  /** The key's collection allowlist, or null for none. */
  collections: readonly string[] | null;
  principalId: string;
}

export type Principal = UserPrincipal | ApiKeyPrincipal;

/** The workspace a request acts in, and what the caller may do there. */
export interface WorkspaceContext {
  id: string;
  /** The member's role; null for API keys. */
  role: MembershipRole | null;
  permissions: ReadonlySet<Permission>;
  /**
   * An API key's collection allowlist; null (or absent) for members and for keys without one. What it
   * means: `collection-access.ts`, the one place collection visibility is decided.
   */
  collections?: readonly string[] | null;
}

/** Verifies API keys (implemented by the api-keys module, with its cache). */
export interface ApiKeyAuthenticator {
  authenticate(key: string): Promise<{
    id: string;
    workspaceId: string;
    scopes: string[];
    collections: readonly string[] | null;
  } | null>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    auth: Principal | null;
    workspace: WorkspaceContext | null;
  }
}

export const WORKSPACE_HEADER = 'x-workspace-id';
export const API_KEY_PREFIX = 'lk_';

/** Routes registered by plugins we do not write (the API reference UI) are public. */
const PUBLIC_PREFIXES = ['/docs'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

/** The signed-in user of a `user` or user-held permission route. */
export function requireUser(request: FastifyRequest): UserPrincipal {
  if (request.auth?.kind !== 'user')
    throw new AppError('forbidden', { detail: 'This route needs a signed-in user, not an API key' });
  return request.auth;
}

/** The calling user's id, or null when an API key acts (for `created_by`-style columns). */
export function actingUserId(request: FastifyRequest): string | null {
  return request.auth?.kind === 'user' ? request.auth.userId : null;
}

/** The workspace of a permission route (the access hook has resolved it). */
export function requireWorkspace(request: FastifyRequest): WorkspaceContext {
  if (!request.workspace) throw new AppError('forbidden');
  return request.workspace;
}

/** Service-side re-check: throws 403 unless the workspace context grants `permission`. */
export function assertPermission(workspace: WorkspaceContext, permission: Permission): void {
  if (!workspace.permissions.has(permission)) {
    throw new AppError('forbidden', { detail: `This needs the ${permission} permission` });
  }
}

async function membershipRole(db: Db, workspaceId: string, userId: string): Promise<MembershipRole | null> {
  const row = await db
    .selectFrom('memberships as m')
    .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
    .select('m.role')
    .where('m.workspace_id', '=', workspaceId)
    .where('m.user_id', '=', userId)
    .where('w.deleted_at', 'is', null)
    .executeTakeFirst();
  return row?.role ?? null;
}

export interface AccessOptions {
  keys: KeyRing;
  apiKeys: ApiKeyAuthenticator;
  db: Db;
}

export const accessPlugin = fp<AccessOptions>(
  async (app, { keys, apiKeys, db }) => {
    app.decorateRequest('auth', null);
    app.decorateRequest('workspace', null);

    app.addHook('onRoute', (route) => {
      const config = (route.config ?? {}) as { access?: RouteAccess };
      if (config.access) return;
      if (PUBLIC_PREFIXES.some((p) => route.url.startsWith(p))) {
        route.config = { ...route.config, access: 'public' };
        return;
      }
      throw new Error(`route ${String(route.method)} ${route.url} does not declare config.access`);
    });

    const authenticate = async (request: FastifyRequest): Promise<Principal> => {
      const token = bearerToken(request.headers.authorization);
      if (!token) {
        throw new AppError('unauthenticated', {
          detail: 'Send credentials: Authorization: Bearer <access token or API key>',
        });
      }
      if (token.startsWith(API_KEY_PREFIX)) {
        const key = await apiKeys.authenticate(token);
        if (!key)
          throw new AppError('invalid_token', { detail: 'The API key is invalid, expired or revoked' });
        return {
          kind: 'api_key',
          apiKeyId: key.id,
          workspaceId: key.workspaceId,
          scopes: key.scopes,
          collections: key.collections,
          principalId: `key:${key.id}`,
        };
      }
      const claims = await keys.verify(token);
      if (!claims) throw new AppError('invalid_token');
      return { kind: 'user', userId: claims.sub, sessionId: claims.sid, principalId: `user:${claims.sub}` };
    };

    const resolveWorkspace = async (
      request: FastifyRequest,
      principal: Principal,
    ): Promise<WorkspaceContext> => {
      const header = request.headers[WORKSPACE_HEADER];
      const named = typeof header === 'string' ? header : undefined;
      if (named !== undefined && !UUID.test(named)) {
        throw new AppError('validation_failed', {
          detail: 'X-Workspace-Id must be a workspace id (uuid)',
          extensions: { errors: [{ in: 'headers', path: '/x-workspace-id', message: 'must be a uuid' }] },
        });
      }
      if (principal.kind === 'api_key') {
        if (named && named !== principal.workspaceId)
          throw new AppError('not_found', { detail: 'No such workspace' });
        return {
          id: principal.workspaceId,
          role: null,
          permissions: scopePermissions(principal.scopes),
          collections: principal.collections,
        };
      }
      if (!named) {
        throw new AppError('validation_failed', {
          detail: 'Name the workspace to act in with the X-Workspace-Id header',
          extensions: { errors: [{ in: 'headers', path: '/x-workspace-id', message: 'is required' }] },
        });
      }
      const role = await membershipRole(db, named, principal.userId);
      if (!role) throw new AppError('not_found', { detail: 'No such workspace' });
      return { id: named, role, permissions: ROLE_PERMISSIONS[role], collections: null };
    };

    app.addHook('onRequest', async (request) => {
      const access = request.routeOptions.config.access;
      if (access === 'public') return;
      if (access === undefined) {
        // Fail closed. Only the not-found handler and CORS preflight (registered by the security plugin
        // before this one) legitimately have no declaration.
        const url = request.routeOptions.url;
        if (url === undefined || (request.method === 'OPTIONS' && url === '*')) return;
        request.log.error({ route: url }, 'route without an access declaration refused');
        throw new AppError('forbidden', { detail: 'This route is not available' });
      }
      const principal = await authenticate(request);
      request.auth = principal;
      if (access === 'user') {
        if (principal.kind !== 'user')
          throw new AppError('forbidden', { detail: 'This route needs a signed-in user, not an API key' });
        return;
      }
      const workspace = await resolveWorkspace(request, principal);
      request.workspace = workspace;
      assertPermission(workspace, access.permission);
    });
  },
  { name: 'larder-access' },
);
