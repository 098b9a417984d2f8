"""FastAPI + asyncpg twin of Larder's read endpoints, for the HTTP benchmark (bench/suites/http.ts).

Idiomatic async FastAPI: an asyncpg pool opened in the lifespan, the API key checked by a dependency,
Pydantic-free dict responses serialised by the standard library's json (no orjson). Run it with
uvloop and httptools, one process:

    DATABASE_URL=postgres://... /usr/bin/python3 -m uvicorn app:app --app-dir bench/reference-fastapi \
        --host 127.0.0.1 --port 8082 --loop uvloop --http httptools --no-access-log --log-level warning

Same endpoints, JSON shapes and API-key rule as Larder (see README.md for what differs).
"""

import base64
import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Optional
from uuid import UUID

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

POOL_SIZE = int(os.environ.get("POOL_SIZE", "10"))
CACHE_TTL_S = int(os.environ.get("API_KEY_CACHE_TTL_MS", "30000")) / 1000
KEY_SHAPE = re.compile(r"^lk_live_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")

DOCUMENT_COLUMNS = """d.id, d.collection_id, d.external_id, d.title, d.filename, d.source_uri, d.mime,
  d.sha256, d.bytes, d.status, d.error, d.version, d.metadata, d.chunk_count, d.token_count,
  d.processed_at, d.created_at, d.updated_at"""
# Collections an API key without an allowlist sees (Larder's collection-access rule).
VISIBLE = """exists (select 1 from collections vc where vc.id = d.collection_id
  and vc.min_role in ('viewer', 'editor'))"""


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Resources:
    """Process-wide state: the pool (opened in the lifespan) and the API-key cache."""

    pool: asyncpg.Pool
    keys: dict[str, "ApiKey"] = {}


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


# FastAPI 0.92 (Debian bookworm) predates the `lifespan=` parameter: start-up and shutdown events.
@app.on_event("startup")
async def open_pool() -> None:
    Resources.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=1, max_size=POOL_SIZE, init=init_connection
    )


@app.on_event("shutdown")
async def close_pool() -> None:
    await Resources.pool.close()


def iso(value: Optional[datetime]) -> Optional[str]:
    """Like JavaScript's toISOString: UTC, milliseconds, Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def present(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "collectionId": str(r["collection_id"]),
        "externalId": r["external_id"],
        "title": r["title"],
        "filename": r["filename"],
        "sourceUri": r["source_uri"],
        "mime": r["mime"],
        "sha256": r["sha256"],
        "bytes": r["bytes"],
        "status": r["status"],
        "error": r["error"],
        "version": r["version"],
        "metadata": r["metadata"],
        "chunkCount": r["chunk_count"],
        "tokenCount": r["token_count"],
        "processedAt": iso(r["processed_at"]),
        "createdAt": iso(r["created_at"]),
        "updatedAt": iso(r["updated_at"]),
    }


class ApiKey:
    def __init__(self, workspace_id: UUID, scopes: list[str], collections, expires_at, cached_until):
        self.workspace_id = workspace_id
        self.scopes = scopes
        self.collections = collections
        self.expires_at = expires_at
        self.cached_until = cached_until


async def api_key(authorization: Optional[str] = Header(None)) -> ApiKey:
    """SHA-256 of the bearer key looked up in api_keys; cached like Larder (30 s by default)."""
    match = re.match(r"^Bearer\s+(\S+)$", authorization or "", re.IGNORECASE)
    if not match:
        raise HTTPException(401, "unauthenticated")
    token = match.group(1)
    if not KEY_SHAPE.match(token):
        raise HTTPException(401, "invalid_token")
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = time.monotonic()
    cache: dict[str, ApiKey] = Resources.keys
    key = cache.get(digest)
    if key is None or key.cached_until <= now:
        row = await Resources.pool.fetchrow(
            """select k.workspace_id, k.scopes, k.collections, k.expires_at
               from api_keys k join workspaces w on w.id = k.workspace_id
               where k.key_hash = $1 and k.revoked_at is null and w.deleted_at is null""",
            digest,
        )
        if row is None:
            raise HTTPException(401, "invalid_token")
        key = ApiKey(row["workspace_id"], row["scopes"], row["collections"], row["expires_at"], now + CACHE_TTL_S)
        cache[digest] = key
    if key.expires_at is not None and key.expires_at <= datetime.now(timezone.utc):
        raise HTTPException(401, "invalid_token")
    if key.collections is not None:
        # Allowlisted keys are not used by the benchmark.
        raise HTTPException(403, "forbidden")
    return key


def require(scope: str):
    async def check(key: ApiKey = Depends(api_key)) -> ApiKey:
        if scope not in key.scopes:
            raise HTTPException(403, "forbidden")
        return key

    return check


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/v1/documents/{document_id}")
async def get_document(document_id: UUID, key: ApiKey = Depends(require("documents:read"))):
    row = await Resources.pool.fetchrow(
        f"""select {DOCUMENT_COLUMNS} from documents d
            where d.workspace_id = $1 and d.id = $2 and d.deleted_at is null and {VISIBLE}""",
        key.workspace_id,
        document_id,
    )
    if row is None:
        raise HTTPException(404, "not_found")
    return present(row)


@app.get("/v1/collections/{collection_id}/documents")
async def list_documents(
    collection_id: UUID,
    limit: int = Query(50, ge=1, le=200),
    key: ApiKey = Depends(require("documents:read")),
):
    async with Resources.pool.acquire() as conn:
        found = await conn.fetchval(
            """select 1 from collections where workspace_id = $1 and id = $2 and deleted_at is null
               and min_role in ('viewer', 'editor')""",
            key.workspace_id,
            collection_id,
        )
        if found is None:
            raise HTTPException(404, "not_found")
        rows = await conn.fetch(
            f"""select {DOCUMENT_COLUMNS},
                       to_char(d.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as position_at
                from documents d
                where d.workspace_id = $1 and d.collection_id = $2 and d.deleted_at is null
                order by d.created_at, d.id limit $3""",
            key.workspace_id,
            collection_id,
            limit + 1,
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit and page:
        last = page[-1]
        raw = f"{last['position_at']}|{last['id']}".encode()
        next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"data": [present(r) for r in page], "nextCursor": next_cursor}


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=100)
    collections: Optional[list[UUID]] = Field(None, max_items=50)
    mode: str = "lexical"


# Rank first, then build snippets for the k winners only. PostgreSQL's ts_rank_cd, not Larder's BM25.
SEARCH_SQL = """
with ranked as (
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
from ranked order by score desc, id
"""


@app.post("/v1/search")
async def search(body: SearchBody, key: ApiKey = Depends(require("search"))):
    rows = await Resources.pool.fetch(SEARCH_SQL, key.workspace_id, body.query, body.collections, body.k)
    return {
        "mode": "lexical",
        "data": [
            {
                "chunkId": str(r["id"]),
                "documentId": str(r["document_id"]),
                "collectionId": str(r["collection_id"]),
                "documentTitle": r["title"],
                "externalId": r["external_id"],
                "text": r["text"],
                "snippet": r["snippet"],
                "headingPath": list(r["heading_path"]),
                "page": r["page"],
                "pageEnd": r["page_end"],
                "charStart": r["char_start"],
                "charEnd": r["char_end"],
                "score": r["score"],
            }
            for r in rows
        ],
        "nextCursor": None,
        "meta": {"queryVectorCache": None},
    }
