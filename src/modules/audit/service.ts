/**
 * The audit log: an append-only record of security-relevant actions — who (actor), did what (a dotted
 * `action`), to what (`target`), from where (ip, user agent, request id). The database refuses updates
 * and deletes (migration 0004) and the application role may only insert and read (0005).
 *
 * Writing — `recordAudit(conn, event)`, called by the service that performs the action:
 *  - A workspace event is written on the caller's `withTenant` transaction, so it exists if and only if
 *    the change commits, and row-level security checks it belongs to that workspace.
 *  - An instance-level event (`workspaceId: null`: logins, logouts, refresh-token reuse) is written as
 *    the connecting role (`db` or an unscoped transaction). It has to be: under `larder_app` the policy
 *    `workspace_id = larder_current_workspace()` is never true for a null workspace, so RLS would refuse
 *    the insert; and there is no workspace to scope to before a user has signed in. For the same reason
 *    no tenant can read these rows (GET /v1/audit lists only the workspace's own events).
 *  - Sign-up is written on its own (unscoped) transaction: the workspace is created there.
 *
 * `data` never holds secrets: see sanitise.ts (secret-named entries are dropped and listed).
 *
 * @example
 *   await withTenant(db, workspaceId, async (trx) => {
 *     const key = await insertKey(trx, input);
 *     await recordAudit(trx, {
 *       ...audit, // auditContext(request): actor, ip, userAgent, requestId
 *       workspaceId,
 *       action: 'api_key.created',
 *       target: { type: 'api_key', id: key.id },
 *       data: { name: key.name },
 *     });
 *   });
 */
import type { Transaction } from 'kysely';
import { assertPermission, type WorkspaceContext } from '../../platform/auth/access.js';
import type { Db } from '../../platform/db/database.js';
import type { AuditActorType, DB } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { cursorPosition, keysetPage } from '../../platform/db/cursor.js';
import * as repo from './repository.js';
import { sanitiseAuditData } from './sanitise.js';

export interface AuditActor {
  type: AuditActorType;
  userId?: string | null;
  apiKeyId?: string | null;
}

/** Who acts and from where: everything about an event that comes from the request. */
export interface AuditContext {
  actor: AuditActor;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

export interface AuditEvent extends AuditContext {
  /** null for instance-level events; see the module comment for which connection to use. */
  workspaceId: string | null;
  /** Dotted, lower case, past tense for outcomes: `auth.login.failed`, `api_key.created`. */
  action: string;
  target?: { type: string; id: string | null } | undefined;
  /** Details worth keeping. Never secrets: secret-named entries are dropped (sanitise.ts). */
  data?: Record<string, unknown>;
}

/** For changes made by Larder itself (jobs, the CLI) rather than a caller. */
export const SYSTEM_AUDIT: AuditContext = { actor: { type: 'system' } };

const ACTION = /^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$/;
const MAX_USER_AGENT = 512;

/** Appends one event on `conn` (a tenant transaction for workspace events; see the module comment). */
export async function recordAudit(conn: Db | Transaction<DB>, event: AuditEvent): Promise<void> {
  await repo.insertAuditEvent(conn, auditRow(event));
}

/** The `audit_log` row of an event (for a caller that inserts it as part of a bigger statement). */
export function auditRow(event: AuditEvent) {
  if (!ACTION.test(event.action)) throw new Error(`recordAudit: not a dotted action: ${event.action}`);
  return {
    workspace_id: event.workspaceId,
    actor_type: event.actor.type,
    actor_user_id: event.actor.userId ?? null,
    actor_api_key_id: event.actor.apiKeyId ?? null,
    action: event.action,
    target_type: event.target?.type ?? null,
    target_id: event.target?.id ?? null,
    ip: event.ip ?? null,
    user_agent: event.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
    request_id: event.requestId ?? null,
    // Serialised here: the same text reaches jsonb on both drivers.
    data: JSON.stringify(sanitiseAuditData(event.data ?? {})),
  };
}

export const DEFAULT_AUDIT_PAGE = 50;

/** What a caller may ask for: the repository's filters, with an opaque cursor instead of a position. */
export type AuditQuery = Omit<repo.AuditFilters, 'after' | 'limit'> & {
  cursor?: string | undefined;
  limit?: number | undefined;
};

export class AuditService {
  constructor(private readonly db: Db) {}

  /** A page of the workspace's events, newest first, and the cursor of the next page (null at the end). */
  async list(workspace: WorkspaceContext, query: AuditQuery) {
    assertPermission(workspace, 'audit:read');
    const { cursor, limit: requested, ...filters } = query;
    const after = cursorPosition(cursor);
    const limit = requested ?? DEFAULT_AUDIT_PAGE;
    const rows = await withTenant(this.db, workspace.id, (trx) =>
      repo.listAuditEvents(trx, workspace.id, { ...filters, after, limit: limit + 1 }),
    );
    const { data, nextCursor } = keysetPage(rows, limit);
    return { rows: data, nextCursor };
  }
}
