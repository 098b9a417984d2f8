import { describe, expect, it } from 'vitest';
import { PII_KINDS, type PiiKind, findPii, ibanValid, luhnValid, redactDeep, redactPii } from './pii.js';

/** The redacted text, for compact assertions. */
const redact = (text: string, kinds?: readonly PiiKind[]): string =>
  redactPii(text, kinds ? { kinds } : {}).text;

/** The kinds found in `text`, in order. */
const kindsIn = (text: string): PiiKind[] => findPii(text).map((m) => m.kind);

/** Asserts `sample` is detected as a whole, both alone and inside a sentence. */
function expectWhole(sample: string, kind: PiiKind): void {
  expect(redact(sample), sample).toBe(`[REDACTED:${kind}]`);
  expect(redact(`Reach it at ${sample}, thanks.`), sample).toBe(`Reach it at [REDACTED:${kind}], thanks.`);
}

// Built at runtime so that this file does not itself look like it leaks credentials.
const GITHUB_TOKEN = `ghp_${'a1B2c3D4e5'.repeat(3)}F6g7H8`;
const GITHUB_PAT = `github_pat_11ABCDEFG0${'x9Y8z7W6v5'.repeat(6)}`;
const OPENAI_KEY = `sk-proj-${'Ab3dE5gH7jK9mN1pQ3sT5vX7'.repeat(2)}`;
const OPENAI_LEGACY_KEY = `sk-${'T3BlbkFJ'.repeat(6)}`;
const AWS_KEY_ID = 'AKIA' + 'IOSFODNN7EXAMPLE';
const SLACK_TOKEN = ['xoxb', '123456789012', '1234567890123', 'AbCdEfGhIjKlMnOpQrStUvWx'].join('-');
const STRIPE_KEY = 'sk_live_' + '4eC39HqLyjWDarjtT1zdp7dc';
const STRIPE_RESTRICTED_KEY = 'rk_live_' + '51H8xYzAbCdEfGhIjKlMnOp';
const GOOGLE_KEY = 'AIza' + 'SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q';
const LARDER_KEY = `lk_live_0123abcd_${'Qw3-rT_y7UiO9pAs'.repeat(2)}Df1GhJkLmNo`;
const JWT = [
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9',
  'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ',
  'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
].join('.');
const PEM = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun',
  'VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK',
  '-----END RSA PRIVATE KEY-----',
].join('\n');

describe('documented examples', () => {
  it('behave as the doc comments say', () => {
    expect(redactPii('Mail jane@example.com, key sk-proj-4f9XcQ2mZ8rT1vB7nK3pLw').text).toBe(
      'Mail [REDACTED:email], key [REDACTED:secret]',
    );
    expect(findPii('call +44 20 7946 0958', { kinds: ['phone'] })).toEqual([
      { kind: 'phone', start: 5, end: 21 },
    ]);
    expect(redactPii('SSN 123-45-6789').text).toBe('SSN [REDACTED:national_id]');
    expect(redactDeep({ user: { email: 'a@example.com' }, tags: ['x'] })).toEqual({
      user: { email: '[REDACTED:email]' },
      tags: ['x'],
    });
  });
});

describe('PII_KINDS', () => {
  it('lists every kind once', () => {
    expect([...PII_KINDS].sort()).toEqual(['card', 'email', 'iban', 'national_id', 'phone', 'secret']);
  });
});

