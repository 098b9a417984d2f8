import { describe, expect, it } from 'vitest';
import { percentile, pipelineSpan, scoreRun } from './run.js';

describe('pipelineSpan', () => {
  it('moves a span past each removed \\r of a \\r\\n and a leading BOM', () => {
    const text = '\uFEFFa\r\nb\r\nanswer here';
    const start = text.indexOf('answer');
    expect(pipelineSpan(text, { start, end: start + 6, text: 'answer' })).toEqual({ start: 4, end: 10 });
    // A span across a \r\n is compared in its normalised form.
    expect(pipelineSpan(text, { start: 2, end: 5, text: '\r\nb' })).toEqual({ start: 1, end: 3 });
    expect(pipelineSpan(text, { start, end: start + 6, text: 'answex' })).toBeUndefined();
  });

  it('leaves spans of text without \\r untouched', () => {
    expect(pipelineSpan('abc def', { start: 4, end: 7, text: 'def' })).toEqual({ start: 4, end: 7 });
  });
});

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(values, 0.5)).toBe(5);
    expect(percentile(values, 0.95)).toBe(10);
    expect(percentile([], 0.5)).toBe(0);
  });
});

describe('scoreRun', () => {
  it('ranks a document at its best chunk and credits a shared copy to the id it stands for', () => {
    const topics = {
      queries: new Map([
        ['q1', 'x'],
        ['q2', 'y'],
      ]),
      qrels: new Map([
        ['q1', new Map([['b', 1]])],
        ['q2', new Map([['twin', 1]])],
      ]),
      stats: {} as never,
    };
    const hit = (externalId: string) => ({ externalId, charStart: 0, charEnd: 10 });
    const metrics = scoreRun(
      topics,
      [
        // b's best chunk is third: later chunks of a keep their slots.
        { queryId: 'q1', hits: [hit('a'), hit('a'), hit('b'), hit('b')], ms: 2 },
        { queryId: 'q2', hits: [hit('orig')], ms: 4 },
      ],
      {
        k: 10,
        texts: new Map(),
        canonical: new Map([
          ['a', 'a'],
          ['b', 'b'],
          ['orig', 'orig'],
          ['twin', 'orig'],
        ]),
      },
    );
    expect(metrics).toMatchObject({
      queries: 2,
      mrrAt10: round((1 / 3 + 1) / 2),
      recallAtK: 1,
      answers: null,
    });
    expect(metrics.ndcgAt10).toBe(round((1 / Math.log2(4) + 1) / 2));
    expect(metrics.latencyMs).toEqual({ p50: 2, p95: 4, mean: 3 });
  });
});

function round(n: number) {
  return Math.round(n * 10_000) / 10_000;
}
