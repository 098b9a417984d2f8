/** SQL for accounts and sessions. These tables are global (not tenant-scoped): see docs/architecture.md. */
import { sql, type Transaction } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import type { DB, RefreshTokenRevokedReason } from '../../platform/db/schema.js';

type Conn = Db | Transaction<DB>;

export function findUserByEmail(db: Conn, email: string) {
  return db
    .selectFrom('users')
    .select(['id', 'email', 'display_name', 'password_hash', 'disabled_at'])
    .where('email', '=', email)
    .executeTakeFirst();
}

export function findUserById(db: Conn, id: string) {
  return db
    .selectFrom('users')
    .select(['id', 'email', 'display_name', 'profile', 'created_at', 'disabled_at'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export function insertUser(db: Conn, user: { email: string; displayName: string; passwordHash: string }) {
  return db
    .insertInto('users')
    .values({
      email: user.email,
      display_name: user.displayName,
      password_hash: user.passwordHash,
      password_changed_at: new Date(),
    })
    .returning(['id', 'email', 'display_name', 'created_at'])
    .executeTakeFirstOrThrow();
}

export async function recordLogin(db: Conn, userId: string, newPasswordHash?: string): Promise<void> {
  await db
    .updateTable('users')
    .set({ last_login_at: new Date(), ...(newPasswordHash ? { password_hash: newPasswordHash } : {}) })
    .where('id', '=', userId)
    .execute();
}

export async function insertWorkspaceWithOwner(
  db: Transaction<DB>,
  input: { name: string; slug: string; ownerId: string },
) {
  const workspace = await db
    .insertInto('workspaces')
    .values({ name: input.name, slug: input.slug })
    .returning(['id', 'name', 'slug', 'created_at'])
    .executeTakeFirstOrThrow();
  await db
    .insertInto('memberships')
    .values({ workspace_id: workspace.id, user_id: input.ownerId, role: 'owner' })
    .execute();
  return workspace;
}

export function membershipsOf(db: Conn, userId: string) {
  return db
    .selectFrom('memberships as m')
    .innerJoin('workspaces as w', 'w.id', 'm.workspace_id')
    .select(['w.id as workspaceId', 'w.name', 'w.slug', 'm.role'])
    .where('m.user_id', '=', userId)
    .where('w.deleted_at', 'is', null)
    .orderBy('w.created_at')
    .execute();
}

export interface NewRefreshToken {
  userId: string;
  familyId: string;
  tokenHash: string;
  parentId: string | null;
  ttlSeconds: number;
  userAgent: string | null;
  ip: string | null;
}

export async function insertRefreshToken(db: Conn, t: NewRefreshToken): Promise<void> {
  await db
    .insertInto('refresh_tokens')
    .values({
      user_id: t.userId,
      family_id: t.familyId,
      token_hash: t.tokenHash,
      parent_id: t.parentId,
      expires_at: sql<Date>`now() + make_interval(secs => ${t.ttlSeconds})`,
      user_agent: t.userAgent,
      ip: t.ip,
    })
    .execute();
}

export function findRefreshToken(db: Conn, tokenHash: string) {
  return db
    .selectFrom('refresh_tokens')
    .select([
      'id',
      'user_id',
      'family_id',
      'rotated_at',
      'revoked_at',
      sql<boolean>`expires_at <= now()`.as('expired'),
    ])
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
}

/** Marks a token used; false when someone else used (or revoked) it first. */
export async function markRotated(db: Conn, id: string): Promise<boolean> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ rotated_at: new Date() })
    .where('id', '=', id)
    .where('rotated_at', 'is', null)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export async function revokeFamily(
  db: Conn,
  familyId: string,
  reason: RefreshTokenRevokedReason,
): Promise<number> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ revoked_at: new Date(), revoked_reason: reason })
    .where('family_id', '=', familyId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