describe('email', () => {
  it('finds addresses in prose with exact offsets', () => {
    const text = 'Ask jane.doe@example.com or ops+alerts@mail.larder.io. Not @decorator.';
    const matches = findPii(text);
    expect(matches.map((m) => text.slice(m.start, m.end))).toEqual([
      'jane.doe@example.com',
      'ops+alerts@mail.larder.io',
    ]);
    expect(matches.every((m) => m.kind === 'email')).toBe(true);
  });

  it('redacts a signature block', () => {
    const signature = [
      '--',
      'Jane Doe | Head of Data',
      'ACME GmbH, Musterstraße 1, 10115 Berlin',
      'jane.doe@acme-corp.de | +49 30 123456 | Mobile +49 170 1234567',
    ].join('\n');
    const result = redactPii(signature);
    expect(result.text).toBe(
      [
        '--',
        'Jane Doe | Head of Data',
        'ACME GmbH, Musterstraße 1, 10115 Berlin',
        '[REDACTED:email] | [REDACTED:phone] | Mobile [REDACTED:phone]',
      ].join('\n'),
    );
    expect(result.counts).toEqual({ email: 1, phone: 2 });
  });

  it.each([
    'first.last@sub.domain.example.org',
    'UPPER.Case@Example.COM',
    'o_brien-99@example.co.uk',
    'user%tag@example.net',
  ])('finds %s', (address) => {
    expectWhole(address, 'email');
  });

  it.each([
    '@Injectable() decorators',
    'root@localhost',
    'npm i lodash@4.17.21',
    'import logo from "./logo@2x.png"',
    'scoped @types/node package',
    'a lone @ sign and an @@ pair',
  ])('leaves %s alone', (text) => {
    expect(findPii(text)).toEqual([]);
  });
});

describe('phone', () => {
  it.each([
    ['(555) 123-4567', 'US, area code in parentheses'],
    ['555-123-4567', 'US, dashes'],
    ['555.123.4567', 'US, dots'],
    ['1-800-555-0199', 'US, with the country prefix'],
    ['+1 (555) 123-4567', 'US, international'],
    ['020 7946 0958', 'UK, national'],
    ['+44 20 7946 0958', 'UK, international'],
    ['+44 (0)20 7946 0958', 'UK, international with the trunk zero'],
    ['07700 900123', 'UK, mobile'],
    ['+49 30 123456', 'Germany'],
    ['030 123456', 'Germany, national'],
    ['+33 6 12 34 56 78', 'France'],
    ['06.12.34.56.78', 'France, national with dots'],
    ['+81 3-1234-5678', 'Japan'],
    ['+31 20 123 4567', 'Netherlands'],
    ['+4930123456', 'E.164 without separators'],
  ])('finds %s (%s)', (number) => {
    expectWhole(number, 'phone');
  });

  it.each([
    ['2026-11-24', 'ISO date'],
    ['24.11.2026', 'European date'],
    ['11/24/2026', 'US date'],
    ['14:30:15', 'time'],
    ['2026-11-24T14:30:00+01:00', 'timestamp with offset'],
    ['v10.4.2 and 1.2.3', 'versions'],
    ['1,000,000.00 and $12,345', 'money'],
    ['3.14159265358979', 'decimal'],
    ['550e8400-e29b-41d4-a716-446655440000', 'UUID'],
    ['192.168.100.254 and 10.0.0.1', 'IPv4'],
    ['ORD-555-123-4567', 'order number glued to a word'],
    ['INV555-123-4567', 'invoice number glued to letters'],
    ['ISBN 0-306-40615-2', 'ISBN-10'],
    ['ISBN-13: 978-0-306-40615-7', 'ISBN-13'],
    ['+2026-11-24', 'date behind a plus sign'],
    ['5551234567', 'bare digits with no layout'],
    ['report-555-123-4567.pdf', 'file name'],
  ])('leaves %s alone (%s)', (text) => {
    expect(findPii(text, { kinds: ['phone'] })).toEqual([]);
  });
});

