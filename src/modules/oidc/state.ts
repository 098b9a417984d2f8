/**
 * The sign-in state of one OIDC login (state, nonce, PKCE verifier, where to return), kept in the
 * browser between `/start` and `/callback` as an encrypted, authenticated, short-lived token (JWE,
 * `dir` + A256GCM) rather than on the server: any replica can finish a login another one started, and
 * nothing needs cleaning up. The key is derived (HKDF-SHA256) from a configured secret, so the secret
 * itself never keys anything directly and other uses of it cannot collide with this one.
 *
 * The token is bound to the browser that started the login (a cookie), and its `state` must equal the
 * `state` the identity provider echoes back: a callback URL replayed into another browser fails.
 *
 * @example
 *   const codec = new StateCodec(secret);
 *   const sealed = await codec.seal({ state, nonce, codeVerifier, createdAt: Date.now() });
 *   const record = await codec.open(sealed); // null when tampered with, expired or sealed with another key
 */
import { hkdfSync } from 'node:crypto';
import { EncryptJWT, jwtDecrypt } from 'jose';

export interface OidcStateRecord {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** An allow-listed URL to send the browser to with the tokens (in the fragment). */
  returnTo?: string | undefined;
}

/** How long a login may take from `/start` to `/callback`. */
export const STATE_TTL_SECONDS = 600;

/** Shortest accepted secret (characters); 32 random characters carry well over 128 bits. */
export const STATE_SECRET_MIN_LENGTH = 32;

const KEY_INFO = 'larder oidc login state v1';

export class StateCodec {
  readonly #key: Uint8Array;

  constructor(
    secret: string,
    private readonly ttlSeconds = STATE_TTL_SECONDS,
  ) {
    this.#key = new Uint8Array(hkdfSync('sha256', secret, 'larder', KEY_INFO, 32));
  }

  async seal(record: OidcStateRecord): Promise<string> {
    const createdAt = Math.floor(record.createdAt / 1000);
    return new EncryptJWT({
      st: record.state,
      nn: record.nonce,
      cv: record.codeVerifier,
      ...(record.returnTo === undefined ? {} : { rt: record.returnTo }),
    })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: 'larder-oidc-state' })
      .setIssuedAt(createdAt)
      .setExpirationTime(createdAt + this.ttlSeconds)
      .encrypt(this.#key);
  }

  /** The record, or null when the token is malformed, tampered with, expired or from another key. */
  async open(sealed: string): Promise<OidcStateRecord | null> {
    try {
      const { payload } = await jwtDecrypt(sealed, this.#key, {
        keyManagementAlgorithms: ['dir'],
        contentEncryptionAlgorithms: ['A256GCM'],
        typ: 'larder-oidc-state',
        requiredClaims: ['iat', 'exp'],
        clockTolerance: 5,
      });
      const { st, nn, cv, rt, iat } = payload;
      if (typeof st !== 'string' || typeof nn !== 'string' || typeof cv !== 'string') return null;
      if (rt !== undefined && typeof rt !== 'string') return null;
      return { state: st, nonce: nn, codeVerifier: cv, createdAt: (iat ?? 0) * 1000, returnTo: rt };
    } catch {
      return null;
    }
  }
}
