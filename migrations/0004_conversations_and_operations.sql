-- 0004_conversations_and_operations: conversations and messages, feedback and the review queue, the
-- audit log and usage accounting.
--
-- ON DELETE policy in this file:
--   * owned children cascade (conversation -> messages -> feedback), through composite keys that also
--     pin workspace_id to the parent's (see 0003);
--   * references to users and API keys from history (conversations, feedback, review items, audit,
--     usage) are SET NULL, so deleting a user or key never deletes or blocks the record of what happened;
--   * review items keep existing when the message or feedback they point at is deleted (SET NULL).

-- ---------------------------------------------------------------------------------------------------
create table conversations (
  id              uuid primary key default larder_uuid_v7(),
  workspace_id    uuid not null references workspaces (id) on delete cascade,
  user_id         uuid references users (id) on delete set null,
  -- Collections searched by this conversation. An array has no FK: deleted collections are skipped
  -- at query time (search always joins collections under workspace_id and deleted_at is null).
  collection_ids  uuid[] not null default '{}',
  title           text,
  deleted_at      timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  -- target of the composite FK from messages
  constraint conversations_id_workspace_key unique (id, workspace_id),
  constraint conversations_collection_ids_no_nulls check (array_position(collection_ids, null) is null)
);
create trigger conversations_touch_updated_at before update on conversations
  for each row execute function larder_touch_updated_at();
create index conversations_workspace_created_idx on conversations (workspace_id, created_at, id);
-- "my conversations" in a workspace, most recent first (and the user FK)
create index conversations_user_updated_idx on conversations (user_id, workspace_id, updated_at);
create index conversations_deleted_at_idx on conversations (deleted_at) where deleted_at is not null;

-- ---------------------------------------------------------------------------------------------------
-- messages. An assistant message may be inserted with status 'streaming' when generation starts and
-- completed (content, citations, tokens, cost, latency) at the end — never hold a transaction open
-- across the model call in between.
create table messages (
  id               uuid primary key default larder_uuid_v7(),
  workspace_id     uuid not null references workspaces (id) on delete cascade,
  conversation_id  uuid not null,
  role             text not null,
  status           text not null default 'complete',
  content          text not null default '',
  -- [{ "n": 1, "chunkId": "...", "documentId": "...", "charStart": 0, "charEnd": 120, "page": 3 }, ...]
  citations        jsonb not null default '[]',
  model            text,                 -- null for user/system messages
  prompt_version   text,
  tokens_in        bigint not null default 0,
  tokens_out       bigint not null default 0,
  cost_usd         numeric(12, 6) not null default 0,
  latency_ms       jsonb not null default '{}',   -- per stage: { "retrieve": 12, "generate": 840, "total": 870 }
  flags            jsonb not null default '{}',   -- e.g. { "weakEvidence": true, "guardrail": "..." }
  request_id       text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  constraint messages_conversation_fk foreign key (conversation_id, workspace_id)
    references conversations (id, workspace_id) on delete cascade,
  -- target of the composite FK from feedback
  constraint messages_id_workspace_key unique (id, workspace_id),
  constraint messages_role_check check (role in ('user', 'assistant', 'system')),
  constraint messages_status_check check (status in ('streaming', 'complete', 'failed', 'cancelled')),
  constraint messages_tokens_in_nonnegative check (tokens_in >= 0),
  constraint messages_tokens_out_nonnegative check (tokens_out >= 0),
  constraint messages_cost_nonnegative check (cost_usd >= 0),
  constraint messages_citations_array check (jsonb_typeof(citations) = 'array'),
  constraint messages_latency_object check (jsonb_typeof(latency_ms) = 'object'),
  constraint messages_flags_object check (jsonb_typeof(flags) = 'object')
);
create trigger messages_touch_updated_at before update on messages
  for each row execute function larder_touch_updated_at();
-- a conversation's messages in order (and the conversation FK)
create index messages_conversation_created_idx on messages (conversation_id, created_at, id);
create index messages_workspace_created_idx on messages (workspace_id, created_at);

