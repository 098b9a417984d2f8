/**
 * API keys: workspace-bound machine credentials with scopes.
 *
 * Format: `lk_live_<8 hex>_<43 base64url>`. The part before the second underscore is the visible
 * `prefix` (shown in listings); the whole key is stored only as its SHA-256 (keys are 256-bit random,
 * so a fast hash looked up by equality is right; argon2 would be wasted work per request).
 *
 * Hot path: `authenticate` answers from an in-process cache for `ttlMs` (default 30 s), so a request
 * costs no database round trip; revocation therefore takes effect within that TTL on other replicas
 * (immediately on the one that revoked). `last_used_at` is collected in memory and written in one
 * UPDATE per flush interval, not once per request.
 */
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';
import type { ApiKeyAuthenticator, WorkspaceContext } from '../../platform/auth/access.js';
import { visibleCollection } from '../../platform/auth/collection-access.js';
import { type AuditContext, recordAudit, SYSTEM_AUDIT } from '../audit/service.js';

const PREFIX = 'lk_live_';
const KEY_SHAPE = /^lk_live_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$/;
const MAX_CACHED = 10_000;

export const hashApiKey = (key: string) => createHash('sha256').update(key).digest('hex');

interface CachedKey {
  id: string;
  workspaceId: string;
  scopes: string[];
  collections: readonly string[] | null;
  expiresAt: Date | null;
  cachedUntil: number;
}

/** The key's columns shown to clients (never the hash). */
const KEY_COLUMNS = [
  'id',
  'name',
  'prefix',
  'scopes',
  'collections',
  'expires_at',
  'created_at',
  'last_used_at',
  'revoked_at',
] as const;

/** Most collections one key's allowlist may name (also a CHECK in 0008_collection_access.sql). */
export const MAX_KEY_COLLECTIONS = 100;

export interface ApiKeyServiceOptions {
  cacheTtlMs: number;
  flushIntervalMs?: number;
}

