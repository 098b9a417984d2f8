/**
 * Kysely table types for the Larder schema.
 *
 * These types MUST match the SQL in `migrations/` (the source of truth): every table, every column, its
 * nullability and whether it has a default. A test compares them with the migrated database; when you
 * add or change a migration, change this file in the same commit.
 *
 * Mapping conventions (both drivers, see database.ts):
 *  - uuid, text, inet, tsvector, numeric -> string (numeric stays a string: no float rounding of money)
 *  - int, smallint, real, bigint         -> number (int8 is parsed as a JS number by our pg type parser
 *                                            and by PGlite)
 *  - timestamptz                         -> Date (insert/update also accept ISO strings)
 *  - bytea                               -> Uint8Array (pg returns a Buffer, a Uint8Array subclass)
 *  - vector                              -> string in pgvector text format, e.g. '[0.1,0.2,0.3]'
 *  - text[] / uuid[]                     -> string[]
 *  - jsonb                               -> parsed JSON on select. On insert/update a plain object may be
 *    passed as is, but a JSON *array* must be passed through JSON.stringify(): node-postgres serialises
 *    JS arrays as Postgres arrays, not JSON, so strings are the only portable form for arrays.
 *  - `Generated<T>` / insert type including `undefined` = the column has a database default.
 *  - Nullable columns are optional on insert (Kysely treats insert types that include null that way).
 *
 * Enum-like text columns (CHECK constraints in SQL) use the union types below; keep them in sync with
 * the CHECKs.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

// ---------------------------------------------------------------------------------------------------
// JSON

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonObject | JsonArray;
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}
export type JsonArray = JsonValue[];

/** jsonb NOT NULL DEFAULT '{}' holding an object. */
export type JsonObjectColumn<T extends JsonObject = JsonObject> = ColumnType<
  T,
  T | string | undefined,
  T | string
>;
/** Nullable jsonb object without a default. */
export type NullableJsonObjectColumn<T extends JsonObject = JsonObject> = ColumnType<
  T | null,
  T | string | null | undefined,
  T | string | null
>;
/** jsonb NOT NULL DEFAULT '[]' holding an array: write it as JSON.stringify(value) (see header). */
export type JsonArrayColumn<T extends JsonArray = JsonArray> = ColumnType<T, string | undefined, string>;

// ---------------------------------------------------------------------------------------------------
// Scalars with conventions

/** timestamptz NOT NULL without a default. */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** timestamptz NOT NULL DEFAULT now() (created_at; updated_at is also set by a trigger on UPDATE). */
export type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** Nullable timestamptz. */
export type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;
/** numeric(12,6) NOT NULL DEFAULT 0 (money in USD): selected as a string to keep exact decimals. */
export type GeneratedNumeric = ColumnType<string, string | number | undefined, string | number>;
/** bigint/int NOT NULL DEFAULT 0 (counters). */
export type GeneratedCount = Generated<number>;

// ---------------------------------------------------------------------------------------------------
// Enumerations (text + CHECK in SQL)

export type MembershipRole = 'owner' | 'admin' | 'editor' | 'viewer';
/** Invitations never grant ownership (ownership is transferred). */
export type InvitationRole = Exclude<MembershipRole, 'owner'>;
export type RefreshTokenRevokedReason =
  'logout' | 'logout_all' | 'reuse_detected' | 'password_changed' | 'user_disabled' | 'admin';
export type DocumentStatus = 'queued' | 'parsing' | 'searchable' | 'ready' | 'failed';
export type MessageRole = 'user' | 'assistant' | 'system';
export type MessageStatus = 'streaming' | 'complete' | 'failed' | 'cancelled';
export type FeedbackRating = -1 | 1;
export type ReviewStatus = 'open' | 'in_review' | 'resolved' | 'dismissed';
export type AuditActorType = 'user' | 'api_key' | 'system' | 'anonymous';
export type UsageFeature = 'search' | 'answer' | 'embedding' | 'ingestion' | 'other';

/** Dimensions that have an HNSW index (0003_content.sql); others are searched by exact scan. */
export const INDEXED_EMBEDDING_DIMENSIONS = [384, 512, 768, 1024, 1536] as const;
export type IndexedEmbeddingDimensions = (typeof INDEXED_EMBEDDING_DIMENSIONS)[number];

// ---------------------------------------------------------------------------------------------------
// 0002_identity

