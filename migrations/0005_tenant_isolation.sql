-- Tenant isolation in the database: row-level security on every table that carries workspace_id.
--
-- Why a separate role: PostgreSQL never applies RLS to superusers, and not to a table's owner unless
-- FORCE is set. Larder connects as the owner of its tables (it runs the migrations), and PGlite always
-- runs as a superuser. So tenant-scoped work runs inside a transaction that switches to the
-- unprivileged role larder_app and names its workspace:
--
--   begin;
--   select set_config('role', 'larder_app', true), set_config('larder.workspace_id', '<uuid>', true);
--   ... every statement here sees and writes only that workspace's rows ...
--   commit;   -- both settings end with the transaction
--
-- (src/platform/db/tenant.ts: withTenant). Without larder.workspace_id set, larder_app sees no tenant
-- rows at all: the policies fail closed. A repository that forgets its `where workspace_id = …` still
-- cannot read or write another tenant's rows.
--
-- Roles are cluster-wide; several Larder databases on one server share larder_app. Creating it races
-- when two databases migrate at once, hence the exception handler.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'larder_app') then
    create role larder_app nologin noinherit;
  end if;
exception
  when duplicate_object or unique_violation then null; -- created concurrently by another database's migration
end
$$;

-- The connecting user must be a member of larder_app to switch to it.
do $$
begin
  if not pg_has_role(current_user, 'larder_app', 'member') then
    execute format('grant larder_app to %I', current_user);
  end if;
end
$$;

-- The tenant's current workspace, or null (no rows) when none is set.
create function larder_current_workspace() returns uuid
  language sql stable parallel safe
  as $$ select nullif(current_setting('larder.workspace_id', true), '')::uuid $$;

grant usage on schema public to larder_app;
grant execute on function larder_current_workspace() to larder_app;

-- Users are global (one account, many workspaces): visible to the role, protected by the service layer.
grant select, insert, update on users to larder_app;
grant select, update on workspaces to larder_app;

do $$
declare
  t text;
  tenant_tables text[] := array[
    'memberships', 'invitations', 'api_keys',
    'collections', 'documents', 'document_blobs', 'chunks', 'chunk_embeddings',
    'conversations', 'messages', 'feedback', 'review_items',
    'audit_log', 'usage_events'
  ];
begin
  foreach t in array tenant_tables loop
    execute format('alter table %I enable row level security', t);
    execute format(
      'create policy tenant_isolation on %I using (workspace_id = larder_current_workspace()) '
      'with check (workspace_id = larder_current_workspace())', t);
    if t = 'audit_log' then
      -- Append-only for the application: it may add and read audit rows, never change or remove them.
      execute format('grant select, insert on %I to larder_app', t);
    else
      execute format('grant select, insert, update, delete on %I to larder_app', t);
    end if;
  end loop;
end
$$;

-- A workspace sees only itself.
alter table workspaces enable row level security;
create policy tenant_isolation on workspaces using (id = larder_current_workspace());
