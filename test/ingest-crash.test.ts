/**
 * Crash safety of ingestion, with real `larder worker` child processes on PostgreSQL: the worker is
 * SIGKILLed at random moments (seeded) while it works through a backlog and restarted each time. In
 * the end every document is processed exactly once: none lost, none failed, no duplicate or missing
 * chunks or vectors. Recovery relies on short job timeouts (`LARDER_JOB_TIMEOUT_SECONDS`) and a short
 * supervision interval (`LARDER_JOB_MAINTENANCE_INTERVAL_SECONDS`): pg-boss has no heartbeat, so a
 * job whose worker died stays `active` until it times out and is retried.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import Type from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkDocument } from '../src/ai/chunking/chunker.js';
import { parseDocument } from '../src/ai/parsing/index.js';
import type { Config } from '../src/config.js';
import { ROLE_PERMISSIONS } from '../src/platform/auth/permissions.js';
import type { Db } from '../src/platform/db/database.js';
import { defineJob } from '../src/platform/jobs/define.js';
import { JobQueue } from '../src/platform/jobs/queue.js';
import { jobDefinitions } from '../src/platform/jobs/registry.js';
import { DEFAULT_CHUNKING, type ChunkingSettings } from '../src/modules/collections/service.js';
import { DocumentService } from '../src/modules/documents/service.js';
import { contentHash, embeddingInput } from '../src/modules/documents/pipeline.js';
import { mulberry32 } from '../bench/lib/prng.js';
import { type RunningProcess, startProcess } from './helpers/cli.js';
import { silentLogger } from './helpers/config.js';
import { createTestDatabase, serverAvailable, type TestDatabase } from './helpers/database.js';
import { createTenant, type Tenant } from './helpers/factories.js';
import { jobDeps } from './helpers/jobs.js';

/** Short enough to recover quickly, long enough that no real job here comes near it. */
const JOB_TIMEOUT_SECONDS = 10;
const CHUNKING: ChunkingSettings = { maxTokens: 120, overlapTokens: 20 };

const WORDS = (
  'larder pantry shelf index vector chunk token query ranking postgres worker queue retry crash ' +
  'recovery ingest parse heading paragraph embedding lexical hybrid search collection workspace ' +
  'document version status ready searchable batch commit rollback lock transaction replica timeout'
).split(' ');

/** Varied, realistic Markdown of a few KB; `n` makes every document's bytes unique. */
function markdown(n: number, rand: () => number): string {
  const pick = () => WORDS[Math.floor(rand() * WORDS.length)] ?? 'word';
  const sentence = () => {
    const words = Array.from({ length: 6 + Math.floor(rand() * 12) }, pick);
    const text = words.join(' ');
    return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
  };
  const paragraph = () => Array.from({ length: 2 + Math.floor(rand() * 5) }, sentence).join(' ');
  const parts = [`# Document ${n}: ${pick()} and ${pick()}`, '', paragraph(), ''];
  const target = 1500 + Math.floor(rand() * 3500);
  let size = parts.join('\n').length;
  while (size < target) {
    const kind = rand();
    let block: string;
    if (kind < 0.2) block = `${'#'.repeat(2 + Math.floor(rand() * 2))} ${sentence().slice(0, -1)}`;
    else if (kind < 0.35)
      block = Array.from({ length: 2 + Math.floor(rand() * 4) }, () => `- ${sentence()}`).join('\n');
    else if (kind < 0.45)
      block = `\`\`\`ts\nconst ${pick()} = await ${pick()}(${n});\nreturn ${pick()};\n\`\`\``;
    else if (kind < 0.5) block = `> ${sentence()}`;
    else block = paragraph();
    parts.push(block, '');
    size += block.length + 1;
  }
  return parts.join('\n');
}

/** One a moment: `done` is called until it returns true or the deadline passes. */
async function until(done: () => Promise<boolean>, what: string, timeoutMs: number, every = 50) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group) group.push(item);
    else groups.set(key(item), [item]);
  }
  return groups;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Scenario {
  t: TestDatabase;
  jobs: JobQueue;
  tenant: Tenant;
  collectionId: string;
  documentIds: string[];
}

