import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../platform/db/cursor.js';
import { isSecretName, sanitiseAuditData } from './sanitise.js';

describe('audit data sanitiser', () => {
  it('tells secret names from names of identifiers and metadata', () => {
    for (const name of [
      'password',
      'newPassword',
      'password_confirmation',
      'passphrase',
      'clientSecret',
      'token',
      'refreshToken',
      'access_token',
      'key',
      'apiKey',
      'APIKey',
      'api-key',
      'privateKey',
      'passwordHash',
      'authorization',
    ]) {
      expect(isSecretName(name), name).toBe(true);
    }
    for (const name of [
      'email',
      'apiKeyId',
      'familyId',
      'tokenType',
      'keyPrefix',
      'scopes',
      'monkey',
      'name',
    ]) {
      expect(isSecretName(name), name).toBe(false);
    }
  });

  it('drops secrets at any depth, lists their paths, and keeps the rest JSON-safe', () => {
    const key = `lk_live_0123abcd_${'A'.repeat(43)}`;
    expect(
      sanitiseAuditData({
        email: 'a@example.com',
        password: 'hunter2',
        nested: { refreshToken: 'lr_x', apiKeyId: 'k1', list: [{ secret: 1 }, 'ok', key] },
        note: key,
        jwt: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
        at: new Date('2024-01-02T03:04:05.678Z'),
        big: 10n,
        nan: Number.NaN,
        skipped: undefined,
      }),
    ).toEqual({
      email: 'a@example.com',
      nested: { apiKeyId: 'k1', list: [{}, 'ok', null] },
      at: '2024-01-02T03:04:05.678Z',
      big: '10',
      nan: null,
      redactedFields: [
        'password',
        'nested.refreshToken',
        'nested.list[0].secret',
        'nested.list[2]',
        'note',
        'jwt',
      ],
    });
  });

  it('survives reference cycles', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(() => JSON.stringify(sanitiseAuditData(cyclic))).not.toThrow();
  });
});

describe('audit cursor', () => {
  const position = { createdAt: '2024-05-06T07:08:09.123456', id: '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b' };

  it('round-trips and is opaque base64url', () => {
    const cursor = encodeCursor(position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual(position);
  });

  it('refuses anything that is not one of its cursors', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    for (const bad of [
      '!!!',
      'abc',
      b64('2024-05-06T07:08:09.123456'),
      b64(`2024-05-06T07:08:09.123|${position.id}`),
      b64(`2024-02-31T07:08:09.123456|${position.id}`),
      b64(`2024-05-06T25:08:09.123456|${position.id}`),
      b64('2024-05-06T07:08:09.123456|not-a-uuid'),
      `${encodeCursor(position)}=`,
    ]) {
      expect(decodeCursor(bad), bad).toBeNull();
    }
  });
});
