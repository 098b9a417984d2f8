/**
 * Keeps secrets out of audit `data`. The audit log is kept for years and read by workspace admins, so a
 * password, token or key written there would outlive every rotation. Rather than throw (an audit write
 * must not turn a user's action into a 500), offending entries are dropped and their paths listed in
 * `redactedFields`, which makes the mistake visible in the log itself without repeating the secret.
 *
 * Dropped: entries whose name says secret (`password`, `newPassword`, `clientSecret`, `refreshToken`,
 * `apiKey`, `key`, `passwordHash`, …) at any depth, and string values shaped like Larder's own
 * credentials (API keys, refresh tokens, JWTs, `Bearer …`). Identifiers and metadata of credentials
 * stay: `apiKeyId`, `familyId`, `tokenType`, `keyPrefix` end in a harmless word.
 *
 * @example
 *   sanitiseAuditData({ email: 'a@example.com', password: 'hunter2', apiKeyId: 'k1' })
 *   // → { email: 'a@example.com', apiKeyId: 'k1', redactedFields: ['password'] }
 */
import type { JsonObject, JsonValue } from '../../platform/db/schema.js';

/** Anywhere in a name: these are always secrets (or too close to one to keep). */
const SECRET_ANYWHERE = /pass(?:word|wd|phrase)|secret|credential/i;
/** As the last word of a name (`refreshToken`, `api_key`, `passwordHash`): the value is the secret. */
const SECRET_LAST_WORDS = new Set([
  'token',
  'tokens',
  'key',
  'keys',
  'apikey',
  'pwd',
  'hash',
  'jwt',
  'otp',
  'authorization',
  'cookie',
]);
/** Values shaped like credentials Larder issues, whatever they are called. */
const SECRET_VALUES = [
  /^lk_[a-z]+_[0-9a-f]{8}_[A-Za-z0-9_-]{16,}$/, // API key
  /^l[a-z]_[A-Za-z0-9_-]{32,}$/, // refresh / invitation token
  /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/, // JWT
  /^bearer\s/i,
];
const MAX_DEPTH = 8;

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** Whether an entry called `name` would hold a secret. */
export function isSecretName(name: string): boolean {
  if (SECRET_ANYWHERE.test(name)) return true;
  const last = words(name).at(-1);
  return last !== undefined && SECRET_LAST_WORDS.has(last);
}

function toJson(value: unknown, path: string, redacted: string[], depth: number): JsonValue | undefined {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      if (SECRET_VALUES.some((shape) => shape.test(value))) {
        redacted.push(path);
        return undefined;
      }
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'object': {
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (depth >= MAX_DEPTH) return null; // also ends reference cycles
      if (Array.isArray(value)) {
        return value.map((item, i) => toJson(item, `${path}[${i}]`, redacted, depth + 1) ?? null);
      }
      return toObject(value as Record<string, unknown>, path, redacted, depth + 1);
    }
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined; // dropped, as JSON.stringify does
  }
}

function toObject(
  source: Record<string, unknown>,
  prefix: string,
  redacted: string[],
  depth: number,
): JsonObject {
  const out: JsonObject = {};
  for (const [name, value] of Object.entries(source)) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (isSecretName(name)) {
      redacted.push(path);
      continue;
    }
    const json = toJson(value, path, redacted, depth);
    if (json !== undefined) out[name] = json;
  }
  return out;
}

/** JSON-safe copy of `data` without secrets; see the module comment for what is dropped. */
export function sanitiseAuditData(data: Record<string, unknown>): JsonObject {
  const redacted: string[] = [];
  const out = toObject(data, '', redacted, 0);
  if (redacted.length > 0) out.redactedFields = redacted;
  return out;
}