describe('card', () => {
  it.each([
    ['4111 1111 1111 1111', 'Visa, grouped by spaces'],
    ['4111111111111111', 'Visa, contiguous'],
    ['5500-0000-0000-0004', 'Mastercard, grouped by dashes'],
    ['378282246310005', 'Amex, contiguous'],
    ['3782 822463 10005', 'Amex, 4-6-5 layout'],
    ['6011 1111 1111 1117', 'Discover'],
    ['4222222222222', 'Visa, 13 digits'],
  ])('finds %s (%s)', (number) => {
    expectWhole(number, 'card');
  });

  it('leaves a 16-digit number failing the Luhn check alone', () => {
    expect(findPii('card 4111 1111 1111 1112 on file')).toEqual([]);
    expect(findPii('card 4111111111111112 on file')).toEqual([]);
  });

  it('leaves Luhn-valid digit runs with a wrong layout or issuer digit alone', () => {
    expect(findPii('4111-1111 1111-1111')).toEqual([]); // mixed separators
    expect(findPii('41 1111 1111 1111 11')).toEqual([]); // not a card layout
    expect(findPii('ts 1732406400000004')).toEqual([]); // starts with 1: not an issuer range
    expect(findPii('ref#4111111111111111 and x4111111111111111')).toEqual([]);
  });

  it('checks Luhn', () => {
    expect(luhnValid('79927398713')).toBe(true);
    expect(luhnValid('79927398710')).toBe(false);
  });
});

describe('iban', () => {
  it.each([
    'DE89 3704 0044 0532 0130 00',
    'DE89370400440532013000',
    'GB82WEST12345698765432',
    'GB82 WEST 1234 5698 7654 32',
    'NL91 ABNA 0417 1643 00',
    'FR14 2004 1010 0505 0001 3M02 606',
    'CH93 0076 2011 6238 5295 7',
    'BE68 5390 0754 7034',
  ])('finds %s', (iban) => {
    expectWhole(iban, 'iban');
  });

  it('leaves an IBAN with one wrong digit alone, and does not see a card or phone in it', () => {
    expect(findPii('IBAN DE89 3704 0044 0532 0130 01, please')).toEqual([]);
    expect(findPii('IBAN DE89370400440532013001')).toEqual([]);
    expect(findPii('IBAN GB82WEST12345698765433')).toEqual([]);
  });

  it('stops before a following upper-case word', () => {
    expect(redact('NL91 ABNA 0417 1643 00 ABNA BANK')).toBe('[REDACTED:iban] ABNA BANK');
  });

  it('checks the registry length of known countries', () => {
    expect(ibanValid('DE89370400440532013000')).toBe(true);
    expect(ibanValid('DE8937040044053201300')).toBe(false);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82WEST1234569876543')).toBe(false);
  });
});

describe('national_id', () => {
  it.each(['123-45-6789', '078-05-1121', '665-99-0001'])('finds the SSN %s', (ssn) => {
    expectWhole(ssn, 'national_id');
  });

  it.each([
    ['000-12-3456', 'area 000'],
    ['666-12-3456', 'area 666'],
    ['912-34-5678', 'area 9xx (ITIN range)'],
    ['123-00-4567', 'group 00'],
    ['123-45-0000', 'serial 0000'],
    ['A123-45-6789', 'glued to a word'],
    ['123-45-67890', 'too many digits'],
  ])('leaves %s alone (%s)', (text) => {
    expect(findPii(text)).toEqual([]);
  });

  it('finds a bare 9-digit SSN only after a label', () => {
    expect(redact('SSN: 123456789')).toBe('SSN: [REDACTED:national_id]');
    expect(redact('Social Security Number 123456789')).toBe('Social Security Number [REDACTED:national_id]');
    expect(findPii('account 123456789')).toEqual([]);
  });

  it.each(['AB 12 34 56 C', 'AB123456C', 'JG103759A', 'OA 98 76 54 D'])('finds the NINO %s', (nino) => {
    expectWhole(nino, 'national_id');
  });

  it.each([
    ['QQ 12 34 56 C', 'Q is never a prefix letter (HMRC documentation example)'],
    ['GB 12 34 56 A', 'reserved prefix GB'],
    ['AO 12 34 56 A', 'O is never the second letter'],
    ['DA 12 34 56 A', 'D is never the first letter'],
    ['AB 12 34 56 E', 'suffix beyond D'],
    ['AB 1234 56 C', 'inconsistent spacing'],
    ['ab 12 34 56 c', 'lower case'],
  ])('leaves %s alone (%s)', (text) => {
    expect(findPii(text)).toEqual([]);
  });

  it('finds a Dutch BSN only when labelled and 11-proof', () => {
    expect(redact('BSN: 111222333')).toBe('BSN: [REDACTED:national_id]');
    expect(redact('burgerservicenummer 1234.56.782')).toBe('burgerservicenummer [REDACTED:national_id]');
    expect(findPii('BSN: 123456789')).toEqual([]); // fails the 11-proof
    expect(findPii('ticket 111222333')).toEqual([]); // valid 11-proof, but unlabelled
  });
});

