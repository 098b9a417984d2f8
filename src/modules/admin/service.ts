/**
 * Operator tasks: creating accounts outside the sign-up flow (first user, containers). Built from the
 * auth module's pieces, so the password policy and hashing are the same as for sign-up.
 */
import { sql } from 'kysely';
import type { Config } from '../../config.js';
import type { Db } from '../../platform/db/database.js';
import { AppError, StartupError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { PasswordHasher, passwordProblems } from '../auth/passwords.js';
import { insertUser, insertWorkspaceWithOwner } from '../auth/repository.js';
import { slugify } from '../auth/service.js';

export interface CreateUserInput {
  email: string;
  password: string;
  displayName?: string | undefined;
  /** Create a workspace with this name owned by the user. */
  ownerOf?: string | undefined;
}

export async function createUser(db: Db, config: Config, input: CreateUserInput) {
  const email = input.email.trim().toLowerCase();
  const problems = passwordProblems(input.password, email, config.passwordMinLength);
  if (problems.length > 0)
    throw new AppError('weak_password', { detail: `The password ${problems.join('; ')}` });
  const passwordHash = await new PasswordHasher(config).hash(input.password);
  const displayName = input.displayName ?? email.split('@')[0] ?? email;
  try {
    return await db.transaction().execute(async (trx) => {
      const user = await insertUser(trx, { email, displayName, passwordHash });
      const workspace = input.ownerOf
        ? await insertWorkspaceWithOwner(trx, {
            name: input.ownerOf,
            slug: slugify(input.ownerOf),
            ownerId: user.id,
          })
        : null;
      return { user, workspace };
    });
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw new AppError('email_taken');
    throw error;
  }
}

export async function countUsers(db: Db): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from users`.execute(db);
  return rows[0]?.n ?? 0;
}

/**
 * Container bootstrap: when `LARDER_BOOTSTRAP_EMAIL` and `LARDER_BOOTSTRAP_PASSWORD` are set and the
 * database has no users yet, create that user as the owner of a first workspace. Idempotent, and safe
 * when replicas start together (an advisory lock serialises them; the later ones find a user).
 */
export async function bootstrapFirstUser(db: Db, config: Config, logger: Logger): Promise<boolean> {
  if (!config.bootstrapEmail || !config.bootstrapPassword) return false;
  const { bootstrapEmail: email, bootstrapPassword: password } = config;
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(hashtext('larder.bootstrap'))`.execute(conn);
    try {
      if ((await countUsers(conn)) > 0) return false;
      const { user } = await createUser(conn, config, {
        email,
        password,
        ownerOf: config.bootstrapWorkspace,
      }).catch((error: unknown) => {
        if (error instanceof AppError)
          throw new StartupError(`LARDER_BOOTSTRAP_*: ${error.detail ?? error.title}`);
        throw error;
      });
      logger.info({ userId: user.id, email: user.email }, 'bootstrap: created the first user and workspace');
      return true;
    } finally {
      await sql`select pg_advisory_unlock(hashtext('larder.bootstrap'))`.execute(conn);
    }
  });
}
