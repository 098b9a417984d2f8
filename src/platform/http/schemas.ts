/** Schema helpers shared by routes. */
import Type, { type TSchema } from 'typebox';

/**
 * `schema` or `null`, for request bodies. Null comes first on purpose: Fastify's ajv coerces types, and
 * tried first a number (or string) branch would turn `null` into `0` (or `""`) before the null branch
 * is reached, so "clear this field" would silently become "set it to 0".
 */
export function Nullable<T extends TSchema>(schema: T, options: Record<string, unknown> = {}) {
  return Type.Union([Type.Null(), schema], options);
}
