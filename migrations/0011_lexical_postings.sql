-- 0011_lexical_postings: compact postings lists instead of one row per posting (replaces chunk_terms).
--
-- Exact BM25 has to read every posting of every query term that can still change the top. With one
-- row per (chunk, lexeme) (0007) a typical question on domain-dense text read 100-200k index tuples
-- and summed them in a hash aggregate: ~90 ms at p50 and 265 ms at p95 at 100k chunks. Here a
-- posting is 8 bytes inside a list, a list holds many postings, and the search process sums them:
--
--  * Every searchable chunk gets a sequence number within its collection: a document entering the
--    index takes the next `chunk_count` numbers (lexical_ranges.base) and its chunk `ordinal` n is
--    number base + n. The numbers are handed out by the collection_stats row the index already locks
--    at the end of each ingest transaction, so they cost no extra lock; they are never reused.
--  * lexical_postings: one row per (collection, lexeme, list); `data` packs the postings, 8 bytes
--    each, big-endian: sequence number int4, term frequency int2, chunk length int2 (lexemes; a chunk
--    holds at most 8,192 tokens, so it fits). An ingest writes one list per distinct lexeme of the
--    document (`merged` false); a compaction job merges a lexeme's lists by size tier (4 of a tier
--    into one of the next), so a lexeme has a few dozen lists at most and its postings are rewritten
--    a few times in all (src/modules/search/compaction.ts).
--  * A document leaving the index (deleted, failed, new version, re-processed) marks its range dead
--    (`live` false) and records its lexemes; until compaction purges them from the lists, search
--    skips the postings of dead ranges. So search reads, per query term, its lists plus the dead
--    ranges, all in one snapshot, and derives each term's document frequency from the live postings
--    it decoded: exact at every moment.
--  * collection_stats keeps N (chunk_count) and the total length exactly as before.

drop trigger documents_lexical_index_delete on documents;
drop trigger documents_lexical_index_update on documents;
drop table chunk_terms;

alter table collection_stats add column next_seq bigint not null default 0;

create table lexical_ranges (
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  collection_id  uuid not null,
  base           bigint not null,           -- sequence number of the document's chunk 0
  chunk_count    int not null,              -- its chunks have numbers base .. base + chunk_count - 1
  document_id    uuid not null,             -- no foreign key: a dead range outlives its document
  live           boolean not null default true,
  lexemes        text[],                    -- dead ranges: the lexemes whose lists hold its postings
  constraint lexical_ranges_collection_fk foreign key (collection_id, workspace_id)
    references collections (id, workspace_id) on delete cascade,
  constraint lexical_ranges_count_positive check (chunk_count > 0),
  primary key (collection_id, base)
);
create index lexical_ranges_workspace_id_idx on lexical_ranges (workspace_id);
create index lexical_ranges_document_idx on lexical_ranges (document_id) where live;
create index lexical_ranges_dead_idx on lexical_ranges (collection_id) where not live;

create table lexical_postings (
  id             bigint generated always as identity primary key,
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  collection_id  uuid not null,
  lexeme         text not null,
  postings       int not null,              -- postings in data (live and dead)
  first_seq      int not null,              -- lowest and highest sequence number in data
  last_seq       int not null,
  merged         boolean not null default false,  -- written by compaction (false: by an ingest)
  data           bytea not null,
  constraint lexical_postings_collection_fk foreign key (collection_id, workspace_id)
    references collections (id, workspace_id) on delete cascade,
  constraint lexical_postings_size check (postings > 0 and length(data) = 8 * postings)
);
create index lexical_postings_lookup_idx on lexical_postings (collection_id, lexeme);
-- The lists compaction has yet to merge, walked in lexeme order (a batch never rescans what the
-- previous ones deleted).
create index lexical_postings_unmerged_idx on lexical_postings (collection_id, lexeme) where not merged;
create index lexical_postings_workspace_id_idx on lexical_postings (workspace_id);
-- Lists are read whole and are mostly incompressible integers: store large ones out of line,
-- uncompressed (no compression work on write, none on read).
alter table lexical_postings alter column data set storage external;

do $$
declare
  t text;
begin
  foreach t in array array['lexical_ranges', 'lexical_postings'] loop
    execute format('alter table %I enable row level security', t);
    execute format(
      'create policy tenant_isolation on %I using (workspace_id = larder_current_workspace()) '
      'with check (workspace_id = larder_current_workspace())', t);
    execute format('grant select, insert, update, delete on %I to larder_app', t);
  end loop;
