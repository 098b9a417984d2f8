/** Helpers for document tests: multipart bodies, waiting for processing, counting leftovers. */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { App } from '../../src/app.js';
import type { Db } from '../../src/platform/db/database.js';
import type { SignedUp } from './app.js';

export interface FilePart {
  filename: string;
  contentType?: string;
  data: Uint8Array | string;
}

/** A `multipart/form-data` body: the fields first, then the file (as Larder expects). */
export function multipartBody(fields: Record<string, string>, file?: FilePart) {
  const boundary = `----larder${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  if (file) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.filename}"\r\n` +
          `content-type: ${file.contentType ?? 'application/octet-stream'}\r\n\r\n`,
      ),
      Buffer.from(file.data),
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export const authHeaders = (s: SignedUp) => ({
  authorization: `Bearer ${s.token}`,
  'x-workspace-id': s.workspaceId,
});

export async function upload(
  app: App,
  s: SignedUp,
  collectionId: string,
  file: FilePart,
  fields: Record<string, string> = {},
) {
  const body = multipartBody(fields, file);
  return app.inject({
    method: 'POST',
    url: `/v1/collections/${collectionId}/documents`,
    headers: { ...authHeaders(s), 'content-type': body.contentType },
    payload: body.payload,
  });
}

export interface DocumentBody {
  id: string;
  collectionId: string;
  externalId: string | null;
  title: string;
  status: string;
  error: string | null;
  version: number;
  sha256: string;
  bytes: number;
  mime: string;
  chunkCount: number;
  metadata: Record<string, unknown>;
}

/** Polls a document until its status is one of `statuses` (the worker runs in the test process). */
export async function waitForStatus(
  app: App,
  s: SignedUp,
  id: string,
  statuses: string[] = ['ready', 'failed'],
  timeoutMs = 30_000,
): Promise<DocumentBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await app.inject({ method: 'GET', url: `/v1/documents/${id}`, headers: authHeaders(s) });
    const doc = res.json<DocumentBody>();
    if (statuses.includes(doc.status)) return doc;
    if (Date.now() > deadline) throw new Error(`document ${id} stayed ${doc.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Rows a document or collection could leave behind, by table. */
export async function leftovers(db: Db, where: { documentId?: string; collectionId?: string }) {
  const { rows } = await sql<{ documents: number; blobs: number; chunks: number; embeddings: number }>`
    select
      (select count(*)::int from documents d where d.id = ${where.documentId ?? null}::uuid or d.collection_id = ${where.collectionId ?? null}::uuid) as documents,
      (select count(*)::int from document_blobs b where b.document_id = ${where.documentId ?? null}::uuid
         or b.document_id not in (select id from documents)) as blobs,
      (select count(*)::int from chunks c where c.document_id = ${where.documentId ?? null}::uuid or c.collection_id = ${where.collectionId ?? null}::uuid) as chunks,
      (select count(*)::int from chunk_embeddings e where e.collection_id = ${where.collectionId ?? null}::uuid
         or e.chunk_id not in (select id from chunks)) as embeddings
  `.execute(db);
  return rows[0];
}
