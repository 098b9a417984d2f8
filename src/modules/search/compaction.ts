/**
 * Compaction of a collection's postings lists (migrations/0011_lexical_postings.sql). Search is exact
 * whatever the state of the lists; compaction keeps it fast and removes what deleted documents left:
 *
 *  1. purge: for each dead range (a document that left the index), rewrite the lists of its lexemes
 *     that hold its numbers without the dead postings, then forget the range. After this the deleted
 *     text is gone from the index, not only hidden.
 *  2. merge: the lists an ingest wrote (one per lexeme and document) are merged per lexeme with the
 *     lexeme's other lists by size tier: tier(p) = ⌊log₄ p⌋ of the postings p, and whenever a tier holds
 *     `fanIn` lists they become one list of a higher tier (size-tiered, as in LSM trees). A lexeme then
 *     keeps at most (fanIn − 1) lists per tier, a few dozen in all, and each posting is rewritten about
 *     log₄(df) times over the collection's life. Lists stop growing at `maxPostings`.
 *
 * Merging concatenates lists inside PostgreSQL (their order does not matter to scoring); purging
 * decodes in this process. Each batch is one transaction under a per-collection advisory lock, so
 * two compactions of a collection never interleave, and search (one snapshot) sees a batch entirely
 * or not at all. Ingestion only inserts new lists, so it never waits for compaction.
 */
import { sql, type Transaction } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import type { DB } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { POSTING_BYTES, postingsView } from './lexical.js';

type Trx = Transaction<DB>;

export interface CompactionOptions {
  /** Lists of one tier merged into one (default 4). */
  fanIn: number;
  /** Lists with this many postings are never merged further (default 65,536: 512 KB). */
  maxPostings: number;
  /** Lexemes merged per transaction (default 2,000). */
  lexemesPerBatch: number;
  /** Dead ranges purged per transaction (default 50). */
  rangesPerBatch: number;
  /** Batches per run at most; the rest waits for the next run (default 50). */
  maxBatches: number;
}

export const DEFAULT_COMPACTION: CompactionOptions = {
  fanIn: 4,
  maxPostings: 65_536,
  lexemesPerBatch: 2_000,
  rangesPerBatch: 50,
  maxBatches: 50,
};

export interface CompactionResult {
  /** Dead ranges purged (and postings removed with them). */
  rangesPurged: number;
  postingsPurged: number;
  /** Lists written by merging, and lists they replaced. */
  listsWritten: number;
  listsMerged: number;
  /** Work was left for another run (the batch limit was reached). */
  more: boolean;
}

