import { mkdtemp, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';
import { StartupError } from '../../platform/errors.js';
import { generateJwk, KeyRing } from './keys.js';

const claims = { sub: '018f0000-0000-7000-8000-000000000001', sid: 'session-1' };

describe('KeyRing', () => {
  it('verifies tokens signed by any key of the ring, so keys rotate without logging anyone out', async () => {
    const oldKey = await generateJwk();
    const newKey = await generateJwk();
    const before = await KeyRing.fromJwks([oldKey], { issuer: 'larder', ttlSeconds: 60 });
    const issuedBefore = await before.sign(claims);
    const after = await KeyRing.fromJwks([newKey, oldKey], { issuer: 'larder', ttlSeconds: 60 });
    expect(await after.verify(issuedBefore)).toEqual(claims);
    expect(await after.verify(await after.sign(claims))).toEqual(claims);
    // Once the old key is dropped, its tokens stop working.
    const dropped = await KeyRing.fromJwks([newKey], { issuer: 'larder', ttlSeconds: 60 });
    expect(await dropped.verify(issuedBefore)).toBeNull();
  });

  it('rejects expired tokens and tokens from another issuer', async () => {
    const jwk = await generateJwk();
    const ring = await KeyRing.fromJwks([jwk], { issuer: 'larder', ttlSeconds: -10 });
    expect(await ring.verify(await ring.sign(claims))).toBeNull();
    const other = await KeyRing.fromJwks([jwk], { issuer: 'someone-else', ttlSeconds: 60 });
    const ours = await KeyRing.fromJwks([jwk], { issuer: 'larder', ttlSeconds: 60 });
    expect(await ours.verify(await other.sign(claims))).toBeNull();
  });

  it('generates a key once into the data directory (0600) and reuses it', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-keys-'));
    const config = loadConfig({ LARDER_DATA_DIR: dataDir });
    const first = await KeyRing.load(config);
    const file = path.join(dataDir, 'jwt-keys.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = await KeyRing.load(config);
    expect(await second.verify(await first.sign(claims))).toEqual(claims);
    expect(JSON.parse(await readFile(file, 'utf8'))).toHaveLength(1);
  });

  it('agrees on one key when several processes start at once on an empty data directory', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'larder-keys-'));
    const config = loadConfig({ LARDER_DATA_DIR: dataDir });
    const rings = await Promise.all(Array.from({ length: 8 }, () => KeyRing.load(config)));
    const token = await rings[0]!.sign(claims);
    for (const ring of rings) expect(await ring.verify(token)).toEqual(claims);
    expect((await readdir(dataDir)).sort()).toEqual(['jwt-keys.json']); // no temp files left
  });

  it('loads LARDER_JWT_KEYS and explains bad values', async () => {
    const jwk = await generateJwk();
    const ring = await KeyRing.load(loadConfig({ LARDER_JWT_KEYS: JSON.stringify([jwk]) }));
    expect(await ring.verify(await ring.sign(claims))).toEqual(claims);
    await expect(KeyRing.load(loadConfig({ LARDER_JWT_KEYS: '{not json' }))).rejects.toThrow(StartupError);
    await expect(KeyRing.load(loadConfig({ LARDER_JWT_KEYS: '[]' }))).rejects.toThrow(/at least one key/);
    const { d: _d, ...publicOnly } = jwk;
    await expect(KeyRing.load(loadConfig({ LARDER_JWT_KEYS: JSON.stringify([publicOnly]) }))).rejects.toThrow(
      /private part/,
    );
  });

  it('never prints the keys when describing the configuration', async () => {
    const { describeConfig } = await import('../../config.js');
    const jwk = await generateJwk();
    const described = describeConfig(loadConfig({ LARDER_JWT_KEYS: JSON.stringify([jwk]) }));
    expect(described.jwtKeys).toBe('[REDACTED]');
    expect(JSON.stringify(described)).not.toContain(jwk.d);
  });
});