export interface UsersTable {
  id: Generated<string>;
  /** Always lowercase (CHECK); unique. */
  email: string;
  display_name: string | null;
  /** argon2id PHC string; null for SSO-only accounts. */
  password_hash: string | null;
  email_verified_at: NullableTimestamp;
  disabled_at: NullableTimestamp;
  password_changed_at: NullableTimestamp;
  /** { language?, customInstructions?, ... } */
  profile: JsonObjectColumn;
  last_login_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface WorkspacesTable {
  id: Generated<string>;
  name: string;
  /** ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$, unique (also while soft-deleted). */
  slug: string;
  settings: JsonObjectColumn;
  deleted_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface MembershipsTable {
  id: Generated<string>;
  workspace_id: string;
  user_id: string;
  role: MembershipRole;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface InvitationsTable {
  id: Generated<string>;
  workspace_id: string;
  /** lowercase */
  email: string;
  role: InvitationRole;
  /** lowercase hex SHA-256 of the emailed token */
  token_hash: string;
  invited_by: string | null;
  accepted_by: string | null;
  expires_at: Timestamp;
  accepted_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface ApiKeysTable {
  id: Generated<string>;
  workspace_id: string;
  name: string;
  /** visible part, e.g. lk_live_ab12cd34; unique */
  prefix: string;
  /** lowercase hex SHA-256 of the full key; unique */
  key_hash: string;
  /** non-empty */
  scopes: string[];
  created_by: string | null;
  expires_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  /** 0008: allowlist of collection ids (at most 100); null = no allowlist (see collection-access.ts) */
  collections: string[] | null;
}

export interface RefreshTokensTable {
  id: Generated<string>;
  user_id: string;
  /** id of the first token of the login session */
  family_id: string;
  /** lowercase hex SHA-256 of the token; unique */
  token_hash: string;
  parent_id: string | null;
  expires_at: Timestamp;
  rotated_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  /** only together with revoked_at */
  revoked_reason: RefreshTokenRevokedReason | null;
  user_agent: string | null;
  ip: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface OidcIdentitiesTable {
  id: Generated<string>;
  user_id: string;
  issuer: string;
  subject: string;
  /** lowercase */
  email: string | null;
  email_verified: boolean | null;
  claims: JsonObjectColumn;
  last_login_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------------------------------
// 0003_content

export interface CollectionsTable {
  id: Generated<string>;
  workspace_id: string;
  /** unique per workspace, case-insensitive, among live collections */
  name: string;
  description: string | null;
  /** regconfig name, e.g. 'english', 'simple', 'german' */
  text_search_config: Generated<string>;
  /** { maxTokens?, overlapTokens?, ... } */
  chunking: JsonObjectColumn;
  /** embedding_provider, embedding_model and embedding_dimensions are all set or all null (lexical only) */
  embedding_provider: string | null;
  embedding_model: string | null;
  /** 1..4096 */
  embedding_dimensions: number | null;
  bm25_k1: Generated<number>;
  bm25_b: Generated<number>;
  settings: JsonObjectColumn;
  created_by: string | null;
  deleted_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  /** 0008: the lowest membership role that sees the collection (see collection-access.ts) */
  min_role: Generated<MembershipRole>;
}

export interface DocumentsTable {
  id: Generated<string>;
  workspace_id: string;
  /** must belong to workspace_id (composite FK) */
  collection_id: string;
  /** unique per collection among live documents */
  external_id: string | null;
  title: string;
  filename: string | null;
  source_uri: string | null;
  mime: string | null;
  /** lowercase hex SHA-256 of the original bytes; required once status is searchable/ready */
  sha256: string | null;
  /** required once status is searchable/ready */
  bytes: number | null;
  status: Generated<DocumentStatus>;
  /** required when status = 'failed' */
  error: string | null;
  version: Generated<number>;
  metadata: JsonObjectColumn;
  chunk_count: GeneratedCount;
  token_count: GeneratedCount;
  created_by: string | null;
  processed_at: NullableTimestamp;
  deleted_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
  /** 0006: the title comes from the content (replaced when parsed), not from the caller */
  auto_title: Generated<boolean>;
}

/** Original bytes in parts 0..n (composite primary key document_id, part). */
export interface DocumentBlobsTable {
  document_id: string;
  workspace_id: string;
  part: number;
  data: Uint8Array;
  created_at: GeneratedTimestamp;
}

export interface ChunksTable {
  id: Generated<string>;
  workspace_id: string;
  collection_id: string;
  /** (document_id, collection_id, workspace_id) must match the document (composite FK) */
  document_id: string;
  /** 0-based, unique per document */
  ordinal: number;
  text: string;
  token_count: number;
  heading_path: Generated<string[]>;
  /** half-open [char_start, char_end) into the parsed document text */
  char_start: number;
  char_end: number;
  /** 1-based page span, when known */
  page: number | null;
  page_end: number | null;
  /** lowercase hex hash (SHA-256) of text */
  content_hash: string;
  /** write with sql`to_tsvector(${config}::regconfig, ${text})` */
  tsv: string;
  /** number of lexeme occurrences in tsv (BM25 document length) */
  lexeme_count: number;
  metadata: JsonObjectColumn;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/**
 * One vector per (chunk, model). Query an indexed dimension N as
 * `embedding::vector(N) <=> $1::vector(N)` with `dimensions = N` in the WHERE clause.
 */
export interface ChunkEmbeddingsTable {
  chunk_id: string;
  workspace_id: string;
  collection_id: string;
  model: string;
  dimensions: number;
  /** pgvector text format '[1,2,3]'; vector_dims must equal dimensions */
  embedding: string;
  /** chunks.content_hash at embedding time (stale when different) */
  content_hash: string;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** 0006: a vector per (workspace, model, hash of the embedded text); see migrations/0006_ingestion.sql */
export interface EmbeddingCacheTable {
  workspace_id: string;
  model: string;
  content_hash: string;
  dimensions: number;
  embedding: string;
  created_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------------------------------
// 0007_lexical_index: written only by the trigger on documents (searchable chunks only)

/** BM25 postings: one row per (chunk, distinct lexeme). */
/**
 * A document's range of chunk sequence numbers in its collection's lexical index (0011): chunk
 * `ordinal` n is number base + n. Dead ranges (the document left the index) wait for compaction.
 */
export interface LexicalRangesTable {
  workspace_id: string;
  collection_id: string;
  base: ColumnType<string, never, never>;
  chunk_count: ColumnType<number, never, never>;
  document_id: ColumnType<string, never, never>;
  live: ColumnType<boolean, never, boolean>;
  lexemes: ColumnType<string[] | null, never, string[] | null>;
}

/** One postings list: 8 bytes per posting (sequence number int4, tf int2, length int2), big-endian. */
export interface LexicalPostingsTable {
  id: ColumnType<string, never, never>;
  workspace_id: string;
  collection_id: string;
  lexeme: string;
  postings: number;
  first_seq: number;
  last_seq: number;
  merged: Generated<boolean>;
  data: Uint8Array;
}

/** N and total length of the searchable chunks, per collection. */
export interface CollectionStatsTable {
  collection_id: string;
  workspace_id: string;
  chunk_count: ColumnType<string, never, never>;
  total_length: ColumnType<string, never, never>;
  /** +1 on every change of the collection's postings */
  version: ColumnType<string, never, never>;
  /** +1 when a searchable document enters or leaves 'ready' (0009) */
  vectors_version: ColumnType<string, never, never>;
  /** Chunk sequence numbers handed out so far (0011) */
  next_seq: ColumnType<string, never, never>;
  updated_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------------------------------
// 0004_conversations_and_operations

export interface ConversationsTable {
  id: Generated<string>;
  workspace_id: string;
  user_id: string | null;
  /** the API key that started it (0009) */
  api_key_id: string | null;
  collection_ids: Generated<string[]>;
  title: string | null;
  deleted_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface MessagesTable {
  id: Generated<string>;
  workspace_id: string;
  conversation_id: string;
  role: MessageRole;
  status: Generated<MessageStatus>;
  content: Generated<string>;
  /** array of citation objects; write with JSON.stringify */
  citations: JsonArrayColumn;
  model: string | null;
  prompt_version: string | null;
  tokens_in: GeneratedCount;
  tokens_out: GeneratedCount;
  cost_usd: GeneratedNumeric;
  /** per stage, e.g. { retrieve: 12, generate: 840, total: 870 } */
  latency_ms: JsonObjectColumn;
  flags: JsonObjectColumn;
  request_id: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface FeedbackTable {
  id: Generated<string>;
  workspace_id: string;
  message_id: string;
  user_id: string | null;
  rating: FeedbackRating;
  comment: string | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface ReviewItemsTable {
  id: Generated<string>;
  workspace_id: string;
  message_id: string | null;
  feedback_id: string | null;
  status: Generated<ReviewStatus>;
  reason: string;
  assignee_id: string | null;
  resolved_by: string | null;
  resolution: NullableJsonObjectColumn;
  /** set exactly when status is resolved/dismissed */
  resolved_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** Append-only (UPDATE/DELETE refused by trigger, see 0004). */
export interface AuditLogTable {
  id: Generated<string>;
  /** null for instance-level events */
  workspace_id: string | null;
  actor_type: AuditActorType;
  actor_user_id: string | null;
  actor_api_key_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  data: JsonObjectColumn;
  created_at: GeneratedTimestamp;
}

export interface UsageEventsTable {
  id: Generated<string>;
  workspace_id: string;
  user_id: string | null;
  api_key_id: string | null;
  feature: UsageFeature;
  provider: string | null;
  model: string | null;
  tokens_in: GeneratedCount;
  tokens_out: GeneratedCount;
  cost_usd: GeneratedNumeric;
  latency_ms: number | null;
  /** per stage, e.g. { retrieve: 12, generate: 840, total: 870 } (0010) */
  stage_latency_ms: JsonObjectColumn;
  request_id: string | null;
  created_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------------------------------
// 0009_answers

/** Reviewed answers served first for the same or a near-identical question. */
export interface CuratedAnswersTable {
  id: Generated<string>;
  workspace_id: string;
  collection_ids: string[];
  question: string;
  question_key: string;
  question_terms: string[];
  answer: string;
  /** array of citation objects; write with JSON.stringify */
  citations: JsonArrayColumn;
  source_message_id: string | null;
  review_item_id: string | null;
  created_by: string | null;
  deleted_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

// ---------------------------------------------------------------------------------------------------

export interface DB {
  users: UsersTable;
  workspaces: WorkspacesTable;
  memberships: MembershipsTable;
  invitations: InvitationsTable;
  api_keys: ApiKeysTable;
  refresh_tokens: RefreshTokensTable;
  oidc_identities: OidcIdentitiesTable;
  collections: CollectionsTable;
  documents: DocumentsTable;
  document_blobs: DocumentBlobsTable;
  chunks: ChunksTable;
  chunk_embeddings: ChunkEmbeddingsTable;
  embedding_cache: EmbeddingCacheTable;
  lexical_ranges: LexicalRangesTable;
  lexical_postings: LexicalPostingsTable;
  collection_stats: CollectionStatsTable;
  conversations: ConversationsTable;
  messages: MessagesTable;
  feedback: FeedbackTable;
  review_items: ReviewItemsTable;
  audit_log: AuditLogTable;
  usage_events: UsageEventsTable;
  curated_answers: CuratedAnswersTable;
}

// Row / insert / update aliases

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;

export type Workspace = Selectable<WorkspacesTable>;
export type NewWorkspace = Insertable<WorkspacesTable>;
export type WorkspaceUpdate = Updateable<WorkspacesTable>;

export type Membership = Selectable<MembershipsTable>;
export type NewMembership = Insertable<MembershipsTable>;

export type Invitation = Selectable<InvitationsTable>;
export type NewInvitation = Insertable<InvitationsTable>;

export type ApiKey = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
export type ApiKeyUpdate = Updateable<ApiKeysTable>;

export type RefreshToken = Selectable<RefreshTokensTable>;
export type NewRefreshToken = Insertable<RefreshTokensTable>;

export type OidcIdentity = Selectable<OidcIdentitiesTable>;
export type NewOidcIdentity = Insertable<OidcIdentitiesTable>;

export type Collection = Selectable<CollectionsTable>;
export type NewCollection = Insertable<CollectionsTable>;
export type CollectionUpdate = Updateable<CollectionsTable>;

export type Document = Selectable<DocumentsTable>;
export type NewDocument = Insertable<DocumentsTable>;
export type DocumentUpdate = Updateable<DocumentsTable>;

export type DocumentBlob = Selectable<DocumentBlobsTable>;
export type NewDocumentBlob = Insertable<DocumentBlobsTable>;

export type Chunk = Selectable<ChunksTable>;
export type NewChunk = Insertable<ChunksTable>;

export type ChunkEmbedding = Selectable<ChunkEmbeddingsTable>;
export type NewChunkEmbedding = Insertable<ChunkEmbeddingsTable>;

export type Conversation = Selectable<ConversationsTable>;
export type NewConversation = Insertable<ConversationsTable>;
export type ConversationUpdate = Updateable<ConversationsTable>;

export type Message = Selectable<MessagesTable>;
export type NewMessage = Insertable<MessagesTable>;
export type MessageUpdate = Updateable<MessagesTable>;

export type Feedback = Selectable<FeedbackTable>;
export type NewFeedback = Insertable<FeedbackTable>;

export type ReviewItem = Selectable<ReviewItemsTable>;
export type NewReviewItem = Insertable<ReviewItemsTable>;
export type ReviewItemUpdate = Updateable<ReviewItemsTable>;

export type AuditLogEntry = Selectable<AuditLogTable>;
export type NewAuditLogEntry = Insertable<AuditLogTable>;

export type UsageEvent = Selectable<UsageEventsTable>;
export type NewUsageEvent = Insertable<UsageEventsTable>;
