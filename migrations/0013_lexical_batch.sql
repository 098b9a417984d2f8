-- 0013_lexical_batch: the lexical index is written per statement, so an ingest that indexes several
-- documents at once writes one postings list per lexeme for all of them (same index, same reads).
--
-- Measured on 163 synthetic documents (~12 chunks and ~1,000 distinct lexemes each) with two ingest
-- workers: the status update that indexes a document was the largest single cost of ingestion (about
-- as much PostgreSQL time as inserting the chunks with their tsvectors), and almost all of it was the
-- ~1,000 list rows it wrote, one per lexeme of the document. Documents of a corpus share most of their
-- lexemes, so indexing a batch of them with one statement writes far fewer, longer rows.
--
--  * The row-level AFTER UPDATE trigger of 0011/0012 becomes a statement-level one with transition
--    tables: it sees every document whose indexed state the statement changed, marks the ranges of
--    those that left dead (as before, one range per document), numbers those that entered (one range
--    per document, as before), writes their lists grouped by (collection, lexeme) across documents,
--    and updates each collection's statistics once, last. The DELETE trigger stays row-level.
--  * A list may now hold the postings of several documents, in sequence-number order; compaction and
--    search already handle such lists (compaction writes them).
--  * larder.lexical_reservation may name several documents: 'doc:first:count[,doc:first:count]...'.
--    Each entry is checked as before (it must name this document and its chunk count, lie within the
--    collection's numbers, and overlap no range); a document without a usable entry is numbered under
--    the statistics lock.
--  * Transition tables need a trigger without a column list, so the trigger runs for every UPDATE of
--    documents; for one that changes no document's indexed state it is one join of the transition
--    tables that returns nothing.

drop trigger documents_lexical_index_update on documents;

-- The reservation for `doc` in the transaction's larder.lexical_reservation, if it fits (see above).
create or replace function larder_lexical_reserved(doc uuid, collection uuid, n bigint) returns bigint
  language plpgsql
  as $$
declare
  entry text;
  reservation text[];
  first bigint;
begin
  entry := (select e from unnest(string_to_array(current_setting('larder.lexical_reservation', true), ',')) e
            where e like doc::text || ':%' limit 1);
  reservation := string_to_array(entry, ':');
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

create function larder_lexical_index_statement() returns trigger
  language plpgsql
  as $$
declare
  entering uuid[];
  leaving uuid[];
  doc record;
  first bigint;
begin
  select coalesce(array_agg(n.id) filter (where larder_document_indexed(n.status::text, n.deleted_at)), '{}'),
         coalesce(array_agg(n.id) filter (where larder_document_indexed(o.status::text, o.deleted_at)), '{}')
    into entering, leaving
    from old_documents o join new_documents n on n.id = o.id
    where larder_document_indexed(o.status::text, o.deleted_at)
          is distinct from larder_document_indexed(n.status::text, n.deleted_at);
  if cardinality(entering) = 0 and cardinality(leaving) = 0 then
    return null;
  end if;

  if cardinality(leaving) > 0 then
    update lexical_ranges r
      set live = false,
          lexemes = array(select distinct l.lexeme from chunks c cross join lateral unnest(c.tsv) l
                          where c.document_id = r.document_id)
      where r.document_id = any(leaving) and r.live;
    update collection_stats s
      set chunk_count = s.chunk_count - x.n, total_length = s.total_length - x.total,
          version = s.version + 1, updated_at = now()
      from (select d.collection_id, count(c.id) as n, coalesce(sum(c.lexeme_count), 0) as total
            from new_documents d left join chunks c on c.document_id = d.id
            where d.id = any(leaving) group by d.collection_id) x
      where s.collection_id = x.collection_id;
  end if;

  if cardinality(entering) > 0 then
    -- Number each document's chunks: its reservation if it has a usable one, else fresh numbers
    -- (which lock the statistics row from here to the end of the transaction).
    for doc in
      select d.id, d.collection_id, d.workspace_id, count(c.id) as n
      from new_documents d join chunks c on c.document_id = d.id
      where d.id = any(entering)
      group by d.id, d.collection_id, d.workspace_id
      order by d.collection_id, d.id
    loop
      first := larder_lexical_reserved(doc.id, doc.collection_id, doc.n);
      if first is null then
        first := larder_lexical_reserve(doc.collection_id, doc.workspace_id, doc.n);
      end if;
      insert into lexical_ranges (workspace_id, collection_id, base, chunk_count, document_id)
        values (doc.workspace_id, doc.collection_id, first, doc.n, doc.id);
    end loop;
    -- One list per (collection, lexeme) for all the documents.
    insert into lexical_postings (workspace_id, collection_id, lexeme, postings, first_seq, last_seq, data)
    select r.workspace_id, r.collection_id, l.lexeme, count(*), min(r.base + c.ordinal), max(r.base + c.ordinal),
           string_agg(int4send((r.base + c.ordinal)::int)
                      || int2send(least(greatest(cardinality(l.positions), 1), 32767)::int2)
                      || int2send(least(c.lexeme_count, 32767)::int2), ''::bytea order by r.base + c.ordinal)
    from lexical_ranges r join chunks c on c.document_id = r.document_id cross join lateral unnest(c.tsv) l
    where r.document_id = any(entering) and r.live
    group by r.workspace_id, r.collection_id, l.lexeme;
    -- Last: from here the statistics rows stay locked until the transaction ends.
    insert into collection_stats (collection_id, workspace_id, chunk_count, total_length)
      select d.collection_id, d.workspace_id, count(c.id), coalesce(sum(c.lexeme_count), 0)
      from new_documents d left join chunks c on c.document_id = d.id
      where d.id = any(entering)
      group by d.collection_id, d.workspace_id
      order by d.collection_id
      on conflict (collection_id) do update
      set chunk_count = collection_stats.chunk_count + excluded.chunk_count,
          total_length = collection_stats.total_length + excluded.total_length,
          version = collection_stats.version + 1,
          updated_at = now();
  end if;
  return null;
end
$$;

create trigger documents_lexical_index_update after update on documents
  referencing old table as old_documents new table as new_documents
  for each statement execute function larder_lexical_index_statement();
