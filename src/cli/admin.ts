import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { createUser } from '../modules/admin/service.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import { openRuntime } from '../runtime.js';

export interface CreateUserOptions {
  email: string;
  name?: string;
  owner?: boolean;
  workspace?: string;
  passwordStdin?: boolean;
  json?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export async function createUserCommand(
  { config, logger }: { config: Config; logger: Logger },
  opts: CreateUserOptions,
): Promise<void> {
  const generated = !opts.passwordStdin;
  const password = opts.passwordStdin ? await readStdin() : randomBytes(18).toString('base64url');
  const runtime = await openRuntime(config, logger, {
    migrate: config.migrateOnStart,
    jobs: 'none',
    redis: false,
  });
  try {
    const { user, workspace } = await createUser(runtime.database.db, config, {
      email: opts.email,
      password,
      displayName: opts.name,
      ownerOf: opts.owner ? (opts.workspace ?? 'Default') : undefined,
    });
    const out = {
      userId: user.id,
      email: user.email,
      workspaceId: workspace?.id ?? null,
      ...(generated ? { password } : {}),
    };
    if (opts.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(`Created user ${user.email} (${user.id})\n`);
      if (workspace) process.stdout.write(`Owner of workspace "${workspace.name}" (${workspace.id})\n`);
      if (generated) process.stdout.write(`Password (shown once): ${password}\n`);
    }
  } catch (error) {
    if (error instanceof AppError) {
      process.stderr.write(`larder: ${error.detail ?? error.title}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  } finally {
    await runtime.close();
  }
}
