/**
 * A process's cache of decoded postings lists (`lexical_postings` rows), least recently used first
 * out, bounded in bytes (`LARDER_SEARCH_POSTINGS_CACHE_MB`).
 *
 * The common terms of a corpus have the longest lists, and most questions share a few of them: at
 * 100k chunks a question reads ~1 MB of lists, ~5 ms to read in PostgreSQL and as much again to
 * receive and decode here. A cached list is not sent again: the ranking's statement still reads every
 * list row of the query's lexemes (under the workspace's row-level security, in the ranking's
 * snapshot) but returns only the id and version of a row whose version the cache holds.
 *
 * Correctness rests on the version: a row's `xmin` (the transaction that wrote this version of it)
 * and its posting count. Compaction's purge rewrites `data` in place (an UPDATE: a new `xmin`); a
 * merge deletes rows and inserts new ones (new ids). A cached entry is used only for a row the
 * statement returned, so it can neither leak another workspace's list nor revive a deleted one; an
 * entry whose row is gone simply ages out.
 */

interface Entry {
  version: string;
  data: Buffer;
  /** Its `byGroup` key: collection and lexeme. */
  group: string;
}

/** Bytes charged per entry besides its data (key, version, map slots): an estimate. */
const ENTRY_OVERHEAD = 160;

const groupKey = (collectionId: string, lexeme: string) => `${collectionId}\u0000${lexeme}`;

export class PostingsCache {
  /** By row id; a Map iterates in insertion order, so re-inserting on use makes it an LRU. */
  readonly #entries = new Map<string, Entry>();
  readonly #byGroup = new Map<string, Set<string>>();
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The (row id, version) of every cached list of these lexemes of a collection. */
  known(collectionId: string, lexemes: readonly string[]): { ids: string[]; versions: string[] } {
    const ids: string[] = [];
    const versions: string[] = [];
    for (const lexeme of lexemes)
      for (const id of this.#byGroup.get(groupKey(collectionId, lexeme)) ?? []) {
        const entry = this.#entries.get(id);
        if (entry) {
          ids.push(id);
          versions.push(entry.version);
        }
      }
    return { ids, versions };
  }

  /** The cached data of a row at this version (and marks it recently used), or undefined. */
  get(id: string, version: string): Buffer | undefined {
    const entry = this.#entries.get(id);
    if (entry?.version !== version) return undefined;
    this.#entries.delete(id);
    this.#entries.set(id, entry);
    return entry.data;
  }

  /** Caches a row's data at a version, evicting the least recently used beyond the budget. */
  set(collectionId: string, lexeme: string, id: string, version: string, data: Buffer): void {
    this.#remove(id);
    const cost = data.byteLength + ENTRY_OVERHEAD;
    if (cost > this.maxBytes) return;
    const group = groupKey(collectionId, lexeme);
    this.#entries.set(id, { version, data, group });
    let ids = this.#byGroup.get(group);
    if (!ids) this.#byGroup.set(group, (ids = new Set()));
    ids.add(id);
    this.#bytes += cost;
    for (const oldest of this.#entries.keys()) {
      if (this.#bytes <= this.maxBytes) break;
      this.#remove(oldest);
    }
  }

  #remove(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#bytes -= entry.data.byteLength + ENTRY_OVERHEAD;
    const ids = this.#byGroup.get(entry.group);
    ids?.delete(id);
    if (ids?.size === 0) this.#byGroup.delete(entry.group);
  }
}