/** A fresh database, a producer-only queue (this process never runs jobs) and a collection. */
async function setUp(
  collection: { provider: string; model: string; dimensions: number } | null,
): Promise<Omit<Scenario, 'documentIds'>> {
  const t = await createTestDatabase('server');
  // The producer's queue policy is what the enqueued jobs carry, so it needs the same timeout.
  const config: Config = {
    ...t.config,
    jobTimeoutSeconds: JOB_TIMEOUT_SECONDS,
    jobMaintenanceIntervalSeconds: 1,
  };
  const jobs = new JobQueue(jobDeps(config, t.database, silentLogger), jobDefinitions, {
    work: false,
    concurrency: 1,
  });
  await jobs.start();
  const db = t.database.db;
  const tenant = await createTenant(db, `crash-${Date.now().toString(36)}`);
  const row = await db
    .insertInto('collections')
    .values({
      workspace_id: tenant.workspaceId,
      name: 'Crash test',
      chunking: JSON.stringify(CHUNKING),
      embedding_provider: collection?.provider ?? null,
      embedding_model: collection?.model ?? null,
      embedding_dimensions: collection?.dimensions ?? null,
      created_by: tenant.userId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { t, jobs, tenant, collectionId: row.id };
}

/** Adds `count` documents through the real service: each commits with its queued ingest job. */
async function addDocuments(s: Omit<Scenario, 'documentIds'>, count: number, seed: number) {
  const service = new DocumentService(s.t.database.db, s.jobs, undefined, {
    uploadLimitBytes: 1024 * 1024,
    urlFetchTimeoutMs: 1000,
  });
  const ws = { id: s.tenant.workspaceId, role: 'owner' as const, permissions: ROLE_PERMISSIONS.owner };
  const rand = mulberry32(seed);
  const texts = Array.from({ length: count }, (_, i) => markdown(i, rand));
  const ids: string[] = [];
  for (let i = 0; i < count; i += 4) {
    const added = await Promise.all(
      texts.slice(i, i + 4).map((text, k) =>
        service.add(ws, s.tenant.userId, s.collectionId, {
          content: Buffer.from(text),
          filename: `doc-${i + k}.md`,
          mime: 'text/markdown',
        }),
      ),
    );
    for (const { outcome, document } of added) {
      expect(outcome).toBe('created');
      ids.push(document.id);
    }
  }
  return ids;
}

/**
 * Jobs of the ingestion queues not yet settled. A worker killed after its job's transaction committed
 * leaves a finished document behind a job still `active`; the job times out, goes to `retry` and
 * must still run (and find its work done), so recovery is over only once the queues are settled.
 */
async function unsettledJobs(db: Db): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from larder_jobs.job
    where name in ('documents.ingest', 'documents.embed') and state in ('created', 'retry', 'active')`.execute(
    db,
  );
  return rows[0]?.n ?? 0;
}

async function finished(db: Db, collectionId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from documents
    where collection_id = ${collectionId} and status in ('ready', 'failed')`.execute(db);
  return rows[0]?.n ?? 0;
}

/**
 * Runs workers until every document is done and every job settled: `kills` times a worker is started, `killAt()` resolves
 * at a moment chosen by the scenario, and the worker is SIGKILLed; then a last one finishes the work
 * and is stopped gracefully. Returns the outputs of all workers (for failure messages).
 */
async function crashAndRecover(
  s: Scenario,
  env: Record<string, string>,
  kills: number,
  killAt: (kill: number) => Promise<void>,
  finishWithinMs: number,
): Promise<{ outputs: string[] }> {
  const workerEnv = {
    DATABASE_URL: s.t.url ?? '',
    LARDER_JOB_TIMEOUT_SECONDS: String(JOB_TIMEOUT_SECONDS),
    LARDER_JOB_MAINTENANCE_INTERVAL_SECONDS: '1',
    LARDER_JOB_CONCURRENCY: '4',
    LARDER_EMBEDDING_PROVIDER: 'none',
    ...env,
  };
  const outputs: string[] = [];
  const start = () => startProcess(['worker'], workerEnv, /"msg":"worker started"/);
  let worker: RunningProcess | undefined;
  try {
    for (let kill = 0; kill < kills; kill++) {
      worker = await start();
      const died = worker.exited.then((code) => {
        throw new Error(`worker exited on its own (${code})`);
      });
      await Promise.race([killAt(kill), died]);
      died.catch(() => undefined);
      worker.child.kill('SIGKILL');
      await worker.exited;
      outputs.push(worker.output());
      worker = undefined;
    }
    worker = await start();
    const total = s.documentIds.length;
    await until(
      async () =>
        (await finished(s.t.database.db, s.collectionId)) === total &&
        (await unsettledJobs(s.t.database.db)) === 0,
      'every document to finish and every job to settle',
      finishWithinMs,
      200,
    );
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    outputs.push(worker.output());
    worker = undefined;
    return { outputs };
  } catch (error) {
    const tail = (worker?.output() ?? outputs.at(-1) ?? '').split('\n').slice(-30).join('\n');
    throw new Error(`${(error as Error).message}\n--- last worker output ---\n${tail}`, { cause: error });
  } finally {
    worker?.child.kill('SIGKILL');
  }
}

/** Every document ready, once, with exactly the chunks its bytes produce. */
async function expectExactlyOnce(s: Scenario) {
  const db = s.t.database.db;
  const docs = await db
    .selectFrom('documents')
    .select(['id', 'status', 'version', 'error', 'chunk_count', 'filename', 'mime'])
    .where('collection_id', '=', s.collectionId)
    .execute();
  expect(docs.map((d) => d.id).sort()).toEqual([...s.documentIds].sort());
  const notReady = docs.filter((d) => d.status !== 'ready' || d.version !== 1 || d.error !== null);
  expect(notReady).toEqual([]);

  const chunks = await db
    .selectFrom('chunks')
    .select([
      'document_id',
      'ordinal',
      'text',
      'char_start',
      'char_end',
      'token_count',
      'heading_path',
      'content_hash',
      'created_at',
    ])
    .where('workspace_id', '=', s.tenant.workspaceId)
    .orderBy('document_id')
    .orderBy('ordinal')
    .execute();
  const byDocument = groupBy(chunks, (c) => c.document_id);
  // No chunk belongs to anything but these documents.
  expect([...byDocument.keys()].filter((id) => !s.documentIds.includes(id))).toEqual([]);

  const blobs = await db
    .selectFrom('document_blobs')
    .select(['document_id', 'data'])
    .where('workspace_id', '=', s.tenant.workspaceId)
    .orderBy('document_id')
    .orderBy('part')
    .execute();
  const bytes = groupBy(blobs, (b) => b.document_id);
  const chunking = { ...DEFAULT_CHUNKING, ...CHUNKING };
  for (const doc of docs) {
    const stored = byDocument.get(doc.id) ?? [];
    expect(stored.length, `chunk_count of ${doc.id}`).toBe(doc.chunk_count);
    expect(stored.map((c) => c.ordinal)).toEqual(stored.map((_, i) => i));
    // All written by one transaction (`created_at` is its start time): never a mix of two runs.
    expect(new Set(stored.map((c) => c.created_at.getTime())).size).toBe(1);
    const data = Buffer.concat((bytes.get(doc.id) ?? []).map((b) => b.data));
    const expected = chunkDocument(
      await parseDocument(data, {
        ...(doc.filename ? { filename: doc.filename } : {}),
        ...(doc.mime ? { mime: doc.mime } : {}),
      }),
      chunking,
    );
    expect(
      stored.map((c) => ({
        ordinal: c.ordinal,
        text: c.text,
        charStart: c.char_start,
        charEnd: c.char_end,
        tokenCount: c.token_count,
        headingPath: c.heading_path,
        hash: c.content_hash,
      })),
      `chunks of ${doc.id}`,
    ).toEqual(
      expected.map((c) => ({
        ordinal: c.ordinal,
        text: c.text,
        charStart: c.charStart,
        charEnd: c.charEnd,
        tokenCount: c.tokenCount,
        headingPath: c.headingPath,
        hash: contentHash(embeddingInput(c.headingPath, c.text)),
      })),
    );
  }
}

interface JobRow {
  document_id: string;
  jobs: number;
  state: string;
  retries: number;
  writes: number;
}

/**
 * The pg-boss side: one job per document and queue (retries reuse the job), completed, and at most
 * one completed run that reports having written (a retry of a run that committed finds it done).
 */
async function jobsPerDocument(db: Db, queue: string): Promise<JobRow[]> {
  const { rows } = await sql<JobRow>`
    with all_jobs as (
      select data, state::text as state, retry_count, output from larder_jobs.job where name = ${queue}
      union all
      select data, state::text, retry_count, output from larder_jobs.archive where name = ${queue}
    )
    select data->>'documentId' as document_id, count(*)::int as jobs, min(state) as state,
           sum(retry_count)::int as retries,
           count(*) filter (where output ? 'chunks')::int as writes
    from all_jobs group by 1`.execute(db);
  return rows;
}

describe.runIf(serverAvailable())('ingestion survives a worker being killed (server)', () => {
  it('a job that outlives its timeout is aborted and retried, and handlers see their attempt', async () => {
    const t = await createTestDatabase('server');
    const attempts: number[] = [];
    const aborted: number[] = [];
    const job = defineJob({
      name: 'test.hangs-once',
      payload: Type.Object({}),
      retry: { limit: 2, delaySeconds: 0, backoff: false },
      expireInSeconds: 1,
      async handler(_payload, ctx) {
        attempts.push(ctx.retryCount);
        if (ctx.retryCount === 0) {
          // Hangs until the queue gives up on it (what a lost worker looks like from inside).
          await new Promise((resolve) => {
            ctx.signal.addEventListener('abort', resolve);
          });
          aborted.push(ctx.retryCount);
          throw new Error('aborted');
        }
        if (ctx.retryCount === 1) throw new Error('second attempt fails');
        return { attempt: ctx.retryCount };
      },
    });
    const config = { ...t.config, jobMaintenanceIntervalSeconds: 1 };
    const jobs = new JobQueue(jobDeps(config, t.database, silentLogger), [job], {
      work: true,
      concurrency: 1,
      pollingIntervalSeconds: 0.5,
    });
    try {
      await jobs.start();
      const id = (await jobs.send(job, {})) ?? '';
      await until(async () => (await jobs.state(job, id))?.state === 'completed', 'the job', 20_000, 100);
      expect(await jobs.state(job, id)).toMatchObject({ output: { attempt: 2 } });
      // Each attempt knows its number, so a handler can tell its last one (and fail the document).
      expect(attempts).toEqual([0, 1, 2]);
      expect(aborted).toEqual([0]);
    } finally {
      await jobs.stop(1000);
      await t.close();
    }
  });

  describe('500 documents, lexical only', () => {
    let s: Scenario;
    const seed = 20240607;

    beforeAll(async () => {
      const base = await setUp(null);
      s = { ...base, documentIds: await addDocuments(base, 500, seed) };
    });
    afterAll(async () => {
      await s.jobs.stop(1000);
      await s.t.close();
    });

    it('SIGKILLed 3–6 times at random points, restarted each time: every document ingested once', async () => {
      const rand = mulberry32(seed + 1);
      const kills = 3 + Math.floor(rand() * 4);
      // Increasing progress marks between 5 % and 90 %, each followed by a random extra delay.
      const marks = Array.from({ length: kills }, () => 0.05 + rand() * 0.85).sort((a, b) => a - b);
      const db = s.t.database.db;
      await crashAndRecover(
        s,
        {},
        kills,
        async (kill) => {
          const target = Math.floor((marks[kill] ?? 0.5) * s.documentIds.length);
          await until(async () => (await finished(db, s.collectionId)) >= target, `${target} done`, 120_000);
          await sleep(rand() * 250);
        },
        90_000,
      );

      await expectExactlyOnce(s);
      const jobs = await jobsPerDocument(db, 'documents.ingest');
      expect(jobs.map((j) => j.document_id).sort()).toEqual([...s.documentIds].sort());
      expect(jobs.filter((j) => j.jobs !== 1 || j.state !== 'completed' || j.writes > 1)).toEqual([]);
      // The kills did land on running jobs (else this test proves nothing).
      expect(jobs.reduce((n, j) => n + j.retries, 0)).toBeGreaterThan(0);
      expect(await jobsPerDocument(db, 'documents.embed')).toEqual([]);
    }, 150_000);
  });

  describe('embedding phase', () => {
    const DIMS = 16;
    let s: Scenario;
    let api: Server;
    let baseUrl: string;
    let requests = 0;

    beforeAll(async () => {
      // An OpenAI-compatible `/v1/embeddings` that takes a moment per request, so kills land mid-phase.
      api = createServer((req, res) => {
        const body: Buffer[] = [];
        req.on('data', (d: Buffer) => body.push(d));
        req.on('end', () => {
          requests += 1;
          const { input, model } = JSON.parse(Buffer.concat(body).toString()) as {
            input: string[];
            model: string;
          };
          const data = input.map((text, index) => ({
            object: 'embedding',
            index,
            embedding: Array.from({ length: DIMS }, (_, k) => Math.sin(text.length + k) + 0.01 * (k + 1)),
          }));
          setTimeout(() => {
            res.setHeader('content-type', 'application/json');
            res.end(
              JSON.stringify({ object: 'list', model, data, usage: { prompt_tokens: 1, total_tokens: 1 } }),
            );
          }, 40);
        });
      });
      await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
      baseUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/v1`;
      const base = await setUp({ provider: 'openai', model: 'crash-embed', dimensions: DIMS });
      s = { ...base, documentIds: await addDocuments(base, 60, 777) };
    });
    afterAll(async () => {
      await s.jobs.stop(1000);
      await s.t.close();
      api.closeAllConnections();
      await new Promise((r) => api.close(r));
    });

    it('killed while embedding: exactly one vector per chunk, every document ready', async () => {
      const rand = mulberry32(778);
      const db = s.t.database.db;
      const embedded = async () => {
        const { rows } = await sql<{ vectors: number; chunks: number }>`
          select (select count(*)::int from chunk_embeddings where collection_id = ${s.collectionId}) as vectors,
                 (select count(*)::int from chunks where collection_id = ${s.collectionId}) as chunks`.execute(
          db,
        );
        return rows[0] ?? { vectors: 0, chunks: 0 };
      };
      let vectorsAtKill = 0;
      await crashAndRecover(
        s,
        {
          LARDER_OPENAI_EMBEDDING_BASE_URL: baseUrl,
          LARDER_OPENAI_EMBEDDING_API_KEY: 'sk-test-crash',
          LARDER_EMBEDDING_BATCH_SIZE: '2',
          LARDER_OPENAI_EMBEDDING_MAX_RETRIES: '1',
        },
        3,
        async () => {
          // Somewhere in the embedding phase: past the last kill's count by a random number of vectors.
          const target = vectorsAtKill + 20 + Math.floor(rand() * 120);
          await until(async () => (await embedded()).vectors >= target, `${target} vectors`, 120_000);
          await sleep(rand() * 150);
          vectorsAtKill = (await embedded()).vectors;
        },
        90_000,
      );

      await expectExactlyOnce(s);
      const { rows } = await sql<{ chunk_id: string; vectors: number; hash_matches: boolean }>`
        select c.id as chunk_id, count(e.chunk_id)::int as vectors,
               bool_and(e.content_hash = c.content_hash and e.model = 'crash-embed' and e.dimensions = ${DIMS}) as hash_matches
        from chunks c left join chunk_embeddings e on e.chunk_id = c.id
        where c.collection_id = ${s.collectionId} group by c.id`.execute(db);
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.filter((r) => r.vectors !== 1 || !r.hash_matches)).toEqual([]);
      const { vectors, chunks } = await embedded();
      expect(vectors).toBe(chunks);
      const jobs = await jobsPerDocument(db, 'documents.embed');
      expect(jobs.map((j) => j.document_id).sort()).toEqual([...s.documentIds].sort());
      expect(jobs.filter((j) => j.jobs !== 1 || j.state !== 'completed')).toEqual([]);
      expect(requests).toBeGreaterThan(0);
    }, 150_000);
  });
});
