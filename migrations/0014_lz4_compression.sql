-- 0014_lz4_compression: the large columns written on every ingest compress with lz4 instead of pglz.
--
-- A chunk row (text ~1.3 KB + tsvector ~1.5 KB) passes the 2 KB TOAST threshold, and every uploaded
-- document's bytes are stored in document_blobs, so both were compressed with PostgreSQL's default
-- pglz on every insert: in a profile of 390 document adds, pglz_compress was 11% of PostgreSQL's CPU.
-- lz4 compresses several times faster for a slightly lower ratio. The setting applies to values
-- written from now on; existing rows keep their pglz values (both decompress transparently).
--
-- lz4 needs PostgreSQL 14+ built with it (Debian's packages and the official images are). PGlite and
-- servers built without it raise feature_not_supported and keep the default.
do $$
begin
  alter table chunks alter column text set compression lz4, alter column tsv set compression lz4;
  alter table document_blobs alter column data set compression lz4;
exception when feature_not_supported then
  null;
end
$$;
