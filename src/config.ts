/**
 * Configuration: one schema for every setting, parsed once at start-up and injected.
 * Nothing else in the code reads `process.env`.
 *
 * Sources, later wins: schema defaults → JSON config file (`LARDER_CONFIG`) → environment variables.
 * The config file uses the same names as the environment, e.g. `{ "PORT": 9000, "LOG_LEVEL": "debug" }`.
 *
 * @example
 *   const config = loadConfig(process.env); // throws ConfigError listing every problem
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Type, { type Static, type TOptional, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { parsePriceTable } from './ai/usage/pricing.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Allowed values of an enum-like setting, for error messages. */
function allowedValues(schema: TSchema): string | undefined {
  const values = (schema as { enum?: unknown[] }).enum;
  return values?.map(String).join(', ');
}

/**
 * Every setting: its environment name, schema (with default) and a one-line description.
 * The README's configuration table is generated from this list (`npm run generate`) and drift-checked.
 */
export const settings = {
  port: {
    env: 'PORT',
    schema: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    doc: 'TCP port the HTTP server listens on (0 picks a free port).',
  },
  host: {
    env: 'HOST',
    schema: Type.String({ minLength: 1, default: '127.0.0.1' }),
    doc: 'Interface to bind. Use `0.0.0.0` in containers.',
  },
  dataDir: {
    env: 'LARDER_DATA_DIR',
    schema: Type.String({ minLength: 1, default: './data' }),
    doc: 'Directory for embedded-mode state (the PGlite database). Unused when `DATABASE_URL` is set.',
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    schema: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
    doc: 'PostgreSQL ≥ 14 with pgvector (`postgres://user:pass@host:5432/db`). Unset: embedded PGlite.',
  },
  databasePoolSize: {
    env: 'DATABASE_POOL_SIZE',
    schema: Type.Integer({ minimum: 1, maximum: 500, default: 10 }),
    doc: 'Maximum connections in the server-mode pool (per process). A process that runs jobs holds one more, outside the pool, that LISTENs for new jobs.',
  },
  databasePreparedStatements: {
    env: 'DATABASE_PREPARED_STATEMENTS',
    schema: Type.Boolean({ default: true }),
    doc: 'Server mode: statements with parameters are prepared once per connection (parsed and planned once); `false` for a pooler that cannot keep prepared statements.',
  },
  databaseStatementTimeoutMs: {
    env: 'DATABASE_STATEMENT_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 0, default: 30_000 }),
    doc: 'Server-mode `statement_timeout` per connection; 0 disables.',
  },
  redisUrl: {
    env: 'REDIS_URL',
    schema: Type.Optional(Type.String({ pattern: '^rediss?://' })),
    doc: 'Redis 6+ for cache, rate limits and event fan-out. Unset: in-process equivalents.',
  },
  logLevel: {
    env: 'LOG_LEVEL',
    schema: Type.Enum(LOG_LEVELS, { default: 'info' }),
    doc: 'Log level: fatal, error, warn, info, debug, trace or silent.',
  },
  logPretty: {
    env: 'LARDER_LOG_PRETTY',
    schema: Type.Boolean({ default: false }),
    doc: 'Human-readable logs instead of JSON (`npm run dev` turns it on).',
  },
  migrateOnStart: {
    env: 'LARDER_MIGRATE_ON_START',
    schema: Type.Boolean({ default: true }),
    doc: '`larder serve` and `larder worker` apply pending migrations before starting.',
  },
  inlineWorker: {
    env: 'LARDER_INLINE_WORKER',
    schema: Type.Enum(['auto', 'true', 'false'], { default: 'auto' }),
    doc: '`serve` also runs background jobs: `auto` = only in embedded mode.',
  },
  jobConcurrency: {
    env: 'LARDER_JOB_CONCURRENCY',
    schema: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
    doc: 'Jobs a worker process runs at once, per queue.',
  },
  bodyLimitBytes: {
    env: 'LARDER_BODY_LIMIT_BYTES',
    schema: Type.Integer({ minimum: 1024, default: 1_048_576 }),
    doc: 'Largest JSON request body accepted (413 above). File uploads have their own limit.',
  },
  requestTimeoutMs: {
    env: 'LARDER_REQUEST_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 0, default: 60_000 }),
    doc: 'Time allowed to receive a whole request; 0 disables.',
  },
  keepAliveTimeoutMs: {
    env: 'LARDER_KEEP_ALIVE_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 1, default: 72_000 }),
    doc: 'Idle keep-alive socket timeout (keep above your load balancer’s idle timeout).',
  },
  shutdownTimeoutMs: {
    env: 'LARDER_SHUTDOWN_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 0, default: 15_000 }),
    doc: 'On SIGTERM/SIGINT, time to drain in-flight requests and jobs before exiting anyway.',
  },
  trustProxy: {
    env: 'LARDER_TRUST_PROXY',
    schema: Type.Boolean({ default: false }),
    doc: 'Trust `X-Forwarded-*` headers (set when behind a load balancer).',
  },
  signupEnabled: {
    env: 'LARDER_SIGNUP_ENABLED',
    schema: Type.Boolean({ default: true }),
    doc: 'Anyone may create an account (and a workspace) with `POST /v1/auth/signup`.',
  },
  passwordMinLength: {
    env: 'LARDER_PASSWORD_MIN_LENGTH',
    schema: Type.Integer({ minimum: 8, maximum: 128, default: 12 }),
    doc: 'Shortest password accepted at sign-up and password change.',
  },
  argon2MemoryKib: {
    env: 'LARDER_ARGON2_MEMORY_KIB',
    schema: Type.Integer({ minimum: 1024, maximum: 1_048_576, default: 19_456 }),
    doc: 'argon2id memory cost (KiB). Changing it rehashes each password at its next login.',
  },
  argon2TimeCost: {
    env: 'LARDER_ARGON2_TIME_COST',
    schema: Type.Integer({ minimum: 1, maximum: 20, default: 2 }),
    doc: 'argon2id iterations. Changing it rehashes each password at its next login.',
  },
  jwtKeys: {
    env: 'LARDER_JWT_KEYS',
    schema: Type.Optional(Type.String({ minLength: 2 })),
    doc: 'JSON array of private JWKs (ES256, each with `kid`): the first signs, all verify. Unset: generated once into `LARDER_DATA_DIR/jwt-keys.json`.',
    secret: true,
  },
  accessTokenTtlSeconds: {
    env: 'LARDER_ACCESS_TOKEN_TTL_SECONDS',
    schema: Type.Integer({ minimum: 60, maximum: 86_400, default: 900 }),
    doc: 'Lifetime of access tokens (JWT).',
  },
  refreshTokenTtlSeconds: {
    env: 'LARDER_REFRESH_TOKEN_TTL_SECONDS',
    schema: Type.Integer({ minimum: 300, default: 2_592_000 }),
    doc: 'Lifetime of refresh tokens; each use rotates it.',
  },
  bootstrapEmail: {
    env: 'LARDER_BOOTSTRAP_EMAIL',
    schema: Type.Optional(Type.String({ format: 'email' })),
    doc: 'With `LARDER_BOOTSTRAP_PASSWORD`: on a database without users, `serve` creates this user as owner of a first workspace (containers).',
  },
  bootstrapPassword: {
    env: 'LARDER_BOOTSTRAP_PASSWORD',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'Password of the bootstrap user (checked against the password policy).',
    secret: true,
  },
  bootstrapWorkspace: {
    env: 'LARDER_BOOTSTRAP_WORKSPACE',
    schema: Type.String({ minLength: 1, maxLength: 200, default: 'Default' }),
    doc: 'Name of the bootstrap user’s workspace.',
  },
  apiKeyCacheTtlMs: {
    env: 'LARDER_API_KEY_CACHE_TTL_MS',
    schema: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
    doc: 'How long a verified API key is trusted without asking the database; a revocation reaches other replicas within this time.',
  },
  cookieSecure: {
    env: 'LARDER_COOKIE_SECURE',
    schema: Type.Boolean({ default: true }),
    doc: 'Mark session cookies `Secure` (HTTPS only). Turn off only for plain-HTTP development.',
  },
  oidcIssuer: {
    env: 'LARDER_OIDC_ISSUER',
    schema: Type.Optional(Type.String({ pattern: '^https?://' })),
    doc: 'OpenID Connect issuer for single sign-on (`https://accounts.google.com`). Unset: SSO is off.',
  },
  oidcClientId: {
    env: 'LARDER_OIDC_CLIENT_ID',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'Client id of Larder at the identity provider. Required with `LARDER_OIDC_ISSUER`.',
  },
  oidcClientSecret: {
    env: 'LARDER_OIDC_CLIENT_SECRET',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'Client secret (confidential client). Unset: a public client (PKCE only).',
    secret: true,
  },
  oidcRedirectUri: {
    env: 'LARDER_OIDC_REDIRECT_URI',
    schema: Type.Optional(Type.String({ pattern: '^https?://' })),
    doc: 'Larder’s callback as registered at the provider: `https://larder.example.com/v1/auth/oidc/callback`.',
  },
  oidcScopes: {
    env: 'LARDER_OIDC_SCOPES',
    schema: Type.String({ minLength: 6, default: 'openid email profile' }),
    doc: 'Scopes requested, space-separated; must include `openid`.',
  },
  oidcProvisionRole: {
    env: 'LARDER_OIDC_PROVISION_ROLE',
    schema: Type.Enum(['off', 'viewer', 'editor', 'admin'], { default: 'off' }),
    doc: 'Create accounts for SSO users with a verified email and no account, with this role in `LARDER_OIDC_PROVISION_WORKSPACE_ID`; `off` = only existing accounts may sign in.',
  },
  oidcProvisionWorkspaceId: {
    env: 'LARDER_OIDC_PROVISION_WORKSPACE_ID',
    schema: Type.Optional(
      Type.String({
        pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
      }),
    ),
    doc: 'Workspace that provisioned SSO users join. Unset: they start without a workspace.',
  },
  oidcStateSecret: {
    env: 'LARDER_OIDC_STATE_SECRET',
    schema: Type.Optional(Type.String({ minLength: 32 })),
    doc: 'Random secret (≥ 32 characters, `openssl rand -base64 32`) encrypting the sign-in state cookie; the same on every replica. Required with `LARDER_OIDC_ISSUER`.',
    secret: true,
  },
  oidcReturnTo: {
    env: 'LARDER_OIDC_RETURN_TO',
    schema: Type.String({ default: '', pattern: '^(https?://[^\\s,]+(\\s*,\\s*https?://[^\\s,]+)*)?$' }),
    doc: 'Comma-separated URLs that `/v1/auth/oidc/start?returnTo=` may send the browser to, with the tokens in the URL fragment. Empty: the callback answers JSON.',
  },
  oidcAllowInsecureHttp: {
    env: 'LARDER_OIDC_ALLOW_INSECURE_HTTP',
    schema: Type.Boolean({ default: false }),
    doc: 'Allow an `http://` issuer and redirect URI and drop `Secure` from the state cookie. Local development only.',
  },
  corsOrigins: {
    env: 'LARDER_CORS_ORIGINS',
    schema: Type.String({
      default: '',
      pattern: '^(\\*|https?://[^\\s/,]+(\\s*,\\s*https?://[^\\s/,]+)*)?$',
    }),
    doc: 'Comma-separated browser origins allowed to call the API (`https://app.example.com`); `*` = any origin, without credentials; empty = same-origin only.',
  },
  hsts: {
    env: 'LARDER_HSTS',
    schema: Type.Boolean({ default: false }),
    doc: 'Send `Strict-Transport-Security` (1 year, subdomains). Enable only when clients reach the API over HTTPS.',
  },
  rateLimitMax: {
    env: 'LARDER_RATE_LIMIT_MAX',
    schema: Type.Integer({ minimum: 1, default: 600 }),
    doc: 'Requests per window for one user or API key (per client IP when unauthenticated); 429 above.',
  },
  rateLimitWindowMs: {
    env: 'LARDER_RATE_LIMIT_WINDOW_MS',
    schema: Type.Integer({ minimum: 1000, default: 60_000 }),
    doc: 'Window of `LARDER_RATE_LIMIT_MAX`, in milliseconds.',
  },
  authRateLimitMax: {
    env: 'LARDER_AUTH_RATE_LIMIT_MAX',
    schema: Type.Integer({ minimum: 1, default: 10 }),
    doc: 'Login, sign-up and refresh attempts per window and client IP (brute-force protection).',
  },
  authRateLimitWindowMs: {
    env: 'LARDER_AUTH_RATE_LIMIT_WINDOW_MS',
    schema: Type.Integer({ minimum: 1000, default: 300_000 }),
    doc: 'Window of `LARDER_AUTH_RATE_LIMIT_MAX`, in milliseconds.',
  },
  uploadLimitBytes: {
    env: 'LARDER_UPLOAD_LIMIT_BYTES',
    schema: Type.Integer({ minimum: 1024, default: 104_857_600 }),
    doc: 'Largest document accepted by upload, URL or raw text (413 above). Uploads are streamed to the database, never held in memory whole.',
  },
  urlFetchTimeoutMs: {
    env: 'LARDER_URL_FETCH_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 100, default: 30_000 }),
    doc: 'Time allowed to fetch a document from a URL (connect, redirects and body).',
  },
  urlAllowPrivate: {
    env: 'LARDER_URL_ALLOW_PRIVATE',
    schema: Type.Boolean({ default: false }),
    doc: 'Allow URL ingestion from private, loopback and link-local addresses (an intranet wiki). Cloud metadata endpoints stay refused. Off: only public addresses (SSRF guard).',
  },
  embeddingProvider: {
    env: 'LARDER_EMBEDDING_PROVIDER',
    schema: Type.Enum(['local', 'openai', 'none'], { default: 'local' }),
    doc: 'Embedding provider of new collections that do not name one: `local` (Universal Sentence Encoder lite, in-process), `openai` (any OpenAI-compatible `/v1/embeddings`), `none` (lexical search only).',
  },
  embeddingLocalThreads: {
    env: 'LARDER_EMBEDDING_LOCAL_THREADS',
    schema: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    doc: 'Worker threads of the `local` embedding model (each holds a copy of the model, ~150 MB).',
  },
  embeddingBatchSize: {
    env: 'LARDER_EMBEDDING_BATCH_SIZE',
    schema: Type.Integer({ minimum: 1, maximum: 2048, default: 64 }),
    doc: 'Chunks sent to the embedding provider per request.',
  },
  openaiEmbeddingBaseUrl: {
    env: 'LARDER_OPENAI_EMBEDDING_BASE_URL',
    schema: Type.String({ pattern: '^https?://', default: 'https://api.openai.com/v1' }),
    doc: 'Base URL of the OpenAI-compatible embeddings API (Ollama: `http://localhost:11434/v1`).',
  },
  openaiEmbeddingApiKey: {
    env: 'LARDER_OPENAI_EMBEDDING_API_KEY',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'API key sent as a bearer token to the embeddings API.',
    secret: true,
  },
  openaiEmbeddingModel: {
    env: 'LARDER_OPENAI_EMBEDDING_MODEL',
    schema: Type.String({ minLength: 1, default: 'text-embedding-3-small' }),
    doc: 'Default model of `openai` collections.',
  },
  openaiEmbeddingDimensions: {
    env: 'LARDER_OPENAI_EMBEDDING_DIMENSIONS',
    schema: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
    doc: 'Requested vector size (models that support shortening). Unset: the model’s own size, discovered with one request.',
  },
  openaiEmbeddingTimeoutMs: {
    env: 'LARDER_OPENAI_EMBEDDING_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 100, default: 30_000 }),
    doc: 'Timeout of one embeddings request.',
  },
  openaiEmbeddingMaxRetries: {
    env: 'LARDER_OPENAI_EMBEDDING_MAX_RETRIES',
    schema: Type.Integer({ minimum: 0, maximum: 10, default: 4 }),
    doc: 'Retries (exponential backoff with jitter, honouring `Retry-After`) on 408/409/429/5xx and connection errors.',
  },
  openaiEmbeddingQueryPrefix: {
    env: 'LARDER_OPENAI_EMBEDDING_QUERY_PREFIX',
    schema: Type.String({ default: '' }),
    doc: 'Text put before every search query (e.g. `search_query: ` for nomic, `query: ` for e5).',
  },
  openaiEmbeddingDocumentPrefix: {
    env: 'LARDER_OPENAI_EMBEDDING_DOCUMENT_PREFIX',
    schema: Type.String({ default: '' }),
    doc: 'Text put before every chunk (e.g. `search_document: ` for nomic, `passage: ` for e5).',
  },
  chatProvider: {
    env: 'LARDER_CHAT_PROVIDER',
    schema: Type.Enum(['extractive', 'openai'], { default: 'extractive' }),
    doc: 'What writes answers: `extractive` (offline, no model: quotes the best evidence sentences with citations) or `openai` (any OpenAI-compatible chat endpoint: OpenAI, Ollama, vLLM, llama.cpp, LM Studio). When the model fails, answers fall back to extractive and say so.',
  },
  chatBaseUrl: {
    env: 'LARDER_CHAT_BASE_URL',
    schema: Type.String({ pattern: '^https?://', default: 'https://api.openai.com/v1' }),
    doc: 'Base URL of the OpenAI-compatible chat API (Ollama: `http://localhost:11434/v1`; vLLM: `http://localhost:8000/v1`).',
  },
  chatApiKey: {
    env: 'LARDER_CHAT_API_KEY',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'API key sent as a bearer token to the chat API (unset: no Authorization header, for local servers).',
    secret: true,
  },
  chatModel: {
    env: 'LARDER_CHAT_MODEL',
    schema: Type.String({ minLength: 1, default: 'gpt-4o-mini' }),
    doc: 'The default ("fast") chat model.',
  },
  chatStrongModel: {
    env: 'LARDER_CHAT_STRONG_MODEL',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'The stronger model that routing picks for complex questions or `quality: "strong"` (unset: always `LARDER_CHAT_MODEL`). A workspace’s policy may name others.',
  },
  chatTimeoutMs: {
    env: 'LARDER_CHAT_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 100, default: 60_000 }),
    doc: 'Per attempt: the whole request (non-streaming), or until the first byte and then between two streamed chunks.',
  },
  chatMaxAttempts: {
    env: 'LARDER_CHAT_MAX_ATTEMPTS',
    schema: Type.Integer({ minimum: 1, maximum: 10, default: 3 }),
    doc: 'HTTP attempts per model call, the first included (back-off with jitter on 429/5xx, honouring a capped `Retry-After`).',
  },
  chatMaxTokens: {
    env: 'LARDER_CHAT_MAX_TOKENS',
    schema: Type.Integer({ minimum: 16, maximum: 32_768, default: 800 }),
    doc: 'Upper bound on the tokens of one generated answer.',
  },
  chatPrices: {
    env: 'LARDER_CHAT_PRICES',
    schema: Type.String({ default: '' }),
    doc: 'Price table as JSON, USD per million tokens: `{"my-model": {"input": 0.15, "output": 0.6}}`. Merged over the built-in table (docs/answers.md); a model in neither costs 0 and is flagged.',
  },
  answerSources: {
    env: 'LARDER_ANSWER_SOURCES',
    schema: Type.Integer({ minimum: 1, maximum: 20, default: 6 }),
    doc: 'Retrieved chunks given to the answer as numbered sources.',
  },
  answerMinBm25: {
    env: 'LARDER_ANSWER_MIN_BM25',
    schema: Type.Number({ minimum: 0, default: 10 }),
    doc: 'Grounding threshold: the best BM25 score a question’s evidence needs (unless its best cosine similarity reaches `LARDER_ANSWER_MIN_COSINE`). Below both, the answer says the documents do not contain it.',
  },
  answerMinCosine: {
    env: 'LARDER_ANSWER_MIN_COSINE',
    schema: Type.Number({ minimum: -1, maximum: 1, default: 0.45 }),
    doc: 'Grounding threshold on the best cosine similarity (see `LARDER_ANSWER_MIN_BM25`; measured for the local model, re-measure for others with `larder eval --answers`).',
  },
  answerInjection: {
    env: 'LARDER_ANSWER_INJECTION',
    schema: Type.Enum(['drop', 'mark'], { default: 'drop' }),
    doc: 'Retrieved chunks that look like prompt injection: `drop` them from the sources, or `mark` them as flagged data in the prompt.',
  },
  answerCacheTtlSeconds: {
    env: 'LARDER_ANSWER_CACHE_TTL_SECONDS',
    schema: Type.Integer({ minimum: 0, maximum: 2_592_000, default: 86_400 }),
    doc: 'How long an answer stays cached (Redis when configured, else in memory); 0 disables the answer cache. Any ingest or delete in the collections invalidates it sooner.',
  },
  answerAgentMaxSteps: {
    env: 'LARDER_ANSWER_AGENT_MAX_STEPS',
    schema: Type.Integer({ minimum: 1, maximum: 8, default: 3 }),
    doc: 'Agentic mode: most `search` tool calls the model may make before it must answer.',
  },
  promptVersion: {
    env: 'LARDER_PROMPT_VERSION',
    schema: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'v1' }),
    doc: 'Prompt template set (a folder under `LARDER_PROMPTS_DIR`); recorded with every answer together with a hash of its files.',
  },
  promptsDir: {
    env: 'LARDER_PROMPTS_DIR',
    schema: Type.Optional(Type.String({ minLength: 1 })),
    doc: 'Folder of prompt template sets (unset: the `prompts/` folder shipped with Larder).',
  },
  piiRedaction: {
    env: 'LARDER_PII_REDACTION',
    schema: Type.String({
      default: '',
      pattern: '^((logs|storage|provider)(\\s*,\\s*(logs|storage|provider))*)?$',
    }),
    doc: 'Where to redact personal data and secrets (emails, phones, card numbers, IBANs, national ids, API keys): any of `logs`, `storage` (stored questions, answers and prompts), `provider` (text sent to the chat model), comma-separated. Empty: off.',
  },
  jobTimeoutSeconds: {
    env: 'LARDER_JOB_TIMEOUT_SECONDS',
    schema: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_399 })),
    doc: 'A job still running after this long is presumed lost (its worker crashed or was killed) and is retried. Unset: each job’s own limit (ingest 30 min, embedding 60 min, others 15 min). Keep it above the longest legitimate run (a retry meanwhile is harmless but wasted work) and the same in every process (a job keeps the limit it was enqueued with).',
  },
  jobMaintenanceIntervalSeconds: {
    env: 'LARDER_JOB_MAINTENANCE_INTERVAL_SECONDS',
    schema: Type.Integer({ minimum: 1, maximum: 3600, default: 120 }),
    doc: 'How often workers look for timed-out jobs (and archive finished ones): a crashed worker’s jobs are retried within the job timeout plus this.',
  },
  searchExactBelow: {
    env: 'LARDER_SEARCH_EXACT_BELOW',
    schema: Type.Integer({ minimum: 0, default: 5_000 }),
    doc: 'Collections with fewer searchable chunks than this are searched by an exact vector scan instead of the HNSW index (exact, and as fast at that size); so are collections below 10× this size that hold less than 20 % of the vectors of their dimension (the shared index would mostly visit other collections’ vectors). 0 = always the index.',
  },
  searchPostingsCacheMb: {
    env: 'LARDER_SEARCH_POSTINGS_CACHE_MB',
    schema: Type.Integer({ minimum: 0, maximum: 65_536, default: 64 }),
    doc: 'Memory (MiB) each API process may keep of decoded postings lists, least recently used out first: a cached list is not read and sent again (the common terms of a corpus have the longest lists; see docs/search.md). 0 = no cache.',
  },
} as const satisfies Record<string, { env: string; schema: TSchema; doc: string; secret?: boolean }>;

