/**
 * The floor of framework overhead for the HTTP benchmark (bench/suites/http.ts): bare `node:http` + a
 * `pg` Pool serving the same endpoints, JSON shapes and API-key check as Larder, with nothing else
 * (no validation library, no hooks, no logging, no rate limit, no row-level security).
 *
 *   DATABASE_URL=postgres://… PORT=8081 node --import tsx bench/reference-node/server.ts
 *
 *   GET  /healthz
 *   GET  /v1/documents/{id}
 *   GET  /v1/collections/{id}/documents?limit=50   (first page only; `cursor` is not supported)
 *   POST /v1/search   { query, k?, collections? }: PostgreSQL `websearch_to_tsquery` + `ts_rank_cd`
 *
 * API keys: `Authorization: Bearer lk_…`, SHA-256 looked up in `api_keys` (not revoked, not expired,
 * workspace not deleted), cached in process for API_KEY_CACHE_TTL_MS (default 30 s: Larder's default
 * policy). Keys with a collection allowlist are refused (the benchmark does not use them); keys without
 * one see collections with `min_role` viewer or editor, as in Larder. Queries run as the connecting
 * user with an explicit `workspace_id` filter (Larder runs each request in a transaction as `larder_app`
 * under row-level security).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.POOL_SIZE ?? 10),
});
const CACHE_TTL_MS = Number(process.env.API_KEY_CACHE_TTL_MS ?? 30_000);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KEY_SHAPE = /^lk_live_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/;

interface Key {
  workspaceId: string;
  scopes: string[];
  collections: string[] | null;
  expiresAt: Date | null;
  cachedUntil: number;
}
const keys = new Map<string, Key>();

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

async function authenticate(req: http.IncomingMessage, scope: string): Promise<Key> {
  const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (!token) throw new HttpError(401, 'unauthenticated');
  if (!KEY_SHAPE.test(token)) throw new HttpError(401, 'invalid_token');
  const hash = createHash('sha256').update(token).digest('hex');
  const now = Date.now();
  let key = keys.get(hash);
  if (!key || key.cachedUntil <= now) {
    const { rows } = await pool.query<{
      workspace_id: string;
      scopes: string[];
      collections: string[] | null;
      expires_at: Date | null;
    }>(
      `select k.workspace_id, k.scopes, k.collections, k.expires_at
       from api_keys k join workspaces w on w.id = k.workspace_id
       where k.key_hash = $1 and k.revoked_at is null and w.deleted_at is null`,
      [hash],
    );
    const row = rows[0];
    if (!row) throw new HttpError(401, 'invalid_token');
    key = {
      workspaceId: row.workspace_id,
      scopes: row.scopes,
      collections: row.collections,
      expiresAt: row.expires_at,
      cachedUntil: now + CACHE_TTL_MS,
    };
    keys.set(hash, key);
  }
  if (key.expiresAt && key.expiresAt.getTime() <= now) throw new HttpError(401, 'invalid_token');
  if (!key.scopes.includes(scope)) throw new HttpError(403, 'forbidden');
  if (key.collections) throw new HttpError(403, 'forbidden');
  return key;
}

const DOCUMENT_COLUMNS = `d.id, d.collection_id, d.external_id, d.title, d.filename, d.source_uri, d.mime, d.sha256,
  d.bytes, d.status, d.error, d.version, d.metadata, d.chunk_count, d.token_count, d.processed_at,
  d.created_at, d.updated_at`;
/** Collections an API key without an allowlist sees (Larder's collection-access rule). */
const VISIBLE = `exists (select 1 from collections vc where vc.id = d.collection_id and vc.min_role in ('viewer', 'editor'))`;

