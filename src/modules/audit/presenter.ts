/** Audit rows as the API shows them (camelCase, ISO dates, nested actor and target). */
import type { AuditRow } from './repository.js';
import type { AuditEventBody } from './schema.js';

export function presentAuditEvent(row: AuditRow): AuditEventBody {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    action: row.action,
    actor: { type: row.actor_type, userId: row.actor_user_id, apiKeyId: row.actor_api_key_id },
    target: row.target_type === null ? null : { type: row.target_type, id: row.target_id },
    ip: row.ip,
    userAgent: row.user_agent,
    requestId: row.request_id,
    data: row.data,
    createdAt: row.created_at.toISOString(),
  };
}