describe('secret', () => {
  it.each([
    [OPENAI_KEY, 'OpenAI project key'],
    [OPENAI_LEGACY_KEY, 'OpenAI key'],
    [AWS_KEY_ID, 'AWS access key id'],
    [GITHUB_TOKEN, 'GitHub classic token'],
    [GITHUB_TOKEN.replace('ghp_', 'gho_'), 'GitHub OAuth token'],
    [GITHUB_TOKEN.replace('ghp_', 'ghs_'), 'GitHub server token'],
    [GITHUB_TOKEN.replace('ghp_', 'ghu_'), 'GitHub user-to-server token'],
    [GITHUB_PAT, 'GitHub fine-grained token'],
    [SLACK_TOKEN, 'Slack bot token'],
    [STRIPE_KEY, 'Stripe secret key'],
    [STRIPE_RESTRICTED_KEY, 'Stripe restricted key'],
    [GOOGLE_KEY, 'Google API key'],
    [JWT, 'JWT'],
    [LARDER_KEY, 'Larder API key'],
  ])('finds %s (%s)', (token) => {
    expectWhole(token, 'secret');
  });

  it('redacts a whole PEM private key block', () => {
    const text = `key:\n${PEM}\nend of file`;
    expect(redact(text)).toBe('key:\n[REDACTED:secret]\nend of file');
    const openssh = PEM.replaceAll('RSA', 'OPENSSH');
    expect(redact(openssh)).toBe('[REDACTED:secret]');
  });

  it('redacts the body of a truncated PEM private key', () => {
    const truncated = PEM.split('\n').slice(0, 3).join('\n');
    expect(redact(`${truncated}\n-- truncated --`)).toBe('[REDACTED:secret]\n-- truncated --');
  });

  it('leaves public keys and certificates alone', () => {
    const cert = PEM.replaceAll('RSA PRIVATE KEY', 'CERTIFICATE');
    expect(findPii(cert)).toEqual([]);
  });

  it.each([
    ['DB_PASSWORD=hunter2', 'DB_PASSWORD=[REDACTED:secret]'],
    ['export GITHUB_TOKEN=abc123', 'export GITHUB_TOKEN=[REDACTED:secret]'],
    ['passwd = "correct horse"', 'passwd = "[REDACTED:secret]"'],
    ["secret='s3cr3t'", "secret='[REDACTED:secret]'"],
    ['{"client_secret": "a\\"b", "id": 7}', '{"client_secret": "[REDACTED:secret]", "id": 7}'],
    ['https://api.test/v1?api_key=abc123&page=2', 'https://api.test/v1?api_key=[REDACTED:secret]&page=2'],
    ['GET /cb?access_token=ya29.a0Af&x=1', 'GET /cb?access_token=[REDACTED:secret]&x=1'],
    ['apikey: 9f8e7d6c', 'apikey: [REDACTED:secret]'],
    ['  password: hunter2', '  password: [REDACTED:secret]'],
    ['X-Api-Key: 9f8e7d6c5b4a', 'X-Api-Key: [REDACTED:secret]'],
    ['Authorization: Bearer abc123.def456', 'Authorization: Bearer [REDACTED:secret]'],
    ['Authorization: Basic dXNlcjpwYXNz', 'Authorization: Basic [REDACTED:secret]'],
    [
      'DATABASE_URL=postgres://larder:pw1234@db.example.com:5432/larder',
      'DATABASE_URL=postgres://[REDACTED:secret]@db.example.com:5432/larder',
    ],
  ])('redacts only the value in %s', (text, expected) => {
    expect(redact(text)).toBe(expected);
  });

  it('labels a known token inside an assignment or header as one secret', () => {
    expect(redact(`OPENAI_API_KEY=${OPENAI_KEY}`)).toBe('OPENAI_API_KEY=[REDACTED:secret]');
    expect(redact(`Authorization: Bearer ${JWT}`)).toBe('Authorization: Bearer [REDACTED:secret]');
    expect(redact(`Authorization: Bearer ${LARDER_KEY}`)).toBe('Authorization: Bearer [REDACTED:secret]');
  });

  it.each([
    ['password: string;', 'a type annotation'],
    ['token: null', 'a null value'],
    ['The password: see the vault.', 'a colon in prose'],
    ['max_tokens=1000', 'a key that only contains a keyword'],
    ['if (token == null) return;', 'a comparison'],
    ['Token::new()', 'a path'],
    ['password=${DB_PASSWORD}', 'a template placeholder'],
    ['password=<your password>', 'an angle-bracket placeholder'],
    ['Bearer authentication is described in RFC 6750', 'prose about bearer tokens'],
    ['lk_live_1a2b3c4d is the visible prefix', 'a Larder key prefix'],
    ['sk-some-component-name-here', 'a kebab-case identifier'],
    ['the task-runner and desk-lamp', 'words ending in sk'],
    ['bulk_import_2026_11_24_batch', 'an identifier containing lk_'],
  ])('leaves %s alone (%s)', (text) => {
    expect(findPii(text)).toEqual([]);
  });
});

