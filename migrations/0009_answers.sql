-- 0009_answers: what answers need beyond 0004 (conversations, messages, feedback, review, usage).
--
-- 1. collection_stats.vectors_version: +1 whenever a document of the collection enters or leaves
--    'ready' while staying searchable (its vectors appear or disappear). With `version` (+1 whenever
--    the postings change) it names the collection's searchable content: the answer cache keys on both,
--    so any ingest, re-embedding or delete invalidates the cached answers over that collection.
-- 2. conversations.api_key_id: conversations started with an API key belong to that key (a
--    conversation is visible to the user or key that started it, nobody else).
-- 3. curated_answers: reviewed answers (approved or corrected in the review queue), served first for
--    the same or a near-identical question over the same collections.

alter table collection_stats add column vectors_version bigint not null default 0;

create function larder_document_vectors_version() returns trigger
  language plpgsql
  as $$
begin
  update collection_stats set vectors_version = vectors_version + 1, updated_at = now()
    where collection_id = new.collection_id;
  return new;
end
$$;
grant execute on function larder_document_vectors_version() to larder_app;

-- searchable <-> ready with the document staying indexed (entering or leaving the index altogether
-- bumps `version` through the lexical trigger of 0007).
create trigger documents_vectors_version after update of status on documents
  for each row
  when ((old.status = 'ready') is distinct from (new.status = 'ready')
        and larder_document_indexed(old.status::text, old.deleted_at)
        and larder_document_indexed(new.status::text, new.deleted_at))
  execute function larder_document_vectors_version();

-- ---------------------------------------------------------------------------------------------------
alter table conversations add column api_key_id uuid references api_keys (id) on delete set null;
create index conversations_api_key_updated_idx on conversations (api_key_id, workspace_id, updated_at);

-- ---------------------------------------------------------------------------------------------------
create table curated_answers (
  id                 uuid primary key default larder_uuid_v7(),
  workspace_id       uuid not null references workspaces (id) on delete cascade,
  -- The collections the original answer searched (sorted). Served only to a request whose visible
  -- collections include all of them.
  collection_ids     uuid[] not null,
  question           text not null,
  -- The normalised question (lowercase, punctuation and extra spaces removed): exact matches.
  question_key       text not null,
  -- Its distinct content-word stems: near-identical matches (overlap, then Jaccard in the app).
  question_terms     text[] not null,
  answer             text not null,
  -- Same shape as messages.citations.
  citations          jsonb not null default '[]',
  source_message_id  uuid references messages (id) on delete set null,
  review_item_id     uuid references review_items (id) on delete set null,
  created_by         uuid references users (id) on delete set null,
  deleted_at         timestamptz,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  constraint curated_answers_collection_ids_no_nulls check (array_position(collection_ids, null) is null),
  constraint curated_answers_question_nonempty check (length(question_key) > 0),
  constraint curated_answers_answer_nonempty check (length(btrim(answer)) > 0),
  constraint curated_answers_citations_array check (jsonb_typeof(citations) = 'array')
);
create trigger curated_answers_touch_updated_at before update on curated_answers
  for each row execute function larder_touch_updated_at();
create index curated_answers_workspace_key_idx on curated_answers (workspace_id, question_key);
create index curated_answers_terms_idx on curated_answers using gin (question_terms);
create index curated_answers_source_message_id_idx on curated_answers (source_message_id);
create index curated_answers_review_item_id_idx on curated_answers (review_item_id);
create index curated_answers_created_by_idx on curated_answers (created_by);

alter table curated_answers enable row level security;
create policy tenant_isolation on curated_answers using (workspace_id = larder_current_workspace())
  with check (workspace_id = larder_current_workspace());
grant select, insert, update, delete on curated_answers to larder_app;