export async function compactCollection(
  db: Db,
  workspaceId: string,
  collectionId: string,
  options: Partial<CompactionOptions> & { signal?: AbortSignal } = {},
): Promise<CompactionResult> {
  const o = { ...DEFAULT_COMPACTION, ...options };
  const result: CompactionResult = {
    rangesPurged: 0,
    postingsPurged: 0,
    listsWritten: 0,
    listsMerged: 0,
    more: false,
  };
  // Lexemes are merged in order; each batch starts after the last one's (see mergeBatch).
  let after = '';
  for (let batch = 0; ; batch++) {
    if (batch >= o.maxBatches || options.signal?.aborted) {
      result.more = true;
      break;
    }
    const done = await withTenant(db, workspaceId, async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${`lexical:${collectionId}`}, 0))`.execute(trx);
      const purged = await purgeBatch(trx, collectionId, o);
      if (purged) {
        result.rangesPurged += purged.ranges;
        result.postingsPurged += purged.postings;
        return false;
      }
      const merged = await mergeBatch(trx, workspaceId, collectionId, after, o);
      if (!merged) return true;
      after = merged.last;
      result.listsWritten += merged.written;
      result.listsMerged += merged.replaced;
      return false;
    });
    if (done) break;
  }
  return result;
}

/** Purges the oldest dead ranges; null when there are none. */
async function purgeBatch(
  trx: Trx,
  collectionId: string,
  o: CompactionOptions,
): Promise<{ ranges: number; postings: number } | null> {
  const { rows: dead } = await sql<{ base: number; chunk_count: number; lexemes: string[] | null }>`
    select base::int as base, chunk_count, lexemes from lexical_ranges
    where collection_id = ${collectionId}::uuid and not live order by base`.execute(trx);
  if (dead.length === 0) return null;
  const batch = dead.slice(0, o.rangesPerBatch);
  // Every dead posting a rewritten list holds goes, whichever range it belongs to.
  const mask = new Uint8Array(Math.max(...dead.map((r) => r.base + r.chunk_count)));
  for (const r of dead) mask.fill(1, r.base, r.base + r.chunk_count);
  const isDead = (seq: number) => mask[seq] === 1;
  const lexemes = [...new Set(batch.flatMap((r) => r.lexemes ?? []))];
  const { rows: lists } = await sql<{
    id: string;
    lexeme: string;
    first_seq: number;
    last_seq: number;
    data: Uint8Array;
  }>`
    select id::text as id, lexeme, first_seq, last_seq, data from lexical_postings
    where collection_id = ${collectionId}::uuid and lexeme = any(${lexemes}::text[])`.execute(trx);

  const rewritten: {
    id: string;
    lexeme: string;
    postings: number;
    first: number;
    last: number;
    data: Uint8Array;
  }[] = [];
  const emptied: { id: string; lexeme: string }[] = [];
  let removed = 0;
  for (const list of lists) {
    const overlaps = batch.some((r) => list.first_seq < r.base + r.chunk_count && list.last_seq >= r.base);
    if (!overlaps) continue;
    const view = postingsView(list.data);
    const kept = new Uint8Array(list.data.byteLength);
    let size = 0;
    let first = Infinity;
    let last = -Infinity;
    for (let at = 0; at < list.data.byteLength; at += POSTING_BYTES) {
      const seq = view.getInt32(at);
      if (isDead(seq)) continue;
      kept.set(list.data.subarray(at, at + POSTING_BYTES), size);
      size += POSTING_BYTES;
      first = Math.min(first, seq);
      last = Math.max(last, seq);
    }
    if (size === list.data.byteLength) continue;
    removed += (list.data.byteLength - size) / POSTING_BYTES;
    if (size === 0) emptied.push({ id: list.id, lexeme: list.lexeme });
    else
      rewritten.push({
        id: list.id,
        lexeme: list.lexeme,
        postings: size / POSTING_BYTES,
        first,
        last,
        data: kept.subarray(0, size),
      });
  }
  // Rows are addressed by their primary key (collection, lexeme, id).
  if (emptied.length > 0)
    await sql`
      delete from lexical_postings p
      using unnest(${emptied.map((e) => e.lexeme)}::text[], ${emptied.map((e) => e.id)}::bigint[]) as u(lexeme, id)
      where p.collection_id = ${collectionId}::uuid and p.lexeme = u.lexeme and p.id = u.id`.execute(trx);
  if (rewritten.length > 0) {
    const { blob, offsets } = packLists(rewritten.map((r) => r.data));
    await sql`
      update lexical_postings p
      set postings = u.postings, first_seq = u.first_seq, last_seq = u.last_seq,
          data = substring(${blob}::bytea from u.offset_ for u.postings * ${POSTING_BYTES})
      from unnest(${rewritten.map((r) => r.lexeme)}::text[], ${rewritten.map((r) => r.id)}::bigint[],
                  ${rewritten.map((r) => r.postings)}::int[], ${rewritten.map((r) => r.first)}::int[],
                  ${rewritten.map((r) => r.last)}::int[], ${offsets}::int[])
           as u(lexeme, id, postings, first_seq, last_seq, offset_)
      where p.collection_id = ${collectionId}::uuid and p.lexeme = u.lexeme and p.id = u.id`.execute(trx);
  }
  await sql`
    delete from lexical_ranges
    where collection_id = ${collectionId}::uuid and base = any(${batch.map((r) => r.base)}::bigint[])`.execute(
    trx,
  );
  return { ranges: batch.length, postings: removed };
}

/**
 * Lists to write in one statement: one byte string and the 1-based offset of each list in it (for
 * `substring(blob from offset for length)`), instead of a bytea array parameter per list.
 */
export function packLists(lists: readonly Uint8Array[]): { blob: Buffer; offsets: number[] } {
  const offsets: number[] = [];
  let at = 1;
  for (const list of lists) {
    offsets.push(at);
    at += list.byteLength;
  }
  return { blob: Buffer.concat(lists), offsets };
}

interface ListInfo {
  id: string;
  lexeme: string;
  postings: number;
  merged: boolean;
}

/**
 * Merges the lists of the next lexemes (after `after`, in order) that received new ones; null when no
 * lexeme did. Walking in order matters: the index of unmerged lists keeps entries for the lists merged
 * away until vacuum, and starting every batch from the beginning would step over all of them again.
 */
async function mergeBatch(
  trx: Trx,
  workspaceId: string,
  collectionId: string,
  after: string,
  o: CompactionOptions,
): Promise<{ written: number; replaced: number; last: string } | null> {
  const { rows: fresh } = await sql<{ lexeme: string }>`
    select distinct lexeme from lexical_postings
    where collection_id = ${collectionId}::uuid and not merged and lexeme > ${after}
    order by lexeme
    limit ${o.lexemesPerBatch}`.execute(trx);
  if (fresh.length === 0) return null;
  const { rows: lists } = await sql<ListInfo>`
    select id::text as id, lexeme, postings, merged from lexical_postings
    where collection_id = ${collectionId}::uuid and lexeme = any(${fresh.map((r) => r.lexeme)}::text[])`.execute(
    trx,
  );
  const byLexeme = new Map<string, ListInfo[]>();
  for (const list of lists) {
    const group = byLexeme.get(list.lexeme);
    if (group) group.push(list);
    else byLexeme.set(list.lexeme, [list]);
  }
  const ids: string[] = [];
  const lexemes: string[] = [];
  const groups: number[] = [];
  let group = 0;
  for (const [lexeme, of] of byLexeme) {
    for (const members of mergePlan(of, o)) {
      for (const member of members) {
        ids.push(member);
        lexemes.push(lexeme);
        groups.push(group);
      }
      group++;
    }
  }
  // Delete the members and insert each group's concatenation, in one statement (new ids: no conflict).
  await sql`
    with plan as (select * from unnest(${lexemes}::text[], ${ids}::bigint[], ${groups}::int[]) as p(lexeme, id, grp)),
    gone as (
      delete from lexical_postings l using plan p
      where l.collection_id = ${collectionId}::uuid and l.lexeme = p.lexeme and l.id = p.id
      returning l.lexeme, l.postings, l.first_seq, l.last_seq, l.data, p.grp
    )
    insert into lexical_postings (workspace_id, collection_id, lexeme, postings, first_seq, last_seq, merged, data)
    select ${workspaceId}::uuid, ${collectionId}::uuid, min(lexeme), sum(postings), min(first_seq), max(last_seq),
           true, string_agg(data, ''::bytea order by first_seq)
    from gone group by grp`.execute(trx);
  return { written: group, replaced: ids.length, last: fresh.at(-1)?.lexeme ?? after };
}

const tier = (postings: number) => Math.floor(Math.log2(Math.max(postings, 1)) / 2);

/**
 * Which of one lexeme's lists to merge, as groups of list ids (each group becomes one merged list):
 * the new (unmerged) lists first, then any tier holding `fanIn` lists, repeatedly. A group of one is
 * an unmerged list that only gets marked merged.
 */
export function mergePlan(
  lists: ListInfo[],
  o: Pick<CompactionOptions, 'fanIn' | 'maxPostings'>,
): string[][] {
  interface Node {
    ids: string[];
    postings: number;
    rewritten: boolean;
  }
  const nodes: Node[] = [];
  // The new lists become one (or several, at the size cap).
  let fresh: Node | undefined;
  for (const list of lists.filter((l) => !l.merged).sort((a, b) => a.postings - b.postings)) {
    if (fresh && fresh.postings + list.postings > o.maxPostings) {
      nodes.push(fresh);
      fresh = undefined;
    }
    fresh ??= { ids: [], postings: 0, rewritten: true };
    fresh.ids.push(list.id);
    fresh.postings += list.postings;
  }
  if (fresh) nodes.push(fresh);
  for (const list of lists.filter((l) => l.merged))
    nodes.push({ ids: [list.id], postings: list.postings, rewritten: false });

  for (let changed = true; changed;) {
    changed = false;
    const tiers = new Map<number, Node[]>();
    for (const node of nodes) {
      if (node.postings >= o.maxPostings) continue;
      const t = tier(node.postings);
      const same = tiers.get(t);
      if (same) same.push(node);
      else tiers.set(t, [node]);
    }
    for (const same of tiers.values()) {
      if (same.length < o.fanIn) continue;
      const total = same.reduce((n, node) => n + node.postings, 0);
      if (total > o.maxPostings) continue;
      for (const node of same) nodes.splice(nodes.indexOf(node), 1);
      nodes.push({ ids: same.flatMap((n) => n.ids), postings: total, rewritten: true });
      changed = true;
      break;
    }
  }
  return nodes.filter((n) => n.rewritten).map((n) => n.ids);
}