end
$$;
grant usage on sequence lexical_postings_id_seq to larder_app;

-- Writes a document's postings lists (one per distinct lexeme), numbering its chunks from `base`.
create function larder_lexical_write(doc uuid, ws uuid, collection uuid, base bigint) returns void
  language sql
  as $$
    insert into lexical_postings (workspace_id, collection_id, lexeme, postings, first_seq, last_seq, data)
    select ws, collection, l.lexeme, count(*), min(base + c.ordinal), max(base + c.ordinal),
           string_agg(int4send((base + c.ordinal)::int)
                      || int2send(least(greatest(cardinality(l.positions), 1), 32767)::int2)
                      || int2send(least(c.lexeme_count, 32767)::int2), ''::bytea order by c.ordinal)
    from chunks c cross join lateral unnest(c.tsv) l
    where c.document_id = doc
    group by l.lexeme
  $$;
grant execute on function larder_lexical_write(uuid, uuid, uuid, bigint) to larder_app;

create or replace function larder_document_lexical_index() returns trigger
  language plpgsql
  as $$
declare
  was_indexed boolean := larder_document_indexed(old.status::text, old.deleted_at);
  is_indexed boolean := tg_op = 'UPDATE' and larder_document_indexed(new.status::text, new.deleted_at);
  n bigint;
  total bigint;
  first bigint;
begin
  if was_indexed and not is_indexed then
    -- Nothing to do when the collection itself is being deleted: its statistics, ranges and lists
    -- go with it (by foreign key).
    if exists (select 1 from collections where id = old.collection_id) then
      select count(*), coalesce(sum(c.lexeme_count), 0) into n, total
      from chunks c where c.document_id = old.id;
      update lexical_ranges
        set live = false,
            lexemes = array(select distinct l.lexeme from chunks c cross join lateral unnest(c.tsv) l
                            where c.document_id = old.id)
        where document_id = old.id and live;
      update collection_stats
        set chunk_count = chunk_count - n, total_length = total_length - total, version = version + 1,
            updated_at = now()
        where collection_id = old.collection_id;
    end if;
  elsif is_indexed and not was_indexed then
    select count(*), coalesce(sum(c.lexeme_count), 0) into n, total
    from chunks c where c.document_id = new.id;
    insert into collection_stats (collection_id, workspace_id, chunk_count, total_length, next_seq)
      values (new.collection_id, new.workspace_id, n, total, n)
      on conflict (collection_id) do update
      set chunk_count = collection_stats.chunk_count + excluded.chunk_count,
          total_length = collection_stats.total_length + excluded.total_length,
          next_seq = collection_stats.next_seq + excluded.next_seq,
          version = collection_stats.version + 1,
          updated_at = now()
      returning collection_stats.next_seq - n into first;
    if n > 0 then
      insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
        values (new.workspace_id, new.collection_id, first, n, new.id);
      perform larder_lexical_write(new.id, new.workspace_id, new.collection_id, first);
    end if;
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end
$$;

create trigger documents_lexical_index_delete before delete on documents
  for each row execute function larder_document_lexical_index();
create trigger documents_lexical_index_update after update of status, deleted_at on documents
  for each row
  when (larder_document_indexed(old.status::text, old.deleted_at)
        is distinct from larder_document_indexed(new.status::text, new.deleted_at))
  execute function larder_document_lexical_index();

-- Existing searchable documents: numbered in id order per collection, one list per lexeme and
-- document (the first compaction merges them).
insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
  select workspace_id, collection_id,
         coalesce(sum(n) over (partition by collection_id order by id
                               rows between unbounded preceding and 1 preceding), 0),
         n, id
  from (select d.workspace_id, d.collection_id, d.id, count(c.id) as n
        from documents d join chunks c on c.document_id = d.id
        where larder_document_indexed(d.status::text, d.deleted_at)
        group by d.workspace_id, d.collection_id, d.id) x;
select larder_lexical_write(r.document_id, r.workspace_id, r.collection_id, r.base) from lexical_ranges r;
update collection_stats s
  set next_seq = coalesce((select max(r.base + r.chunk_count) from lexical_ranges r
                           where r.collection_id = s.collection_id), 0);
