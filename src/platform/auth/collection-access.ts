/**
 * Collection-level access: which collections of its workspace a caller may see. The one place the rule
 * lives; every service that reaches a collection or anything in it (documents, bytes, chunks, search)
 * filters with it.
 *
 * The rule:
 *  - a member sees a collection when their role is at least its `min_role` (viewer < editor < admin <
 *    owner; the default `viewer` means every member);
 *  - an API key with a `collections` allowlist sees exactly those collections, whatever their
 *    `min_role` (an allowlist is an explicit grant, made by an admin who could see them);
 *  - an API key without an allowlist sees the collections whose `min_role` is `viewer` or `editor`:
 *    admin- and owner-only collections need an allowlist entry, so a broadly scoped integration key
 *    never reads them by default.
 *
 * An invisible collection is indistinguishable from a missing one: 404 `not_found`, absent from lists
 * and search. Setting `min_role` needs a role at least as high as the value set (and as the value
 * replaced); for that an API key counts as an editor.
 *
 * @example
 *   // a query over collections (any alias)
 *   trx.selectFrom('collections as col').selectAll().where(visibleCollection(ws, 'col'))
 *   // a query over rows with a collection_id (documents, chunks, chunk_embeddings, …)
 *   trx.selectFrom('chunks as c').selectAll().where(inVisibleCollection(ws, 'c.collection_id'))
 *   // raw SQL
 *   sql`select … from collections col where col.workspace_id = ${ws.id} and ${visibleCollection(ws, 'col')}`
 */
import { type QueryCreator, type RawBuilder, type SqlBool, sql, type Transaction } from 'kysely';
import type { DB, MembershipRole } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { WorkspaceContext } from './access.js';

/** Membership roles, lowest first: the values `collections.min_role` takes. */
export const COLLECTION_ROLES = ['viewer', 'editor', 'admin', 'owner'] as const satisfies MembershipRole[];

const RANK: Record<MembershipRole, number> = { viewer: 0, editor: 1, admin: 2, owner: 3 };

/** What an API key without an allowlist counts as: it sees (and may set) min_role up to this. */
export const API_KEY_COLLECTION_ROLE: MembershipRole = 'editor';

/** The rule for one caller, reduced to what both the SQL and the in-memory check need. */
type Rule = { kind: 'allowlist'; ids: readonly string[] } | { kind: 'roles'; roles: MembershipRole[] };

function ruleFor(ws: WorkspaceContext): Rule {
  if (ws.role === null && ws.collections) return { kind: 'allowlist', ids: ws.collections };
  const ceiling = RANK[ws.role ?? API_KEY_COLLECTION_ROLE];
  return { kind: 'roles', roles: COLLECTION_ROLES.filter((r) => RANK[r] <= ceiling) };
}

const everyRole = (rule: Rule) => rule.kind === 'roles' && rule.roles.length === COLLECTION_ROLES.length;

/**
 * What of the caller shapes the visibility predicates' SQL, for compiled-statement caches
 * (`ReadTemplate`): the roles seen, or the allowlist's length. The allowlist's ids are values: pass
 * them with `allowlist(ws)` and build with `templateWorkspace`.
 */
export function visibilityShape(ws: WorkspaceContext): string {
  const rule = ruleFor(ws);
  return rule.kind === 'allowlist' ? `allow:${rule.ids.length}` : `roles:${rule.roles.join(',')}`;
}

/** The collection allowlist the rule applies (empty when the caller has none). */
export function allowlist(ws: WorkspaceContext): readonly string[] {
  const rule = ruleFor(ws);
  return rule.kind === 'allowlist' ? rule.ids : [];
}

/** `ws` with its id and allowlist replaced by the given stand-ins (placeholders of a template). */
export function templateWorkspace(
  ws: WorkspaceContext,
  id: string,
  allowlisted: readonly string[],
): WorkspaceContext {
  return { ...ws, id, collections: ruleFor(ws).kind === 'allowlist' ? allowlisted : null };
}

