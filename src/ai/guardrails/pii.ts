/**
 * PII and secret redaction: a pure, dependency-free module used before text leaves Larder (prompts to
 * a model provider, logs, exports).
 *
 * ```ts
 * redactPii('Mail jane@example.com, key sk-proj-4f9XcQ2mZ8rT1vB7nK3pLw').text;
 * // 'Mail [REDACTED:email], key [REDACTED:secret]'
 * ```
 *
 * Every detector prefers missing an odd format to redacting ordinary technical prose: digits only count
 * when they pass a checksum or a strict layout. Offsets are UTF-16 code unit indices into the input.
 * When candidates overlap, the earliest-starting one wins, then the longest; on an exact tie the more
 * specific kind (secret, iban, card, national_id, email, phone in that order).
 *
 * Rules and their known limits:
 *
 * - email: `local@domain.tld`, ASCII only; the TLD must be 2+ letters, so `user@localhost`, `@decorator`,
 *   `pkg@1.2.3` and retina file names like `icon@2x.png` are not matches. `git@github.com:org/repo` is
 *   (it has the shape of an address). Local parts over 64 characters are missed.
 * - phone: (a) international: `+` and a non-zero digit, then groups separated by single spaces, dots or
 *   dashes, with an optional parenthesised group after the country code (`+44 (0)20 …`, `+1 (555) …`);
 *   8–15 digits, not counting a `(0)` trunk prefix; (b) North American: `(555) 123-4567`,
 *   `555-123-4567`, `555.123.4567`, `555 123 4567`, optionally `1-` first (area code 2–9, one
 *   separator style); (c) national numbers with a trunk `0` and a non-zero digit: `020 7946 0958`,
 *   `030 123456`, `06 12 34 56 78`, `(020) 7946 0958`: 9–12 digits in 2+ groups, one separator style.
 *   Rejected: anything glued to letters, `#`, `$`, `%`, `/`, `.`, `,`, `-` or the end of another digit
 *   group (`v1.2.3`, `ORD-555-123-4567`, `1,000,000.00`, UUID and IP parts, the tail of `DE89 3704 …`),
 *   date shapes (`2026-11-24`, `+2026-11-24`, `24.11.2026`), the SSN layout `123-45-6789` and numbers
 *   right after `ISBN`. Missed: national numbers written without separators (`5551234567`),
 *   `00`-prefixed international numbers, `/` separators and extensions. A space-separated number
 *   followed by another bare number may be joined with it, and lists of short space-separated numbers
 *   starting with `0` (`0644 0755 0600`) can look like a national number.
 * - card: 13–19 digits starting 2–6 (the issuer ranges of Visa, Mastercard, Amex, Discover, JCB,
 *   Diners, UnionPay, Maestro), contiguous or grouped by one separator style (space or dash) as
 *   4-4-4-4, 4-4-4-4-3, 4-4-4-1, 4-6-5 or 4-6-4, and passing the Luhn check. Digit runs starting 0, 1, 7,
 *   8 or 9 (timestamps, most order numbers) are never cards; a 2–6 order number that happens to pass
 *   Luhn (1 in 10) is a false positive.
 * - iban: upper-case country code, 2 check digits, then alphanumerics, contiguous or in space-separated
 *   groups of 4; must pass the ISO 13616 mod-97 check and the registry length for well-known countries
 *   (15–34 for others). Lower-case IBANs are missed.
 * - national_id: US SSN `123-45-6789` (dashes required; area 000, 666 and 900–999, group 00 and serial
 *   0000 rejected), or 9 bare digits right after an `SSN` / `Social Security Number` label; UK National
 *   Insurance number `AB 12 34 56 C` / `AB123456C` (upper case, suffix A–D required, HMRC prefix letter
 *   rules, so the documentation example `QQ 12 34 56 C` is rejected); Dutch BSN (9 digits or
 *   `1234.56.782`) only right after a `BSN` / `burgerservicenummer` label and passing the 11-proof.
 * - secret: OpenAI-style `sk-…` (incl. `sk-proj-…`; 20+ chars with a letter and a digit), AWS access key
 *   ids `AKIA…`/`ASIA…`, GitHub `ghp_ gho_ ghs_ ghu_ ghr_ github_pat_`, Slack `xox[abprs]-`, Stripe
 *   `sk_live_ rk_live_ sk_test_ rk_test_`, Google `AIza…`, JWTs (`eyJ….….…`), PEM private key blocks
 *   (an unterminated block is redacted up to the end of its base64 body), Larder API keys (`lk_` + 20+
 *   base64url chars with a digit), `Bearer <token>` (8+ chars with a digit) and
 *   `Authorization: Basic <creds>` (only the credential), credentials in URLs (`scheme://user:pass@host`, the `user:pass`
 *   part), and assignments whose key ends with password, passwd, passphrase, secret, api_key/apikey/
 *   api-key, token, private_key or secret_key (`DB_PASSWORD=x`, `"client_secret": "x"`, `?access_token=x`;
 *   only the value). A `:` assignment with an unquoted value only counts at the start of a line or
 *   after a quote or bracket (so YAML and headers, not prose); type-like values (`string`, `null`,
 *   `true`…) and placeholders (`${X}`, `<token>`, `***`) are left. Unquoted values end at whitespace,
 *   a quote, `,`, `;` or `&`, so a password containing those is partly left visible.
 *
 * Every pattern is anchored by a look-behind so it can only start at a token boundary, and has no
 * ambiguous nested quantifiers, so scanning is linear in the input size.
 */

