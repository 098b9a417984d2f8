import { TextBuilder } from './builder.js';
import type { ParsedDocument } from './types.js';

export const JSON_MIME = 'application/json';

/**
 * Parses JSON into `record` blocks: one per element of a top-level array, or one per key of a
 * top-level object. Each record is compact `key: value` lines; nested values are inlined as JSON.
 *
 * @example
 *   parseJson('[{"id":1,"name":"Ada"}]').text; // 'id: 1\nname: Ada'
 */
export function parseJson(source: string): ParsedDocument {
  const value: unknown = JSON.parse(source);
  const builder = new TextBuilder();

  if (Array.isArray(value)) {
    for (const element of value as unknown[]) builder.add('record', renderRecord(element));
  } else if (isObject(value)) {
    for (const [key, entry] of Object.entries(value)) {
      builder.add(
        'record',
        isObject(entry) ? renderRecord(entry, `${key}.`) : `${key}: ${renderValue(entry)}`,
      );
    }
  } else {
    builder.add('record', renderValue(value));
  }

  const kind = Array.isArray(value) ? 'array' : typeof value;
  return {
    text: builder.text,
    blocks: builder.blocks,
    mime: JSON_MIME,
    metadata: { kind, records: builder.blocks.length },
  };
}

function renderRecord(value: unknown, prefix = ''): string {
  if (!isObject(value)) return renderValue(value);
  return Object.entries(value)
    .map(([key, entry]) => `${prefix}${key}: ${renderValue(entry)}`)
    .join('\n');
}

/** Strings as-is (one line), arrays of scalars as a list, anything nested as compact JSON. */
function renderValue(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\s+/g, ' ').trim();
  if (Array.isArray(value) && value.every((item) => !isObject(item) && !Array.isArray(item))) {
    return (value as unknown[]).map((item) => renderValue(item)).join(', ');
  }
  return JSON.stringify(value);
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