/**
 * SQL predicate: the collection row under `alias` (default `collections`) is visible to the caller.
 * Usable in Kysely `where(...)` and inside `sql` templates; it does not filter on workspace or
 * `deleted_at` (the query does that).
 */
export function visibleCollection(ws: WorkspaceContext, alias = 'collections'): RawBuilder<SqlBool> {
  const rule = ruleFor(ws);
  if (everyRole(rule)) return sql<SqlBool>`true`;
  if (rule.kind === 'allowlist') return idIn(sql.ref(`${alias}.id`), rule.ids);
  return sql<SqlBool>`${sql.ref(`${alias}.min_role`)} in (${sql.join(rule.roles)})`;
}

/**
 * SQL predicate for rows that belong to a collection (documents, chunks, chunk_embeddings…): the
 * collection named by `column` (e.g. `d.collection_id`) is visible to the caller.
 */
export function inVisibleCollection(ws: WorkspaceContext, column = 'collection_id'): RawBuilder<SqlBool> {
  const rule = ruleFor(ws);
  if (everyRole(rule)) return sql<SqlBool>`true`;
  if (rule.kind === 'allowlist') return idIn(sql.ref(column), rule.ids);
  return sql<SqlBool>`exists (select 1 from collections vc where vc.id = ${sql.ref(column)} and ${visibleCollection(ws, 'vc')})`;
}

function idIn(ref: RawBuilder<unknown>, ids: readonly string[]): RawBuilder<SqlBool> {
  return ids.length === 0 ? sql<SqlBool>`false` : sql<SqlBool>`${ref} in (${sql.join(ids)})`;
}

/** The same rule in memory, for a collection row already at hand. */
export function canSeeCollection(
  ws: WorkspaceContext,
  collection: { id: string; min_role: MembershipRole },
): boolean {
  const rule = ruleFor(ws);
  return rule.kind === 'allowlist'
    ? rule.ids.includes(collection.id)
    : rule.roles.includes(collection.min_role);
}

export const collectionNotFound = () => new AppError('not_found', { detail: 'No such collection' });

/**
 * Throws 404 `not_found` unless `collectionId` is a live collection of the workspace that the caller
 * may see (a missing and an invisible collection answer alike). Run it in the request's tenant
 * transaction; `lock: 'share'` also keeps the collection from being deleted until it commits.
 */
export async function assertCollectionVisible(
  trx: Transaction<DB>,
  ws: WorkspaceContext,
  collectionId: string,
  options: { lock?: 'share' } = {},
): Promise<void> {
  let query = visibleCollectionQuery(trx, ws, collectionId);
  if (options.lock === 'share') query = query.forShare();
  if (!(await query.executeTakeFirst())) throw collectionNotFound();
}

/**
 * The query behind `assertCollectionVisible`: one row (`id`) when the collection is live, in the
 * workspace and visible to the caller, none otherwise. For callers that batch it with other reads
 * (`tenantRead`); an empty result must become `collectionNotFound()`.
 */
export function visibleCollectionQuery(q: QueryCreator<DB>, ws: WorkspaceContext, collectionId: string) {
  return q
    .selectFrom('collections')
    .select('id')
    .where('workspace_id', '=', ws.id)
    .where('id', '=', collectionId)
    .where('deleted_at', 'is', null)
    .where(visibleCollection(ws));
}

/**
 * Throws 403 unless the caller may give a collection this `min_role` (never above their own role;
 * an API key counts as an editor). `replacing` is the current value when it changes: lowering an
 * admin-only collection needs an admin too.
 */
export function assertMayGrantMinRole(
  ws: WorkspaceContext,
  minRole: MembershipRole,
  replacing?: MembershipRole,
): void {
  const own = ws.role ?? API_KEY_COLLECTION_ROLE;
  for (const value of replacing === undefined ? [minRole] : [minRole, replacing]) {
    if (RANK[value] > RANK[own])
      throw new AppError('forbidden', {
        detail: `Only a caller with the ${value} role or higher may set or change this collection's minRole`,
      });
  }
}