-- ---------------------------------------------------------------------------------------------------
-- feedback: thumbs up/down on a message, one per (message, user); changing it updates the row.
-- (user_id is null after the user is deleted, or for feedback sent with an API key; NULLs do not
-- collide in the unique constraint, which is what we want for those rows.)
create table feedback (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  message_id    uuid not null,
  user_id       uuid references users (id) on delete set null,
  rating        smallint not null,
  comment       text,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint feedback_message_fk foreign key (message_id, workspace_id)
    references messages (id, workspace_id) on delete cascade,
  constraint feedback_message_user_key unique (message_id, user_id),
  constraint feedback_rating_check check (rating in (-1, 1))
);
create trigger feedback_touch_updated_at before update on feedback
  for each row execute function larder_touch_updated_at();
create index feedback_workspace_created_idx on feedback (workspace_id, created_at);
create index feedback_user_id_idx on feedback (user_id);

-- ---------------------------------------------------------------------------------------------------
-- review_items: the human review queue (negative feedback, weak evidence, guardrail hits, manual).
create table review_items (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  message_id    uuid references messages (id) on delete set null,    -- the item outlives the message
  feedback_id   uuid references feedback (id) on delete set null,
  status        text not null default 'open',
  reason        text not null,             -- why it was queued, e.g. 'negative_feedback', 'weak_evidence'
  assignee_id   uuid references users (id) on delete set null,
  resolved_by   uuid references users (id) on delete set null,
  resolution    jsonb,                     -- { "note": "...", "action": "..." } once resolved/dismissed
  resolved_at   timestamptz,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint review_items_status_check check (status in ('open', 'in_review', 'resolved', 'dismissed')),
  constraint review_items_reason_nonempty check (length(reason) > 0),
  -- closed <=> resolved_at set (reopening clears it)
  constraint review_items_resolved_at_when_closed check ((status in ('resolved', 'dismissed')) = (resolved_at is not null)),
  constraint review_items_resolution_object check (resolution is null or jsonb_typeof(resolution) = 'object')
);
create trigger review_items_touch_updated_at before update on review_items
  for each row execute function larder_touch_updated_at();
-- the queue: where workspace_id = $1 and status = 'open' order by created_at
create index review_items_workspace_status_created_idx on review_items (workspace_id, status, created_at);
create index review_items_message_id_idx on review_items (message_id);
create index review_items_feedback_id_idx on review_items (feedback_id);
create index review_items_assignee_status_idx on review_items (assignee_id, status);
create index review_items_resolved_by_idx on review_items (resolved_by);

-- ---------------------------------------------------------------------------------------------------
-- audit_log: append-only record of security-relevant actions.
-- workspace_id is null for instance-level events (sign-up, login, workspace purge). Rows of a workspace
-- are deleted with it (the hard purge of a tenant removes its data, audit included), so the app writes
-- the "workspace deleted/purged" event itself with workspace_id null (and the id in target_id) so that
-- it survives.
-- Actors are SET NULL when the user / key is deleted; actor_type still says what kind of actor it was.
create table audit_log (
  id                uuid primary key default larder_uuid_v7(),
  workspace_id      uuid references workspaces (id) on delete cascade,
  actor_type        text not null,
  actor_user_id     uuid references users (id) on delete set null,
  actor_api_key_id  uuid references api_keys (id) on delete set null,
  action            text not null,        -- dotted verb, e.g. 'document.delete', 'api_key.create'
  target_type       text,
  target_id         text,                 -- text: not every target has a uuid
  ip                inet,
  user_agent        text,
  request_id        text,
  data              jsonb not null default '{}',
  created_at        timestamptz not null default now(),
  constraint audit_log_actor_type_check check (actor_type in ('user', 'api_key', 'system', 'anonymous')),
  constraint audit_log_action_nonempty check (length(action) > 0),
  constraint audit_log_data_object check (jsonb_typeof(data) = 'object')
);
create index audit_log_workspace_created_idx on audit_log (workspace_id, created_at desc);
-- instance-level events (workspace_id is null), newest first
create index audit_log_instance_created_idx on audit_log (created_at desc) where workspace_id is null;
create index audit_log_actor_user_idx on audit_log (actor_user_id, created_at desc);
create index audit_log_actor_api_key_idx on audit_log (actor_api_key_id);
-- history of one object
create index audit_log_target_idx on audit_log (target_type, target_id, created_at);
-- retention purge by age across all workspaces (rows arrive in time order: BRIN is tiny and enough)
create index audit_log_created_brin on audit_log using brin (created_at);

