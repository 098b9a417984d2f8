/**
 * Password hashing (argon2id, parameters from config) and the password policy.
 * Verification time does not depend on whether the account exists: unknown emails are checked
 * against a dummy hash made with the same parameters.
 */
import { hash, verify } from '@node-rs/argon2';

/** `Algorithm.Argon2id` (a const enum, which isolated modules cannot import). */
const ARGON2ID = 2;
import type { Config } from '../../config.js';

export interface PasswordCheck {
  ok: boolean;
  /** The stored hash was made with other parameters: store a fresh one. */
  needsRehash: boolean;
}

/** Passwords people pick first; refused regardless of length rules. */
const TRIVIAL = new Set([
  'password',
  'passw0rd',
  'password1',
  'password123',
  '123456789012',
  '1234567890',
  'qwertyuiop',
  'qwerty123456',
  'letmein123',
  'iloveyou1234',
  'administrator',
  'changeme1234',
  'welcome12345',
]);

export class PasswordHasher {
  readonly #options: {
    algorithm: typeof ARGON2ID;
    memoryCost: number;
    timeCost: number;
    parallelism: number;
  };
  #dummy: Promise<string> | undefined;

  constructor(config: Pick<Config, 'argon2MemoryKib' | 'argon2TimeCost'>) {
    this.#options = {
      algorithm: ARGON2ID,
      memoryCost: config.argon2MemoryKib,
      timeCost: config.argon2TimeCost,
      parallelism: 1,
    };
  }

  hash(password: string): Promise<string> {
    return hash(password, this.#options);
  }

  /** Checks a password against a stored hash, or against a dummy hash when there is none. */
  async check(storedHash: string | null | undefined, password: string): Promise<PasswordCheck> {
    if (!storedHash) {
      this.#dummy ??= this.hash('dummy password for timing');
      await verify(await this.#dummy, password).catch(() => false);
      return { ok: false, needsRehash: false };
    }
    const ok = await verify(storedHash, password).catch(() => false);
    return { ok, needsRehash: ok && !storedHash.startsWith(this.#prefix()) };
  }

  #prefix(): string {
    const o = this.#options;
    return `$argon2id$v=19$m=${o.memoryCost},t=${o.timeCost},p=${o.parallelism}$`;
  }
}

const segmenter = new Intl.Segmenter();
/** Characters as people count them (an emoji is one). */
const graphemes = (text: string) => Array.from(segmenter.segment(text)).length;

/** Every reason a password is refused (empty when acceptable). */
export function passwordProblems(password: string, email: string, minLength: number): string[] {
  const problems: string[] = [];
  const length = graphemes(password);
  if (length < minLength) problems.push(`must be at least ${minLength} characters`);
  if (length > 256) problems.push('must be at most 256 characters');
  const lower = password.toLowerCase();
  if (TRIVIAL.has(lower)) problems.push('is too common');
  if (new Set(Array.from(segmenter.segment(lower), (s) => s.segment)).size <= 2)
    problems.push('must not repeat one or two characters');
  const local = email.toLowerCase().split('@')[0] ?? '';
  if (local.length >= 4 && lower.includes(local)) problems.push('must not contain your email address');
  return problems;
}
