-- The lexical index for BM25: a postings table and per-collection statistics.
--
-- BM25 needs, per collection: N (chunks), the average chunk length, each query term's document
-- frequency, and each candidate's term frequencies. Deriving all of them from the chunks' tsvectors
-- at query time (the GIN index, `unnest(tsv)` per candidate) is exact but linear in the matching
-- chunks: 3.2 s per query at 100k chunks. Here:
--
--  * chunk_terms holds one row per (chunk, distinct lexeme) with the term frequency and the chunk's
--    length. Its covering index (collection, lexeme, chunk) → (tf, length, workspace) answers the
--    document frequencies (a count over one key range), the scoring (index-only scans of the query
--    terms' ranges, no tsvector decoding) and single postings (a term's tf in one chunk, for
--    completing the scores of top-k candidates).
--  * collection_stats holds N and the total length per collection, so the average length is O(1),
--    and a version that changes with every change of the postings (search caches document
--    frequencies per version).
--
-- Both describe exactly the chunks that search can return: those of documents that are `searchable`
-- or `ready` (and not deleted). They are maintained by one trigger on documents, so no code path can
-- forget them: a document entering a searchable state (the ingest transaction that wrote its chunks)
-- adds its postings and counts; leaving it (re-queued, failed) or being deleted removes them. A
-- searchable document's chunks never change (ingest replaces chunks only while the document is
-- `parsing`), so what is removed is exactly what was added. Document frequencies are counted from the
-- postings at query time rather than kept per term: a per-term counter would be updated by every
-- document that uses a common word, serialising concurrent ingestion on a few hot rows.
--
-- Cost: ~one row per distinct lexeme per chunk (about 100 for a 400-token chunk); see docs/search.md.

-- Older rows may lack the BM25 length (it was optional before ingestion wrote it).
update chunks c set lexeme_count = (select coalesce(sum(greatest(cardinality(l.positions), 1)), 0) from unnest(c.tsv) l)
where c.lexeme_count is null;
alter table chunks alter column lexeme_count set not null;

create table chunk_terms (
  workspace_id   uuid not null,
  collection_id  uuid not null,
  lexeme         text not null,
  chunk_id       uuid not null,
  tf             int not null,            -- occurrences of the lexeme in the chunk (tsvector positions)
  length         int not null             -- the chunk's lexeme_count, repeated: scoring reads no other table
);
-- No foreign keys: the trigger below owns these rows (a key check per posting would double the cost of
-- writing them). Deleting a workspace, collection or document fires it for every document.
create index chunk_terms_lookup_idx on chunk_terms (collection_id, lexeme, chunk_id) include (tf, length, workspace_id);
-- Read by index-only scans: keep the visibility map fresh on a table that only grows and shrinks.
alter table chunk_terms set (autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_scale_factor = 0.05);

create table collection_stats (
  collection_id  uuid primary key,
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  chunk_count    bigint not null default 0,  -- N: searchable chunks
  total_length   bigint not null default 0,  -- Σ lexeme_count over them (average length = total / N)
  version        bigint not null default 0,  -- +1 whenever the collection's postings change
  updated_at     timestamptz not null default now(),
  constraint collection_stats_collection_fk foreign key (collection_id, workspace_id)
    references collections (id, workspace_id) on delete cascade,
  constraint collection_stats_nonnegative check (chunk_count >= 0 and total_length >= 0)
);
create index collection_stats_workspace_id_idx on collection_stats (workspace_id);

do $$
declare
  t text;
begin
  foreach t in array array['chunk_terms', 'collection_stats'] loop
    execute format('alter table %I enable row level security', t);
    execute format(
      'create policy tenant_isolation on %I using (workspace_id = larder_current_workspace()) '
      'with check (workspace_id = larder_current_workspace())', t);
    execute format('grant select, insert, update, delete on %I to larder_app', t);
  end loop;
end
$$;

-- Whether a document's chunks are searchable.
create function larder_document_indexed(status text, deleted_at timestamptz) returns boolean
  language sql immutable parallel safe
  as $$ select status in ('searchable', 'ready') and deleted_at is null $$;

create function larder_document_lexical_index() returns trigger
  language plpgsql
  as $$
declare
  was_indexed boolean := larder_document_indexed(old.status::text, old.deleted_at);
  is_indexed boolean := tg_op = 'UPDATE' and larder_document_indexed(new.status::text, new.deleted_at);
  n bigint;
  total bigint;
begin
  if was_indexed and not is_indexed then
    select count(*), coalesce(sum(c.lexeme_count), 0) into n, total
    from chunks c where c.document_id = old.id;
    -- One index probe per posting (the lookup index's key), no second index to maintain.
    delete from chunk_terms t
      using chunks c cross join lateral unnest(c.tsv) l
      where c.document_id = old.id
        and t.collection_id = c.collection_id and t.lexeme = l.lexeme and t.chunk_id = c.id;
    -- Not when the collection itself is being deleted (its statistics row goes with it; updating a row
    -- inserted in this transaction would re-check its foreign key against the deleted collection).
    update collection_stats
      set chunk_count = chunk_count - n, total_length = total_length - total, version = version + 1,
          updated_at = now()
      where collection_id = old.collection_id
        and exists (select 1 from collections where id = old.collection_id);
  elsif is_indexed and not was_indexed then
    insert into chunk_terms (workspace_id, collection_id, lexeme, chunk_id, tf, length)
      select c.workspace_id, c.collection_id, l.lexeme, c.id, greatest(cardinality(l.positions), 1), c.lexeme_count
      from chunks c cross join lateral unnest(c.tsv) l
      where c.document_id = new.id;
    select count(*), coalesce(sum(c.lexeme_count), 0) into n, total
    from chunks c where c.document_id = new.id;
    insert into collection_stats (collection_id, workspace_id, chunk_count, total_length)
      values (new.collection_id, new.workspace_id, n, total)
      on conflict (collection_id) do update
      set chunk_count = collection_stats.chunk_count + excluded.chunk_count,
          total_length = collection_stats.total_length + excluded.total_length,
          version = collection_stats.version + 1,
          updated_at = now();
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end
$$;
grant execute on function larder_document_indexed(text, timestamptz) to larder_app;
grant execute on function larder_document_lexical_index() to larder_app;

-- Before a delete (the chunks still exist: the cascade removes them after the row), after an update.
create trigger documents_lexical_index_delete before delete on documents
  for each row execute function larder_document_lexical_index();
create trigger documents_lexical_index_update after update of status, deleted_at on documents
  for each row
  when (larder_document_indexed(old.status::text, old.deleted_at)
        is distinct from larder_document_indexed(new.status::text, new.deleted_at))
  execute function larder_document_lexical_index();

-- Existing searchable documents.
insert into chunk_terms (workspace_id, collection_id, lexeme, chunk_id, tf, length)
  select c.workspace_id, c.collection_id, l.lexeme, c.id, greatest(cardinality(l.positions), 1), c.lexeme_count
  from chunks c
  join documents d on d.id = c.document_id
  cross join lateral unnest(c.tsv) l
  where larder_document_indexed(d.status::text, d.deleted_at);
insert into collection_stats (collection_id, workspace_id, chunk_count, total_length)
  select c.collection_id, c.workspace_id, count(*), sum(c.lexeme_count)
  from chunks c
  join documents d on d.id = c.document_id
  where larder_document_indexed(d.status::text, d.deleted_at)
  group by c.collection_id, c.workspace_id;