export type PiiKind = 'email' | 'phone' | 'card' | 'iban' | 'national_id' | 'secret';

export const PII_KINDS: readonly PiiKind[] = Object.freeze([
  'email',
  'phone',
  'card',
  'iban',
  'national_id',
  'secret',
]);

/** One detected span: `text.slice(start, end)` is the sensitive part. */
export interface PiiMatch {
  kind: PiiKind;
  start: number;
  end: number;
}

export interface RedactionResult {
  /** The input with every match replaced by `[REDACTED:<kind>]`. */
  text: string;
  /** Matches per kind; kinds without a match are absent. */
  counts: Partial<Record<PiiKind, number>>;
  /** The matches, with offsets into the original input. */
  matches: PiiMatch[];
}

export interface RedactOptions {
  /** Kinds to detect; all of {@link PII_KINDS} by default. */
  kinds?: readonly PiiKind[];
}

type Detector = (text: string, out: PiiMatch[]) => void;

// ---------------------------------------------------------------------------------------------------
// Shared boundary helpers

/**
 * A digit-based match may not follow word chars, `+`, number punctuation, `#`, currency, or a digit and a
 * space (it would be the tail of a longer space-grouped number).
 */
const DIGITS_START = String.raw`(?<![\w+.,/@#$€£¥%\-]|\d[: ])`;

const WORD = /\w/;
const SEPARATOR_THEN_WORD = /[.,:/-]/;

/** True when nothing glued to the match's end makes it part of a longer token (`…4567.txt`, `…-12`). */
function endsCleanly(text: string, end: number): boolean {
  const next = text.charAt(end);
  if (next === '') return true;
  if (WORD.test(next) || next === '@' || next === '%') return false;
  return !(SEPARATOR_THEN_WORD.test(next) && WORD.test(text.charAt(end + 1)));
}

const ISBN_BEFORE = /ISBN(?:-1[03])?:?\s*$/i;

function digitsOf(s: string): string {
  return s.replace(/\D/g, '');
}

/** `2026-11-24`, `24.11.2026`, `11/24/2026` and the like, judged on the first three digit groups. */
function looksLikeDate(groups: readonly string[]): boolean {
  const [a, b, c] = groups;
  if (a === undefined || b === undefined || c === undefined) return false;
  const year = (s: string): boolean => s.length === 4 && (s.startsWith('19') || s.startsWith('20'));
  const dayOrMonth = (s: string): boolean => s.length <= 2 && Number(s) >= 1 && Number(s) <= 31;
  if (year(a)) return dayOrMonth(b) && dayOrMonth(c) && (Number(b) <= 12 || Number(c) <= 12);
  return year(c) && dayOrMonth(a) && dayOrMonth(b) && (Number(a) <= 12 || Number(b) <= 12);
}

