/**
 * Exact money arithmetic. Prices are integer micro-euros (µ€) per million tokens, so
 * tokens × price is an exact integer in "units" of 1e-6 µ€ (= 1e-12 EUR). Everything is BigInt:
 * one request at 32k tokens × 7.5 M µ€/M is already 2.4e11 units, and a month of spend passes
 * 2^53 units (~9,000 EUR), so plain numbers would silently lose cents. Units are stored as
 * SQLite INTEGER (int64, exact up to ~9.2 M EUR per aggregate) and read back as TEXT.
 */
import type { Pricing } from "./types";

/** Units (1e-12 EUR) per micro-euro. */
export const UNITS_PER_MICRO = 1_000_000n;

export interface TokenCounts {
  promptTokens: number;
  /** Part of promptTokens served from the prefix cache (billed at cached_input, not also at input). */
  cachedTokens: number;
  completionTokens: number;
}

/** Non-negative safe integer or 0: the meter must never throw on odd counts from the request path. */
export function tokenCount(n: unknown): number {
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER) : 0;
}

/** Exact cost in units: (prompt − cached)·input + cached·cached_input + completion·output. */
export function costUnits(price: Pricing, t: TokenCounts): bigint {
  const prompt = tokenCount(t.promptTokens);
  const cached = Math.min(tokenCount(t.cachedTokens), prompt);
  const completion = tokenCount(t.completionTokens);
  return (
    BigInt(prompt - cached) * BigInt(price.input) +
    BigInt(cached) * BigInt(price.cached_input) +
    BigInt(completion) * BigInt(price.output)
  );
}

/** Worst case for a request not yet run: whole prompt at the input rate plus every allowed completion token. */
export function reservationUnits(price: Pricing, promptTokens: number, maxCompletionTokens: number): bigint {
  return costUnits(price, { promptTokens, cachedTokens: 0, completionTokens: maxCompletionTokens });
}

/**
 * THE rounding rule (docs/billing.md "Rounding"): money is kept exact, in units; a figure in whole
 * micro-euros is its exact units rounded UP, once, from the exact figure: a request's cost, or an exact
 * sum of costs (never a sum of rounded figures). So a non-zero cost never reads 0, a reported figure is
 * never below what was charged, and the response's `usage.cost_micros`, the ledger row, `/v1/usage`,
 * the console and the CSV export all show the same integer for one request.
 */
export function unitsToMicros(units: bigint): number {
  return units <= 0n ? 0 : Number((units + UNITS_PER_MICRO - 1n) / UNITS_PER_MICRO);
}

/** Units -> whole micro-euros rounded DOWN: only for what a budget still allows (never promise money not there). */
export function unitsToMicrosFloor(units: bigint): number {
  return units <= 0n ? 0 : Number(units / UNITS_PER_MICRO);
}

/**
 * An exact cost times a discount fraction (e.g. batch pricing at 1/2): exact units × numerator ÷
 * denominator, rounded UP to a whole unit (the same direction as the rule above, never in the payer's
 * disfavour by more than one unit of 1e-12 EUR). Apply it to units, before any conversion to micro-euros.
 */
export function discountUnits(units: bigint, numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n || numerator < 0n) throw new RangeError("discount must be a non-negative fraction");
  const product = units * numerator;
  return product <= 0n ? 0n : (product + denominator - 1n) / denominator;
}

export function microsToUnits(micros: number): bigint {
  return BigInt(Math.max(0, Math.floor(micros))) * UNITS_PER_MICRO;
}

/** Parses a stored units value (TEXT or INTEGER column) exactly; null/garbage -> 0. */
export function parseUnits(v: unknown): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === "string" && /^-?\d+$/.test(v)) return BigInt(v);
  return 0n;
}

/**
 * A batch line's price: half of each of the tier's per-token prices. Prices are whole µ€ per million
 * tokens, so an odd price is halved rounding UP (7 -> 4), the ledger's direction (see unitsToMicros);
 * every price in wrangler.toml is even, so there a line costs exactly half. The discount lives in the
 * price, not as discountUnits on a cost, because the price is what admission records: a backend's usage
 * report for a line whose worker died is priced with it (usage/merge.ts), at the batch price too.
 */
export function batchPricing(p: Pricing): Pricing {
  const half = (x: number) => Math.floor((x + 1) / 2);
  return { input: half(p.input), cached_input: half(p.cached_input), output: half(p.output) };
}

export function isValidPricing(p: unknown): p is Pricing {
  if (typeof p !== "object" || p === null) return false;
  const r = p as Record<string, unknown>;
  return [r.input, r.cached_input, r.output].every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0);
}

/** The same rule under the name the request path imports (`usage.cost_micros`). */
export const unitsToMicrosCeil = unitsToMicros;
