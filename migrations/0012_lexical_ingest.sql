-- 0012_lexical_ingest: cheaper lexical indexing at ingest (same index, same reads).
--
-- Measured on 390 synthetic documents (5,002 chunks, ~1,000 postings lists each) with two ingest
-- workers: the status update that indexes a document took 27 ms, of which the postings write was
-- 18.5 ms and waiting for the other worker's statistics-row lock most of the rest. In that write,
-- each list row paid two foreign-key checks (half its cost) and four index entries. So:
--
--  * lexical_postings loses its foreign keys. Its rows go with their collection through a trigger on
--    collections (a deleted workspace deletes its collections, so the trigger covers that too).
--  * Its indexes go from four to two: the primary key becomes (collection_id, lexeme, id), which is
--    also the lookup index search reads by, and the unmerged-lists index stays for compaction. No index
--    leads with workspace_id: nothing looks lists up by workspace (row-level security filters rows
--    found by collection and lexeme).
--  * The sequence numbers of a document's chunks can be reserved before the transaction that indexes
--    it (larder_lexical_reserve, in its own short transaction). The index trigger then takes the
--    collection_stats row lock only at its end, for N and the total length, instead of holding it
--    while it writes the document's lists: concurrent ingests of one collection no longer queue
--    behind each other's postings writes. A reservation that is never used (the transaction failed)
--    leaves a gap in the numbering, which costs nothing but a never-read slot. Without a reservation
--    the trigger numbers the chunks itself, under the lock, as before.
--  * The GIN index on chunks.tsv goes: since 0011 no query reads it (search reads the postings lists),
--    and every chunk inserted paid for it.

alter table lexical_postings drop constraint lexical_postings_collection_fk;
alter table lexical_postings drop constraint lexical_postings_workspace_id_fkey;
drop index lexical_postings_workspace_id_idx;
drop index lexical_postings_lookup_idx;
alter table lexical_postings drop constraint lexical_postings_pkey;
alter table lexical_postings add constraint lexical_postings_pkey primary key (collection_id, lexeme, id);

drop index chunks_tsv_idx;

create function larder_lexical_forget_collection() returns trigger
  language plpgsql security definer set search_path = public, pg_temp
  as $$
begin
  delete from lexical_postings where collection_id = old.id;
  return old;
end
$$;
create trigger collections_lexical_forget after delete on collections
  for each row execute function larder_lexical_forget_collection();

-- Takes `n` sequence numbers of the collection and returns the first. Run it in its own transaction:
-- the statistics row stays locked until that transaction ends.
create function larder_lexical_reserve(collection uuid, ws uuid, n bigint) returns bigint
  language sql
  as $$
    insert into collection_stats (collection_id, workspace_id, chunk_count, total_length, next_seq)
      values (collection, ws, 0, 0, n)
      on conflict (collection_id) do update
      set next_seq = collection_stats.next_seq + excluded.next_seq, updated_at = now()
      returning collection_stats.next_seq - n
  $$;
grant execute on function larder_lexical_reserve(uuid, uuid, bigint) to larder_app;

-- The reservation a transaction indexes a document with, as 'document:first:count' in the
-- transaction-local setting larder.lexical_reservation (src/modules/documents/pipeline.ts). Used only
-- if it names this document and its chunk count, lies within the collection's numbers, and overlaps no
-- range: anything else falls back to numbering under the lock.
create function larder_lexical_reserved(doc uuid, collection uuid, n bigint) returns bigint
  language plpgsql
  as $$
declare
  reservation text[] := string_to_array(current_setting('larder.lexical_reservation', true), ':');
  first bigint;
begin
  if cardinality(reservation) is distinct from 3 or reservation[1] <> doc::text
     or reservation[3] <> n::text or reservation[2] !~ '^[0-9]{1,18}$' then
    return null;
  end if;
  first := reservation[2]::bigint;
  if first + n > coalesce((select s.next_seq from collection_stats s where s.collection_id = collection), 0)
     or exists (select 1 from (select r.base, r.chunk_count from lexical_ranges r
                               where r.collection_id = collection and r.base < first + n
                               order by r.base desc limit 1) r
                where r.base + r.chunk_count > first) then
    return null;
  end if;
  return first;
end
$$;
grant execute on function larder_lexical_reserved(uuid, uuid, bigint) to larder_app;

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
    if n > 0 then
      first := larder_lexical_reserved(new.id, new.collection_id, n);
      if first is null then
        first := larder_lexical_reserve(new.collection_id, new.workspace_id, n);
      end if;
      insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
        values (new.workspace_id, new.collection_id, first, n, new.id);
      perform larder_lexical_write(new.id, new.workspace_id, new.collection_id, first);
    end if;
    -- Last: from here the statistics row stays locked until the transaction ends.
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
