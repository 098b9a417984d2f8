/**
 * Hybrid-fusion sweep on a BEIR dataset already imported into a collection (for example by
 * `larder eval --keep`). Each query is retrieved once per list, a lexical and a vector search with
 * k = candidates (50, the service's default for k 10), and every setting fuses those two lists with
 * `src/modules/search/fusion.ts` and keeps the top 10: lexical alone, vector alone, RRF (rrfK × vector
 * weight) and convex combinations (normalisation × α). Prints one JSON line per setting with document-
 * and chunk-level metrics (`scoreRun` of eval/run.ts) on all queries and on their first and second half
 * (a split check against over-fitting), and the per-query comparison with lexical alone: queries whose
 * answer entered / left the top 10, and the chunk MRR@10 difference with a 95 % paired-bootstrap interval.
 *
 *   DATABASE_URL=… npx tsx bench/hybrid-sweep.ts ../shared/eval/covidqa <collection-name> [queries=all] [out.jsonl]
 *
 * SWEEP_CACHE=file.json stores the retrieved lists (or reads them if the file exists), to re-fuse without
 * searching again. The first 20 queries are also searched in hybrid mode to check that RRF here equals the
 * service's fusion.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { loadConfig } from '../src/config.js';
import { embeddingOptionsFromConfig, EmbeddingProviders } from '../src/ai/embeddings/index.js';
import { openDatabase } from '../src/platform/db/database.js';
import { createLogger } from '../src/platform/logger.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import { SearchService } from '../src/modules/search/service.js';
import { fuse, type FusionOptions, type ScoredItem } from '../src/modules/search/fusion.js';
import { loadBeir, type BeirTopics } from '../src/modules/search/eval/beir.js';
import { scoreRun, type ModeMetrics, type QueryRun, type RunHit } from '../src/modules/search/eval/run.js';

const CANDIDATES = 50;
const K = 10;
const CHECKED = 20;

const [dir = '../shared/eval/covidqa', name = '', limit = 'all', out = ''] = process.argv.slice(2);

/** One query's two lists and what scoring needs of each chunk in them. */
interface Retrieved {
  queryId: string;
  lexical: ScoredItem[];
  vector: ScoredItem[];
  ms: { lexical: number; vector: number };
}
interface Cache {
  collection: string;
  retrieved: Retrieved[];
  chunks: [string, RunHit][];
}

type Setting = { mode: 'lexical' | 'vector' } | ({ mode: 'hybrid' } & FusionOptions & { label: string });

const settings: Setting[] = [
  { mode: 'lexical' },
  { mode: 'vector' },
  ...[60, 20, 5].flatMap((k) =>
    [1, 0.5, 0.3, 0.15].map((vector) => ({
      mode: 'hybrid' as const,
      method: 'rrf' as const,
      k,
      weights: { lexical: 1, vector },
      label: `rrf k ${k} w ${vector}`,
    })),
  ),
  ...(
    [
      ['minmax', undefined, 'zero'],
      ['tmm', -1, 'zero'],
      ['tmm', 0, 'zero'],
      ['tmm', -1, 'listMin'],
      ['tmm', 0, 'listMin'],
    ] as const
  ).flatMap(([normalisation, cosineLower, missing]) =>
    [...(missing === 'listMin' ? [0.3, 0.4] : []), 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95].map(
      (alpha) => ({
        mode: 'hybrid' as const,
        method: 'convex' as const,
        normalisation,
        cosineLower,
        missing,
        alpha,
        label:
          `convex ${normalisation}${cosineLower === undefined ? '' : ` lower ${cosineLower}`}` +
          `${missing === 'zero' ? '' : ` missing ${missing}`} α ${alpha}`,
      }),
    ),
  ),
];

const dataset = await loadBeir(dir);
const queries = new Map([...dataset.queries].slice(0, limit === 'all' ? undefined : Number(limit)));
const texts = new Map(dataset.corpus.map((d) => [d.id, d.text]));
const canonical = new Map(dataset.corpus.map((d) => [d.id, d.id]));
const cachePath = process.env.SWEEP_CACHE;