type Settings = typeof settings;
/** Optional settings (no default) are `undefined` when unset. */
export type Config = {
  [K in keyof Settings]: Settings[K]['schema'] extends TOptional<infer S>
    ? Static<S> | undefined
    : Static<Settings[K]['schema']>;
};

/** The environment variable naming an optional JSON config file. */
export const CONFIG_FILE_ENV = 'LARDER_CONFIG';

/** Thrown when configuration is invalid; `problems` lists every one of them. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function readConfigFile(file: string, problems: string[]): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(path.resolve(file), 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      problems.push(`${CONFIG_FILE_ENV}: ${file} must contain a JSON object`);
      return {};
    }
    return parsed as Record<string, unknown>;
  } catch (error) {
    problems.push(`${CONFIG_FILE_ENV}: cannot read ${file}: ${(error as Error).message}`);
    return {};
  }
}

/**
 * Parses configuration from an environment (and the optional config file it names).
 * @throws ConfigError with every problem found, never just the first.
 */
export type PiiRedactionTarget = 'logs' | 'storage' | 'provider';

/** The targets listed in `LARDER_PII_REDACTION` (validated by its pattern at load). */
export function piiRedactionTargets(value: string): Set<PiiRedactionTarget> {
  return new Set(
    value
      .split(',')
      .map((s) => s.trim())
      .filter((s): s is PiiRedactionTarget => s === 'logs' || s === 'storage' || s === 'provider'),
  );
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const configFile = env[CONFIG_FILE_ENV];
  const fileValues = configFile ? readConfigFile(configFile, problems) : {};
  const known = new Set<string>(Object.values(settings).map((s) => s.env));
  for (const key of Object.keys(fileValues)) {
    if (!known.has(key)) problems.push(`${key}: unknown setting in ${configFile ?? ''}`);
  }

  const result: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    const raw: unknown =
      env[setting.env] !== undefined && env[setting.env] !== '' ? env[setting.env] : fileValues[setting.env];
    const schema: TSchema = setting.schema;
    if (raw === undefined) {
      const fallback: unknown = Value.Default(schema, undefined);
      if (fallback !== undefined) result[key] = fallback;
      continue;
    }
    const value: unknown = Value.Convert(schema, raw);
    if (!Value.Check(schema, value)) {
      const allowed = allowedValues(schema);
      const reason = allowed
        ? `must be one of ${allowed}`
        : (Value.Errors(schema, value)[0]?.message ?? 'invalid value');
      problems.push(`${setting.env}: ${reason} (got ${JSON.stringify(redactSetting(setting.env, raw))})`);
      continue;
    }
    result[key] = value;
  }
  if (typeof result.chatPrices === 'string') {
    try {
      parsePriceTable(result.chatPrices);
    } catch (error) {
      problems.push(`LARDER_CHAT_PRICES: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as Config;
}

/** Masks credentials in a setting's value for logs and error messages. */
export function redactSetting(env: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (Object.values(settings).some((s) => s.env === env && 'secret' in s && s.secret)) return '[REDACTED]';
  if (env === 'DATABASE_URL' || env === 'REDIS_URL') {
    try {
      const url = new URL(value);
      if (url.password) url.password = '***';
      return url.toString();
    } catch {
      return '***';
    }
  }
  return value;
}

/** A log-safe summary of the effective configuration. */
export function describeConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    out[key] = redactSetting(setting.env, config[key as keyof Config]);
  }
  return out;
}

export type DatabaseMode = 'embedded' | 'server';
export const databaseMode = (config: Config): DatabaseMode => (config.databaseUrl ? 'server' : 'embedded');