const IBAN_PREFIX_BEFORE = /[A-Z]{2}\d{2}[ -]?$/;

/** Digits right after `ISBN` or an IBAN's `DE89 ` head are not phone, card or SSN numbers. */
function inNumberContext(text: string, start: number): boolean {
  const before = text.slice(Math.max(0, start - 12), start);
  return ISBN_BEFORE.test(before) || IBAN_PREFIX_BEFORE.test(before);
}

function push(out: PiiMatch[], kind: PiiKind, start: number, end: number): void {
  if (end > start) out.push({ kind, start, end });
}

// ---------------------------------------------------------------------------------------------------
// email

const EMAIL =
  /(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g;
const RETINA_ASSET = /@\d+(?:\.\d+)?x\./;

const detectEmail: Detector = (text, out) => {
  if (!text.includes('@')) return;
  for (const m of text.matchAll(EMAIL)) {
    if (RETINA_ASSET.test(m[0])) continue;
    push(out, 'email', m.index, m.index + m[0].length);
  }
};

// ---------------------------------------------------------------------------------------------------
// phone

const PHONE_INTERNATIONAL =
  /(?<![\w+])\+[1-9]\d{0,13}(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,12})?(?:[ .-]\d{1,12}){0,8}/g;
const PHONE_NANP = new RegExp(
  String.raw`${DIGITS_START}(?:1[-. ])?(?:\([2-9]\d{2}\) ?\d{3}[-. ]\d{4}|[2-9]\d{2}([-. ])\d{3}\1\d{4})`,
  'g',
);
const PHONE_TRUNK = new RegExp(
  String.raw`${DIGITS_START}(?:\(0[1-9]\d{0,3}\) ?\d{2,8}(?:[ .-]\d{2,8}){0,4}|0[1-9]\d{0,3}([ .-])\d{2,8}(?:\1\d{2,8}){0,4})`,
  'g',
);

function validInternationalPhone(candidate: string): boolean {
  const groups = candidate
    .slice(1)
    .split(/[ .()-]+/)
    .filter(Boolean);
  if (looksLikeDate(groups)) return false; // `+2026-11-24`
  let digits = digitsOf(candidate).length;
  if (candidate.includes('(0)')) digits -= 1;
  return digits >= 8 && digits <= 15;
}

function validTrunkPhone(candidate: string): boolean {
  const separators = new Set(candidate.replace(/^\(0\d+\) ?/, '').match(/[ .-]/g) ?? []);
  if (separators.size > 1) return false;
  const groups = candidate.split(/[ .()-]+/).filter(Boolean);
  if (groups.length < 2 || looksLikeDate(groups)) return false;
  if (/^\d{3}-\d{2}-\d{4}$/.test(candidate)) return false; // SSN layout
  const digits = digitsOf(candidate).length;
  return digits >= 9 && digits <= 12;
}

const detectPhone: Detector = (text, out) => {
  const accept = (start: number, end: number): void => {
    if (endsCleanly(text, end) && !inNumberContext(text, start)) push(out, 'phone', start, end);
  };
  if (text.includes('+')) {
    for (const m of text.matchAll(PHONE_INTERNATIONAL)) {
      if (validInternationalPhone(m[0])) accept(m.index, m.index + m[0].length);
    }
  }
  for (const m of text.matchAll(PHONE_NANP)) accept(m.index, m.index + m[0].length);
  for (const m of text.matchAll(PHONE_TRUNK)) {
    if (validTrunkPhone(m[0])) accept(m.index, m.index + m[0].length);
  }
};

// ---------------------------------------------------------------------------------------------------
// card

const CARD = new RegExp(
  String.raw`${DIGITS_START}(?:[2-6]\d{12,18}|[2-6]\d{3}([ -])\d{4,6}(?:\1\d{1,5}){1,3})`,
  'g',
);

