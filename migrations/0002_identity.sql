-- 0002_identity: users, tenants (workspaces), memberships, invitations, API keys, refresh tokens, SSO
-- identities.
--
-- Conventions (all migrations): uuid ids from larder_uuid_v7(); timestamptz; text + CHECK instead of enum
-- types (a later migration extends a CHECK by dropping and re-adding it); every FK column leads an
-- index; every tenant table has workspace_id -> workspaces ON DELETE CASCADE and an index leading with it
-- (a later migration adds row-level security keyed on workspace_id).
-- Secrets (passwords, tokens, API keys) are never stored: only argon2id hashes (passwords) or lowercase
-- hex SHA-256 digests (high-entropy tokens), which are looked up by equality.

-- ---------------------------------------------------------------------------------------------------
-- users: global accounts (not a tenant table; a user joins workspaces through memberships).
create table users (
  id                  uuid primary key default larder_uuid_v7(),
  -- Stored lowercased (the app lowercases; the CHECK guarantees it), so the plain unique constraint
  -- below is exactly "unique on lower(email)" and also serves `where email = $1` and ON CONFLICT (email).
  email               text not null,
  display_name        text,
  password_hash       text,                -- argon2id PHC string; null = SSO-only account
  email_verified_at   timestamptz,
  disabled_at         timestamptz,         -- set = cannot log in, tokens/keys refused
  password_changed_at timestamptz,         -- refresh/access tokens issued before this are invalid
  profile             jsonb not null default '{}',  -- { "language": "de", "customInstructions": "..." }
  last_login_at       timestamptz,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  constraint users_email_key unique (email),
  constraint users_email_lowercase check (email = lower(email)),
  constraint users_email_format check (email = btrim(email) and length(email) between 3 and 320 and position('@' in email) > 1),
  constraint users_password_hash_nonempty check (password_hash is null or length(password_hash) > 0),
  constraint users_profile_object check (jsonb_typeof(profile) = 'object')
);
create trigger users_touch_updated_at before update on users
  for each row execute function larder_touch_updated_at();

-- ---------------------------------------------------------------------------------------------------
-- workspaces: the tenant. Deletion is two-step: soft delete (deleted_at) then a purge job hard-deletes
-- the row, which cascades to every tenant table.
create table workspaces (
  id          uuid primary key default larder_uuid_v7(),
  name        text not null,
  slug        text not null,
  settings    jsonb not null default '{}',   -- budgets, defaults, feature flags
  deleted_at  timestamptz,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  -- The slug stays reserved while the workspace is soft-deleted (links keep resolving to "deleted").
  constraint workspaces_slug_key unique (slug),
  constraint workspaces_slug_format check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  constraint workspaces_name_nonempty check (length(btrim(name)) between 1 and 200),
  constraint workspaces_settings_object check (jsonb_typeof(settings) = 'object')
);
create trigger workspaces_touch_updated_at before update on workspaces
  for each row execute function larder_touch_updated_at();
-- purge job: soft-deleted workspaces past their grace period
create index workspaces_deleted_at_idx on workspaces (deleted_at) where deleted_at is not null;

-- ---------------------------------------------------------------------------------------------------
-- memberships: user <-> workspace with a role. Own uuid id (API resources address memberships) plus the
-- natural unique key (workspace_id, user_id).
create table memberships (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  -- cascade: a membership belongs to the user; the guard trigger below stops the deletion of a user who
  -- is still the owner of a live workspace (ownership must be transferred or the workspace deleted).
  user_id       uuid not null references users (id) on delete cascade,
  role          text not null,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint memberships_workspace_user_key unique (workspace_id, user_id),
  constraint memberships_role_check check (role in ('owner', 'admin', 'editor', 'viewer'))
);
create trigger memberships_touch_updated_at before update on memberships
  for each row execute function larder_touch_updated_at();
-- At most one owner per workspace. Not deferrable (partial unique indexes cannot be), so an ownership
-- transfer demotes the old owner before promoting the new one, in one transaction.
create unique index memberships_one_owner_per_workspace on memberships (workspace_id) where role = 'owner';
-- "my workspaces" and the FK on user_id
create index memberships_user_id_idx on memberships (user_id);

-- Deleting the owner membership of a workspace that still exists is refused (SQLSTATE 23001
-- restrict_violation): that covers `delete from memberships` and the cascade from `delete from users`.
-- When the workspace itself is being deleted, the cascade runs after the workspace row is gone, so the
-- EXISTS below is false and the delete is allowed.
create or replace function larder_memberships_guard_owner() returns trigger
language plpgsql
as $$
begin
  if old.role = 'owner' and exists (select 1 from workspaces w where w.id = old.workspace_id) then
    raise exception 'cannot remove the owner of workspace %: transfer ownership or delete the workspace first', old.workspace_id
      using errcode = 'restrict_violation';
  end if;
  return old;
end
$$;
create trigger memberships_guard_owner before delete on memberships
  for each row execute function larder_memberships_guard_owner();

-- ---------------------------------------------------------------------------------------------------
-- invitations: an emailed, single-use link to join a workspace. Only the SHA-256 of the token is stored.
create table invitations (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  email         text not null,
  role          text not null,
  token_hash    text not null,                                      -- hex SHA-256 of the emailed token
  invited_by    uuid references users (id) on delete set null,      -- history survives user deletion
  accepted_by   uuid references users (id) on delete set null,
  expires_at    timestamptz not null,
  accepted_at   timestamptz,
  revoked_at    timestamptz,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint invitations_token_hash_key unique (token_hash),
  constraint invitations_token_hash_format check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint invitations_email_lowercase check (email = lower(email)),
  constraint invitations_email_format check (email = btrim(email) and length(email) between 3 and 320 and position('@' in email) > 1),
  -- ownership is transferred, never invited
  constraint invitations_role_check check (role in ('admin', 'editor', 'viewer')),
  constraint invitations_accepted_or_revoked check (accepted_at is null or revoked_at is null),
  constraint invitations_accepted_by_when_accepted check (accepted_by is null or accepted_at is not null)
);
create trigger invitations_touch_updated_at before update on invitations
  for each row execute function larder_touch_updated_at();
