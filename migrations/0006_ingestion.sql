-- 0006_ingestion: what the ingestion pipeline needs beyond the content tables of 0003.

-- Documents whose title was not given by the caller take the title found in their content (first H1,
-- <title>, PDF metadata) when they are parsed; a title set by the caller is never overwritten.
alter table documents add column auto_title boolean not null default false;

-- ---------------------------------------------------------------------------------------------------
-- embedding_cache: one vector per (workspace, model, hash of the embedded text). A re-processed
-- document whose chunks did not change, or the same passage in another document of the workspace,
-- is never sent to the embedding provider again. Per workspace (not global) so that one tenant's
-- cache can never reveal, even through timing, what another tenant has embedded.
create table embedding_cache (
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  model         text not null,
  content_hash  text not null,
  dimensions    int not null,
  embedding     vector not null,
  created_at    timestamptz not null default now(),
  primary key (workspace_id, model, content_hash),
  constraint embedding_cache_dimensions_match check (vector_dims(embedding) = dimensions),
  constraint embedding_cache_content_hash_format check (content_hash ~ '^[0-9a-f]{16,128}$')
);
-- maintenance: entries older than the retention that no chunk uses any more
create index embedding_cache_created_at_idx on embedding_cache (created_at);
alter table embedding_cache set (toast_tuple_target = 8160);

alter table embedding_cache enable row level security;
create policy tenant_isolation on embedding_cache using (workspace_id = larder_current_workspace())
  with check (workspace_id = larder_current_workspace());
grant select, insert, update, delete on embedding_cache to larder_app;

-- ---------------------------------------------------------------------------------------------------
-- Jobs are enqueued inside the tenant transaction that creates their work (a document and its ingest
-- job commit together or not at all), so the tenant role must be able to insert into pg-boss's
-- tables. pg-boss creates them at run time in this schema (CREATE SCHEMA IF NOT EXISTS, and it decides
-- whether it is installed by its version table, so creating the schema first is harmless). Default
-- privileges cover the tables and queue partitions it creates later; the explicit grant covers
-- databases where pg-boss already ran.
create schema if not exists larder_jobs;
grant usage on schema larder_jobs to larder_app;
grant select, insert on all tables in schema larder_jobs to larder_app;
alter default privileges in schema larder_jobs grant select, insert on tables to larder_app;
