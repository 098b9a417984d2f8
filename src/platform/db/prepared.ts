/**
 * Server mode: statements sent with parameters run as named prepared statements, prepared once per
 * connection, so PostgreSQL parses and plans them once instead of on every execution. kysely (and
 * pg-boss through `Database.executeSql`) send every statement unnamed, and for the short statements
 * of a write path the parse and plan are most of PostgreSQL's work: adding 390 documents took ~1.1 s
 * of its CPU unnamed and ~0.5 s named (`bench/` scratch A/B). After five executions PostgreSQL may
 * switch a statement to a generic plan when that is not costlier than the custom ones.
 *
 * Which statements: those with parameters, one command (no `;`) and no `*` in their text. `select *`
 * and `returning *` are left unnamed because a prepared statement's result columns are fixed: a
 * migration adding a column (by a newer replica in a rolling deploy) would make it fail with "cached
 * plan must not change result type". Explicit column lists are not affected. pg-boss's statements
 * (`larder_jobs.`) are left unnamed too: its job table is partitioned by queue name, and a generic
 * plan there keeps every partition (before PostgreSQL 16 each execution locks them all); with them
 * prepared, lexical ingestion measured ~7 % slower instead of faster.
 *
 * Bounded: each connection keeps at most `limit` statements (kysely's `in (…)` lists give one text
 * per length), least recently used first out, deallocated on the server. An evicted text gets a new
 * name when it comes back, so a `DEALLOCATE` can never meet a later statement of the same name.
 */
import type pg from 'pg';

/** Statements prepared per connection at most. */
export const PREPARED_PER_CONNECTION = 256;

/** Whether a statement's text may be prepared (see the module comment). */
export function preparable(text: string): boolean {
  return (
    text.length <= 16_384 &&
    !text.includes(';') &&
    !text.includes('*') &&
    text.includes('$1') &&
    !text.includes('larder_jobs.')
  );
}

/** The node-postgres internals this relies on (the cache of statements parsed on the connection). */
interface ConnectionInternals {
  parsedStatements: Record<string, string>;
}

type Query = (...args: unknown[]) => unknown;

/**
 * Makes `client` send preparable statements as named ones (call it once per new connection: the
 * pool's `connect` event). Returns the names it currently holds, for tests and diagnostics.
 */
export function prepareStatements(client: pg.Client, limit = PREPARED_PER_CONNECTION): () => string[] {
  const target = client as unknown as { query: Query; connection: ConnectionInternals };
  const send: Query = target.query.bind(client);
  /** Statement text → its name on this connection, least recently used first. */
  const names = new Map<string, string>();
  let next = 0;
  const evictOldest = () => {
    const [oldest] = names;
    if (!oldest) return;
    const [text, name] = oldest;
    names.delete(text);
    // Queued behind whatever the connection runs now, so nothing still using the name is cut short;
    // the name is never reused on this connection.
    (send(`deallocate ${name}`) as Promise<unknown>).then(
      () => Reflect.deleteProperty(target.connection.parsedStatements, name),
      () => undefined, // the connection failed: it and its statements are gone anyway
    );
  };
  target.query = (...args: unknown[]) => {
    const [text, values, ...rest] = args;
    if (typeof text !== 'string' || !Array.isArray(values) || !preparable(text)) return send(...args);
    let name = names.get(text);
    if (name === undefined) {
      name = `larder_${(next++).toString(36)}`;
      if (names.size >= limit) evictOldest();
    } else {
      names.delete(text);
    }
    names.set(text, name);
    return send({ name, text, values }, ...rest);
  };
  return () => [...names.values()];
}
