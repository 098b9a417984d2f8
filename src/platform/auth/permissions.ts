/**
 * What each role and API-key scope may do. Routes declare one permission; services re-check it.
 *
 * Roles (per workspace): viewer ⊂ editor ⊂ admin ⊂ owner.
 * API-key scopes: `documents:read`, `documents:write`, `search`, `answers`, `admin`.
 */
import type { MembershipRole } from '../db/schema.js';

export const PERMISSIONS = [
  'workspace:read',
  'workspace:admin',
  'workspace:owner',
  'members:manage',
  'api_keys:manage',
  'audit:read',
  'documents:read',
  'documents:write',
  'search',
  'answers',
  'review',
  'usage:read',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const VIEWER: Permission[] = ['workspace:read', 'documents:read', 'search', 'answers'];
const EDITOR: Permission[] = [...VIEWER, 'documents:write', 'review'];
const ADMIN: Permission[] = [
  ...EDITOR,
  'workspace:admin',
  'members:manage',
  'api_keys:manage',
  'audit:read',
  'usage:read',
];
const OWNER: Permission[] = [...ADMIN, 'workspace:owner'];

export const ROLE_PERMISSIONS: Record<MembershipRole, ReadonlySet<Permission>> = {
  viewer: new Set(VIEWER),
  editor: new Set(EDITOR),
  admin: new Set(ADMIN),
  owner: new Set(OWNER),
};

export const API_KEY_SCOPES = ['documents:read', 'documents:write', 'search', 'answers', 'admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * Permissions an API key with these scopes holds: exactly its scopes (`admin` = the admin role's
 * permissions, never ownership). Workspace details and the member list (emails) need `admin`.
 */
export function scopePermissions(scopes: readonly string[]): Set<Permission> {
  const granted = new Set<Permission>();
  for (const scope of scopes) {
    if (scope === 'admin') for (const p of ADMIN) granted.add(p);
    else if ((API_KEY_SCOPES as readonly string[]).includes(scope)) granted.add(scope as Permission);
  }
  return granted;
}

const ROLE_RANK: Record<MembershipRole, number> = { viewer: 0, editor: 1, admin: 2, owner: 3 };
/** Whether `actor` may grant or change `target` (never above one's own role; owners via transfer only). */
export const outranksOrEquals = (actor: MembershipRole, target: MembershipRole): boolean =>
  ROLE_RANK[actor] >= ROLE_RANK[target];
