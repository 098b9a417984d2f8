/**
 * Hybrid-fusion parameter sweep on a BEIR dataset already imported into a collection (for example by
 * `larder eval --keep`). Prints document- and chunk-level metrics per (rrfK, vector weight) setting.
 *
 *   DATABASE_URL=… npx tsx bench/hybrid-sweep.ts ../shared/eval/covidqa <collection-name> [queries=300]
 */
import { loadConfig } from '../src/config.js';
import { embeddingOptionsFromConfig, EmbeddingProviders } from '../src/ai/embeddings/index.js';
import { openDatabase } from '../src/platform/db/database.js';
import { createLogger } from '../src/platform/logger.js';
import type { WorkspaceContext } from '../src/platform/auth/access.js';
import type { Permission } from '../src/platform/auth/permissions.js';
import { SearchService } from '../src/modules/search/service.js';
import { loadBeir } from '../src/modules/search/eval/beir.js';
import { scoreRun, type QueryRun } from '../src/modules/search/eval/run.js';

const [dir = '../shared/eval/covidqa', name = '', limit = '300'] = process.argv.slice(2);
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
  const dataset = await loadBeir(dir);
  const queries = new Map([...dataset.queries].slice(0, Number(limit)));
  const texts = new Map(dataset.corpus.map((d) => [d.id, d.text]));
  const canonical = new Map(dataset.corpus.map((d) => [d.id, d.id]));
  const search = new SearchService(database.db, embeddings);
  const settings: { mode: 'lexical' | 'vector' | 'hybrid'; rrfK?: number; vector?: number }[] = [
    { mode: 'lexical' },
    { mode: 'vector' },
    ...[60, 20].flatMap((rrfK) =>
      [1, 0.5, 0.3, 0.15].map((vector) => ({ mode: 'hybrid' as const, rrfK, vector })),
    ),
  ];
  const results = [];
  for (const s of settings) {
    const runs: QueryRun[] = [];
    for (const [queryId, query] of queries) {
      const started = performance.now();
      const { hits } = await search.search(ws, {
        query,
        collections: [collection.id],
        k: 10,
        mode: s.mode,
        ...(s.rrfK === undefined ? {} : { rrfK: s.rrfK }),
        ...(s.vector === undefined ? {} : { weights: { lexical: 1, vector: s.vector } }),
      });
      runs.push({ queryId, hits, ms: performance.now() - started });
    }
    const topics = { ...dataset, queries };
    const m = scoreRun(topics, runs, { k: 10, texts, canonical });
    const row = {
      ...s,
      ndcgAt10: m.ndcgAt10,
      mrrAt10: m.mrrAt10,
      answerAt10: m.answers?.containedAtK,
      chunkMrr: m.answers?.mrrAt10,
    };
    results.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
} finally {
  await embeddings.close();
  await database.close();
}
