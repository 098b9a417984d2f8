/**
 * Opaque keyset-pagination cursors: base64url of `<created_at in UTC, microseconds>|<id>`.
 * Clients must not build or parse them; the format may change. Select the position with
 * `positionAt` (below) so no precision is lost through JavaScript dates.
 */
import { sql } from 'kysely';
import { AppError } from '../errors.js';

/** A row's place in `(created_at, id)` order; `createdAt` is UTC text with microseconds. */
export interface KeysetPosition {
  createdAt: string;
  id: string;
}

/** Selects `created_at` as the cursor's UTC microsecond text. */
export const positionAt = sql<string>`to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`;

const POSITION =
  /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function encodeCursor(position: KeysetPosition): string {
  return Buffer.from(`${position.createdAt}|${position.id}`, 'utf8').toString('base64url');
}

/** The position a cursor names, or null when it is not one of ours (never throws). */
export function decodeCursor(cursor: string): KeysetPosition | null {
  if (!BASE64URL.test(cursor)) return null;
  const match = POSITION.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match?.[1] || !match[2]) return null;
  const createdAt = match[1];
  // A real calendar time: PostgreSQL would otherwise reject 2024-02-31 with a 500.
  const ms = Date.parse(`${createdAt.slice(0, 23)}Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 19) !== createdAt.slice(0, 19)) return null;
  return { createdAt, id: match[2] };
}

/**
 * The position a request's `cursor` names, or undefined without one; a cursor that is not ours is a
 * 400 `validation_failed` naming the `cursor` query parameter.
 */
export function cursorPosition(cursor: string | undefined): KeysetPosition | undefined {
  if (cursor === undefined) return undefined;
  const position = decodeCursor(cursor);
  if (position === null)
    throw new AppError('validation_failed', {
      detail: 'cursor is not a nextCursor returned by this API',
      extensions: {
        errors: [{ in: 'querystring', path: '/cursor', message: 'is not a cursor from this API' }],
      },
    });
  return position;
}

/** `WHERE` for ascending keyset pages: rows after `position` in `(created_at, id)` order. */
export const afterPosition = (position: KeysetPosition) =>
  sql<boolean>`(created_at, id) > (${position.createdAt}::timestamp at time zone 'UTC', ${position.id}::uuid)`;

/** Cuts the `limit + 1` rows a page query fetched into the page and the next page's cursor. */
export function keysetPage<T extends { id: string; position_at: string }>(
  rows: T[],
  limit: number,
): { data: T[]; nextCursor: string | null } {
  const data = rows.slice(0, limit);
  const last = data.at(-1);
  return {
    data,
    nextCursor:
      rows.length > limit && last ? encodeCursor({ createdAt: last.position_at, id: last.id }) : null,
  };
}
