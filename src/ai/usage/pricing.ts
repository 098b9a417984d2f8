/**
 * Model prices and the cost of a call. Prices are USD per million tokens, input and output, looked up
 * by exact model id, then by the longest configured id the model's name starts with followed by `-`
 * (so `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`, never as `gpt-4o`).
 *
 * The built-in table holds list prices of common hosted models as published by their vendors when
 * this file was written; operators override or extend it with `LARDER_CHAT_PRICES`. Local models
 * (Ollama, vLLM…) are not in it: they cost 0 unless priced, and the usage record says the price was
 * unknown.
 *
 * @example
 *   const prices = new PriceTable(parsePriceTable('{"llama3.1:8b": {"input": 0, "output": 0}}'));
 *   prices.cost('gpt-4o-mini', 1200, 300); // { usd: 0.00036, known: true }
 */

export interface ModelPrice {
  /** USD per million input (prompt) tokens. */
  input: number;
  /** USD per million output (completion) tokens. */
  output: number;
}

export const BUILT_IN_PRICES: Readonly<Record<string, ModelPrice>> = {
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4.1': { input: 2, output: 8 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4 },
  'gpt-5': { input: 1.25, output: 10 },
  'gpt-5-mini': { input: 0.25, output: 2 },
  'gpt-5-nano': { input: 0.05, output: 0.4 },
  'o4-mini': { input: 1.1, output: 4.4 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
};

/** Parses `LARDER_CHAT_PRICES`; throws an Error naming the first problem. Empty → no overrides. */
export function parsePriceTable(json: string): Record<string, ModelPrice> {
  if (json.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error('is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error('must be a JSON object of model ids');
  const table: Record<string, ModelPrice> = {};
  for (const [model, price] of Object.entries(parsed)) {
    const { input, output } = (price ?? {}) as Partial<Record<string, unknown>>;
    const valid = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= 0;
    if (model.length === 0 || !valid(input) || !valid(output))
      throw new Error(`${JSON.stringify(model)} needs {"input": USD per 1M tokens ≥ 0, "output": …}`);
    table[model] = { input: input as number, output: output as number };
  }
  return table;
}

export interface Cost {
  usd: number;
  /** false: the model has no price (cost counted as 0). */
  known: boolean;
}

export class PriceTable {
  readonly #prices: ReadonlyMap<string, ModelPrice>;
  /** Longest first, for prefix lookup. */
  readonly #ids: readonly string[];

  constructor(overrides: Readonly<Record<string, ModelPrice>> = {}) {
    this.#prices = new Map(Object.entries({ ...BUILT_IN_PRICES, ...overrides }));
    this.#ids = [...this.#prices.keys()].sort((a, b) => b.length - a.length);
  }

  price(model: string): ModelPrice | null {
    const exact = this.#prices.get(model);
    if (exact) return exact;
    const prefix = this.#ids.find((id) => model.startsWith(`${id}-`));
    return prefix === undefined ? null : (this.#prices.get(prefix) ?? null);
  }

  cost(model: string, tokensIn: number, tokensOut: number): Cost {
    const price = this.price(model);
    if (!price) return { usd: 0, known: false };
    // Rounded to the micro-dollar, the precision usage_events stores (numeric(12, 6)).
    const usd = (tokensIn * price.input + tokensOut * price.output) / 1e6;
    return { usd: Math.round(usd * 1e6) / 1e6, known: true };
  }
}
