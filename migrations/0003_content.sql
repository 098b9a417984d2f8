-- 0003_content: collections, documents, their original bytes, chunks and chunk embeddings.
--
-- Tenant consistency of the denormalised columns. chunks and chunk_embeddings repeat workspace_id and
-- collection_id (row-level security and search filters need them on the row itself). Composite foreign
-- keys make the copies impossible to get wrong: a child references its parent by (id, collection_id,
-- workspace_id), so a chunk can never claim a workspace or collection other than its document's. Each
-- parent carries the matching UNIQUE (id, ...) constraint those keys need. The composite keys are the
-- ON DELETE CASCADE ownership chain; every table also has the plain workspace_id -> workspaces FK.
-- Composite keys use the default NO ACTION on update: moving a document to another collection while it
-- still has chunks fails; delete the chunks first (they have to be rebuilt for the new collection's
-- text-search config and embedding model anyway).

-- ---------------------------------------------------------------------------------------------------
create table collections (
  id                    uuid primary key default larder_uuid_v7(),
  workspace_id          uuid not null references workspaces (id) on delete cascade,
  name                  text not null,
  description           text,
  -- A text search configuration name (to_tsvector(config::regconfig, text)). Stored as text, not
  -- regconfig: a regconfig column stores an OID, which pg_upgrade refuses. The app validates names with
  -- to_regconfig() before saving; the CHECK only keeps the value a plain (optionally qualified) name.
  text_search_config    text not null default 'english',
  chunking              jsonb not null default '{}',   -- { "maxTokens": 512, "overlapTokens": 64, ... }
  -- Embedding settings: all three set, or all null (= lexical search only).
  embedding_provider    text,
  embedding_model       text,
  embedding_dimensions  int,
  bm25_k1               real not null default 1.2,
  bm25_b                real not null default 0.75,
  settings              jsonb not null default '{}',   -- other per-collection options
  created_by            uuid references users (id) on delete set null,
  deleted_at            timestamptz,
  created_at            timestamptz not null default now(),
  updated_at            timestamptz not null default now(),
  -- target of the composite FK from documents
  constraint collections_id_workspace_key unique (id, workspace_id),
  constraint collections_name_nonempty check (length(btrim(name)) between 1 and 200),
  constraint collections_text_search_config_format check (text_search_config ~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$'),
  constraint collections_chunking_object check (jsonb_typeof(chunking) = 'object'),
  constraint collections_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint collections_embedding_dimensions_range check (embedding_dimensions > 0 and embedding_dimensions <= 4096),
  constraint collections_embedding_all_or_none check (
    (embedding_provider is null) = (embedding_model is null)
    and (embedding_model is null) = (embedding_dimensions is null)),
  constraint collections_bm25_k1_range check (bm25_k1 >= 0 and bm25_k1 <= 10),
  constraint collections_bm25_b_range check (bm25_b >= 0 and bm25_b <= 1)
);
create trigger collections_touch_updated_at before update on collections
  for each row execute function larder_touch_updated_at();
-- Case-insensitive name, unique among live collections (a soft-deleted name can be reused).
create unique index collections_workspace_name_key on collections (workspace_id, lower(name))
  where deleted_at is null;
-- listing per workspace + the workspace FK (the partial unique index above does not cover deleted rows)
create index collections_workspace_created_idx on collections (workspace_id, created_at, id);
create index collections_created_by_idx on collections (created_by);
create index collections_deleted_at_idx on collections (deleted_at) where deleted_at is not null;

-- ---------------------------------------------------------------------------------------------------
-- documents. Lifecycle: queued -> parsing -> searchable (chunks + lexical index written) -> ready
-- (embeddings written; a lexical-only collection goes from searchable to ready with no embedding step);
-- any step -> failed (error says why). A retry puts it back to queued.
create table documents (
  id             uuid primary key default larder_uuid_v7(),
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  collection_id  uuid not null,
  external_id    text,                 -- caller's / sync tool's stable id (e.g. relative path); unique per collection
  title          text not null,
  filename       text,                 -- original file name of an upload (Content-Disposition on download)
  source_uri     text,                 -- URL or file:// origin, when there is one
  mime           text,
  -- Hex SHA-256 and size of the original bytes. Null only while the bytes are not yet known (a URL
  -- ingestion that has not fetched yet, or failed to); required once searchable/ready.
  sha256         text,
  bytes          bigint,
  status         text not null default 'queued',
  error          text,
  version        int not null default 1,   -- +1 each time the content is replaced
  metadata       jsonb not null default '{}',
  chunk_count    int not null default 0,
  token_count    bigint not null default 0,
  created_by     uuid references users (id) on delete set null,   -- uploader; survives user deletion
  processed_at   timestamptz,              -- last time processing finished (searchable/ready/failed)
  deleted_at     timestamptz,
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  -- owned by the collection: deleting a collection deletes its documents
  constraint documents_collection_fk foreign key (collection_id, workspace_id)
    references collections (id, workspace_id) on delete cascade,
  -- targets of the composite FKs from document_blobs and chunks
  constraint documents_id_workspace_key unique (id, workspace_id),
  constraint documents_id_collection_workspace_key unique (id, collection_id, workspace_id),
  constraint documents_status_check check (status in ('queued', 'parsing', 'searchable', 'ready', 'failed')),
  constraint documents_error_when_failed check (status <> 'failed' or (error is not null and length(error) > 0)),
  constraint documents_sha256_format check (sha256 ~ '^[0-9a-f]{64}$'),
  constraint documents_content_known_when_indexed check (
    status not in ('searchable', 'ready') or (sha256 is not null and bytes is not null)),
  constraint documents_bytes_nonnegative check (bytes >= 0),
  constraint documents_version_positive check (version >= 1),
  constraint documents_chunk_count_nonnegative check (chunk_count >= 0),
  constraint documents_token_count_nonnegative check (token_count >= 0),
  constraint documents_external_id_nonempty check (external_id is null or length(external_id) > 0),
  constraint documents_metadata_object check (jsonb_typeof(metadata) = 'object')
);
create trigger documents_touch_updated_at before update on documents
  for each row execute function larder_touch_updated_at();
-- cursor pagination within a collection: where collection_id = $1 and (created_at, id) < ($2, $3)
-- order by created_at desc, id desc (also the index for the collection FK)
create index documents_collection_created_idx on documents (collection_id, created_at, id);
-- the same across a workspace (and the workspace FK)
create index documents_workspace_created_idx on documents (workspace_id, created_at, id);
-- status filter in listings
create index documents_collection_status_idx on documents (collection_id, status, created_at, id);
-- sweeper for stuck in-flight documents
create index documents_in_flight_idx on documents (updated_at)
  where status in ('queued', 'parsing', 'searchable') and deleted_at is null;
-- dedup: same bytes in the same collection = no new work
create index documents_collection_sha256_idx on documents (collection_id, sha256);
-- upsert by external id (folder sync). Live documents only, so a re-sync after a soft delete creates a
-- fresh document. ON CONFLICT (collection_id, external_id) where external_id is not null and deleted_at is null
create unique index documents_collection_external_id_key on documents (collection_id, external_id)
  where external_id is not null and deleted_at is null;
-- metadata filters: metadata @> '{"team":"x"}' / jsonb_path queries
create index documents_metadata_idx on documents using gin (metadata jsonb_path_ops);
create index documents_created_by_idx on documents (created_by);
create index documents_deleted_at_idx on documents (deleted_at) where deleted_at is not null;

-- ---------------------------------------------------------------------------------------------------
-- document_blobs: the original bytes, split into parts (0, 1, 2, ... in order; the app picks the part
-- size, ~1 MiB) so a large file is streamed in and out and never one value in memory.
-- Composite primary key: a part has no identity of its own outside its document.
create table document_blobs (
  document_id   uuid not null,
  workspace_id  uuid not null references workspaces (id) on delete cascade,
  part          int not null,
  data          bytea not null,
  created_at    timestamptz not null default now(),
  primary key (document_id, part),
  constraint document_blobs_document_fk foreign key (document_id, workspace_id)
    references documents (id, workspace_id) on delete cascade,
  constraint document_blobs_part_nonnegative check (part >= 0),
  constraint document_blobs_data_nonempty check (octet_length(data) > 0)
);
create index document_blobs_workspace_id_idx on document_blobs (workspace_id);

-- ---------------------------------------------------------------------------------------------------
-- chunks: the retrieval unit. Positions point back into the parsed text of the document: char_start /
-- char_end are a half-open [start, end) range; page/page_end the 1-based page span (PDF), when known.
create table chunks (
  id             uuid primary key default larder_uuid_v7(),
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  collection_id  uuid not null,
  document_id    uuid not null,
  ordinal        int not null,            -- 0-based position within the document
  text           text not null,
  token_count    int not null,
  heading_path   text[] not null default '{}',
  char_start     int not null,
  char_end       int not null,
  page           int,
  page_end       int,
  content_hash   text not null,           -- hex hash (SHA-256) of text: re-embed only changed chunks
  -- Filled by the app: to_tsvector(<collection text_search_config>::regconfig, <heading + text>).
  tsv            tsvector not null,
  -- Document length for BM25: number of lexeme occurrences in tsv (sum of positions). Null until the
  -- lexical statistics feature computes it.
  lexeme_count   int,
  metadata       jsonb not null default '{}',
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  -- owned by the document; the FK also pins collection_id and workspace_id to the document's
  constraint chunks_document_fk foreign key (document_id, collection_id, workspace_id)
    references documents (id, collection_id, workspace_id) on delete cascade,
  constraint chunks_document_ordinal_key unique (document_id, ordinal),
  -- target of the composite FK from chunk_embeddings
  constraint chunks_id_collection_workspace_key unique (id, collection_id, workspace_id),
  constraint chunks_ordinal_nonnegative check (ordinal >= 0),
  constraint chunks_token_count_nonnegative check (token_count >= 0),
  constraint chunks_char_span check (char_start >= 0 and char_start <= char_end),
  constraint chunks_page_positive check (page >= 1),
  constraint chunks_page_span check (page_end is null or (page is not null and page_end >= page)),
  constraint chunks_content_hash_format check (content_hash ~ '^[0-9a-f]{16,128}$'),
  constraint chunks_lexeme_count_nonnegative check (lexeme_count >= 0),
  constraint chunks_metadata_object check (jsonb_typeof(metadata) = 'object')
);
create trigger chunks_touch_updated_at before update on chunks
  for each row execute function larder_touch_updated_at();
-- full-text search: where collection_id = $1 and tsv @@ $query
create index chunks_tsv_idx on chunks using gin (tsv);
create index chunks_collection_id_idx on chunks (collection_id);
create index chunks_workspace_id_idx on chunks (workspace_id);

-- ---------------------------------------------------------------------------------------------------
-- chunk_embeddings: one vector per (chunk, model). Several models can coexist while a collection is
-- re-embedded with a new model. The vector column has no typmod, so any dimension fits; `dimensions`
-- says which, and selects the matching partial HNSW index below.
-- Composite primary key: an embedding is identified by its chunk and model.
create table chunk_embeddings (
  chunk_id       uuid not null,
  workspace_id   uuid not null references workspaces (id) on delete cascade,
  collection_id  uuid not null,
  model          text not null,
  dimensions     int not null,
  embedding      vector not null,
  content_hash   text not null,          -- chunks.content_hash that was embedded (stale when they differ)
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  primary key (chunk_id, model),
  -- owned by the chunk; also pins collection_id and workspace_id to the chunk's
  constraint chunk_embeddings_chunk_fk foreign key (chunk_id, collection_id, workspace_id)
    references chunks (id, collection_id, workspace_id) on delete cascade,
  constraint chunk_embeddings_dimensions_range check (dimensions > 0 and dimensions <= 4096),
  constraint chunk_embeddings_dimensions_match check (vector_dims(embedding) = dimensions),
  constraint chunk_embeddings_model_nonempty check (length(model) > 0),
  constraint chunk_embeddings_content_hash_format check (content_hash ~ '^[0-9a-f]{16,128}$')
);
create trigger chunk_embeddings_touch_updated_at before update on chunk_embeddings
  for each row execute function larder_touch_updated_at();
-- Keep rows in the heap page up to ~8 KB (1536-d vectors included) instead of the default ~2 KB TOAST
-- target: by default a 512-d row (2 KB vector) already makes the toaster move the vector or other
-- columns out of line, costing an extra TOAST fetch per row in exact scans and index builds.
-- Bigger rows (> ~1900 dimensions) are still toasted as usual.
alter table chunk_embeddings set (toast_tuple_target = 8160);
create index chunk_embeddings_collection_model_idx on chunk_embeddings (collection_id, model);
create index chunk_embeddings_workspace_id_idx on chunk_embeddings (workspace_id);

-- Approximate nearest neighbour: one HNSW (cosine) index per supported dimension, each a partial
-- expression index. HNSW needs a fixed dimension, so the column is cast to vector(N) in the index
-- expression. A query uses the index only when it repeats BOTH the expression and the predicate:
--
--   select chunk_id, embedding::vector(512) <=> $1::vector(512) as distance
--   from chunk_embeddings
--   where dimensions = 512 and collection_id = $2 and model = $3
--   order by embedding::vector(512) <=> $1::vector(512)
--   limit $4;
--
-- With extra filters (collection, model, workspace) set `hnsw.iterative_scan = relaxed_order` (pgvector
-- >= 0.8, SET LOCAL in the search transaction) so filtered-out candidates do not shrink the result, and
-- raise `hnsw.ef_search` (default 40) for recall when limit is large. Cosine distance: 1 - similarity.
-- Other dimensions are stored and searchable by exact scan; add an index here for a new size.
create index chunk_embeddings_hnsw_384 on chunk_embeddings
  using hnsw ((embedding::vector(384)) vector_cosine_ops) where dimensions = 384;
create index chunk_embeddings_hnsw_512 on chunk_embeddings
  using hnsw ((embedding::vector(512)) vector_cosine_ops) where dimensions = 512;
create index chunk_embeddings_hnsw_768 on chunk_embeddings
  using hnsw ((embedding::vector(768)) vector_cosine_ops) where dimensions = 768;
create index chunk_embeddings_hnsw_1024 on chunk_embeddings
  using hnsw ((embedding::vector(1024)) vector_cosine_ops) where dimensions = 1024;
create index chunk_embeddings_hnsw_1536 on chunk_embeddings
  using hnsw ((embedding::vector(1536)) vector_cosine_ops) where dimensions = 1536;