describe('false positives', () => {
  const prose = [
    'Release notes for Larder v0.12.3 (build 20261124.3), published 2026-11-24 at 14:30 UTC',
    '(Tue, 24 Nov 2026 14:30:00 GMT; 24.11.2026; 11/24/2026). See section 4.2.1 and §7.3, RFC 7231 and',
    'ISO 8601. Node 20.19.0 and PostgreSQL 16.4 are required; pgvector 0.8.0 uses HNSW with m = 16.',
    'The worker retries 3 times with a 2.5 s back-off; p95 latency fell 37.5% to 120 ms (from 0.192 s).',
    'Commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed #1234 and JIRA-4821; see PR #5678.',
    'Document 550e8400-e29b-41d4-a716-446655440000 was re-indexed on 192.168.100.254:5432 and',
    '10.0.0.1, fe80::1ff:fe23:4567:890a and ::1, behind 2001:db8::/32.',
    'The plan costs $12,345 per year (€1.234,56 per month, 1,000,000.00 tokens, 10 000 users).',
    'Order ORD-2026-000123 and invoice INV2026-0042 shipped; SKU A1B2-C3D4 is back in stock.',
    'Read ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2, chapters 12–15, pages 123-145.',
    'The ratio is 3:4, uptime 99.95%, CVE-2024-12345 is patched, chmod 0755, 1e-9 tolerance, 0x7fffffff.',
    'Timestamps look like 1732406400 or 1732406400000; the offset is +01:00 and UTC+1.',
    'Set max_tokens=1024, temperature 0.2 and top_p 0.95. Our year was 2026.',
    'Email the team at our usual address or ping @oncall; mention @larder/core for the package.',
  ].join('\n');

  it('finds nothing in technical prose', () => {
    expect(findPii(prose)).toEqual([]);
  });

  it('finds nothing in a 1 MB benign text (and finishes)', () => {
    const big = `${prose}\n`.repeat(Math.ceil(1_000_000 / prose.length)).slice(0, 1_000_000);
    expect(big.length).toBe(1_000_000);
    expect(findPii(big)).toEqual([]);
  });

  it('survives inputs shaped to provoke regex backtracking', () => {
    const hostile = [
      '1'.repeat(200_000),
      '+1 '.repeat(50_000),
      'a.'.repeat(100_000) + '@',
      'a@' + 'a.'.repeat(100_000),
      'password="' + 'x'.repeat(100_000),
      'sk-' + 'a-'.repeat(100_000),
      'eyJ' + 'a'.repeat(100_000),
      'DE89' + ' ABCD'.repeat(50_000),
      '-----BEGIN PRIVATE KEY-----\n'.repeat(10_000),
    ];
    for (const text of hostile) expect(Array.isArray(findPii(text))).toBe(true);
  });
});

