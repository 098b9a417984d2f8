/**
 * Documents of a collection.
 *
 *   POST   /v1/collections/{id}/documents   add: multipart upload, or JSON { text | url | json } (documents:write)
 *   GET    /v1/collections/{id}/documents   list with filters, cursor-paginated (documents:read)
 *   GET    /v1/documents/{id}               one (documents:read)
 *   PATCH  /v1/documents/{id}               title / metadata (documents:write)
 *   DELETE /v1/documents/{id}               with bytes, chunks and embeddings (documents:write)
 *   GET    /v1/documents/{id}/content       the original bytes (documents:read)
 *   GET    /v1/documents/{id}/chunks        the chunks with their spans (documents:read)
 *   POST   /v1/documents/{id}/reprocess     parse, chunk and embed again (documents:write)
 */
import { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { actingUserId, requireWorkspace } from '../../platform/auth/access.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../../platform/http/problem.js';
import { NullableResult } from '../../platform/http/schemas.js';
import { auditContext } from '../audit/context.js';
import { type AddDocumentInput, type DocumentRow, DocumentService } from './service.js';

const Uuid = Type.String({ format: 'uuid' });
const Status = Type.Enum(['queued', 'parsing', 'searchable', 'ready', 'failed']);
const Metadata = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Free-form JSON object, filterable (containment)',
});
const Title = Type.String({ minLength: 1, maxLength: 500 });
const ExternalId = Type.String({
  minLength: 1,
  maxLength: 1000,
  description:
    'Your stable id for the document (e.g. a path); unique per collection. Re-sending it replaces the content.',
});

