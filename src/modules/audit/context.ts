/** The request's part of an audit event: who acts (the authenticated principal) and from where. */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../platform/auth/access.js';
import type { AuditActor, AuditContext } from './service.js';

export function auditActor(principal: Principal | null): AuditActor {
  if (principal === null) return { type: 'anonymous' };
  switch (principal.kind) {
    case 'user':
      return { type: 'user', userId: principal.userId };
    case 'api_key':
      return { type: 'api_key', apiKeyId: principal.apiKeyId };
  }
}

/**
 * @example
 *   await apiKeys.revoke(requireWorkspace(request).id, request.params.id, auditContext(request));
 */
export function auditContext(request: FastifyRequest): AuditContext {
  return {
    actor: auditActor(request.auth),
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    requestId: request.id,
  };
}