export class ApiKeyService implements ApiKeyAuthenticator {
  readonly #cache = new Map<string, CachedKey>();
  readonly #used = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly options: ApiKeyServiceOptions,
  ) {
    if (options.flushIntervalMs) {
      this.#timer = setInterval(() => void this.flushUsage().catch(() => undefined), options.flushIntervalMs);
      this.#timer.unref();
    }
  }

  async authenticate(key: string): Promise<{
    id: string;
    workspaceId: string;
    scopes: string[];
    collections: readonly string[] | null;
  } | null> {
    if (!KEY_SHAPE.test(key)) return null;
    const hash = hashApiKey(key);
    const now = Date.now();
    let entry = this.#cache.get(hash);
    if (!entry || entry.cachedUntil <= now) {
      // Authentication precedes knowing the workspace, so this lookup is deliberately unscoped.
      const row = await this.db
        .selectFrom('api_keys as k')
        .innerJoin('workspaces as w', 'w.id', 'k.workspace_id')
        .select(['k.id', 'k.workspace_id', 'k.scopes', 'k.collections', 'k.expires_at'])
        .where('k.key_hash', '=', hash)
        .where('k.revoked_at', 'is', null)
        .where('w.deleted_at', 'is', null)
        .executeTakeFirst();
      if (!row) {
        this.#cache.delete(hash);
        return null;
      }
      entry = {
        id: row.id,
        workspaceId: row.workspace_id,
        scopes: row.scopes,
        collections: row.collections,
        expiresAt: row.expires_at,
        cachedUntil: now + this.options.cacheTtlMs,
      };
      if (this.#cache.size >= MAX_CACHED) {
        const oldest = this.#cache.keys().next();
        if (!oldest.done) this.#cache.delete(oldest.value);
      }
      this.#cache.set(hash, entry);
    }
    if (entry.expiresAt && entry.expiresAt.getTime() <= now) return null;
    this.#used.add(entry.id);
    return {
      id: entry.id,
      workspaceId: entry.workspaceId,
      scopes: entry.scopes,
      collections: entry.collections,
    };
  }

  /**
   * Creates a key. `collections` (optional allowlist, see collection-access.ts) may name only live
   * collections of the workspace that the creator can see (others are a 400, like missing ones); a
   * creator that is itself a key with an allowlist cannot create a key without one (403).
   */
  async create(
    ws: WorkspaceContext,
    input: {
      name: string;
      scopes: string[];
      collections?: readonly string[] | null | undefined;
      expiresAt?: Date | undefined;
      createdBy: string | null;
    },
    audit: AuditContext = SYSTEM_AUDIT,
  ) {
    const workspaceId = ws.id;
    const requested = input.collections?.map((id) => id.toLowerCase()) ?? null;
    const collections = requested && [...new Set(requested)].sort();
    if (collections === null && ws.role === null && ws.collections)
      throw new AppError('forbidden', {
        detail: 'A key limited to some collections can only create keys limited to (some of) them',
      });
    if (collections && collections.length > MAX_KEY_COLLECTIONS)
      throw new AppError('validation_failed', {
        detail: `collections may name at most ${MAX_KEY_COLLECTIONS} collections`,
        extensions: {
          errors: [
            { in: 'body', path: '/collections', message: `must have at most ${MAX_KEY_COLLECTIONS} items` },
          ],
        },
      });
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) {
      throw new AppError('validation_failed', {
        detail: 'expiresAt must be in the future',
        extensions: { errors: [{ in: 'body', path: '/expiresAt', message: 'must be in the future' }] },
      });
    }
    const prefix = `${PREFIX}${randomBytes(4).toString('hex')}`;
    const key = `${prefix}_${randomBytes(32).toString('base64url')}`;
    const row = await withTenant(this.db, workspaceId, async (trx) => {
      if (collections?.length) {
        const found = await trx
          .selectFrom('collections')
          .select('id')
          .where('workspace_id', '=', workspaceId)
          .where('id', 'in', collections)
          .where('deleted_at', 'is', null)
          .where(visibleCollection(ws))
          .execute();
        const known = new Set(found.map((c) => c.id));
        // A foreign, deleted, missing or invisible collection: one answer, so none of them leaks.
        const errors = (requested ?? []).flatMap((id, i) =>
          known.has(id)
            ? []
            : [{ in: 'body', path: `/collections/${i}`, message: 'is not a collection of this workspace' }],
        );
        if (errors.length)
          throw new AppError('validation_failed', {
            detail: 'collections names an unknown collection',
            extensions: { errors },
          });
      }
      const created = await trx
        .insertInto('api_keys')
        .values({
          workspace_id: workspaceId,
          name: input.name,
          prefix,
          key_hash: hashApiKey(key),
          scopes: [...new Set(input.scopes)].sort(),
          collections,
          created_by: input.createdBy,
          expires_at: input.expiresAt ?? null,
        })
        .returning(KEY_COLUMNS)
        .executeTakeFirstOrThrow();
      await recordAudit(trx, {
        ...audit,
        workspaceId,
        action: 'api_key.created',
        target: { type: 'api_key', id: created.id },
        data: {
          name: created.name,
          scopes: created.scopes,
          collections: created.collections,
          expiresAt: created.expires_at?.toISOString() ?? null,
        },
      });
      return created;
    });
    return { row, key };
  }

  list(workspaceId: string) {
    return withTenant(this.db, workspaceId, (trx) =>
      trx
        .selectFrom('api_keys')
        .select(KEY_COLUMNS)
        .where('workspace_id', '=', workspaceId)
        .orderBy('created_at', 'desc')
        .execute(),
    );
  }

  /** Revokes a key of this workspace; 404 for unknown ids and other workspaces' keys alike. */
  async revoke(workspaceId: string, id: string, audit: AuditContext = SYSTEM_AUDIT): Promise<void> {
    const row = await withTenant(this.db, workspaceId, async (trx) => {
      const revoked = await trx
        .updateTable('api_keys')
        .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
        .where('workspace_id', '=', workspaceId)
        .where('id', '=', id)
        // now() is the transaction's time: equal only if this statement did the revoking.
        .returning(['key_hash', 'name', sql<boolean>`revoked_at = now()`.as('newly_revoked')])
        .executeTakeFirst();
      if (revoked?.newly_revoked) {
        await recordAudit(trx, {
          ...audit,
          workspaceId,
          action: 'api_key.revoked',
          target: { type: 'api_key', id },
          data: { name: revoked.name },
        });
      }
      return revoked;
    });
    if (!row) throw new AppError('not_found', { detail: 'No such API key' });
    this.#cache.delete(row.key_hash);
  }

  /** Writes `last_used_at` for keys used since the last flush (one statement). */
  async flushUsage(): Promise<number> {
    if (this.#used.size === 0) return 0;
    const ids = [...this.#used];
    this.#used.clear();
    const result = await this.db
      .updateTable('api_keys')
      .set({ last_used_at: sql<Date>`now()` })
      .where('id', 'in', ids)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flushUsage().catch(() => undefined);
  }
}