/** Luhn (mod 10) over a string of ASCII digits; exported for other validators and tests. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Layouts printed on cards or typed by people: 16 (4×4), 19 (4×4+3), Amex 15, Diners 14, old Visa 13. */
const CARD_LAYOUTS = new Set(['4-4-4-4', '4-4-4-4-3', '4-6-5', '4-6-4', '4-4-4-1']);

function validCardGrouping(candidate: string): boolean {
  const sizes = candidate.split(/[ -]/).map((g) => g.length);
  return sizes.length === 1 || CARD_LAYOUTS.has(sizes.join('-'));
}

const detectCard: Detector = (text, out) => {
  for (const m of text.matchAll(CARD)) {
    const start = m.index;
    const end = start + m[0].length;
    const digits = digitsOf(m[0]);
    if (digits.length < 13 || digits.length > 19) continue;
    if (!validCardGrouping(m[0]) || !luhnValid(digits)) continue;
    if (!endsCleanly(text, end) || inNumberContext(text, start)) continue;
    push(out, 'card', start, end);
  }
};

// ---------------------------------------------------------------------------------------------------
// iban

/** Registry lengths of common IBAN countries; others are accepted at 15–34 characters. */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AT: 20,
  BE: 16,
  BG: 22,
  CH: 21,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  EE: 20,
  ES: 24,
  FI: 18,
  FR: 27,
  GB: 22,
  GR: 27,
  HR: 21,
  HU: 28,
  IE: 22,
  IS: 26,
  IT: 27,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  MC: 27,
  MT: 31,
  NL: 18,
  NO: 15,
  PL: 28,
  PT: 25,
  RO: 24,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  TR: 26,
};

const IBAN_COMPACT = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}[A-Z0-9]{11,30}(?![A-Za-z0-9])/g;
const IBAN_GROUPED = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?/g;

/**
 * ISO 13616 check of a compact, upper-case IBAN: length for the country, then mod 97 of the rearranged
 * number equals 1. Exported for other validators and tests.
 */
export function ibanValid(iban: string): boolean {
  const expected = IBAN_LENGTHS[iban.slice(0, 2)];
  if (expected === undefined ? iban.length < 15 || iban.length > 34 : iban.length !== expected) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const code = rearranged.charCodeAt(i);
    remainder = code <= 57 ? (remainder * 10 + code - 48) % 97 : (remainder * 100 + code - 55) % 97; // A=10 … Z=35
  }
  return remainder === 1;
}