-- listing per workspace (and the workspace FK)
create index invitations_workspace_created_idx on invitations (workspace_id, created_at);
-- One open invitation per (workspace, email). Re-inviting updates it:
--   insert ... on conflict (workspace_id, email) where accepted_at is null and revoked_at is null
--   do update set token_hash = excluded.token_hash, expires_at = excluded.expires_at, ...
-- (an expired open invitation is refreshed this way, or revoked first).
create unique index invitations_open_per_email on invitations (workspace_id, email)
  where accepted_at is null and revoked_at is null;
-- "invitations for my address" at sign-up
create index invitations_email_idx on invitations (email);
create index invitations_invited_by_idx on invitations (invited_by);
create index invitations_accepted_by_idx on invitations (accepted_by);

-- ---------------------------------------------------------------------------------------------------
-- api_keys: workspace-scoped machine credentials. The secret is shown once; we keep the visible prefix
-- (e.g. lk_live_ab12cd34, unique, for display and a fast first lookup) and the hex SHA-256 of the whole
-- key (API keys are high-entropy random strings, so a fast hash looked up by equality is the right tool).
create table api_keys (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  name          text not null,
  prefix        text not null,
  key_hash      text not null,
  scopes        text[] not null,
  created_by    uuid references users (id) on delete set null,     -- the key outlives its creator
  expires_at    timestamptz,                                        -- null = no expiry
  revoked_at    timestamptz,
  -- Written on use: the app should only write it when the stored value is older than ~1 minute, so
  -- that a busy key does not turn every read request into a row update.
  last_used_at  timestamptz,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint api_keys_prefix_key unique (prefix),
  constraint api_keys_key_hash_key unique (key_hash),
  constraint api_keys_prefix_format check (prefix ~ '^[A-Za-z0-9_]{8,64}$'),
  constraint api_keys_key_hash_format check (key_hash ~ '^[0-9a-f]{64}$'),
  constraint api_keys_name_nonempty check (length(btrim(name)) between 1 and 200),
  constraint api_keys_scopes_nonempty check (cardinality(scopes) > 0 and array_position(scopes, null) is null)
);
create trigger api_keys_touch_updated_at before update on api_keys
  for each row execute function larder_touch_updated_at();
create index api_keys_workspace_created_idx on api_keys (workspace_id, created_at);
create index api_keys_created_by_idx on api_keys (created_by);

-- ---------------------------------------------------------------------------------------------------
-- refresh_tokens: rotating refresh tokens (user sessions; not a tenant table). Every rotation inserts a
-- child row (parent_id) in the same family and sets rotated_at on the parent; presenting a token that
-- was already rotated is reuse -> revoke the whole family (update ... where family_id = $1).
create table refresh_tokens (
  id              uuid primary key default larder_uuid_v7(),
  user_id         uuid not null references users (id) on delete cascade,
  family_id       uuid not null,                                         -- = id of the first token of the login
  token_hash      text not null,                                         -- hex SHA-256 of the token
  parent_id       uuid references refresh_tokens (id) on delete set null, -- purge of old rows keeps children
  expires_at      timestamptz not null,
  rotated_at      timestamptz,
  revoked_at      timestamptz,
  revoked_reason  text,
  user_agent      text,
  ip              inet,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint refresh_tokens_token_hash_key unique (token_hash),
  constraint refresh_tokens_token_hash_format check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint refresh_tokens_revoked_reason_check check (
    revoked_reason is null
    or (revoked_at is not null
        and revoked_reason in ('logout', 'logout_all', 'reuse_detected', 'password_changed', 'user_disabled', 'admin')))
);
create trigger refresh_tokens_touch_updated_at before update on refresh_tokens
  for each row execute function larder_touch_updated_at();
create index refresh_tokens_user_id_idx on refresh_tokens (user_id);
create index refresh_tokens_family_id_idx on refresh_tokens (family_id);
create index refresh_tokens_parent_id_idx on refresh_tokens (parent_id);
-- purge job: delete from refresh_tokens where expires_at < now() - interval '...'
create index refresh_tokens_expires_at_idx on refresh_tokens (expires_at);

-- ---------------------------------------------------------------------------------------------------
-- oidc_identities: SSO account links (one user may have several IdP identities).
create table oidc_identities (
  id              uuid primary key default larder_uuid_v7(),
  user_id         uuid not null references users (id) on delete cascade,
  issuer          text not null,          -- the `iss` claim, exactly as the IdP sends it
  subject         text not null,          -- the `sub` claim
  email           text,                   -- email claim at last login, lowercased (informational)
  email_verified  boolean,                -- email_verified claim at last login
  claims          jsonb not null default '{}',   -- selected claims from the last ID token
  last_login_at   timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  constraint oidc_identities_issuer_subject_key unique (issuer, subject),
  constraint oidc_identities_email_lowercase check (email is null or email = lower(email)),
  constraint oidc_identities_claims_object check (jsonb_typeof(claims) = 'object')
);
create trigger oidc_identities_touch_updated_at before update on oidc_identities
  for each row execute function larder_touch_updated_at();
create index oidc_identities_user_id_idx on oidc_identities (user_id);
