/**
 * PGlite is a single-process database: two processes opening the same data directory corrupt it.
 * A lock file with the owner's pid refuses a second opener and recovers from a crashed one.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { StartupError } from '../errors.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireDataDirLock(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'larder.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await unlink(file).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (owner && owner !== process.pid && isAlive(owner)) {
        throw new StartupError(
          `The embedded database in ${dataDir} is in use by process ${owner}. ` +
            'Embedded mode allows one Larder process per data directory; stop it, or set DATABASE_URL ' +
            'to run several processes against PostgreSQL.',
        );
      }
      await unlink(file).catch(() => undefined); // stale: its owner is gone
    }
  }
  throw new StartupError(`Could not lock the data directory ${dataDir}`);
}
