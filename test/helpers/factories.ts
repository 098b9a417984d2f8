/**
 * Factories for integration tests: build a realistic tenant graph directly through the repositories'
 * tables (user → workspace → owner membership → collection → document → chunk → embedding), plus
 * helpers to assert how the database rejects a statement.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../src/platform/db/database.js';

export const DIMS = 512;
export const MODEL = 'test-embed-512';

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export interface PgError {
  code?: string;
  constraint?: string;
}

/** The error a statement is rejected with; fails the test if it succeeds. */
export async function sqlError(p: Promise<unknown>): Promise<PgError> {
  try {
    await p;
  } catch (error) {
    return error as PgError;
  }
  throw new Error('expected the database to reject the statement, but it succeeded');
}

/** The SQLSTATE a statement is rejected with; fails the test if it succeeds. */
export async function sqlState(p: Promise<unknown>): Promise<string | undefined> {
  return (await sqlError(p)).code;
}

/** pgvector text format: '[0.1,0.2,…]'. */
export const vectorText = (values: readonly number[]) => `[${values.join(',')}]`;

/** A unit-ish vector pointing along `axis`, with a little weight on the next axis. */
export function axisVector(axis: number, dims = DIMS): number[] {
  const values = new Array<number>(dims).fill(0);
  values[axis] = 1;
  values[(axis + 1) % dims] = 0.05;
  return values;
}

/** UUIDv7: version nibble 7, variant 10xx. */
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** The 48-bit Unix-millisecond timestamp of a UUIDv7. */
export const uuidV7Millis = (id: string) => parseInt(id.replaceAll('-', '').slice(0, 12), 16);

export interface Tenant {
  userId: string;
  workspaceId: string;
}
export interface DocumentRef {
  id: string;
  workspaceId: string;
  collectionId: string;
}
export interface ChunkRef {
  id: string;
  workspaceId: string;
  collectionId: string;
  documentId: string;
}

/** A user who owns a new workspace (user → workspace → owner membership). */
export async function createTenant(db: Db, slug: string): Promise<Tenant> {
  const user = await db
    .insertInto('users')
    .values({ email: `owner-${slug}@example.com`, display_name: `Owner of ${slug}` })
    .returning('id')
    .executeTakeFirstOrThrow();
  const workspace = await db
    .insertInto('workspaces')
    .values({ name: `Workspace ${slug}`, slug })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db
    .insertInto('memberships')
    .values({ workspace_id: workspace.id, user_id: user.id, role: 'owner' })
    .execute();
  return { userId: user.id, workspaceId: workspace.id };
}

export async function createCollection(db: Db, tenant: Tenant, name: string): Promise<string> {
  const row = await db
    .insertInto('collections')
    .values({
      workspace_id: tenant.workspaceId,
      name,
      embedding_provider: 'test',
      embedding_model: MODEL,
      embedding_dimensions: DIMS,
      created_by: tenant.userId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A ready document with its original bytes stored as one blob part. */
export async function createDocument(
  db: Db,
  tenant: Tenant,
  collectionId: string,
  title: string,
): Promise<DocumentRef> {
  const content = `# ${title}\n\nSome text about ${title}.`;
  const row = await db
    .insertInto('documents')
    .values({
      workspace_id: tenant.workspaceId,
      collection_id: collectionId,
      title,
      filename: `${title}.md`,
      mime: 'text/markdown',
      sha256: sha256(content),
      bytes: Buffer.byteLength(content),
      status: 'ready',
      created_by: tenant.userId,
      processed_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db
    .insertInto('document_blobs')
    .values({ document_id: row.id, workspace_id: tenant.workspaceId, part: 0, data: Buffer.from(content) })
    .execute();
  return { id: row.id, workspaceId: tenant.workspaceId, collectionId };
}

export async function createChunk(
  db: Db,
  doc: DocumentRef,
  ordinal: number,
  text: string,
): Promise<ChunkRef> {
  const charStart = ordinal * 1000;
  const row = await db
    .insertInto('chunks')
    .values({
      workspace_id: doc.workspaceId,
      collection_id: doc.collectionId,
      document_id: doc.id,
      ordinal,
      text,
      token_count: text.split(/\s+/).length,
      char_start: charStart,
      char_end: charStart + text.length,
      content_hash: sha256(text),
      tsv: sql<string>`to_tsvector('english', ${text})`,
      lexeme_count: sql<number>`(select coalesce(sum(cardinality(l.positions)), 0) from unnest(to_tsvector('english', ${text})) l)`,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, workspaceId: doc.workspaceId, collectionId: doc.collectionId, documentId: doc.id };
}

export async function embedChunk(
  db: Db,
  chunk: ChunkRef,
  values: readonly number[],
  model = MODEL,
): Promise<void> {
  await db
    .insertInto('chunk_embeddings')
    .values({
      chunk_id: chunk.id,
      workspace_id: chunk.workspaceId,
      collection_id: chunk.collectionId,
      model,
      dimensions: values.length,
      embedding: vectorText(values),
      content_hash: sha256(chunk.id),
    })
    .execute();
}

export async function countWhere(db: Db, table: string, column: string, value: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from ${sql.table(table)} where ${sql.ref(column)} = ${value}`.execute(db);
  return rows[0]!.n;
}
