/**
 * What a budget refusal says, and the budget's state as GET /v1/key and the console show it. One rule
 * for both, so they agree:
 *   spent  nothing remains this month (spend >= budget): 429 `insufficient_quota`, no retry helps;
 *   short  the request's first reservation (prompt + first completion slice) exceeds what remains:
 *          400 `budget_insufficient`, naming what it needs, what remains and the max_tokens that fits;
 *   held   it fits what remains, but requests in flight hold the rest: 429 `budget_held`, Retry-After 1 s
 *          (they release it when they settle).
 * The first two carry `x-should-retry: false`, which the openai SDK honours: repeating them cannot help.
 * Figures follow money.ts: needs round up, what remains rounds down.
 */
import type { BudgetState } from "../../contract/api-accounts";
import { ApiError } from "../errors";
import { costUnits, microsToUnits, parseUnits, unitsToMicros, unitsToMicrosFloor } from "./money";
import { retryHeaders } from "./rate";
import type { Pricing } from "./types";

export const NO_RETRY = { "x-should-retry": "false" } as const;

export interface BudgetAmounts {
  budgetMicros: number;
  spentUnits: string;
  reservedUnits: string;
}

export interface BudgetAsk {
  model: string;
  pricing: Pricing;
  promptTokens: number;
  /** The request's completion limit (max_tokens, or the context left). */
  maxCompletionTokens: number;
  /** Completion tokens the admission reserves (the first slice). */
  reservedCompletionTokens: number;
  /** Units the admission reserves (prompt + reservedCompletionTokens). */
  reserveUnits: string;
}

/** UTC date (YYYY-MM-DD) on which the current month's budget resets. */
export function resetDate(now: number): string {
  const d = new Date(now);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).toISOString().slice(0, 10);
}

const micros = (n: number) => `${n} µ€`;

export function budgetRefusal(
  a: BudgetAmounts,
  ask: BudgetAsk,
  now: number,
  headers: Record<string, string>,
): ApiError {
  const budget = microsToUnits(a.budgetMicros);
  const spent = parseUnits(a.spentUnits);
  const reserved = parseUnits(a.reservedUnits);
  const need = parseUnits(ask.reserveUnits);
  const resets = resetDate(now);
  if (spent >= budget)
    return new ApiError(
      429,
      `This key's monthly budget is spent: ${micros(unitsToMicros(spent))} of ${micros(a.budgetMicros)} used this month. ` +
        `It resets on ${resets} (UTC); to continue before then, raise the key's monthly budget.`,
      "insufficient_quota",
      "insufficient_quota",
      null,
      { ...headers, ...NO_RETRY },
    );

  const remaining = budget - spent;
  const promptUnits = costUnits(ask.pricing, {
    promptTokens: ask.promptTokens,
    cachedTokens: 0,
    completionTokens: 0,
  });
  const total = costUnits(ask.pricing, {
    promptTokens: ask.promptTokens,
    cachedTokens: 0,
    completionTokens: ask.maxCompletionTokens,
  });
  const what =
    ask.maxCompletionTokens > 0
      ? `its ${ask.promptTokens}-token prompt and the first ${ask.reservedCompletionTokens} of its max_tokens ${ask.maxCompletionTokens}, at ${ask.model} prices; in all it can cost up to ${micros(unitsToMicros(total))}`
      : `its ${ask.promptTokens} input tokens at ${ask.model} prices`;
  const needs = `This request needs ${micros(unitsToMicros(need))} of budget to start (${what})`;

  if (spent + need > budget) {
    // The largest max_tokens whose first reservation fits what remains (0: not even the prompt fits).
    const output = BigInt(ask.pricing.output);
    const fits =
      ask.maxCompletionTokens > 0 && remaining > promptUnits && output > 0n
        ? Number((remaining - promptUnits) / output)
        : 0;
    const change =
      fits >= 1
        ? `set max_tokens to ${fits} or less, or raise the key's monthly budget`
        : `shorten the input, or raise the key's monthly budget`;
    return new ApiError(
      400,
      `${needs}; ${micros(unitsToMicrosFloor(remaining))} remain this month (resets on ${resets}, UTC). To send it, ${change}.`,
      "invalid_request_error",
      "budget_insufficient",
      ask.maxCompletionTokens > 0 && fits >= 1 ? "max_tokens" : null,
      { ...headers, ...NO_RETRY },
    );
  }
  return new ApiError(
    429,
    `${needs}; ${micros(unitsToMicrosFloor(remaining))} remain this month, but requests in flight hold ${micros(unitsToMicros(reserved))} of it. ` +
      "Retry when they finish, or lower max_tokens.",
    "rate_limit_error",
    "budget_held",
    null,
    { ...headers, ...retryHeaders(1000) },
  );
}

/**
 * The budget's state for GET /v1/key and the console: `spent` as for insufficient_quota above; `low` when
 * what remains (after reservations) cannot start a request on the key's cheapest tier that reserves
 * `typicalUnits` (an empty prompt and a first completion slice): such requests are refused until the
 * key's requests use a small max_tokens, or the budget is raised.
 */
export function budgetState(
  budgetMicros: number,
  spentUnits: bigint,
  reservedUnits: bigint,
  typicalUnits: bigint,
): BudgetState {
  const budget = microsToUnits(budgetMicros);
  if (spentUnits >= budget) return "spent";
  return budget - spentUnits - reservedUnits < typicalUnits ? "low" : "ok";
}
