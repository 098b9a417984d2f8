import { describe, expect, it } from 'vitest';
import { parsePriceTable, PriceTable } from './pricing.js';
import { routeModel } from './routing.js';
import { countChatTokens, countTokens } from './tokens.js';

describe('PriceTable', () => {
  it('prices by exact id, then by the longest dated prefix, and flags unknown models', () => {
    const prices = new PriceTable();
    expect(prices.cost('gpt-4o-mini', 1_000_000, 0)).toEqual({ usd: 0.15, known: true });
    // a dated snapshot of gpt-4o-mini is priced as gpt-4o-mini, not as gpt-4o
    expect(prices.cost('gpt-4o-mini-2024-07-18', 0, 1_000_000)).toEqual({ usd: 0.6, known: true });
    expect(prices.cost('gpt-4o-2024-08-06', 1000, 1000)).toEqual({ usd: 0.0125, known: true });
    expect(prices.cost('llama3.1:8b', 5000, 500)).toEqual({ usd: 0, known: false });
    // no prefix match without the dash: "gpt-4ox" is another model
    expect(prices.price('gpt-4ox')).toBeNull();
  });

  it('rounds to the micro-dollar (the stored precision)', () => {
    expect(new PriceTable().cost('gpt-4o-mini', 1, 1).usd).toBe(0.000001);
  });

  it('lets the configured table override and extend the built-in one', () => {
    const prices = new PriceTable(
      parsePriceTable('{"gpt-4o": {"input": 1, "output": 2}, "qwen2.5": {"input": 0.1, "output": 0.1}}'),
    );
    expect(prices.cost('gpt-4o', 1_000_000, 1_000_000).usd).toBe(3);
    expect(prices.cost('qwen2.5-7b', 2_000_000, 0)).toEqual({ usd: 0.2, known: true });
  });

  it('rejects malformed tables with the reason', () => {
    expect(parsePriceTable('')).toEqual({});
    expect(() => parsePriceTable('{')).toThrow(/not valid JSON/);
    expect(() => parsePriceTable('[]')).toThrow(/JSON object/);
    expect(() => parsePriceTable('{"m": {"input": -1, "output": 0}}')).toThrow(/"m" needs/);
    expect(() => parsePriceTable('{"m": {"input": 1}}')).toThrow(/"m" needs/);
  });
});

describe('routeModel', () => {
  const policy = { fastModel: 'small', strongModel: 'large', strongAboveTokens: 20 };

  it('honours an explicit quality', () => {
    expect(routeModel(policy, 'Compare A and B', 'fast')).toEqual({
      model: 'small',
      tier: 'fast',
      reason: 'requested',
    });
    expect(routeModel(policy, 'hi', 'strong')).toEqual({
      model: 'large',
      tier: 'strong',
      reason: 'requested',
    });
  });

  it('sends long or complex questions to the strong model on auto', () => {
    expect(routeModel(policy, 'How long is parental leave?', 'auto').tier).toBe('fast');
    expect(routeModel(policy, 'Why did the leave policy change?', 'auto')).toMatchObject({
      tier: 'strong',
      reason: 'complex',
    });
    expect(routeModel(policy, 'Who approves leave? And who pays it?', 'auto').reason).toBe('complex');
    const long =
      'What is the notice period for employees who have been with the company for more than five years in the Berlin office';
    expect(routeModel(policy, long, 'auto')).toMatchObject({ model: 'large', reason: 'long' });
  });
});

describe('token counts', () => {
  it('counts a chat prompt as its contents plus the format framing', () => {
    const messages = [
      { role: 'system' as const, content: 'You answer from sources.' },
      { role: 'user' as const, content: 'How long is parental leave?' },
    ];
    const contents = countTokens(messages[0]!.content) + countTokens(messages[1]!.content);
    expect(countChatTokens(messages)).toBe(contents + 2 * 3 + 3);
    expect(countTokens('')).toBe(0);
  });
});
