import { describe, expect, it } from 'vitest';
import { AppError, errorCatalogue } from '../errors.js';
import { toProblem } from './problem.js';

describe('toProblem', () => {
  it('maps an AppError with its code, status, detail and extensions', () => {
    const problem = toProblem(
      new AppError('conflict', {
        detail: 'name taken',
        extensions: { field: 'name' },
        headers: { 'retry-after': '1' },
      }),
      'req-1',
    );
    expect(problem).toEqual({
      status: 409,
      headers: { 'retry-after': '1' },
      body: {
        type: 'urn:larder:problem:conflict',
        title: errorCatalogue.conflict.title,
        status: 409,
        detail: 'name taken',
        code: 'conflict',
        requestId: 'req-1',
        field: 'name',
      },
    });
  });

  it('turns unknown errors into a 500 that leaks nothing', () => {
    const error = new Error(
      'duplicate key value violates unique constraint "users_email_key" (select * from users)',
    );
    const problem = toProblem(error, 'req-2');
    expect(problem.status).toBe(500);
    expect(problem.body.code).toBe('internal_error');
    expect(JSON.stringify(problem.body)).not.toMatch(/users|select|constraint|stack/i);
  });

  it('does not trust a statusCode on arbitrary errors', () => {
    const error = Object.assign(new Error('relation "secrets" does not exist'), { statusCode: 404 });
    const problem = toProblem(error, 'req-3');
    expect(problem.status).toBe(500);
    expect(JSON.stringify(problem.body)).not.toContain('secrets');
  });

  it('gives every catalogue entry a 4xx/5xx status and a title', () => {
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      expect(entry.status, code).toBeGreaterThanOrEqual(400);
      expect(entry.title.length, code).toBeGreaterThan(3);
      expect(code).toMatch(/^[a-z_]+$/);
    }
  });
});
