/** Regenerates committed artefacts: openapi.json and the README configuration table. */
import { readFile, writeFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { generateJwk, KeyRing } from '../src/modules/auth/keys.js';
import { embeddedDatabase } from '../src/platform/db/database.js';
import { renderOpenApi, withConfigTable } from '../src/platform/generated.js';
import { createLogger } from '../src/platform/logger.js';

const root = new URL('../', import.meta.url);
const config = loadConfig({ LOG_LEVEL: 'silent' });
// Route registration touches no data; an empty in-memory database is enough to describe the API.
const database = embeddedDatabase(await PGlite.create());
const keys = await KeyRing.fromJwks([await generateJwk()], { issuer: 'larder', ttlSeconds: 900 });
const app = await buildApp({ config, logger: createLogger(config), database, keys });
await app.ready();
await writeFile(new URL('openapi.json', root), renderOpenApi(app));
await app.close();
await database.close();

const readmeUrl = new URL('README.md', root);
await writeFile(readmeUrl, withConfigTable(await readFile(readmeUrl, 'utf8')));
process.stdout.write('wrote openapi.json and README.md configuration table\n');
