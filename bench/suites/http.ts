/**
 * `npm run bench -- http`: three implementations of the same read endpoints over the same database
 * and data, run alternately under the same load generator with fixed connections and duration.
 *
 *  - larder:  `node bin/larder.js serve` (Fastify, TypeBox validation, access hook, rate limit, RLS);
 *  - fastapi: bench/reference-fastapi/app.py (FastAPI + asyncpg on uvloop/httptools, Debian's Python);
 *  - node:    bench/reference-node/server.ts (bare node:http + pg): the floor of framework overhead.
 *
 * Endpoints: GET /v1/documents/{id}, GET /v1/collections/{id}/documents?limit=50 (first page),
 * POST /v1/search (lexical), GET /healthz, each with the same API key (`documents:read search`).
 * Every server is one process pinned to CPU 0 with `taskset`; wrk runs pinned to CPU 1 (PostgreSQL is
 * not pinned and shares the machine). Per round and endpoint: req/s, p50 and p99 latency, and the
 * server process's CPU seconds per 1,000 requests (utime + stime from /proc/<pid>/stat).
 *
 * Prerequisites (Debian): `apt-get install -y wrk python3-fastapi python3-uvicorn python3-asyncpg
 * python3-uvloop python3-httptools`; --quick installs them when run as root.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { pool } from '../../src/cli/ingest.js';
import { loadConfig } from '../../src/config.js';
import { createUser } from '../../src/modules/admin/service.js';
import { ApiKeyService } from '../../src/modules/api-keys/service.js';
import { CollectionService } from '../../src/modules/collections/service.js';
import { DocumentService } from '../../src/modules/documents/service.js';
import { ROLE_PERMISSIONS } from '../../src/platform/auth/permissions.js';
import { createLogger } from '../../src/platform/logger.js';
import { openRuntime } from '../../src/runtime.js';
import {
  type Measurement,
  type Ratio,
  type Suite,
  type SuiteContext,
  type SuiteResult,
  alternate,
  ratio,
} from '../lib/harness.js';
import {
  allowedCpus,
  commandExists,
  cpuSeconds,
  ensureDebianPackages,
  freePort,
  hasTaskset,
  type LoadRequest,
  type LoadResult,
  loadGenerator,
  type ServerProcess,
  spawnPinned,
  waitForReady,
} from '../lib/http.js';
import { statusCounts } from '../lib/pg.js';
import { Rng } from '../lib/prng.js';
import { compactCollection } from '../../src/modules/search/compaction.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PYTHON = '/usr/bin/python3';
const PYTHON_PACKAGES = [
  'python3-fastapi',
  'python3-uvicorn',
  'python3-asyncpg',
  'python3-uvloop',
  'python3-httptools',
];
const IMPLEMENTATIONS = ['larder', 'fastapi', 'node'] as const;
type Impl = (typeof IMPLEMENTATIONS)[number];
const ENDPOINTS = ['GET by id', 'GET list', 'POST search', 'GET healthz'] as const;
type Endpoint = (typeof ENDPOINTS)[number];
const ENDPOINT_IDS: Record<Endpoint, string> = {
  'GET by id': 'by-id',
  'GET list': 'list',
  'POST search': 'search',
  'GET healthz': 'healthz',
};
/** Every server's connection pool (Larder's DATABASE_POOL_SIZE default). */
const POOL_SIZE = 10;
const SEARCH_QUERY = 'harbour lantern';

/** Seeded prose: a fixed vocabulary, so every search query term occurs in many documents. */
const VOCABULARY = (
  'the a of and to in harbour lantern ledger orchard copper thistle meadow signal archive ferry ' +
  'granite willow ember compass pantry quarry beacon cellar saddle marble kettle heron bramble ' +
  'river winter market garden letter window stone bridge paper clock engine valley island rope'
).split(' ');

function documentText(rng: Rng, i: number): string {
  const sentences: string[] = [];
  const count = rng.int(6, 14);
  for (let s = 0; s < count; s++) {
    const words = Array.from({ length: rng.int(8, 18) }, () => VOCABULARY[rng.int(0, VOCABULARY.length - 1)]);
    sentences.push(`${words.join(' ')}.`);
  }
  return `Note ${i}\n\n${sentences.join(' ')}\n`;
}

