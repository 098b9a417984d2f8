/** TypeBox schemas of the audit API (they feed the OpenAPI document). */
import Type from 'typebox';
import { DEFAULT_AUDIT_PAGE } from './service.js';

const Uuid = Type.String({ format: 'uuid' });
const nullable = <T extends Type.TSchema>(schema: T, description: string) =>
  Type.Union([schema, Type.Null()], { description });

export const AuditEventSchema = Type.Object(
  {
    id: Uuid,
    workspaceId: nullable(Uuid, 'The workspace the event belongs to'),
    action: Type.String({
      description:
        'Dotted verb naming what happened, e.g. `auth.signup`, `api_key.created`, `api_key.revoked`',
      examples: ['api_key.created'],
    }),
    actor: Type.Object(
      {
        type: Type.Enum(['user', 'api_key', 'system', 'anonymous'], {
          description: '`system`: Larder itself (jobs, CLI); `anonymous`: an unauthenticated caller',
        }),
        userId: nullable(Uuid, 'The acting user (null for other actors, or once the user is deleted)'),
        apiKeyId: nullable(Uuid, 'The acting API key (null for other actors, or once the key is deleted)'),
      },
      { description: 'Who did it' },
    ),
    target: nullable(
      Type.Object({
        type: Type.String({ description: 'Kind of object', examples: ['api_key'] }),
        id: nullable(Type.String(), 'Its id (text: not every target has a uuid)'),
      }),
      'What it was done to, when the action has an object',
    ),
    ip: nullable(Type.String(), 'Client address as the server saw it (after trusted proxies)'),
    userAgent: nullable(Type.String(), 'The `User-Agent` header, truncated to 512 characters'),
    requestId: nullable(Type.String(), 'The request id (`X-Request-Id`), to find the request in the logs'),
    data: Type.Object(
      {},
      {
        additionalProperties: true,
        description:
          'Action-specific details (e.g. `name` and `scopes` of a key). Never secrets: entries named like one are dropped and listed in `redactedFields`.',
      },
    ),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { description: 'One audited action' },
);

export const AuditQuerySchema = Type.Object(
  {
    action: Type.Optional(
      Type.String({
        pattern: '^[a-z0-9_.]+\\*?$',
        maxLength: 200,
        description: 'An exact action, or a prefix ending in `*`',
        examples: ['auth.*', 'api_key.revoked'],
      }),
    ),
    actorUserId: Type.Optional(Type.String({ format: 'uuid', description: 'Events done by this user' })),
    targetType: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, examples: ['api_key'], description: 'Kind of target' }),
    ),
    targetId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'Events about this object (with targetType)',
      }),
    ),
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Events at or after this time' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Events before this time' })),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 200, default: DEFAULT_AUDIT_PAGE, description: 'Page size' }),
    ),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: '`nextCursor` of the previous page (opaque)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const AuditPageSchema = Type.Object({
  data: Type.Array(AuditEventSchema, { description: 'Newest first' }),
  nextCursor: nullable(Type.String(), 'Pass as `cursor` for the next (older) page; null on the last page'),
});

export type AuditEventBody = Type.Static<typeof AuditEventSchema>;