-- Append-only, enforced by trigger (defends against application bugs; a superuser can always disable
-- triggers, and the later roles/RLS migration should grant the app role only INSERT/SELECT here).
-- Allowed, and nothing else:
--   UPDATE  only the ON DELETE SET NULL actions of the actor FKs: actor_user_id / actor_api_key_id
--           become null because that user / key no longer exists, and no other column changes;
--   DELETE  (a) the ON DELETE CASCADE from a workspace: the row's workspace no longer exists;
--           (b) the retention job, which opts in for its transaction:
--               set local larder.audit_purge = 'on'; delete from audit_log where created_at < $1;
-- TRUNCATE is not intercepted (test helpers truncate; the app role must not hold TRUNCATE).
create or replace function larder_audit_log_append_only() returns trigger
language plpgsql
as $$
begin
  if tg_op = 'UPDATE' then
    if (to_jsonb(new) - 'actor_user_id' - 'actor_api_key_id') = (to_jsonb(old) - 'actor_user_id' - 'actor_api_key_id')
       and (new.actor_user_id is not distinct from old.actor_user_id
            or (new.actor_user_id is null
                and not exists (select 1 from users u where u.id = old.actor_user_id)))
       and (new.actor_api_key_id is not distinct from old.actor_api_key_id
            or (new.actor_api_key_id is null
                and not exists (select 1 from api_keys k where k.id = old.actor_api_key_id)))
    then
      return new;
    end if;
    raise exception 'audit_log is append-only: UPDATE is not allowed'
      using errcode = 'insufficient_privilege';
  elsif tg_op = 'DELETE' then
    if coalesce(current_setting('larder.audit_purge', true), '') = 'on'
       or (old.workspace_id is not null
           and not exists (select 1 from workspaces w where w.id = old.workspace_id))
    then
      return old;
    end if;
    raise exception 'audit_log is append-only: DELETE is only allowed for workspace deletion or with larder.audit_purge = on'
      using errcode = 'insufficient_privilege';
  end if;
  return null;
end
$$;
create trigger audit_log_append_only before update or delete on audit_log
  for each row execute function larder_audit_log_append_only();

-- ---------------------------------------------------------------------------------------------------
-- usage_events: one row per billable/metered operation; budgets sum these per workspace and period.
-- Append-mostly; no updated_at.
create table usage_events (
  id            uuid primary key default larder_uuid_v7(),
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  user_id       uuid references users (id) on delete set null,
  api_key_id    uuid references api_keys (id) on delete set null,
  feature       text not null,
  provider      text,
  model         text,
  tokens_in     bigint not null default 0,
  tokens_out    bigint not null default 0,
  cost_usd      numeric(12, 6) not null default 0,
  latency_ms    int,
  request_id    text,
  created_at    timestamptz not null default now(),
  constraint usage_events_feature_check check (feature in ('search', 'answer', 'embedding', 'ingestion', 'other')),
  constraint usage_events_tokens_in_nonnegative check (tokens_in >= 0),
  constraint usage_events_tokens_out_nonnegative check (tokens_out >= 0),
  constraint usage_events_cost_nonnegative check (cost_usd >= 0),
  constraint usage_events_latency_nonnegative check (latency_ms >= 0)
);
-- Budget checks: sum(cost_usd), sum(tokens) where workspace_id = $1 and created_at >= $period_start.
-- INCLUDE makes that an index-only scan.
create index usage_events_workspace_created_idx on usage_events (workspace_id, created_at)
  include (cost_usd, tokens_in, tokens_out);
create index usage_events_workspace_feature_created_idx on usage_events (workspace_id, feature, created_at);
create index usage_events_user_id_idx on usage_events (user_id);
create index usage_events_api_key_id_idx on usage_events (api_key_id);