describe('findPii', () => {
  it('returns sorted, non-overlapping matches whose offsets index the input', () => {
    const text = `Mail a@example.com, call +44 20 7946 0958, pay 4111 1111 1111 1111, key ${AWS_KEY_ID}, SSN 123-45-6789.`;
    const matches = findPii(text);
    expect(matches.map((m) => m.kind)).toEqual(['email', 'phone', 'card', 'secret', 'national_id']);
    expect(matches.map((m) => text.slice(m.start, m.end))).toEqual([
      'a@example.com',
      '+44 20 7946 0958',
      '4111 1111 1111 1111',
      AWS_KEY_ID,
      '123-45-6789',
    ]);
    for (let i = 1; i < matches.length; i++) {
      expect(matches[i]!.start).toBeGreaterThanOrEqual(matches[i - 1]!.end);
    }
  });

  it('keeps the earliest-starting match when two overlap', () => {
    // The URL credential `larder:pw1234` starts before the email-shaped `pw1234@db.example.com`.
    expect(kindsIn('postgres://larder:pw1234@db.example.com/x')).toEqual(['secret']);
  });

  it('returns nothing for an empty or benign string', () => {
    expect(findPii('')).toEqual([]);
    expect(findPii('nothing to see here')).toEqual([]);
  });
});

describe('kinds option', () => {
  const text = `jane@example.com, 555-123-4567, 4111 1111 1111 1111, DE89370400440532013000, 123-45-6789, ${AWS_KEY_ID}`;

  it('detects every kind by default', () => {
    expect(kindsIn(text)).toEqual(['email', 'phone', 'card', 'iban', 'national_id', 'secret']);
  });

  it('restricts detection to the listed kinds', () => {
    expect(redact(text, ['email', 'card'])).toBe(
      `[REDACTED:email], 555-123-4567, [REDACTED:card], DE89370400440532013000, 123-45-6789, ${AWS_KEY_ID}`,
    );
    expect(findPii(text, { kinds: ['iban'] }).map((m) => m.kind)).toEqual(['iban']);
  });

  it('detects nothing with an empty list', () => {
    expect(findPii(text, { kinds: [] })).toEqual([]);
  });

  it('lets an unselected kind no longer shadow a selected one', () => {
    expect(redact('postgres://larder:pw1234@db.example.com/x', ['email'])).toBe(
      'postgres://larder:[REDACTED:email]/x',
    );
  });

  it('ignores unknown kind names from untyped input', () => {
    const kinds = ['email', 'nope'] as unknown as PiiKind[];
    expect(kindsIn(text)).toContain('email');
    expect(findPii(text, { kinds }).map((m) => m.kind)).toEqual(['email']);
  });
});

describe('redactPii', () => {
  it('replaces each match and counts them by kind', () => {
    const result = redactPii('a@example.com and b@example.com, 555-123-4567');
    expect(result.text).toBe('[REDACTED:email] and [REDACTED:email], [REDACTED:phone]');
    expect(result.counts).toEqual({ email: 2, phone: 1 });
    expect(result.matches).toHaveLength(3);
  });

  it('returns the input unchanged, with empty counts, when nothing matches', () => {
    expect(redactPii('plain text')).toEqual({ text: 'plain text', counts: {}, matches: [] });
  });

  it('is idempotent: redacted output has nothing left to redact', () => {
    const once = redactPii(`password=hunter2 ${JWT} jane@example.com +49 30 123456 AB 12 34 56 C`).text;
    expect(findPii(once)).toEqual([]);
    expect(redactPii(once).text).toBe(once);
  });
});