const cache: Cache =
  cachePath && existsSync(cachePath)
    ? (JSON.parse(await readFile(cachePath, 'utf8')) as Cache)
    : await retrieve();
if (cachePath && !existsSync(cachePath)) await writeFile(cachePath, JSON.stringify(cache));
const chunks = new Map(cache.chunks);
const retrieved = cache.retrieved.filter((r) => queries.has(r.queryId));

/** Searches every query once in lexical and once in vector mode (and a few in hybrid, as a check). */
async function retrieve(): Promise<Cache> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const database = await openDatabase(config, createLogger(config));
  const embeddings = new EmbeddingProviders(embeddingOptionsFromConfig(config));
  try {
    const collection = await database.db
      .selectFrom('collections')
      .select(['id', 'workspace_id'])
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    const ws: WorkspaceContext = {
      id: collection.workspace_id,
      role: 'owner',
      permissions: new Set<Permission>(['search']),
    };
    const search = new SearchService(database.db, embeddings);
    const request = (query: string, mode: 'lexical' | 'vector' | 'hybrid', k: number) =>
      search.search(ws, { query, collections: [collection.id], k, mode, candidates: CANDIDATES });
    const chunks = new Map<string, RunHit>();
    const list = async (query: string, mode: 'lexical' | 'vector') => {
      const started = performance.now();
      const { hits } = await request(query, mode, CANDIDATES);
      const ms = performance.now() - started;
      for (const h of hits)
        chunks.set(h.chunkId, { externalId: h.externalId, charStart: h.charStart, charEnd: h.charEnd });
      const items = hits.map((h) => ({ id: h.chunkId, score: h.scores[mode] ?? Number.NaN }));
      return { items, ms };
    };
    const out: Retrieved[] = [];
    let mismatches = 0;
    for (const [queryId, query] of queries) {
      const lexical = await list(query, 'lexical');
      const vector = await list(query, 'vector');
      out.push({
        queryId,
        lexical: lexical.items,
        vector: vector.items,
        ms: { lexical: lexical.ms, vector: vector.ms },
      });
      if (out.length <= CHECKED) {
        const { hits } = await request(query, 'hybrid', K);
        const mine = fuse(lexical.items, vector.items, { method: 'rrf' }).slice(0, K);
        if (hits.map((h) => h.chunkId).join() !== mine.map((m) => m.id).join()) mismatches += 1;
      }
      if (out.length % 100 === 0) process.stderr.write(`retrieved ${out.length}/${queries.size}\n`);
    }
    process.stderr.write(
      `check: RRF here vs the service's hybrid on the first ${Math.min(CHECKED, out.length)} queries: ` +
        `${mismatches} differ\n`,
    );
    return { collection: name, retrieved: out, chunks: [...chunks] };
  } finally {
    await embeddings.close();
    await database.close();
  }
}

/** The top 10 of a setting for one query. */
function top(setting: Setting, r: Retrieved): string[] {
  switch (setting.mode) {
    case 'lexical':
      return r.lexical.slice(0, K).map((i) => i.id);
    case 'vector':
      return r.vector.slice(0, K).map((i) => i.id);
    case 'hybrid':
      return fuse(r.lexical, r.vector, setting)
        .slice(0, K)
        .map((i) => i.id);
  }
}

const runOf = (setting: Setting, r: Retrieved): QueryRun => ({
  queryId: r.queryId,
  hits: top(setting, r).map((id) => {
    const hit = chunks.get(id);
    if (!hit) throw new Error(`chunk ${id} not retrieved`);
    return hit;
  }),
  ms: 0,
});

const topicsOf = (ids: readonly string[]): BeirTopics => {
  const keep = new Set(ids);
  const pick = <V>(m: ReadonlyMap<string, V>) => new Map([...m].filter(([id]) => keep.has(id)));
  return {
    ...dataset,
    queries: pick(dataset.queries),
    qrels: pick(dataset.qrels),
    answers: dataset.answers && pick(dataset.answers),
  };
};

