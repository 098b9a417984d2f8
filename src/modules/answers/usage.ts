/**
 * Usage accounting, budgets and the workspace's answer policy.
 *
 * Every answer writes one `usage_events` row (tokens in/out, cost, latency). Budgets are per workspace
 * and UTC period (day, calendar month), on tokens (in + out) and/or cost, summed over every usage
 * event of the period. The check runs before an answer starts: a workspace at or over a limit gets
 * 429 `budget_exceeded` with `Retry-After` until the period resets. One answer in flight can overrun a
 * limit by its own cost (answers are not pre-charged); the next one is refused.
 *
 * The policy lives in `workspaces.settings.ai` (admins edit it with `PUT /v1/answers/policy`):
 *   { "budgets": { "dailyTokens": 200000, "monthlyCostUsd": 50 },
 *     "routing": { "fastModel": "gpt-4o-mini", "strongModel": "gpt-4o", "strongAboveTokens": 40,
 *                  "latencyBudgetMs": 20000 } }
 */
import { sql, type Transaction } from 'kysely';
import type { WorkspaceContext } from '../../platform/auth/access.js';
import type { Db } from '../../platform/db/database.js';
import type { DB, JsonObject, UsageFeature } from '../../platform/db/schema.js';
import { withTenant } from '../../platform/db/tenant.js';
import { AppError } from '../../platform/errors.js';

type Trx = Transaction<DB>;

export interface Budgets {
  dailyTokens: number | null;
  monthlyTokens: number | null;
  dailyCostUsd: number | null;
  monthlyCostUsd: number | null;
}

export interface RoutingSettings {
  /** null: the server's LARDER_CHAT_MODEL. */
  fastModel: string | null;
  /** null: LARDER_CHAT_STRONG_MODEL, else the fast model. */
  strongModel: string | null;
  strongAboveTokens: number;
  /** Generation time allowed before the answer falls back to extractive; null: the provider timeout. */
  latencyBudgetMs: number | null;
}

export interface AnswerPolicy {
  budgets: Budgets;
  routing: RoutingSettings;
}

export const DEFAULT_POLICY: AnswerPolicy = {
  budgets: { dailyTokens: null, monthlyTokens: null, dailyCostUsd: null, monthlyCostUsd: null },
  routing: { fastModel: null, strongModel: null, strongAboveTokens: 40, latencyBudgetMs: null },
};

export interface UsageEvent {
  workspaceId: string;
  userId: string | null;
  apiKeyId: string | null;
  feature: UsageFeature;
  provider: string | null;
  model: string | null;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyMs: number;
  /** Per stage (answers: retrieve, generate, total). */
  stageLatencyMs?: Record<string, number> | undefined;
  requestId: string | null;
}

export interface BudgetLine {
  budget: keyof Budgets;
  limit: number;
  used: number;
  resetsAt: string;
}

export interface UsageRow {
  day: string;
  feature: string;
  model: string | null;
  requests: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

const startOfDay = (now: Date) =>
  new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
const startOfMonth = (now: Date) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
const nextDay = (now: Date) => new Date(startOfDay(now).getTime() + 86_400_000);
const nextMonth = (now: Date) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));

function mergePolicy(stored: unknown): AnswerPolicy {
  const ai = (stored ?? {}) as { budgets?: Partial<Budgets>; routing?: Partial<RoutingSettings> };
  return {
    budgets: { ...DEFAULT_POLICY.budgets, ...(ai.budgets ?? {}) },
    routing: { ...DEFAULT_POLICY.routing, ...(ai.routing ?? {}) },
  };
}

export class UsageService {
  constructor(private readonly db: Db) {}

  async policy(workspaceId: string): Promise<AnswerPolicy> {
    const row = await withTenant(this.db, workspaceId, (trx) =>
      trx.selectFrom('workspaces').select('settings').where('id', '=', workspaceId).executeTakeFirst(),
    );
    return mergePolicy((row?.settings as { ai?: unknown } | undefined)?.ai);
  }

