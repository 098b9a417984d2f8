/**
 * Access-token keys: ES256 key pairs identified by `kid`. The first key signs; every key verifies, so
 * rotation is: add a new key first, keep the old one until its tokens expire (access-token TTL), drop it.
 *
 * Keys come from `LARDER_JWT_KEYS` (JSON array of private JWKs). When unset, a key is generated once and
 * kept in `LARDER_DATA_DIR/jwt-keys.json` (mode 0600): right for embedded mode and a single server;
 * several replicas must share `LARDER_JWT_KEYS`.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import type { Config } from '../../config.js';
import { StartupError } from '../../platform/errors.js';

const ALG = 'ES256';

export interface AccessClaims {
  /** user id */
  sub: string;
  /** session (refresh-token family) id */
  sid: string;
}

interface LoadedKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export class KeyRing {
  private constructor(
    private readonly signingKey: LoadedKey,
    private readonly keys: LoadedKey[],
    private readonly issuer: string,
    /** Lifetime of the access tokens this ring signs. */
    readonly ttlSeconds: number,
  ) {}

  static async fromJwks(jwks: JWK[], options: { issuer: string; ttlSeconds: number }): Promise<KeyRing> {
    const keys: LoadedKey[] = [];
    for (const jwk of jwks) {
      if (!jwk.kid || !jwk.d)
        throw new StartupError('every key in LARDER_JWT_KEYS needs a "kid" and its private part');
      const { d: _private, ...publicJwk } = jwk;
      keys.push({
        kid: jwk.kid,
        privateKey: (await importJWK(jwk, ALG)) as CryptoKey,
        publicKey: (await importJWK(publicJwk, ALG)) as CryptoKey,
      });
    }
    const [signing] = keys;
    if (!signing) throw new StartupError('LARDER_JWT_KEYS must contain at least one key');
    return new KeyRing(signing, keys, options.issuer, options.ttlSeconds);
  }

  /** From config, or from (or into) the data directory when no keys are configured. */
  static async load(config: Config): Promise<KeyRing> {
    const options = { issuer: 'larder', ttlSeconds: config.accessTokenTtlSeconds };
    if (config.jwtKeys) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(config.jwtKeys);
      } catch {
        throw new StartupError('LARDER_JWT_KEYS is not valid JSON (expected an array of JWKs)');
      }
      if (!Array.isArray(parsed)) throw new StartupError('LARDER_JWT_KEYS must be a JSON array of JWKs');
      return KeyRing.fromJwks(parsed as JWK[], options);
    }
    const file = path.resolve(config.dataDir, 'jwt-keys.json');
    const existing = await readFile(file, 'utf8').catch(() => null);
    if (existing) return KeyRing.fromJwks(JSON.parse(existing) as JWK[], options);
    const jwk = await generateJwk();
    await mkdir(path.dirname(file), { recursive: true });
    // Publish atomically: write a private temp file, then link it into place. link() fails if the file
    // exists, so concurrent first starts agree on one key and nobody reads a half-written file.
    const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    await writeFile(temp, JSON.stringify([jwk]), { mode: 0o600 });
    try {
      await link(temp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another process won: use theirs
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    return KeyRing.fromJwks(JSON.parse(await readFile(file, 'utf8')) as JWK[], options);
  }

  async sign(claims: AccessClaims): Promise<string> {
    const key = this.signingKey;
    return new SignJWT({ sid: claims.sid })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'at+jwt' })
      .setSubject(claims.sub)
      .setIssuer(this.issuer)
      .setIssuedAt()
      .setJti(randomUUID())
      .setExpirationTime(`${this.ttlSeconds}s`)
      .sign(key.privateKey);
  }

  /** The claims of a valid token signed by any key of the ring; null when invalid or expired. */
  async verify(token: string): Promise<AccessClaims | null> {
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = this.keys.find((k) => k.kid === header.kid);
          if (!key) throw new Error('unknown kid');
          return key.publicKey;
        },
        { issuer: this.issuer, algorithms: [ALG], typ: 'at+jwt' },
      );
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') return null;
      return { sub: payload.sub, sid: payload.sid };
    } catch {
      return null;
    }
  }
}

/** A new private JWK for `LARDER_JWT_KEYS`. */
export async function generateJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: ALG, use: 'sig' };
}