describe('redactDeep', () => {
  it('redacts strings in nested objects and arrays without mutating the input', () => {
    const input = {
      user: { name: 'Jane', contact: { email: 'jane@example.com', phones: ['+44 20 7946 0958', 'none'] } },
      notes: [['card 4111 1111 1111 1111'], { deep: [{ deeper: `token=${OPENAI_KEY}` }] }],
      count: 3,
      ok: true,
      missing: null,
      nothing: undefined,
    };
    const snapshot = structuredClone(input);
    const output = redactDeep(input);
    expect(output).toEqual({
      user: {
        name: 'Jane',
        contact: { email: '[REDACTED:email]', phones: ['[REDACTED:phone]', 'none'] },
      },
      notes: [['card [REDACTED:card]'], { deep: [{ deeper: 'token=[REDACTED:secret]' }] }],
      count: 3,
      ok: true,
      missing: null,
      nothing: undefined,
    });
    expect(input).toEqual(snapshot);
    expect(output).not.toBe(input);
    expect(output.user).not.toBe(input.user);
    expect(output.notes).not.toBe(input.notes);
  });

  it('redacts a top-level string and passes other primitives through', () => {
    expect(redactDeep('mail jane@example.com')).toBe('mail [REDACTED:email]');
    expect(redactDeep(42)).toBe(42);
    expect(redactDeep(null)).toBeNull();
    expect(redactDeep<unknown>(undefined)).toBeUndefined();
  });

  it('leaves non-plain objects as they are', () => {
    const date = new Date('2026-11-24T00:00:00Z');
    const error = new Error('mail jane@example.com');
    const map = new Map([['k', 'jane@example.com']]);
    class Box {
      constructor(readonly value: string) {}
    }
    const box = new Box('jane@example.com');
    const output = redactDeep({ date, error, map, box, buffer: Buffer.from('jane@example.com') });
    expect(output.date).toBe(date);
    expect(output.error).toBe(error);
    expect(output.error.message).toBe('mail jane@example.com');
    expect(output.map).toBe(map);
    expect(output.box).toBe(box);
    expect(output.buffer.toString()).toBe('jane@example.com');
  });

  it('keeps object keys and handles null-prototype objects and a `__proto__` key', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare['jane@example.com'] = 'jane@example.com';
    const parsed = JSON.parse('{"__proto__": "jane@example.com"}') as Record<string, unknown>;
    const output = redactDeep({ bare, parsed });
    expect(Object.getPrototypeOf(output.bare)).toBeNull();
    expect(output.bare).toEqual({ 'jane@example.com': '[REDACTED:email]' });
    expect(Object.getPrototypeOf(output.parsed)).toBe(Object.prototype);
    expect(Object.keys(output.parsed)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(output.parsed, '__proto__')?.value).toBe('[REDACTED:email]');
  });

  it('copies cycles and shared references faithfully', () => {
    interface Node {
      label: string;
      self?: Node;
      list: unknown[];
    }
    const node: Node = { label: 'jane@example.com', list: [] };
    node.self = node;
    node.list.push(node, node.list);
    const shared = { email: 'jane@example.com' };
    const output = redactDeep({ node, a: shared, b: shared });
    expect(output.node.label).toBe('[REDACTED:email]');
    expect(output.node.self).toBe(output.node);
    expect(output.node.list[0]).toBe(output.node);
    expect(output.node.list[1]).toBe(output.node.list);
    expect(output.a).toBe(output.b);
    expect(output.a).not.toBe(shared);
    expect(node.label).toBe('jane@example.com');
  });

  it('applies the kinds option', () => {
    expect(redactDeep({ a: 'jane@example.com 555-123-4567' }, { kinds: ['phone'] })).toEqual({
      a: 'jane@example.com [REDACTED:phone]',
    });
  });
});