const detectIban: Detector = (text, out) => {
  for (const m of text.matchAll(IBAN_COMPACT)) {
    if (ibanValid(m[0])) push(out, 'iban', m.index, m.index + m[0].length);
  }
  for (const m of text.matchAll(IBAN_GROUPED)) {
    // The last groups may belong to the next word ("… 0130 00 BANK"): try shorter spans too.
    const groups = m[0].split(' ');
    for (let n = groups.length; n >= 4; n--) {
      const span = groups.slice(0, n).join(' ');
      const end = m.index + span.length;
      if (ibanValid(groups.slice(0, n).join('')) && !WORD.test(text.charAt(end))) {
        push(out, 'iban', m.index, end);
        break;
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------------
// national_id

const SSN = new RegExp(String.raw`${DIGITS_START}(\d{3})-(\d{2})-(\d{4})`, 'g');
const SSN_LABELLED = /\b(?:SSN|social security (?:number|no\.?))[ \t]*[:#]?[ \t]*(\d{9})(?!\w)/dgi;
const NINO =
  /(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])( ?)(\d{2})\2(\d{2})\2(\d{2})\2([A-D])(?![A-Za-z0-9])/g;
const NINO_BANNED_PREFIXES = new Set(['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']);
const BSN_LABELLED =
  /\b(?:BSN|burgerservicenummer)(?:[ \t]*(?:nr\.?|nummer|number))?[ \t]*[:#]?[ \t]*(\d{9}|\d{4}\.\d{2}\.\d{3})(?![\w.]\d|\w)/dgi;

function validSsn(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && !area.startsWith('9') && group !== '00' && serial !== '0000';
}

/** Dutch BSN 11-proof: 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11). */
function bsnValid(digits: string): boolean {
  if (digits.length !== 9 || digits === '000000000') return false;
  let sum = 0;
  for (let i = 0; i < 8; i++) sum += (9 - i) * (digits.charCodeAt(i) - 48);
  sum -= digits.charCodeAt(8) - 48;
  return sum % 11 === 0;
}

function groupSpan(m: RegExpExecArray, group: number): [number, number] | undefined {
  return m.indices?.[group];
}

const detectNationalId: Detector = (text, out) => {
  for (const m of text.matchAll(SSN)) {
    const end = m.index + m[0].length;
    if (
      validSsn(m[1] ?? '', m[2] ?? '', m[3] ?? '') &&
      endsCleanly(text, end) &&
      !inNumberContext(text, m.index)
    ) {
      push(out, 'national_id', m.index, end);
    }
  }
  for (const m of text.matchAll(SSN_LABELLED)) {
    const value = m[1] ?? '';
    const span = groupSpan(m, 1);
    if (span && validSsn(value.slice(0, 3), value.slice(3, 5), value.slice(5))) {
      push(out, 'national_id', span[0], span[1]);
    }
  }
  for (const m of text.matchAll(NINO)) {
    if (!NINO_BANNED_PREFIXES.has(m[1] ?? '')) push(out, 'national_id', m.index, m.index + m[0].length);
  }
  for (const m of text.matchAll(BSN_LABELLED)) {
    const span = groupSpan(m, 1);
    if (span && bsnValid(digitsOf(m[1] ?? ''))) push(out, 'national_id', span[0], span[1]);
  }
};

// ---------------------------------------------------------------------------------------------------
// secret

const HAS_DIGIT = /\d/;
const HAS_LETTER = /[A-Za-z]/;

interface TokenPattern {
  pattern: RegExp;
  /** Extra check on the whole match, e.g. "contains a digit" for prefixes that also start identifiers. */
  accept?: (token: string) => boolean;
}

const TOKEN_PATTERNS: readonly TokenPattern[] = [
  {
    // OpenAI / Anthropic style; kebab-case identifiers like `sk-some-component-name` have no digit.
    pattern: /(?<![\w-])sk-[A-Za-z0-9_-]{20,}/g,
    accept: (t) => HAS_DIGIT.test(t.slice(3)) && HAS_LETTER.test(t.slice(3)),
  },
  { pattern: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])/g },
  { pattern: /(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/g },
  { pattern: /(?<![\w-])xox[abprs]-[A-Za-z0-9-]{10,}/g, accept: (t) => HAS_DIGIT.test(t) },
  { pattern: /(?<![\w-])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}/g },
  { pattern: /(?<![\w-])AIza[A-Za-z0-9_-]{35}(?![\w-])/g },
  { pattern: /(?<![\w-])eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g },
  // Larder API keys: `lk_live_<8 hex>_<43 base64url>` today; any `lk_` + 20 chars with a digit.
  { pattern: /(?<![\w-])lk_[A-Za-z0-9_-]{20,}/g, accept: (t) => HAS_DIGIT.test(t) },
];

/** Only the credential is captured (group 1). */
const AUTH_HEADER_CREDENTIAL =
  /(?<![\w-])(?:Bearer|bearer|BEARER)[ \t]+([A-Za-z0-9._~+/-]{8,}=*)|Authorization:[ \t]*Basic[ \t]+([A-Za-z0-9+/]{8,}={0,2})/dg;

/** `scheme://user:password@host`: group 1 is `user:password`. */
const URL_CREDENTIALS = /\b[A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/([^\s:@/?#]{1,256}:[^\s@/?#]{1,256})@/dg;

const SECRET_KEY_NAMES = String.raw`(?:password|passwd|passphrase|secret|secret[_-]?key|api[_-]?key|token|private[_-]?key)`;
/** Groups: 1 closing quote of the key, 2 separator, 3/4 quoted value, 5 bare value. */
const ASSIGNMENT = new RegExp(
  String.raw`${SECRET_KEY_NAMES}(["']?)[ \t]*([:=])(?![=>:])[ \t]*(?:"((?:[^"\\\r\n]|\\.){1,500})"|'((?:[^'\\\r\n]|\\.){1,500})'|([^\s"'${'`'},;&]{1,500}))`,
  'dgi',
);
const NOT_A_SECRET_VALUE =
  /^(?:string|number|boolean|bool|int|str|any|unknown|object|null|undefined|none|nil|true|false|optional|required|\*+|\[REDACTED:\w+\].*|\$\{.*|\{\{.*|<.*)$/i;
const KEY_CHAR = /[\w.-]/;
const COLON_KEY_OPENERS = new Set(['"', "'", '{', '[', '(', ',', ';']);

/** For `key: value` with a bare value: the key must start a line (YAML, headers) or follow a quote/bracket. */
function colonAssignmentAllowed(text: string, keywordStart: number): boolean {
  let i = keywordStart;
  while (i > 0 && KEY_CHAR.test(text.charAt(i - 1))) i--;
  while (i > 0 && (text.charAt(i - 1) === ' ' || text.charAt(i - 1) === '\t')) i--;
  if (i === 0) return true;
  const before = text.charAt(i - 1);
  return before === '\n' || before === '\r' || COLON_KEY_OPENERS.has(before);
}

/** `-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY[ BLOCK]-----` … matching END line. */
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END [A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_BODY = /[A-Za-z0-9+/=\s]*/y;

function detectPem(text: string, out: PiiMatch[]): void {
  if (!text.includes('PRIVATE KEY')) return;
  let searchedEndFrom = -1;
  let nextEnd: RegExpExecArray | null = null;
  let lastEnd = 0;
  for (const m of text.matchAll(PEM_BEGIN)) {
    if (m.index < lastEnd) continue;
    const bodyStart = m.index + m[0].length;
    if (searchedEndFrom < 0 || (nextEnd !== null && nextEnd.index < bodyStart)) {
      PEM_END.lastIndex = bodyStart;
      nextEnd = PEM_END.exec(text);
      searchedEndFrom = bodyStart;
    }
    // `nextEnd === null` once means there is no END after any later BEGIN either: no rescan.
    if (nextEnd !== null) {
      lastEnd = nextEnd.index + nextEnd[0].length;
    } else {
      PEM_BODY.lastIndex = bodyStart;
      PEM_BODY.exec(text);
      lastEnd = PEM_BODY.lastIndex;
      while (lastEnd > bodyStart && /\s/.test(text.charAt(lastEnd - 1))) lastEnd--;
    }
    push(out, 'secret', m.index, lastEnd);
  }
}

const detectSecret: Detector = (text, out) => {
  for (const { pattern, accept } of TOKEN_PATTERNS) {
    for (const m of text.matchAll(pattern)) {
      if (!accept || accept(m[0])) push(out, 'secret', m.index, m.index + m[0].length);
    }
  }
  for (const m of text.matchAll(AUTH_HEADER_CREDENTIAL)) {
    const bearer = groupSpan(m, 1);
    const basic = groupSpan(m, 2);
    // "Bearer authentication" is prose; real bearer tokens carry digits.
    if (bearer && HAS_DIGIT.test(m[1] ?? '')) push(out, 'secret', bearer[0], bearer[1]);
    if (basic) push(out, 'secret', basic[0], basic[1]);
  }
  if (text.includes('://')) {
    for (const m of text.matchAll(URL_CREDENTIALS)) {
      const span = groupSpan(m, 1);
      if (span) push(out, 'secret', span[0], span[1]);
    }
  }
  for (const m of text.matchAll(ASSIGNMENT)) {
    const bare = m[5];
    const span = groupSpan(m, 3) ?? groupSpan(m, 4) ?? groupSpan(m, 5);
    if (!span) continue;
    if (bare !== undefined) {
      if (NOT_A_SECRET_VALUE.test(bare)) continue;
      if (m[2] === ':' && m[1] === '' && !colonAssignmentAllowed(text, m.index)) continue;
    }
    push(out, 'secret', span[0], span[1]);
  }
  detectPem(text, out);
};

// ---------------------------------------------------------------------------------------------------
// Public API

/** In order of specificity: on an exact tie of spans, the earlier detector's kind is kept. */
const DETECTORS: Readonly<Record<PiiKind, Detector>> = {
  secret: detectSecret,
  iban: detectIban,
  card: detectCard,
  national_id: detectNationalId,
  email: detectEmail,
  phone: detectPhone,
};
const DETECTION_ORDER = Object.keys(DETECTORS) as PiiKind[];

/**
 * Finds PII and secrets in `text`: non-overlapping matches sorted by start.
 *
 * ```ts
 * findPii('call +44 20 7946 0958', { kinds: ['phone'] }); // [{ kind: 'phone', start: 5, end: 21 }]
 * ```
 */
export function findPii(text: string, options: RedactOptions = {}): PiiMatch[] {
  const candidates: PiiMatch[] = [];
  // `kinds` may come from untyped input (config, JSON): unknown names are ignored.
  const wanted = new Set<string>(options.kinds ?? PII_KINDS);
  for (const kind of DETECTION_ORDER) if (wanted.has(kind)) DETECTORS[kind](text, candidates);
  candidates.sort((a, b) => a.start - b.start || b.end - a.end);
  const matches: PiiMatch[] = [];
  let covered = 0;
  for (const candidate of candidates) {
    if (candidate.start < covered) continue;
    matches.push(candidate);
    covered = candidate.end;
  }
  return matches;
}

/**
 * Replaces every match in `text` by `[REDACTED:<kind>]`.
 *
 * ```ts
 * redactPii('SSN 123-45-6789').text; // 'SSN [REDACTED:national_id]'
 * ```
 */
export function redactPii(text: string, options: RedactOptions = {}): RedactionResult {
  const matches = findPii(text, options);
  const counts: Partial<Record<PiiKind, number>> = {};
  let result = '';
  let cursor = 0;
  for (const match of matches) {
    result += `${text.slice(cursor, match.start)}[REDACTED:${match.kind}]`;
    cursor = match.end;
    counts[match.kind] = (counts[match.kind] ?? 0) + 1;
  }
  result += text.slice(cursor);
  return { text: result, counts, matches };
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns a copy of `value` with every string redacted, inside plain objects and arrays at any depth.
 * Object keys, non-string primitives and other objects (Date, Map, Buffer, Error, class instances) are
 * kept as they are (shared, not copied). Cycles and shared references are reproduced in the copy. The
 * input is never mutated.
 *
 * ```ts
 * redactDeep({ user: { email: 'a@example.com' }, tags: ['x'] });
 * // { user: { email: '[REDACTED:email]' }, tags: ['x'] }
 * ```
 */
export function redactDeep<T>(value: T, options: RedactOptions = {}): T {
  const copies = new Map<object, unknown>();
  const visit = (node: unknown): unknown => {
    if (typeof node === 'string') return redactPii(node, options).text;
    if (typeof node !== 'object' || node === null) return node;
    const seen = copies.get(node);
    if (seen !== undefined) return seen;
    if (Array.isArray(node)) {
      const copy: unknown[] = [];
      copies.set(node, copy);
      for (const item of node as unknown[]) copy.push(visit(item));
      return copy;
    }
    if (!isPlainObject(node)) return node;
    const copy = Object.create(Object.getPrototypeOf(node) as object | null) as Record<string, unknown>;
    copies.set(node, copy);
    for (const key of Object.keys(node)) {
      // defineProperty, not assignment: a `__proto__` key must stay a plain data property.
      Object.defineProperty(copy, key, {
        value: visit(node[key]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return copy;
  };
  return visit(value) as T;
}