interface DocumentRow {
  id: string;
  collection_id: string;
  external_id: string | null;
  title: string;
  filename: string | null;
  source_uri: string | null;
  mime: string | null;
  sha256: string | null;
  bytes: string | null;
  status: string;
  error: string | null;
  version: number;
  metadata: Record<string, unknown>;
  chunk_count: number;
  token_count: string;
  processed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const present = (r: DocumentRow) => ({
  id: r.id,
  collectionId: r.collection_id,
  externalId: r.external_id,
  title: r.title,
  filename: r.filename,
  sourceUri: r.source_uri,
  mime: r.mime,
  sha256: r.sha256,
  bytes: r.bytes === null ? null : Number(r.bytes),
  status: r.status,
  error: r.error,
  version: r.version,
  metadata: r.metadata,
  chunkCount: r.chunk_count,
  tokenCount: Number(r.token_count),
  processedAt: r.processed_at ? r.processed_at.toISOString() : null,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

async function getDocument(req: http.IncomingMessage, id: string): Promise<unknown> {
  const key = await authenticate(req, 'documents:read');
  if (!UUID.test(id)) throw new HttpError(400, 'validation_failed');
  const { rows } = await pool.query<DocumentRow>(
    `select ${DOCUMENT_COLUMNS} from documents d
     where d.workspace_id = $1 and d.id = $2 and d.deleted_at is null and ${VISIBLE}`,
    [key.workspaceId, id],
  );
  const row = rows[0];
  if (!row) throw new HttpError(404, 'not_found');
  return present(row);
}

async function listDocuments(req: http.IncomingMessage, collectionId: string, query: URLSearchParams) {
  const key = await authenticate(req, 'documents:read');
  const limit = Number(query.get('limit') ?? 50);
  if (!UUID.test(collectionId) || !Number.isInteger(limit) || limit < 1 || limit > 200)
    throw new HttpError(400, 'validation_failed');
  const found = await pool.query(
    `select 1 from collections where workspace_id = $1 and id = $2 and deleted_at is null
       and min_role in ('viewer', 'editor')`,
    [key.workspaceId, collectionId],
  );
  if (found.rowCount === 0) throw new HttpError(404, 'not_found');
  const { rows } = await pool.query<DocumentRow & { position_at: string }>(
    `select ${DOCUMENT_COLUMNS},
            to_char(d.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as position_at
     from documents d
     where d.workspace_id = $1 and d.collection_id = $2 and d.deleted_at is null
     order by d.created_at, d.id limit $3`,
    [key.workspaceId, collectionId, limit + 1],
  );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    data: page.map(present),
    nextCursor:
      rows.length > limit && last
        ? Buffer.from(`${last.position_at}|${last.id}`, 'utf8').toString('base64url')
        : null,
  };
}

async function search(req: http.IncomingMessage, body: string) {
  const key = await authenticate(req, 'search');
  let input: { query?: unknown; k?: unknown; collections?: unknown };
  try {
    input = JSON.parse(body) as typeof input;
  } catch {
    throw new HttpError(400, 'validation_failed');
  }
  const k = input.k === undefined ? 10 : input.k;
  const collections = input.collections ?? null;
  if (
    typeof input.query !== 'string' ||
    input.query.length === 0 ||
    typeof k !== 'number' ||
    !Number.isInteger(k) ||
    k < 1 ||
    k > 100 ||
    (collections !== null &&
      (!Array.isArray(collections) || !collections.every((c) => typeof c === 'string' && UUID.test(c))))
  )
    throw new HttpError(400, 'validation_failed');
  // Rank first, then build snippets for the k winners only.
  const { rows } = await pool.query<{
    id: string;
    document_id: string;
    collection_id: string;
    title: string;
    external_id: string | null;
    text: string;
    snippet: string;
    heading_path: string[];
    page: number | null;
    page_end: number | null;
    char_start: number;
    char_end: number;
    score: number;
  }>(
    `with ranked as (
       select c.id, c.document_id, c.collection_id, d.title, d.external_id, c.text, c.heading_path, c.page,
              c.page_end, c.char_start, c.char_end, col.text_search_config, q.q, ts_rank_cd(c.tsv, q.q) as score
       from chunks c
       join documents d on d.id = c.document_id
       join collections col on col.id = c.collection_id
       cross join lateral (select websearch_to_tsquery(col.text_search_config::regconfig, $2) as q) q
       where c.workspace_id = $1 and d.deleted_at is null and col.deleted_at is null
         and col.min_role in ('viewer', 'editor') and ($3::uuid[] is null or c.collection_id = any($3))
         and c.tsv @@ q.q
       order by score desc, c.id
       limit $4
     )
     select id, document_id, collection_id, title, external_id, text, heading_path, page, page_end,
            char_start, char_end, score,
            ts_headline(text_search_config::regconfig, text, q,
                        'StartSel=<mark>, StopSel=</mark>, MaxWords=35, MinWords=15, MaxFragments=2') as snippet
     from ranked order by score desc, id`,
    [key.workspaceId, input.query, collections, k],
  );
  return {
    mode: 'lexical',
    data: rows.map((r) => ({
      chunkId: r.id,
      documentId: r.document_id,
      collectionId: r.collection_id,
      documentTitle: r.title,
      externalId: r.external_id,
      text: r.text,
      snippet: r.snippet,
      headingPath: r.heading_path,
      page: r.page,
      pageEnd: r.page_end,
      charStart: r.char_start,
      charEnd: r.char_end,
      score: r.score,
    })),
    nextCursor: null,
    meta: { queryVectorCache: null },
  };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.once('end', () => {
      resolve(Buffer.concat(parts).toString('utf8'));
    });
    req.once('error', reject);
  });
}

async function route(req: http.IncomingMessage): Promise<unknown> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const parts = url.pathname.split('/');
  if (req.method === 'GET' && url.pathname === '/healthz') return { status: 'ok' };
  if (req.method === 'GET' && parts.length === 4 && parts[1] === 'v1' && parts[2] === 'documents')
    return getDocument(req, parts[3] ?? '');
  if (
    req.method === 'GET' &&
    parts.length === 5 &&
    parts[1] === 'v1' &&
    parts[2] === 'collections' &&
    parts[4] === 'documents'
  )
    return listDocuments(req, parts[3] ?? '', url.searchParams);
  if (req.method === 'POST' && url.pathname === '/v1/search') return search(req, await readBody(req));
  throw new HttpError(404, 'not_found');
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json') {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  route(req).then(
    (body) => {
      send(res, 200, body);
    },
    (error: unknown) => {
      if (error instanceof HttpError)
        send(res, error.status, { status: error.status, code: error.code }, 'application/problem+json');
      else {
        process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
        send(res, 500, { status: 500, code: 'internal' }, 'application/problem+json');
      }
    },
  );
});
server.keepAliveTimeout = 72_000;
server.listen(Number(process.env.PORT ?? 8081), process.env.HOST ?? '127.0.0.1');

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