const summary = (m: ModeMetrics) => ({
  queries: m.queries,
  ndcgAt10: m.ndcgAt10,
  recallAt10: m.recallAtK,
  mrrAt10: m.mrrAt10,
  answerAt10: m.answers?.containedAtK ?? null,
  overlapAt10: m.answers?.overlapAtK ?? null,
  chunkMrr: m.answers?.mrrAt10 ?? null,
});

const ids = retrieved.map((r) => r.queryId);
const half = Math.ceil(ids.length / 2);
const parts = {
  all: topicsOf(ids),
  firstHalf: topicsOf(ids.slice(0, half)),
  secondHalf: topicsOf(ids.slice(half)),
};
const single = new Map(ids.map((id) => [id, topicsOf([id])]));
const options = { k: K, texts, canonical };

/** Per query: answer in the top 10 (0/1) and chunk reciprocal rank; undefined without a usable span. */
function perQuery(runs: QueryRun[]): Map<string, { contained: number; rr: number }> {
  const out = new Map<string, { contained: number; rr: number }>();
  for (const run of runs) {
    const topics = single.get(run.queryId);
    const a = topics && scoreRun(topics, [run], options).answers;
    if (a?.queries) out.set(run.queryId, { contained: a.containedAtK ?? 0, rr: a.mrrAt10 ?? 0 });
  }
  return out;
}

/** Deterministic PRNG (mulberry32) for the bootstrap. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pairedBootstrap(diffs: readonly number[], samples = 2000): [number, number] {
  const next = random(42);
  const means: number[] = [];
  for (let s = 0; s < samples; s++) {
    let sum = 0;
    for (const _ of diffs) sum += diffs[Math.floor(next() * diffs.length)] ?? 0;
    means.push(sum / diffs.length);
  }
  means.sort((a, b) => a - b);
  return [means[Math.floor(0.025 * samples)] ?? 0, means[Math.floor(0.975 * samples)] ?? 0];
}

const r4 = (n: number) => Math.round(n * 1e4) / 1e4;
const lexicalPerQuery = perQuery(retrieved.map((r) => runOf({ mode: 'lexical' }, r)));
const lines: string[] = [
  JSON.stringify({
    meta: {
      dataset: dir,
      collection: cache.collection,
      queries: ids.length,
      halves: [half, ids.length - half],
      candidates: CANDIDATES,
      k: K,
      latencyMs: {
        lexicalMean: r4(retrieved.reduce((s, r) => s + r.ms.lexical, 0) / retrieved.length),
        vectorMean: r4(retrieved.reduce((s, r) => s + r.ms.vector, 0) / retrieved.length),
      },
    },
  }),
];
process.stdout.write(`${lines[0] ?? ''}\n`);
for (const setting of settings) {
  const runs = retrieved.map((r) => runOf(setting, r));
  const metrics = Object.fromEntries(
    Object.entries(parts).map(([part, topics]) => [part, summary(scoreRun(topics, runs, options))]),
  );
  const mine = perQuery(runs);
  let gained = 0;
  let lost = 0;
  const diffs: number[] = [];
  for (const [queryId, base] of lexicalPerQuery) {
    const m = mine.get(queryId) ?? { contained: 0, rr: 0 };
    if (m.contained > base.contained) gained += 1;
    if (m.contained < base.contained) lost += 1;
    diffs.push(m.rr - base.rr);
  }
  const [low, high] = pairedBootstrap(diffs);
  const { label, mode, ...fusion } = { label: setting.mode, ...setting };
  const row = {
    setting: label,
    mode,
    ...fusion,
    ...metrics,
    vsLexical: {
      answerGained: gained,
      answerLost: lost,
      chunkMrrDelta: r4(diffs.reduce((s, d) => s + d, 0) / Math.max(1, diffs.length)),
      chunkMrrDelta95: [r4(low), r4(high)],
    },
  };
  const line = JSON.stringify(row);
  lines.push(line);
  process.stdout.write(`${line}\n`);
}
if (out) await writeFile(out, `${lines.join('\n')}\n`);