  /** Replaces the parts given (null clears a limit); returns the whole policy. */
  async setPolicy(
    ws: WorkspaceContext,
    patch: { budgets?: Partial<Budgets>; routing?: Partial<RoutingSettings> },
  ): Promise<AnswerPolicy> {
    return withTenant(this.db, ws.id, async (trx) => {
      const row = await trx
        .selectFrom('workspaces')
        .select('settings')
        .where('id', '=', ws.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const settings: JsonObject = row.settings;
      const current = mergePolicy(settings.ai);
      const next: AnswerPolicy = {
        budgets: { ...current.budgets, ...(patch.budgets ?? {}) },
        routing: { ...current.routing, ...(patch.routing ?? {}) },
      };
      await trx
        .updateTable('workspaces')
        .set({ settings: JSON.stringify({ ...settings, ai: next }) })
        .where('id', '=', ws.id)
        .execute();
      return next;
    });
  }

  /** Usage of the current day and month against every limit set. */
  async budgetStatus(workspaceId: string, budgets: Budgets, now = new Date()): Promise<BudgetLine[]> {
    const limits = Object.entries(budgets).filter(([, v]) => v !== null) as [keyof Budgets, number][];
    if (limits.length === 0) return [];
    const day = startOfDay(now);
    const month = startOfMonth(now);
    const used = await withTenant(this.db, workspaceId, async (trx) => {
      const { rows } = await sql<{
        day_tokens: number;
        day_cost: number;
        month_tokens: number;
        month_cost: number;
      }>`
        select coalesce(sum(tokens_in + tokens_out) filter (where created_at >= ${day}), 0)::float8 as day_tokens,
               coalesce(sum(cost_usd) filter (where created_at >= ${day}), 0)::float8 as day_cost,
               coalesce(sum(tokens_in + tokens_out), 0)::float8 as month_tokens,
               coalesce(sum(cost_usd), 0)::float8 as month_cost
        from usage_events where workspace_id = ${workspaceId} and created_at >= ${month}`.execute(trx);
      return rows[0] ?? { day_tokens: 0, day_cost: 0, month_tokens: 0, month_cost: 0 };
    });
    const usedOf: Record<keyof Budgets, number> = {
      dailyTokens: used.day_tokens,
      dailyCostUsd: used.day_cost,
      monthlyTokens: used.month_tokens,
      monthlyCostUsd: used.month_cost,
    };
    return limits.map(([budget, limit]) => ({
      budget,
      limit,
      used: usedOf[budget],
      resetsAt: (budget.startsWith('daily') ? nextDay(now) : nextMonth(now)).toISOString(),
    }));
  }

  /** Throws 429 `budget_exceeded` when any limit is reached. */
  async assertWithinBudget(workspaceId: string, budgets: Budgets, now = new Date()): Promise<void> {
    const lines = await this.budgetStatus(workspaceId, budgets, now);
    const over = lines.find((line) => line.used >= line.limit);
    if (!over) return;
    const retryAfter = Math.max(1, Math.ceil((Date.parse(over.resetsAt) - now.getTime()) / 1000));
    throw new AppError('budget_exceeded', {
      detail: `The workspace's ${over.budget} budget (${over.limit}) is used up until ${over.resetsAt}`,
      extensions: { ...over },
      headers: { 'retry-after': String(retryAfter) },
    });
  }

  async record(trx: Trx, event: UsageEvent): Promise<void> {
    await trx
      .insertInto('usage_events')
      .values({
        workspace_id: event.workspaceId,
        user_id: event.userId,
        api_key_id: event.apiKeyId,
        feature: event.feature,
        provider: event.provider,
        model: event.model,
        tokens_in: event.tokensIn,
        tokens_out: event.tokensOut,
        cost_usd: event.costUsd.toFixed(6),
        latency_ms: Math.round(event.latencyMs),
        stage_latency_ms: event.stageLatencyMs ?? {},
        request_id: event.requestId,
      })
      .execute();
  }

  /** Aggregates by UTC day, feature and model, oldest day first, over [from, to). */
  async report(ws: WorkspaceContext, from: Date, to: Date): Promise<UsageRow[]> {
    return withTenant(this.db, ws.id, async (trx) => {
      const { rows } = await sql<UsageRow>`
        select to_char(date_trunc('day', created_at at time zone 'UTC'), 'YYYY-MM-DD') as day,
               feature, model, count(*)::int as requests,
               sum(tokens_in)::float8 as "tokensIn", sum(tokens_out)::float8 as "tokensOut",
               sum(cost_usd)::float8 as "costUsd"
        from usage_events
        where workspace_id = ${ws.id} and created_at >= ${from} and created_at < ${to}
        group by 1, 2, 3 order by 1, 2, 3 nulls first`.execute(trx);
      return rows;
    });
  }
}
