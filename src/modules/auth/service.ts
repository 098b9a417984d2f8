/**
 * Accounts and sessions: sign-up, login, refresh-token rotation with reuse detection, logout.
 *
 * A session is a refresh-token family. Every refresh consumes the presented token and issues its child;
 * presenting a consumed (or revoked) token again means it leaked, so the whole family is revoked and
 * both the thief and the user must log in again.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Config } from '../../config.js';
import type { Db } from '../../platform/db/database.js';
import { AppError } from '../../platform/errors.js';
import { recordAudit } from '../audit/service.js';
import type { KeyRing } from './keys.js';
import { PasswordHasher, passwordProblems } from './passwords.js';
import * as repo from './repository.js';

export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
  /** The HTTP request's id, recorded on audit events to find the request in the logs. */
  requestId?: string | null;
}

export interface TokenPair {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  refreshToken: string;
}

const REFRESH_PREFIX = 'lr_';
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const normaliseEmail = (email: string) => email.trim().toLowerCase();

/** A URL-safe, unique-enough slug for a workspace name. */
export function slugify(name: string): string {
  const base = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return `${base || 'workspace'}-${randomBytes(3).toString('hex')}`;
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === constraint;
}

export class AuthService {
  readonly passwords: PasswordHasher;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly keys: KeyRing,
  ) {
    this.passwords = new PasswordHasher(config);
  }

  async signup(
    input: { email: string; password: string; displayName: string; workspaceName?: string | undefined },
    client: ClientInfo,
  ) {
    if (!this.config.signupEnabled) throw new AppError('signup_disabled');
    const email = normaliseEmail(input.email);
    const problems = passwordProblems(input.password, email, this.config.passwordMinLength);
    if (problems.length > 0) {
      throw new AppError('weak_password', {
        detail: `The password ${problems.join('; ')}`,
        extensions: { errors: problems.map((message) => ({ in: 'body', path: '/password', message })) },
      });
    }
    const passwordHash = await this.passwords.hash(input.password); // before the transaction: slow
    try {
      const { user, workspace } = await this.db.transaction().execute(async (trx) => {
        const user = await repo.insertUser(trx, { email, displayName: input.displayName, passwordHash });
        const name = input.workspaceName ?? `${input.displayName}'s workspace`;
        const workspace = await repo.insertWorkspaceWithOwner(trx, {
          name,
          slug: slugify(name),
          ownerId: user.id,
        });
        // Same transaction: the account exists if and only if its sign-up is audited.
        await recordAudit(trx, {
          workspaceId: workspace.id,
          actor: { type: 'user', userId: user.id },
          action: 'auth.signup',
          target: { type: 'user', id: user.id },
          data: { email },
          ...clientAudit(client),
        });
        return { user, workspace };
      });
      const tokens = await this.startSession(user.id, client);
      return { user, workspace, tokens };
    } catch (error) {
      if (isUniqueViolation(error, 'users_email_key')) throw new AppError('email_taken');
      throw error;
    }
  }

  /** Same answer and similar timing whether the email is unknown, the password wrong or the account disabled. */
  async login(input: { email: string; password: string }, client: ClientInfo): Promise<TokenPair> {
    const email = normaliseEmail(input.email);
    const user = await repo.findUserByEmail(this.db, email);
    const check = await this.passwords.check(user?.password_hash, input.password);
    if (!user || !check.ok || user.disabled_at) {
      // Instance-level (no workspace yet); the reason is for operators and never reaches the client.
      await recordAudit(this.db, {
        workspaceId: null,
        actor: { type: 'anonymous' },
        action: 'auth.login.failed',
        target: user ? { type: 'user', id: user.id } : undefined,
        data: { email, reason: !user ? 'unknown_email' : !check.ok ? 'wrong_password' : 'disabled' },
        ...clientAudit(client),
      });
      throw new AppError('invalid_credentials');
    }
    const rehash = check.needsRehash ? await this.passwords.hash(input.password) : undefined;
    await repo.recordLogin(this.db, user.id, rehash);
    const tokens = await this.startSession(user.id, client);
    await recordAudit(this.db, {
      workspaceId: null,
      actor: { type: 'user', userId: user.id },
      action: 'auth.login.succeeded',
      ...clientAudit(client),
    });
    return tokens;
  }

  async refresh(refreshToken: string, client: ClientInfo): Promise<TokenPair> {
    const row = refreshToken.startsWith(REFRESH_PREFIX)
      ? await repo.findRefreshToken(this.db, hashToken(refreshToken))
      : undefined;
    if (!row || row.expired) throw new AppError('invalid_token');
    const fresh = this.#newRefreshToken();
    const rotated = await this.db.transaction().execute(async (trx) => {
      if (!(await repo.markRotated(trx, row.id))) return false;
      await repo.insertRefreshToken(trx, {
        userId: row.user_id,
        familyId: row.family_id,
        tokenHash: hashToken(fresh),
        parentId: row.id,
        ttlSeconds: this.config.refreshTokenTtlSeconds,
        ...clientColumns(client),
      });
      return true;
    });
    if (!rotated) {
      // Already used or revoked: treat as stolen.
      await repo.revokeFamily(this.db, row.family_id, 'reuse_detected');
      await recordAudit(this.db, {
        workspaceId: null,
        actor: { type: 'user', userId: row.user_id },
        action: 'auth.refresh.reuse_detected',
        data: { familyId: row.family_id },
        ...clientAudit(client),
      });
      throw new AppError('invalid_token', {
        detail: 'This refresh token was already used; the session has been revoked',
      });
    }
    const user = await repo.findUserById(this.db, row.user_id);
    if (!user || user.disabled_at) {
      await repo.revokeFamily(this.db, row.family_id, 'user_disabled');
      throw new AppError('invalid_token');
    }
    return this.#pair(row.user_id, row.family_id, fresh);
  }

  /** Ends the session the refresh token belongs to. Unknown tokens are ignored (idempotent). */
  async logout(refreshToken: string, client: ClientInfo = { ip: null, userAgent: null }): Promise<void> {
    const row = await repo.findRefreshToken(this.db, hashToken(refreshToken));
    if (!row) return;
    // Audited only when it ended a live session (a repeated logout changes nothing).
    if ((await repo.revokeFamily(this.db, row.family_id, 'logout')) > 0) {
      await recordAudit(this.db, {
        workspaceId: null,
        actor: { type: 'user', userId: row.user_id },
        action: 'auth.logout',
        data: { familyId: row.family_id },
        ...clientAudit(client),
      });
    }
  }

  async me(userId: string) {
    const user = await repo.findUserById(this.db, userId);
    if (!user || user.disabled_at) throw new AppError('invalid_token');
    return { user, memberships: await repo.membershipsOf(this.db, userId) };
  }

  /**
   * Changes the signed-in user's display name and answer profile (preferred language, custom
   * instructions: what answers are personalised with). Fields given as null are cleared.
   */
  async updateProfile(
    userId: string,
    patch: {
      displayName?: string | null | undefined;
      profile?:
        { language?: string | null | undefined; customInstructions?: string | null | undefined } | undefined;
    },
  ) {
    const { user } = await this.me(userId);
    // Given fields replace, nulls clear, absent ones stay.
    const changes = Object.entries(patch.profile ?? {});
    const profile = Object.fromEntries(
      [...Object.entries(user.profile), ...changes].filter(
        ([key, value]) => value !== null && !changes.some(([k, v]) => k === key && v === null),
      ),
    );
    const displayName = patch.displayName === undefined ? undefined : patch.displayName?.trim();
    await this.db
      .updateTable('users')
      .set({
        profile: JSON.stringify(profile),
        ...(displayName === undefined ? {} : { display_name: displayName === '' ? null : displayName }),
      })
      .where('id', '=', userId)
      .execute();
    return this.me(userId);
  }

  /** Opens a new session (refresh-token family) for a user authenticated by other means (e.g. SSO). */
  async startSession(userId: string, client: ClientInfo): Promise<TokenPair> {
    const familyId = randomUUID();
    const token = this.#newRefreshToken();
    await repo.insertRefreshToken(this.db, {
      userId,
      familyId,
      tokenHash: hashToken(token),
      parentId: null,
      ttlSeconds: this.config.refreshTokenTtlSeconds,
      ...clientColumns(client),
    });
    return this.#pair(userId, familyId, token);
  }

  async #pair(userId: string, familyId: string, refreshToken: string): Promise<TokenPair> {
    return {
      accessToken: await this.keys.sign({ sub: userId, sid: familyId }),
      tokenType: 'Bearer',
      expiresIn: this.keys.ttlSeconds,
      refreshToken,
    };
  }

  #newRefreshToken(): string {
    return `${REFRESH_PREFIX}${randomBytes(32).toString('base64url')}`;
  }
}

function clientColumns(client: ClientInfo) {
  return { ip: client.ip, userAgent: client.userAgent?.slice(0, 512) ?? null };
}

function clientAudit(client: ClientInfo) {
  return { ip: client.ip, userAgent: client.userAgent, requestId: client.requestId ?? null };
}