const DocumentSchema = Type.Object({
  id: Uuid,
  collectionId: Uuid,
  externalId: NullableResult(Type.String()),
  title: Type.String(),
  filename: NullableResult(Type.String()),
  sourceUri: NullableResult(Type.String()),
  mime: NullableResult(Type.String()),
  sha256: NullableResult(Type.String()),
  bytes: NullableResult(Type.Integer()),
  status: Status,
  error: NullableResult(Type.String(), { description: 'Why processing failed (status `failed`)' }),
  version: Type.Integer({ description: 'Goes up each time the content is replaced or reprocessed' }),
  metadata: Metadata,
  chunkCount: Type.Integer(),
  tokenCount: Type.Integer(),
  processedAt: NullableResult(Type.String({ format: 'date-time' })),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const presentDocument = (r: DocumentRow) => ({
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
  metadata: r.metadata as Record<string, unknown>,
  chunkCount: r.chunk_count,
  tokenCount: Number(r.token_count),
  processedAt: r.processed_at ? r.processed_at.toISOString() : null,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const AddResultSchema = Type.Object({
  outcome: Type.Enum(['created', 'updated', 'unchanged', 'duplicate', 'requeued'], {
    description:
      '`created`: new document queued; `updated`: same externalId, new content, re-queued; `unchanged`: same externalId and content; `requeued`: same externalId and content, but its processing had failed, so it is queued again; `duplicate`: the same bytes are already in the collection (that document is returned)',
  }),
  document: DocumentSchema,
});

const TextMime = Type.Enum(['text/plain', 'text/markdown', 'text/html', 'text/csv', 'application/json'], {
  description: 'How to read `text` (default: detected from the content, plain text otherwise)',
});
const JsonAdd = Type.Object(
  {
    text: Type.Optional(Type.String({ minLength: 1, description: 'The document’s content as text' })),
    url: Type.Optional(
      Type.String({
        format: 'uri',
        maxLength: 4000,
        description: 'Fetch the document from this http(s) URL',
      }),
    ),
    json: Type.Optional(Type.Unknown({ description: 'A JSON value stored and indexed as a JSON document' })),
    mime: Type.Optional(TextMime),
    filename: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    title: Type.Optional(Title),
    externalId: Type.Optional(ExternalId),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

/** Largest JSON body of the add route; bigger content goes through a multipart upload (streamed). */
export const JSON_ADD_LIMIT_BYTES = 16 * 1024 * 1024;

const MULTIPART_FIELDS = new Set(['title', 'externalId', 'metadata']);

const read = { access: { permission: 'documents:read' as const } };
const write = { access: { permission: 'documents:write' as const } };
const IdParams = Type.Object({ id: Uuid });

const invalidField = (path: string, message: string) =>
  new AppError('validation_failed', {
    detail: `${path.slice(1)} ${message}`,
    extensions: { errors: [{ in: 'body', path, message }] },
  });

function parseMetadataField(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw invalidField('/metadata', 'must be a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw invalidField('/metadata', 'must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** Reads a multipart upload: fields `title`, `externalId`, `metadata` (JSON), then one file part. */
async function multipartInput(request: FastifyRequest, limit: number): Promise<AddDocumentInput> {
  const file = await request.file({
    // One byte over the limit, so the spool (not busboy) reports it as a clear 413.
    limits: { fileSize: limit + 1, files: 1, fields: 10, fieldSize: 64 * 1024, parts: 12 },
    throwFileSizeLimit: false,
  });
  if (!file) throw invalidField('/file', 'is required: send the document as a file part');
  const fields: Record<string, string> = {};
  for (const [name, entry] of Object.entries(file.fields)) {
    const field = Array.isArray(entry) ? entry[0] : entry;
    if (field?.type !== 'field') continue;
    if (!MULTIPART_FIELDS.has(name))
      throw invalidField(`/${name}`, 'is not a known field (title, externalId, metadata, then the file)');
    fields[name] = String(field.value);
  }
  if (fields.title !== undefined && (fields.title.length === 0 || fields.title.length > 500))
    throw invalidField('/title', 'must be 1–500 characters');
  if (fields.externalId !== undefined && (fields.externalId.length === 0 || fields.externalId.length > 1000))
    throw invalidField('/externalId', 'must be 1–1000 characters');
  const declared = file.mimetype && file.mimetype !== 'application/octet-stream' ? file.mimetype : undefined;
  return {
    content: file.file,
    filename: file.filename || undefined,
    mime: declared,
    title: fields.title,
    externalId: fields.externalId,
    metadata: fields.metadata === undefined ? undefined : parseMetadataField(fields.metadata),
  };
}

export const documentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app.deps;
  const documents = new DocumentService(app.deps.database.db, app.deps.jobs, app.deps.events, {
    uploadLimitBytes: config.uploadLimitBytes,
    urlFetchTimeoutMs: config.urlFetchTimeoutMs,
    allowPrivateUrls: config.urlAllowPrivate,
  });
  await app.register(multipart, { limits: { fileSize: config.uploadLimitBytes + 1 } });
  const tags = ['documents'];

  app.post(
    '/v1/collections/:id/documents',
    {
      config: write,
      bodyLimit: Math.min(JSON_ADD_LIMIT_BYTES, config.uploadLimitBytes * 2),
      schema: {
        tags,
        summary: 'Add a document (upload, URL, text or JSON)',
        description: [
          'Send **either** `multipart/form-data` with optional fields `title`, `externalId`, `metadata` (a JSON object as text) **before** one file part — streamed, up to `LARDER_UPLOAD_LIMIT_BYTES` (default 100 MB) —',
          '**or** `application/json` with exactly one of `text`, `url` or `json` (up to 16 MB; larger content: upload it).',
          'Processing is asynchronous: the document starts `queued`; follow `status` (`parsing` → `searchable` → `ready`, or `failed` with `error`).',
          'Re-sending an `externalId` with new content replaces the document; identical bytes are never processed twice.',
          'Errors: 413 `payload_too_large`, 415 `unsupported_media_type` (a format no parser reads), 422 `unprocessable_document` (empty), 400 `url_not_allowed` (private address, bad scheme), 422 `url_fetch_failed`.',
        ].join(' '),
        params: IdParams,
        body: { content: { 'application/json': { schema: JsonAdd } } } as unknown as typeof JsonAdd,
        response: {
          200: AddResultSchema,
          201: AddResultSchema,
          ...problemResponses(400, 401, 403, 404, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const ws = requireWorkspace(request);
      const createdBy = actingUserId(request);
      const audit = auditContext(request);
      const collectionId = request.params.id;
      let result;
      if (request.isMultipart()) {
        const input = await multipartInput(request, config.uploadLimitBytes);
        result = await documents.add(ws, createdBy, collectionId, input, audit);
      } else {
        const body = request.body as typeof request.body | undefined;
        if (body === undefined)
          throw new AppError('unsupported_media_type', {
            detail: 'Send multipart/form-data (a file upload) or application/json ({ text | url | json })',
          });
        const given = (['text', 'url', 'json'] as const).filter((k) => body[k] !== undefined);
        if (given.length !== 1)
          throw new AppError('validation_failed', {
            detail: 'send exactly one of text, url or json',
            extensions: {
              errors: [{ in: 'body', path: '', message: 'must have exactly one of text, url, json' }],
            },
          });
        const details = {
          title: body.title,
          externalId: body.externalId,
          metadata: body.metadata,
          filename: body.filename,
        };
        if (body.url !== undefined) {
          result = await documents.addFromUrl(
            ws,
            createdBy,
            collectionId,
            { ...details, url: body.url },
            audit,
          );
        } else {
          const text = body.text ?? JSON.stringify(body.json, null, 2);
          result = await documents.add(
            ws,
            createdBy,
            collectionId,
            {
              ...details,
              content: Buffer.from(text, 'utf8'),
              mime: body.text === undefined ? 'application/json' : body.mime,
            },
            audit,
          );
        }
      }
      const created = result.outcome === 'created';
      if (created) void reply.header('location', `/v1/documents/${result.document.id}`);
      return reply
        .code(created ? 201 : 200)
        .send({ outcome: result.outcome, document: presentDocument(result.document) });
    },
  );

  app.get(
    '/v1/collections/:id/documents',
    {
      config: read,
      schema: {
        tags,
        summary: 'List the documents of a collection (oldest first)',
        params: IdParams,
        querystring: Type.Object(
          {
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: 200 })),
            status: Type.Optional(Type.Array(Status, { maxItems: 5, description: 'Repeat for several' })),
            mime: Type.Optional(Type.String({ maxLength: 200 })),
            externalId: Type.Optional(Type.String({ maxLength: 1000 })),
            metadata: Type.Optional(
              Type.String({
                maxLength: 4000,
                description: 'JSON object the metadata must contain, e.g. {"team":"legal"}',
              }),
            ),
            createdAfter: Type.Optional(Type.String({ format: 'date-time' })),
            createdBefore: Type.Optional(Type.String({ format: 'date-time' })),
            updatedAfter: Type.Optional(Type.String({ format: 'date-time' })),
            updatedBefore: Type.Optional(Type.String({ format: 'date-time' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            data: Type.Array(DocumentSchema),
            nextCursor: NullableResult(Type.String(), {
              description: 'Pass as `cursor` for the next page',
            }),
          }),
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const { limit, cursor, metadata, ...filters } = request.query;
      const page = await documents.list(
        requireWorkspace(request),
        request.params.id,
        { ...filters, metadata: metadata === undefined ? undefined : parseMetadataQuery(metadata) },
        { limit, cursor },
      );
      return { data: page.data.map(presentDocument), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/documents/:id',
    {
      config: read,
      schema: {
        tags,
        summary: 'Get a document',
        params: IdParams,
        response: { 200: DocumentSchema, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) => presentDocument(await documents.get(requireWorkspace(request), request.params.id)),
  );

  app.patch(
    '/v1/documents/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Change a document’s title or metadata (metadata is replaced)',
        params: IdParams,
        body: Type.Object(
          { title: Type.Optional(Title), metadata: Type.Optional(Metadata) },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: DocumentSchema, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request) =>
      presentDocument(
        await documents.update(
          requireWorkspace(request),
          request.params.id,
          request.body,
          auditContext(request),
        ),
      ),
  );

  app.delete(
    '/v1/documents/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Delete a document with its bytes, chunks and embeddings',
        params: IdParams,
        response: { 204: Type.Null(), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await documents.delete(requireWorkspace(request), request.params.id, auditContext(request));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/documents/:id/content',
    {
      config: read,
      schema: {
        tags,
        summary: 'Download the original bytes',
        description: 'Served as an attachment with a sandboxing Content-Security-Policy.',
        params: IdParams,
        response: problemResponses(400, 401, 403, 404),
      },
    },
    async (request, reply) => {
      const { document, parts } = await documents.content(requireWorkspace(request), request.params.id);
      const name = document.filename ?? document.id;
      return reply
        .type(document.mime ?? 'application/octet-stream')
        .header('content-length', String(document.bytes ?? 0))
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`)
        .header('content-security-policy', "sandbox; default-src 'none'")
        .header('x-content-type-options', 'nosniff')
        .send(Readable.from(parts));
    },
  );

  app.get(
    '/v1/documents/:id/chunks',
    {
      config: read,
      schema: {
        tags,
        summary: 'The chunks of a document, in order, with their spans into the extracted text',
        params: IdParams,
        querystring: Type.Object(
          {
            limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
            after: Type.Optional(Type.Integer({ minimum: -1, description: 'Ordinal to continue after' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            data: Type.Array(
              Type.Object({
                id: Uuid,
                ordinal: Type.Integer(),
                text: Type.String(),
                tokenCount: Type.Integer(),
                headingPath: Type.Array(Type.String()),
                charStart: Type.Integer(),
                charEnd: Type.Integer(),
                page: NullableResult(Type.Integer()),
                pageEnd: NullableResult(Type.Integer()),
              }),
            ),
            nextAfter: NullableResult(Type.Integer()),
          }),
          ...problemResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const page = await documents.chunks(requireWorkspace(request), request.params.id, {
        limit: request.query.limit,
        after: request.query.after,
      });
      return {
        data: page.data.map((c) => ({
          id: c.id,
          ordinal: c.ordinal,
          text: c.text,
          tokenCount: c.token_count,
          headingPath: c.heading_path,
          charStart: c.char_start,
          charEnd: c.char_end,
          page: c.page,
          pageEnd: c.page_end,
        })),
        nextAfter: page.nextAfter,
      };
    },
  );

  app.post(
    '/v1/documents/:id/reprocess',
    {
      config: write,
      schema: {
        tags,
        summary: 'Parse, chunk and embed the document again',
        params: IdParams,
        response: { 202: DocumentSchema, ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) =>
      reply
        .code(202)
        .send(
          presentDocument(
            await documents.reprocess(requireWorkspace(request), request.params.id, auditContext(request)),
          ),
        ),
  );
};

function parseMetadataQuery(value: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new AppError('validation_failed', {
    detail: 'metadata must be a JSON object',
    extensions: { errors: [{ in: 'querystring', path: '/metadata', message: 'must be a JSON object' }] },
  });
}