export interface Fixture {
  documentId: string;
  collectionId: string;
  apiKey: string;
  documents: number;
  chunks: number;
}

/** Workspace, lexical-only collection, documents (until searchable) and an API key, through services. */
export async function seed(ctx: SuiteContext, documentCount: number): Promise<Fixture> {
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: ctx.databaseUrl,
    LOG_LEVEL: 'warn',
    LARDER_DATA_DIR: path.join(ctx.tmpDir, 'http-data'),
  });
  const runtime = await openRuntime(config, createLogger(config), {
    migrate: true,
    jobs: 'work',
    redis: false,
    pollingIntervalSeconds: 0.5,
  });
  try {
    const db = runtime.database.db;
    const { workspace } = await createUser(db, config, {
      email: 'http-bench@example.com',
      password: 'a long benchmark passphrase',
      ownerOf: 'HTTP benchmark',
    });
    if (!workspace) throw new Error('no workspace created');
    const ws = { id: workspace.id, role: 'owner' as const, permissions: ROLE_PERMISSIONS.owner };
    const audit = { actor: { type: 'system' as const }, userAgent: 'larder bench/http' };
    const collections = new CollectionService(db, {
      embeddings: runtime.embeddings,
      jobs: runtime.jobs,
      defaultProvider: 'none',
    });
    const collection = await collections.create(ws, null, { name: 'http-bench', embedding: null }, audit);
    const documents = new DocumentService(db, runtime.jobs, runtime.events, {
      uploadLimitBytes: config.uploadLimitBytes,
      urlFetchTimeoutMs: config.urlFetchTimeoutMs,
      allowPrivateUrls: config.urlAllowPrivate,
    });
    const rng = new Rng(42);
    const texts = Array.from({ length: documentCount }, (_, i) => ({ i, text: documentText(rng, i) }));
    const ids: string[] = [];
    const started = performance.now();
    await pool(texts, 8, ctx.signal, async ({ i, text }) => {
      const result = await documents.add(
        ws,
        null,
        collection.id,
        {
          content: Buffer.from(text, 'utf8'),
          mime: 'text/plain',
          title: `Note ${i}`,
          externalId: `note-${i}`,
          metadata: { n: i, team: i % 2 === 0 ? 'even' : 'odd' },
        },
        audit,
      );
      ids[i] = result.document.id;
    });
    let counts = await statusCounts(db, collection.id);
    while ((counts.documents.queued ?? 0) + (counts.documents.parsing ?? 0) > 0) {
      if (ctx.signal.aborted) throw new Error('interrupted');
      if (performance.now() - started > 10 * 60_000)
        throw new Error('documents not searchable after 10 minutes');
      await new Promise((resolve) => setTimeout(resolve, 250));
      counts = await statusCounts(db, collection.id);
    }
    if ((counts.documents.failed ?? 0) > 0) throw new Error(`${counts.documents.failed} documents failed`);
    // The lexical index in its steady state: the per-document postings lists an ingest writes merged,
    // as the compaction job leaves them (it waits 30 s after the last ingest; this runtime has no worker
    // left by then).
    await compactCollection(db, ws.id, collection.id, { maxBatches: Infinity });
    // Fresh statistics before measuring: right after a bulk load the planner believes the tables are
    // empty (a 50-row page then sorts the whole collection), and autovacuum would analyze them at some
    // point during the rounds. Same data and statistics for all three servers.
    await sql`analyze`.execute(db);
    const apiKeys = new ApiKeyService(db, { cacheTtlMs: 0 });
    const { key } = await apiKeys.create(ws, {
      name: 'http bench',
      scopes: ['documents:read', 'search'],
      createdBy: null,
    });
    const documentId = ids[Math.floor(documentCount / 2)];
    if (!documentId) throw new Error('no document');
    const chunks = Object.values(counts.chunks).reduce((s, n) => s + n, 0);
    ctx.log(
      `seeded ${documentCount} documents (${chunks} chunks) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    return { documentId, collectionId: collection.id, apiKey: key, documents: documentCount, chunks };
  } finally {
    await runtime.close();
  }
}

export async function startServers(
  ctx: SuiteContext,
  cpus: string | null,
): Promise<Record<Impl, ServerProcess>> {
  const [larderPort, fastapiPort, nodePort] = await Promise.all([freePort(), freePort(), freePort()]);
  const dataDir = path.join(ctx.tmpDir, 'http-data');
  await mkdir(dataDir, { recursive: true });
  const common = {
    DATABASE_URL: ctx.databaseUrl,
    POOL_SIZE: String(POOL_SIZE),
    HOST: '127.0.0.1',
    NODE_ENV: 'production',
  };
  const started: ServerProcess[] = [];
  try {
    const larder = spawnPinned({
      name: 'larder',
      command: process.execPath,
      args: ['bin/larder.js', 'serve'],
      cwd: root,
      cpus,
      port: larderPort,
      env: {
        ...common,
        PORT: String(larderPort),
        LOG_LEVEL: 'warn',
        DATABASE_POOL_SIZE: String(POOL_SIZE),
        LARDER_DATA_DIR: dataDir,
        LARDER_INLINE_WORKER: 'false',
        LARDER_MIGRATE_ON_START: 'false',
        LARDER_RATE_LIMIT_MAX: '1000000000',
        ...(ctx.redisUrl ? { REDIS_URL: ctx.redisUrl } : {}),
      },
    });
    started.push(larder);
    const fastapi = spawnPinned({
      name: 'fastapi',
      command: PYTHON,
      args: [
        '-m',
        'uvicorn',
        'app:app',
        '--app-dir',
        path.join(root, 'bench/reference-fastapi'),
        '--host',
        '127.0.0.1',
        '--port',
        String(fastapiPort),
        '--loop',
        'uvloop',
        '--http',
        'httptools',
        '--no-access-log',
        '--log-level',
        'warning',
      ],
      cwd: root,
      cpus,
      port: fastapiPort,
      env: { ...common, PYTHONDONTWRITEBYTECODE: '1' },
    });
    started.push(fastapi);
    const node = spawnPinned({
      name: 'node',
      command: process.execPath,
      args: ['--import', 'tsx', 'bench/reference-node/server.ts'],
      cwd: root,
      cpus,
      port: nodePort,
      env: { ...common, PORT: String(nodePort) },
    });
    started.push(node);
    await Promise.all(started.map((s) => waitForReady(s, `${s.baseUrl}/healthz`)));
    return { larder, fastapi, node };
  } catch (error) {
    await Promise.all(started.map((s) => s.stop()));
    throw error;
  }
}

function requests(base: string, fixture: Fixture): Record<Endpoint, LoadRequest> {
  const auth = { authorization: `Bearer ${fixture.apiKey}` };
  return {
    'GET by id': { method: 'GET', url: `${base}/v1/documents/${fixture.documentId}`, headers: auth },
    'GET list': {
      method: 'GET',
      url: `${base}/v1/collections/${fixture.collectionId}/documents?limit=50`,
      headers: auth,
    },
    'POST search': {
      method: 'POST',
      url: `${base}/v1/search`,
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        query: SEARCH_QUERY,
        k: 10,
        mode: 'lexical',
        collections: [fixture.collectionId],
      }),
    },
    'GET healthz': { method: 'GET', url: `${base}/healthz`, headers: {} },
  };
}

async function fetchJson(request: LoadRequest): Promise<unknown> {
  const response = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    ...(request.body === undefined ? {} : { body: request.body }),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`${request.method} ${request.url}: ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

/** The shape of a JSON value: object keys (sorted, recursively), array element shapes, value types. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, shape((value as Record<string, unknown>)[k])]),
    );
  return value === null ? 'null' : typeof value;
}

/** Same shape, where null stands in for any value (a nullable field may be null in one answer only). */
function compatible(a: unknown, b: unknown): boolean {
  if (a === 'null' || b === 'null') return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === 0 || b.length === 0 || compatible(a[0], b[0]);
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return (
      ka.length === kb.length &&
      ka.every((k) => compatible((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) &&
      kb.every((k) => k in a)
    );
  }
  return a === b;
}

/**
 * Fails unless every implementation answers GET by id with the same JSON (same keys, same values) and
 * the list and search endpoints with the same shape (keys and types; search scores differ by design).
 */
async function verifyResponses(servers: Record<Impl, ServerProcess>, fixture: Fixture): Promise<string[]> {
  const notes: string[] = [];
  const answers = Object.fromEntries(
    await Promise.all(
      IMPLEMENTATIONS.map(async (impl) => {
        const r = requests(servers[impl].baseUrl, fixture);
        try {
          const byId = await fetchJson(r['GET by id']);
          const list = await fetchJson(r['GET list']);
          const search = await fetchJson(r['POST search']);
          return [impl, { byId, list, search }] as const;
        } catch (error) {
          throw new Error(`${impl}: ${(error as Error).message}\n${servers[impl].output()}`);
        }
      }),
    ),
  ) as Record<Impl, { byId: unknown; list: unknown; search: unknown }>;
  const reference = answers.larder;
  for (const impl of ['fastapi', 'node'] as const) {
    const other = answers[impl];
    const refKeys = Object.keys(reference.byId as object).sort();
    const keys = Object.keys(other.byId as object).sort();
    if (JSON.stringify(refKeys) !== JSON.stringify(keys))
      throw new Error(`GET by id: ${impl} answers keys ${keys.join(',')}, larder ${refKeys.join(',')}`);
    const sorted = (v: unknown) => JSON.stringify(v, Object.keys(v as object).sort());
    if (sorted(reference.byId) !== sorted(other.byId))
      throw new Error(
        `GET by id: ${impl} answers ${JSON.stringify(other.byId)}, larder ${JSON.stringify(reference.byId)}`,
      );
    for (const endpoint of ['list', 'search'] as const) {
      const a = shape(reference[endpoint]);
      const b = shape(other[endpoint]);
      if (!compatible(a, b))
        throw new Error(
          `${endpoint}: ${impl} answers the shape ${JSON.stringify(b)}, larder ${JSON.stringify(a)}`,
        );
    }
    const listA = reference.list as { data: { id: string }[]; nextCursor: string | null };
    const listB = other.list as { data: { id: string }[]; nextCursor: string | null };
    if (JSON.stringify(listA) !== JSON.stringify(listB))
      throw new Error(`GET list: ${impl} answers a different page than larder`);
  }
  const hits = (impl: Impl) => (answers[impl].search as { data: unknown[] }).data.length;
  notes.push(
    `Before measuring, the three servers were checked: identical JSON for GET by id and for the list page, ` +
      `the same JSON shape for search (hits: larder ${hits('larder')}, fastapi ${hits('fastapi')}, node ${hits('node')}).`,
  );
  return notes;
}

function machineNotes(cpus: string | null, servers: Record<Impl, ServerProcess>): string[] {
  const cores = os.cpus().length;
  return [
    `Machine: ${cores} × ${os.cpus()[0]?.model ?? '?'}. ` +
      (cpus
        ? `Each server is one process pinned to CPU ${cpus} with taskset (checked: ${IMPLEMENTATIONS.map(
            (i) => `${i} ${allowedCpus(servers[i].pid)}`,
          ).join(', ')}); wrk runs pinned to the other CPU(s).`
        : 'taskset is missing: nothing is pinned.') +
      ' PostgreSQL (and Redis) run unpinned on the same machine and compete with both, so req/s measures ' +
      'server + database on a small box, not the framework alone.',
  ];
}

const DIFFERENCES = [
  'What differs: Larder runs each request through Fastify with TypeBox validation, its access hook, a global ' +
    'rate limit (in Redis when REDIS_URL is set, budget claimed in blocks of 1 % of the limit, so one Redis call ' +
    'per block; limit set high so it never answers 429), security headers, request ids and a response schema; ' +
    "every tenant read runs as `larder_app` with `set_config('role', …)` under row-level security: the settings " +
    'and the SELECT(s) go as one extended-protocol pipeline with one Sync (one implicit read-only transaction, ' +
    'one round trip), as statements prepared once per connection. The list endpoint sends its collection ' +
    'visibility check and the page in the same pipeline.',
  'The twins query as the connecting user (a superuser: no RLS) with explicit `workspace_id` filters and the same ' +
    'collection-visibility rule (min_role viewer/editor for keys without an allowlist), without a transaction.',
  'API keys: all three hash the bearer key with SHA-256 and look it up in `api_keys` (not revoked, workspace not ' +
    'deleted, not expired), caching the result in process for 30 s (Larder’s default policy), so in steady state no ' +
    'request pays a key lookup. Pools: 10 connections each.',
  "Search: Larder's lexical mode (BM25 over its own lexical index, then ts_headline snippets for the top k) vs. " +
    "the twins' `websearch_to_tsquery` + `ts_rank_cd` over `chunks.tsv`, ranking every matching chunk before the " +
    'same ts_headline for the top k. Different ranking algorithms (the twins’ is simpler and has no top-k ' +
    'index), so the search row compares implementations, not frameworks.',
  'FastAPI: Debian’s FastAPI 0.92 / pydantic 1.10 on /usr/bin/python3, uvicorn with uvloop + httptools, one ' +
    'worker, asyncpg pool, dict responses through FastAPI’s jsonable_encoder and the stdlib json. Node twin: ' +
    'node:http + pg, JSON.stringify, run through tsx.',
];

export const suite: Suite = {
  name: 'http',
  description:
    'Larder vs. a FastAPI + asyncpg twin vs. bare node:http + pg: the same read endpoints over the same database ' +
    'and data, each server pinned to one core, under the same load generator (fixed connections and duration).',
  async run(ctx: SuiteContext): Promise<SuiteResult> {
    const notes: string[] = [];
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} (Debian's python3) is required for the FastAPI twin`);
    const missingPython = ensureDebianPackages(PYTHON_PACKAGES, {
      install: ctx.quick,
      log: (message) => {
        ctx.log(message);
      },
    });
    if (missingPython)
      throw new Error(`the FastAPI twin needs Debian packages; install them with: ${missingPython}`);
    const missingWrk = ensureDebianPackages(['wrk'], {
      install: ctx.quick,
      log: (message) => {
        ctx.log(message);
      },
    });
    if (missingWrk) ctx.log(`wrk is missing (${missingWrk}): falling back to the Node load generator`);
    const generator = loadGenerator();
    const cores = os.cpus().length;
    const pin = hasTaskset();
    const serverCpus = pin ? '0' : null;
    const loadCpus = pin && cores > 1 ? `1-${cores - 1}` : null;
    const connections = ctx.quick ? 4 : 32;
    const durationSeconds = ctx.quick ? 1 : 7;
    const warmupSeconds = (round: number) => (ctx.quick ? 0 : round === 0 ? 2 : 1);
    const documentCount = ctx.quick ? 50 : 2000;

    const fixture = await seed(ctx, documentCount);
    const servers = await startServers(ctx, serverCpus);
    try {
      notes.push(...(await verifyResponses(servers, fixture)));
      const measurements = new Map<string, Measurement>();
      const add = (name: string, unit: string, better: 'higher' | 'lower', group: string, value: number) => {
        const m = measurements.get(name) ?? { name, unit, better, values: [], group };
        m.values.push(value);
        measurements.set(name, m);
      };
      const errors: string[] = [];
      const steps = {} as Record<string, (round: number) => Promise<void>>;
      for (const endpoint of ENDPOINTS) {
        for (const impl of IMPLEMENTATIONS) {
          steps[`${impl}|${endpoint}`] = async (round) => {
            if (ctx.signal.aborted) throw new Error('interrupted');
            const server = servers[impl];
            const request = requests(server.baseUrl, fixture)[endpoint];
            const options = { connections, cpus: loadCpus, scratchDir: ctx.tmpDir };
            const warmup = warmupSeconds(round);
            if (warmup > 0) await generator.run(request, { ...options, durationSeconds: warmup });
            const cpuBefore = cpuSeconds(server.pid);
            const result: LoadResult = await generator.run(request, { ...options, durationSeconds });
            const cpu = cpuSeconds(server.pid) - cpuBefore;
            if (result.non2xx > 0 || result.requests === 0)
              throw new Error(
                `${impl} ${endpoint}: ${result.non2xx} of ${result.requests} responses were not 2xx\n${server.output()}`,
              );
            if (result.socketErrors > 0)
              errors.push(`${impl} ${endpoint} round ${round + 1}: ${result.socketErrors} socket errors`);
            const group = endpoint;
            add(`${impl} ${endpoint} req/s`, 'req/s', 'higher', group, result.requestsPerSecond);
            add(`${impl} ${endpoint} p50`, 'ms', 'lower', group, result.p50Ms);
            add(`${impl} ${endpoint} p99`, 'ms', 'lower', group, result.p99Ms);
            add(`${impl} ${endpoint} CPU/1k req`, 'CPU s', 'lower', group, (cpu / result.requests) * 1000);
            ctx.log(
              `round ${round + 1} ${impl.padEnd(7)} ${endpoint.padEnd(11)} ${result.requestsPerSecond.toFixed(0).padStart(6)} req/s ` +
                `p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms, ` +
                `${((cpu / result.requests) * 1000).toFixed(3)} CPU s/1k`,
            );
          };
        }
      }
      await alternate(ctx.rounds, steps);

      // Order: per endpoint, per implementation, per metric.
      const ordered: Measurement[] = [];
      for (const endpoint of ENDPOINTS)
        for (const metric of ['req/s', 'p50', 'p99', 'CPU/1k req'])
          for (const impl of IMPLEMENTATIONS) {
            const m = measurements.get(`${impl} ${endpoint} ${metric}`);
            if (m) ordered.push(m);
          }
      const get = (impl: Impl, endpoint: Endpoint) => {
        const m = measurements.get(`${impl} ${endpoint} req/s`);
        if (!m) throw new Error(`no measurement for ${impl} ${endpoint}`);
        return m;
      };
      const ratios: Ratio[] = [];
      for (const endpoint of ENDPOINTS) {
        const targeted = endpoint === 'GET by id' || endpoint === 'GET list';
        ratios.push(
          ratio(
            `larder / fastapi, ${endpoint} req/s`,
            get('larder', endpoint),
            get('fastapi', endpoint),
            targeted ? 2.5 : undefined,
          ),
          ratio(
            `larder / node, ${endpoint} req/s`,
            get('larder', endpoint),
            get('node', endpoint),
            targeted ? 1.0 : undefined,
          ),
        );
      }
      notes.push(
        ...machineNotes(serverCpus, servers),
        `Load: ${generator.tool === 'wrk' ? 'wrk (1 thread, --latency)' : 'the Node fallback generator (in the bench process, not pinned: a floor)'} ` +
          `with ${connections} keep-alive connections for ${durationSeconds} s per endpoint, implementation and round, ` +
          `after a warm-up of ${warmupSeconds(0)} s (first round) / ${warmupSeconds(1)} s (later rounds); ` +
          'implementations alternate, their order reversed every round. p50/p99 are wrk’s latency percentiles.',
        `Data: ${fixture.documents} text documents (${fixture.chunks} chunks) in one lexical-only collection ` +
          `(embedding none), added through DocumentService, then ANALYZE; GET by id always asks for the same document; ` +
          `search asks for "${SEARCH_QUERY}" (k 10, lexical).`,
        'CPU/1k req: user + system CPU seconds of the server process (from /proc/<pid>/stat) during the measured ' +
          'run, per 1,000 requests; it excludes PostgreSQL’s and Redis’s work.',
        ...DIFFERENCES,
        ...errors,
      );
      return {
        suite: 'http',
        description: suite.description,
        settings: {
          documents: documentCount,
          connections,
          durationSeconds,
          warmupSeconds: [warmupSeconds(0), warmupSeconds(1)],
          loadGenerator: generator.tool,
          serverCpus,
          loadCpus,
          poolSize: POOL_SIZE,
          redis: ctx.redisUrl !== undefined,
          python: PYTHON,
          wrk: commandExists('wrk'),
        },
        measurements: ordered,
        ratios,
        charts: ENDPOINTS.map((endpoint) => ({
          id: ENDPOINT_IDS[endpoint],
          title: `${endpoint}: requests per second (one core per server)`,
          unit: 'req/s',
          measurements: IMPLEMENTATIONS.map((impl) => `${impl} ${endpoint} req/s`),
        })),
        notes,
      };
    } finally {
      await Promise.all(IMPLEMENTATIONS.map((impl) => servers[impl].stop()));
    }
  },
};
