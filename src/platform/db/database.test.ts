import { describe, expect, it } from 'vitest';
import { serverRequirementProblem } from './database.js';

describe('serverRequirementProblem', () => {
  it('accepts PostgreSQL 14+ with pgvector available', () => {
    expect(serverRequirementProblem({ version: 140000, vectorAvailable: true })).toBeUndefined();
    expect(serverRequirementProblem({ version: 170002, vectorAvailable: true })).toBeUndefined();
  });

  it('explains how to install pgvector when it is missing, for the server’s major version', () => {
    const message = serverRequirementProblem({ version: 150019, vectorAvailable: false });
    expect(message).toMatch(/pgvector extension is not installed/);
    expect(message).toContain('apt-get install postgresql-15-pgvector');
    expect(message).toContain('scripts/install-pgvector.sh');
  });

  it('refuses PostgreSQL older than 14', () => {
    expect(serverRequirementProblem({ version: 130011, vectorAvailable: true })).toMatch(
      /PostgreSQL 13 is too old/,
    );
  });
});
