/**
 * SQL for SSO sign-in: identity links (`oidc_identities`), the users they point at, and just-in-time
 * provisioning. `users` and `oidc_identities` are global tables; the one tenant write (the provisioned
 * membership) runs as the connecting user inside the provisioning transaction, like the owner
 * membership at sign-up, so that a user is never created without the membership the operator
 * configured. The workspace id comes from configuration, never from the request.
 */
import type { Transaction } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import type { DB, InvitationRole, JsonObject } from '../../platform/db/schema.js';

type Conn = Db | Transaction<DB>;

export interface IdentitySnapshot {
  email: string | null;
  emailVerified: boolean | null;
  claims: JsonObject;
}

/** The user an identity (issuer, subject) is linked to. */
export function findLinkedUser(db: Conn, issuer: string, subject: string) {
  return db
    .selectFrom('oidc_identities as i')
    .innerJoin('users as u', 'u.id', 'i.user_id')
    .select(['i.id as identityId', 'u.id', 'u.disabled_at'])
    .where('i.issuer', '=', issuer)
    .where('i.subject', '=', subject)
    .executeTakeFirst();
}

export function findUserByEmail(db: Conn, email: string) {
  return db.selectFrom('users').select(['id', 'disabled_at']).where('email', '=', email).executeTakeFirst();
}

export async function workspaceIsLive(db: Conn, workspaceId: string): Promise<boolean> {
  const row = await db
    .selectFrom('workspaces')
    .select('id')
    .where('id', '=', workspaceId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row !== undefined;
}

export async function insertIdentity(
  db: Conn,
  link: { userId: string; issuer: string; subject: string } & IdentitySnapshot,
): Promise<void> {
  await db
    .insertInto('oidc_identities')
    .values({
      user_id: link.userId,
      issuer: link.issuer,
      subject: link.subject,
      email: link.email,
      email_verified: link.emailVerified,
      claims: JSON.stringify(link.claims),
      last_login_at: new Date(),
    })
    .execute();
}

/** Refreshes what the identity provider last said about an identity, and records the login. */
export async function recordIdentityLogin(
  db: Conn,
  identityId: string,
  snapshot: IdentitySnapshot,
): Promise<void> {
  await db
    .updateTable('oidc_identities')
    .set({
      email: snapshot.email,
      email_verified: snapshot.emailVerified,
      claims: JSON.stringify(snapshot.claims),
      last_login_at: new Date(),
    })
    .where('id', '=', identityId)
    .execute();
}

/** The IdP vouched for the address: mark it verified (once) and record the login. */
export async function recordUserLogin(db: Conn, userId: string, emailVerified: boolean): Promise<void> {
  const now = new Date();
  await db
    .updateTable('users')
    .set((eb) => ({
      last_login_at: now,
      ...(emailVerified ? { email_verified_at: eb.fn.coalesce('email_verified_at', eb.val(now)) } : {}),
    }))
    .where('id', '=', userId)
    .execute();
}

/** A password-less (SSO-only) account with a verified email. */
export function insertSsoUser(db: Transaction<DB>, user: { email: string; displayName: string | null }) {
  const now = new Date();
  return db
    .insertInto('users')
    .values({
      email: user.email,
      display_name: user.displayName,
      password_hash: null,
      email_verified_at: now,
      last_login_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

export async function insertMembership(
  db: Transaction<DB>,
  membership: { workspaceId: string; userId: string; role: InvitationRole },
): Promise<void> {
  await db
    .insertInto('memberships')
    .values({ workspace_id: membership.workspaceId, user_id: membership.userId, role: membership.role })
    .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doNothing())
    .execute();
}
