/** Shared fixtures of answer tests: a small handbook and the check that citations quote their sources. */
import { expect } from 'vitest';
import type { SignedUp, TestApp } from './app.js';
import { authHeaders } from './documents.js';

import type { Citation } from '../../src/modules/answers/grounding.js';

export type { Citation };

export const HANDBOOK = [
  {
    title: 'Parental leave policy',
    text: `# Parental leave

Employees are entitled to 16 weeks of parental leave at full pay. The leave may start up to four weeks before the expected birth date.

Requests are submitted through the HR portal at least eight weeks in advance. Managers approve parental leave requests within five working days.`,
  },
  {
    title: 'Travel expenses',
    text: `# Travel expenses

Economy class is the default for flights under six hours. Hotel costs are reimbursed up to 180 euros per night in major cities.

Receipts must be uploaded within 30 days of the trip; late claims are not reimbursed.`,
  },
  {
    title: 'Security basics',
    text: `# Security basics

Laptops must use full-disk encryption. Passwords are at least 14 characters long and are never reused.

Lost devices are reported to the security team within 24 hours.`,
  },
];

/** Every citation's quote is exactly the document's text at its span: in the chunk and in the original. */
export async function verifyCitations(t: TestApp, s: SignedUp, citations: Citation[]): Promise<void> {
  for (const c of citations) {
    const chunks = await t.app.inject({
      method: 'GET',
      url: `/v1/documents/${c.documentId}/chunks?limit=200`,
      headers: authHeaders(s),
    });
    expect(chunks.statusCode, chunks.body).toBe(200);
    const chunk = chunks
      .json<{ data: { id: string; text: string; charStart: number; charEnd: number }[] }>()
      .data.find((x) => x.id === c.chunkId);
    expect(chunk, `chunk ${c.chunkId}`).toBeDefined();
    expect(c.charStart).toBeGreaterThanOrEqual(chunk!.charStart);
    expect(c.charEnd).toBeLessThanOrEqual(chunk!.charEnd);
    expect(chunk!.text.slice(c.charStart - chunk!.charStart, c.charEnd - chunk!.charStart)).toBe(c.quote);
    const content = await t.app.inject({
      method: 'GET',
      url: `/v1/documents/${c.documentId}/content`,
      headers: authHeaders(s),
    });
    expect(content.body.slice(c.charStart, c.charEnd)).toBe(c.quote);
  }
}

/** Parses an SSE body into events. */
export function parseSse(body: string): { event: string; data: Record<string, unknown> }[] {
  return body
    .split('\n\n')
    .filter((frame) => frame.startsWith('event: '))
    .map((frame) => {
      const [eventLine, dataLine] = frame.split('\n');
      return {
        event: eventLine!.slice('event: '.length),
        data: JSON.parse(dataLine!.slice('data: '.length)) as Record<string, unknown>,
      };
    });
}
