/**
 * Workspaces, memberships and invitations. Every read and write of workspace data runs in a tenant
 * transaction (`withTenant`), and every method re-checks the caller's permission: routes declare the
 * minimum, services enforce the rules (e.g. never grant above your own role, owners only by transfer).
 */
import { createHash, randomBytes } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { WorkspaceContext } from '../../platform/auth/access.js';
import { assertPermission } from '../../platform/auth/access.js';
import { outranksOrEquals } from '../../platform/auth/permissions.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, InvitationRole, MembershipRole } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import { type AuditContext, recordAudit, SYSTEM_AUDIT } from '../audit/service.js';
import { insertWorkspaceWithOwner } from '../auth/repository.js';
import { slugify } from '../auth/service.js';

const INVITATION_PREFIX = 'li_';
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/** The member's role in the workspace; 404 (with `detail`) when not a member. */
async function memberOf(trx: Transaction<DB>, workspaceId: string, userId: string, detail: string) {
  const member = await trx
    .selectFrom('memberships')
    .select('role')
    .where('workspace_id', '=', workspaceId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  if (!member) throw new AppError('not_found', { detail });
  return member;
}

export class WorkspaceService {
  constructor(private readonly db: Db) {}

  /** A further workspace for a signed-in user, who becomes its owner. */
  create(userId: string, name: string, audit: AuditContext = SYSTEM_AUDIT) {
    return this.db.transaction().execute(async (trx) => {
      const workspace = await insertWorkspaceWithOwner(trx, { name, slug: slugify(name), ownerId: userId });
      await recordAudit(trx, {
        ...audit,
        workspaceId: workspace.id,
        action: 'workspace.created',
        target: { type: 'workspace', id: workspace.id },
        data: { name },
      });
      return workspace;
    });
  }

  async get(ws: WorkspaceContext) {
    assertPermission(ws, 'workspace:read');
    const row = await withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('workspaces')
        .select(['id', 'name', 'slug', 'created_at'])
        .where('id', '=', ws.id)
        .executeTakeFirst(),
    );
    if (!row) throw new AppError('not_found', { detail: 'No such workspace' });
    return row;
  }

  async rename(ws: WorkspaceContext, name: string, audit: AuditContext = SYSTEM_AUDIT) {
    assertPermission(ws, 'workspace:admin');
    return withTenant(this.db, ws.id, async (trx) => {
      const row = await trx
        .updateTable('workspaces')
        .set({ name })
        .where('id', '=', ws.id)
        .returning(['id', 'name', 'slug', 'created_at'])
        .executeTakeFirstOrThrow();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'workspace.renamed',
        target: { type: 'workspace', id: ws.id },
        data: { name },
      });
      return row;
    });
  }

  async members(ws: WorkspaceContext) {
    assertPermission(ws, 'workspace:read');
    return withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('memberships as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .select([
          'u.id as userId',
          'u.email',
          'u.display_name as displayName',
          'm.role',
          'm.created_at as joinedAt',
        ])
        .where('m.workspace_id', '=', ws.id)
        .orderBy('m.created_at')
        .execute(),
    );
  }

  /** Changes a member's role. Not to or from owner (use a transfer); never above the actor's own role. */
  async setRole(
    ws: WorkspaceContext,
    targetUserId: string,
    role: InvitationRole,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'members:manage');
    return withTenant(this.db, ws.id, async (trx) => {
      const target = await memberOf(trx, ws.id, targetUserId, 'No such member');
      if (target.role === 'owner')
        throw new AppError('conflict', { detail: 'The owner’s role changes only by transferring ownership' });
      this.#assertCanManage(ws, target.role, role);
      await trx
        .updateTable('memberships')
        .set({ role })
        .where('workspace_id', '=', ws.id)
        .where('user_id', '=', targetUserId)
        .execute();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'member.role_changed',
        target: { type: 'user', id: targetUserId },
        data: { from: target.role, to: role },
      });
      return { userId: targetUserId, role };
    });
  }

  /** Removes a member; anyone may leave, removing others needs `members:manage`. The owner cannot leave. */
  async removeMember(
    ws: WorkspaceContext,
    actorUserId: string | null,
    targetUserId: string,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    if (targetUserId !== actorUserId) assertPermission(ws, 'members:manage');
    await withTenant(this.db, ws.id, async (trx) => {
      const target = await memberOf(trx, ws.id, targetUserId, 'No such member');
      if (target.role === 'owner')
        throw new AppError('conflict', { detail: 'Transfer ownership before the owner leaves' });
      if (targetUserId !== actorUserId) this.#assertCanManage(ws, target.role, target.role);
      await trx
        .deleteFrom('memberships')
        .where('workspace_id', '=', ws.id)
        .where('user_id', '=', targetUserId)
        .execute();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: targetUserId === actorUserId ? 'member.left' : 'member.removed',
        target: { type: 'user', id: targetUserId },
        data: { role: target.role },
      });
    });
  }

  /** Makes another member the owner; the previous owner becomes an admin. */
  async transferOwnership(
    ws: WorkspaceContext,
    ownerUserId: string,
    newOwnerUserId: string,
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'workspace:owner');
    if (ownerUserId === newOwnerUserId)
      throw new AppError('conflict', { detail: 'You already own this workspace' });
    await withTenant(this.db, ws.id, async (trx) => {
      await memberOf(trx, ws.id, newOwnerUserId, 'The new owner must already be a member');
      // One owner at a time (unique index): demote first, then promote, in one transaction.
      await trx
        .updateTable('memberships')
        .set({ role: 'admin' })
        .where('workspace_id', '=', ws.id)
        .where('user_id', '=', ownerUserId)
        .execute();
      await trx
        .updateTable('memberships')
        .set({ role: 'owner' })
        .where('workspace_id', '=', ws.id)
        .where('user_id', '=', newOwnerUserId)
        .execute();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'workspace.ownership_transferred',
        target: { type: 'user', id: newOwnerUserId },
        data: { from: ownerUserId, to: newOwnerUserId },
      });
    });
  }

  async invite(
    ws: WorkspaceContext,
    invitedBy: string | null,
    input: { email: string; role: InvitationRole; expiresInHours: number },
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    assertPermission(ws, 'members:manage');
    this.#assertCanManage(ws, input.role, input.role);
    const email = input.email.trim().toLowerCase();
    const token = `${INVITATION_PREFIX}${randomBytes(32).toString('base64url')}`;
    const row = await withTenant(this.db, ws.id, async (trx) => {
      const member = await trx
        .selectFrom('memberships as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .select('m.id')
        .where('m.workspace_id', '=', ws.id)
        .where('u.email', '=', email)
        .executeTakeFirst();
      if (member) throw new AppError('conflict', { detail: 'This person is already a member' });
      // Re-inviting refreshes the open invitation (new token, new expiry) instead of stacking them.
      const invitation = await trx
        .insertInto('invitations')
        .values({
          workspace_id: ws.id,
          email,
          role: input.role,
          token_hash: hashToken(token),
          invited_by: invitedBy,
          expires_at: sql<Date>`now() + make_interval(hours => ${input.expiresInHours})`,
        })
        .onConflict((oc) =>
          oc
            .columns(['workspace_id', 'email'])
            .where('accepted_at', 'is', null)
            .where('revoked_at', 'is', null)
            .doUpdateSet((eb) => ({
              token_hash: eb.ref('excluded.token_hash'),
              role: eb.ref('excluded.role'),
              invited_by: eb.ref('excluded.invited_by'),
              expires_at: eb.ref('excluded.expires_at'),
            })),
        )
        .returning(['id', 'email', 'role', 'expires_at', 'created_at'])
        .executeTakeFirstOrThrow();
      await recordAudit(trx, {
        ...audit,
        workspaceId: ws.id,
        action: 'invitation.created',
        target: { type: 'invitation', id: invitation.id },
        data: { email, role: input.role },
      });
      return invitation;
    });
    return { row, token };
  }

  async invitations(ws: WorkspaceContext) {
    assertPermission(ws, 'members:manage');
    return withTenant(this.db, ws.id, (trx) =>
      trx
        .selectFrom('invitations')
        .select(['id', 'email', 'role', 'expires_at', 'created_at'])
        .where('workspace_id', '=', ws.id)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .orderBy('created_at', 'desc')
        .execute(),
    );
  }

  async revokeInvitation(ws: WorkspaceContext, id: string, audit: AuditContext = SYSTEM_AUDIT) {
    assertPermission(ws, 'members:manage');
    const row = await withTenant(this.db, ws.id, async (trx) => {
      const revoked = await trx
        .updateTable('invitations')
        .set({ revoked_at: new Date() })
        .where('workspace_id', '=', ws.id)
        .where('id', '=', id)
        .where('accepted_at', 'is', null)
        .where('revoked_at', 'is', null)
        .returning(['id', 'email'])
        .executeTakeFirst();
      if (revoked) {
        await recordAudit(trx, {
          ...audit,
          workspaceId: ws.id,
          action: 'invitation.revoked',
          target: { type: 'invitation', id },
          data: { email: revoked.email },
        });
      }
      return revoked;
    });
    if (!row) throw new AppError('not_found', { detail: 'No such open invitation' });
  }

  /** Joins the invitation's workspace. The invitation is bound to its email: forwarding it does not work. */
  async accept(user: { id: string; email: string }, token: string, audit: AuditContext = SYSTEM_AUDIT) {
    // Unscoped by necessity: the caller is not a member yet. Only the invitation's own row is read.
    const invitation = token.startsWith(INVITATION_PREFIX)
      ? await this.db
          .selectFrom('invitations')
          .select([
            'id',
            'workspace_id',
            'email',
            'role',
            'accepted_at',
            'revoked_at',
            sql<boolean>`expires_at <= now()`.as('expired'),
          ])
          .where('token_hash', '=', hashToken(token))
          .executeTakeFirst()
      : undefined;
    if (!invitation || invitation.revoked_at || invitation.expired || invitation.email !== user.email) {
      throw new AppError('not_found', {
        detail: 'This invitation is invalid, expired or for another email address',
      });
    }
    if (invitation.accepted_at)
      throw new AppError('conflict', { detail: 'This invitation was already used' });
    return withTenant(this.db, invitation.workspace_id, async (trx) => {
      const claimed = await trx
        .updateTable('invitations')
        .set({ accepted_at: new Date(), accepted_by: user.id })
        .where('id', '=', invitation.id)
        .where('accepted_at', 'is', null)
        .executeTakeFirst();
      if (claimed.numUpdatedRows !== 1n)
        throw new AppError('conflict', { detail: 'This invitation was already used' });
      await trx
        .insertInto('memberships')
        .values({ workspace_id: invitation.workspace_id, user_id: user.id, role: invitation.role })
        .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doNothing())
        .execute();
      await recordAudit(trx, {
        ...audit,
        workspaceId: invitation.workspace_id,
        action: 'invitation.accepted',
        target: { type: 'invitation', id: invitation.id },
        data: { role: invitation.role },
      });
      return { workspaceId: invitation.workspace_id, role: invitation.role };
    });
  }

  #assertCanManage(ws: WorkspaceContext, current: MembershipRole, next: MembershipRole) {
    // API keys with the admin scope act as admins.
    const actor: MembershipRole = ws.role ?? 'admin';
    if (!outranksOrEquals(actor, current) || !outranksOrEquals(actor, next)) {
      throw new AppError('forbidden', { detail: 'You cannot manage a role above your own' });
    }
  }
}
